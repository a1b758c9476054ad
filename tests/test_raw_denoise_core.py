"""RAW in, RAW out, without BasicSR: the DNG writer, the EXIF reader, tiled inference and the mosaic round trip."""
import os

import numpy as np
import pytest
import rawpy
import torch

from basicsr_adl.raw.bayer import BAYER_PATTERNS
from basicsr_adl.raw.camera_denoise import dng_metadata, mosaic_from_output, net_input, write_outputs
from basicsr_adl.raw.dng import DngMetadata, write_dng
from basicsr_adl.raw.exif import read_exif
from basicsr_adl.raw.io import read_raw
from basicsr_adl.raw.tiling import count_tiles, ramp_window, run_tiled, tile_span, tile_starts

XYZ_TO_CAM = [[0.6722, -0.0635, -0.0963], [-0.4287, 1.246, 0.2028], [-0.0908, 0.2162, 0.5668]]  # a Canon's (dcraw)
BLACKS = (500, 510, 520, 530)  # canonical R, G1, G2, B: all different, so a mix-up shows


def source_dng(path, pattern='RGGB', shape=(67, 81), seed=0, iso=3200.0, below_black=True) -> np.ndarray:
    """A camera-like DNG with every tag the denoiser keeps; some pixels under the black level."""
    rng = np.random.default_rng(seed)
    mosaic = rng.integers(400, 4096, size=shape).astype(np.uint16)
    if below_black:
        mosaic[::7, ::5] = rng.integers(380, 480, size=mosaic[::7, ::5].shape)
    meta = DngMetadata(pattern=pattern, black=BLACKS, white=4095, xyz_to_camera=XYZ_TO_CAM,
                       as_shot_neutral=(0.5, 1.0, 0.7), orientation=6, make='Canon', model='EOS 5D Mark IV',
                       exposure_time=1 / 250, f_number=2.8, iso=iso, datetime_original='2026:01:02 03:04:05')
    write_dng(str(path), mosaic, meta)
    return mosaic


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
@pytest.mark.parametrize('shape', [(67, 81), (64, 80), (65, 80)])
def test_identity_round_trip_keeps_every_pixel_including_below_black(tmp_path, pattern, shape):
    src = tmp_path / 'src.dng'
    mosaic = source_dng(src, pattern, shape)
    capture = read_raw(str(src))
    assert capture.pattern == pattern and capture.mosaic.shape == shape
    packed = net_input(capture)
    assert packed.min() < 0, 'values under black must stay negative (not clipped)'
    out = mosaic_from_output(capture, packed)
    assert out.dtype == np.uint16 and out.shape == shape
    assert np.abs(out.astype(int) - mosaic.astype(int)).max() <= 1
    dng, png = write_outputs(capture, packed, str(tmp_path / 'out'), 'src')
    with rawpy.imread(dng) as raw:
        assert np.abs(raw.raw_image_visible.astype(int) - mosaic.astype(int)).max() <= 1
        assert (raw.raw_image_visible < 500).sum() == (mosaic < 500).sum() > 0
    assert os.path.getsize(png) > 0
    assert sorted(os.listdir(tmp_path / 'out')) == ['src.dng', 'src.png']  # no temporary file left


def test_output_changes_only_the_packed_area_and_follows_the_pattern(tmp_path):
    src = tmp_path / 'src.dng'
    mosaic = source_dng(src, 'GBRG', (65, 81))  # red at (1, 0): packing drops row 0, column 0 and the last row
    capture = read_raw(str(src))
    packed = net_input(capture)
    marked = packed.copy()
    marked[0] = 1.0  # the R plane to white
    out = mosaic_from_output(capture, marked)
    assert (out[1:-1:2, 0:-1:2] == 4095).all()             # red sites of the GBRG layout
    assert (out[0] == mosaic[0]).all() and (out[-1] == mosaic[-1]).all()  # uncovered rows keep the file's pixels
    assert np.array_equal(out[2:-1:2, 1::2], mosaic[2:-1:2, 1::2])       # a green plane untouched


def test_dng_keeps_the_source_metadata_for_libraw_and_exif_readers(tmp_path):
    src = tmp_path / 'src.dng'
    source_dng(src, 'GRBG')
    capture = read_raw(str(src))
    assert capture.iso == 3200 and capture.orientation == 6
    assert capture.exif.make == 'Canon' and capture.exif.model == 'EOS 5D Mark IV'
    dng, _ = write_outputs(capture, net_input(capture), str(tmp_path / 'out'), 'x')
    with rawpy.imread(dng) as raw:
        assert raw.raw_pattern.tolist() == [[1, 0], [2, 3]]  # G R / B G2 in LibRaw's colour indices
        assert raw.white_level == 4095
        # LibRaw lists black by colour R, G, B, G2; the file had R 500, G1 510, G2 520, B 530
        assert list(raw.black_level_per_channel) == [500, 510, 530, 520]
        assert raw.other.iso_speed == 3200
        assert raw.other.shutter_speed == pytest.approx(1 / 250, rel=1e-4)
        assert raw.other.aperture == pytest.approx(2.8, rel=1e-3)
        assert raw.sizes.flip == 6
        wb = raw.camera_whitebalance
        assert wb[0] / wb[1] == pytest.approx(2.0, rel=1e-3) and wb[2] / wb[1] == pytest.approx(1 / 0.7, rel=1e-3)
        assert np.any(np.asarray(raw.rgb_xyz_matrix))
        assert raw.postprocess().shape[:2] == (81, 67)  # developed and rotated by the orientation
    exif = read_exif(dng)
    assert (exif.iso, exif.make, exif.model) == (3200, 'Canon', 'EOS 5D Mark IV')
    assert exif.exposure_time == pytest.approx(0.004) and exif.datetime_original == '2026:01:02 03:04:05'
    assert dng_metadata(read_raw(dng)).black == list(BLACKS)


def test_exif_reader_gives_nothing_for_files_without_exif(tmp_path):
    import cv2
    path = str(tmp_path / 'mosaic.png')
    cv2.imwrite(path, np.zeros((8, 8), np.uint16))
    assert read_exif(path).iso is None and read_exif(path).make == ''
    source_dng(tmp_path / 'no_iso.dng', iso=None)
    assert read_raw(str(tmp_path / 'no_iso.dng')).iso is None


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    import basicsr_adl.raw.dng as dng
    monkeypatch.setattr(dng, '_attach_exif', lambda path, meta: (_ for _ in ()).throw(OSError('disk full')))
    with pytest.raises(OSError, match='disk full'):
        write_dng(str(tmp_path / 'a.dng'), np.zeros((32, 32), np.uint16), DngMetadata())
    assert os.listdir(tmp_path) == []


# -- tiles ---------------------------------------------------------------------------------------------------
def test_tiles_cover_the_axis_and_overlap_by_at_least_the_overlap():
    for size, tile, overlap in [(100, 32, 8), (33, 32, 8), (32, 32, 8), (1000, 128, 0), (129, 64, 63), (1000, 512, 32)]:
        starts, length = tile_span(size, tile, overlap)
        assert length <= min(tile, size)
        covered = np.zeros(size, bool)
        for s in starts:
            assert 0 <= s <= size - length
            covered[s:s + length] = True
        assert covered.all()
        assert all(b - a <= length - overlap for a, b in zip(starts, starts[1:]))
    assert tile_span(1000, 512, 32) == ([0, 316, 632], 368)  # 3 tiles of 368 (a multiple of 16), not 3 of 512
    assert tile_starts(500, 0, 0) == [0] and count_tiles(100, 100, 32, 8) == 16
    window = ramp_window(20, 8, True, False)
    assert window[:2].tolist() == pytest.approx([1e-3, 1e-3]) and window[2:6].tolist() == pytest.approx(
        [0.125, 0.375, 0.625, 0.875]) and (window[6:] == 1).all()


def test_tiled_pointwise_net_equals_whole_image():
    torch.manual_seed(0)
    net = torch.nn.Conv2d(4, 4, 1)
    image = torch.randn(1, 4, 77, 101)
    with torch.no_grad():
        whole, tiled = net(image), run_tiled(net, image, 24, 6)
    assert torch.allclose(whole, tiled, atol=1e-5)


def test_tiled_conv_net_approaches_whole_image_as_overlap_grows():
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Conv2d(4, 4, 3, padding=1) for _ in range(4)])  # receptive field 9
    image = torch.randn(1, 4, 90, 90)
    with torch.no_grad():
        whole = net(image)
        errors = [float((run_tiled(net, image, 40, o) - whole).abs().max()) for o in (0, 4, 16)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1 * errors[0]
    progress = []
    with torch.no_grad():
        run_tiled(net, image, 40, 16, on_tile=lambda done, total: progress.append((done, total)))
    assert progress[-1] == (count_tiles(90, 90, 40, 16), count_tiles(90, 90, 40, 16))


def test_tiling_rejects_a_net_that_changes_the_size():
    with pytest.raises(ValueError, match='size-preserving'):
        run_tiled(lambda t: t[..., :-1, :], torch.zeros(1, 4, 50, 50), 20, 4)


def test_a_dng_sources_colour_profile_is_copied_verbatim(tmp_path):
    """Two matrices, two illuminants, forward matrices and a crop: kept as the source has them, not LibRaw's
    renormalised matrix (which would no longer fit the AsShotNeutral for Adobe-style readers)."""
    profile = [(50721, 10, 9, (9495, 10000, -4550, 10000, 283, 10000, -3570, 10000, 13227, 10000, 1950, 10000,
                               -463, 10000, 1549, 10000, 7350, 10000)),
               (50722, 10, 9, (6880, 10000, -2475, 10000, -487, 10000, -3926, 10000, 12011, 10000, 1579, 10000,
                               -892, 10000, 2006, 10000, 5815, 10000)),
               (50778, 3, 1, (17, )), (50779, 3, 1, (21, )), (50719, 3, 2, (2, 2)), (50720, 3, 2, (60, 40)),
               (50730, 10, 1, (265412, 100000))]
    mosaic = np.random.default_rng(0).integers(600, 4000, size=(48, 66)).astype(np.uint16)
    write_dng(str(tmp_path / 'src.dng'), mosaic, DngMetadata(pattern='RGGB', black=(512, ) * 4, white=4095,
                                                             as_shot_neutral=(0.45, 1, 0.53), copied_tags=profile))
    capture = read_raw(str(tmp_path / 'src.dng'))
    assert [t[0] for t in capture.exif.dng_tags] == sorted(t[0] for t in profile)
    dng, _ = write_outputs(capture, net_input(capture), str(tmp_path / 'out'), 'out')
    copied = {tag: value for tag, _, _, value in read_exif(dng).dng_tags}
    for tag, _, _, value in profile:
        got, want = np.array(copied[tag], float), np.array(value, float)
        if len(want) > 1 and tag not in (50719, 50720):  # rationals may come back reduced: compare the ratios
            got, want = got[0::2] / got[1::2], want[0::2] / want[1::2]
        assert np.allclose(got, want), tag


REAL = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'data', 'raw_real_small')


@pytest.mark.skipif(not os.path.isdir(REAL), reason='real RAW samples not available')
@pytest.mark.parametrize('name', ['Blackmagic_PocketCinema4K.dng', 'RAW_KODAK_DC50.KDC'])
def test_real_camera_files_round_trip(tmp_path, name):
    """Optional (shared data): a real CinemaDNG and a Kodak KDC through the identity path, read back by LibRaw."""
    capture = read_raw(os.path.join(REAL, name))
    dng, png = write_outputs(capture, net_input(capture), str(tmp_path), 'out')
    with rawpy.imread(dng) as raw:
        assert np.array_equal(raw.raw_image_visible, capture.mosaic)
        assert raw.raw_pattern.tolist() == rawpy.imread(os.path.join(REAL, name)).raw_pattern.tolist()
    copied = {tag for tag, *_ in read_exif(dng).dng_tags}
    if name.endswith('.dng'):  # the CinemaDNG's own profile and crop are kept
        assert {50719, 50720, 50721, 50722, 50778, 50779, 50964, 50965} <= copied
    else:
        assert read_exif(dng).make == 'Eastman Kodak Company' and read_raw(dng).iso == 84


@pytest.mark.skipif(__import__('shutil').which('exiftool') is None, reason='exiftool not installed (optional)')
def test_exiftool_validates_the_written_dng_and_reads_its_exif(tmp_path):
    """A second reader besides LibRaw and ExifRead (Debian's libimage-exiftool-perl), when it is installed."""
    import subprocess
    src = tmp_path / 'src.dng'
    source_dng(src, 'BGGR')
    capture = read_raw(str(src))
    dng, _ = write_outputs(capture, net_input(capture), str(tmp_path / 'out'), 'x')
    check = subprocess.run(['exiftool', '-validate', '-warning', '-a', dng], capture_output=True, text=True)
    assert 'Validate' in check.stdout and ': OK' in check.stdout, check.stdout
    tags = subprocess.run(['exiftool', '-s', '-ISO', '-ExposureTime', '-Make', '-CFAPattern', dng],
                          capture_output=True, text=True).stdout
    assert 'ISO                             : 3200' in tags and '1/250' in tags and 'Canon' in tags
    assert '[Blue,Green][Green,Red]' in tags
