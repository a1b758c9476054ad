"""Reading camera files (rawpy) and bare mosaics; bad input gives one clear error naming the file."""
import os

import numpy as np
import pytest

from basicsr_adl.raw.bayer import UnsupportedCFAError, pack
from basicsr_adl.raw.io import RawReadError, read_raw
from raw_fakes import XTRANS_6X6, random_mosaic, truncate_file, write_fake_dng

REAL = '/work/shared/data/raw_real_small'


@pytest.mark.parametrize('pattern', ['RGGB', 'BGGR', 'GRBG', 'GBRG'])
def test_camera_file_mosaic_pattern_levels_and_wb(tmp_path, pattern):
    rng = np.random.default_rng(0)
    mosaic = random_mosaic(rng, (24, 30))
    path = write_fake_dng(str(tmp_path / f'{pattern}.dng'), mosaic, pattern, black=256, white=4000,
                          neutral=(0.5, 1.0, 0.25), exposure=0.02)
    capture = read_raw(path)
    assert capture.pattern == pattern
    np.testing.assert_array_equal(capture.mosaic, mosaic)
    assert capture.black == [256.0] * 4 and capture.white == [4000.0] * 4
    np.testing.assert_allclose(capture.wb, [2.0, 1.0, 1.0, 4.0], rtol=1e-4)  # 1 / AsShotNeutral, R,G1,G2,B
    assert capture.exposure == pytest.approx(0.02, rel=1e-3)
    np.testing.assert_array_equal(capture.packed(), pack(mosaic, pattern))
    meta = capture.meta()
    assert meta['pattern'] == pattern and meta['mosaic_shape'] == [24, 30]


def test_truncated_camera_file_is_reported(tmp_path):
    path = write_fake_dng(str(tmp_path / 'cut.dng'), random_mosaic(np.random.default_rng(1), (64, 64)))
    truncate_file(path, keep=300)
    with pytest.raises(RawReadError, match=r'cut\.dng'):
        read_raw(path)


def test_non_raw_file_is_reported(tmp_path):
    path = tmp_path / 'notes.cr2'
    path.write_text('hello, not a raw file')
    with pytest.raises(RawReadError, match=r'notes\.cr2: not a readable camera RAW'):
        read_raw(str(path))


def test_xtrans_camera_file_is_rejected(tmp_path):
    path = write_fake_dng(str(tmp_path / 'fuji.raf'), random_mosaic(np.random.default_rng(2), (24, 24)),
                          cfa=XTRANS_6X6)
    with pytest.raises(UnsupportedCFAError, match=r'fuji\.raf.*X-Trans'):
        read_raw(path)


def test_bare_mosaics_with_metadata(tmp_path):
    import cv2
    rng = np.random.default_rng(3)
    mosaic = random_mosaic(rng, (10, 14), 25, 1023)
    meta = {'pattern': 'GRBG', 'black': 25, 'white': 1023, 'iso': 400}
    np.save(tmp_path / 'm.npy', mosaic)
    cv2.imwrite(str(tmp_path / 'm.png'), mosaic)
    mosaic.astype('<u2').tofile(tmp_path / 'm.bin')
    for name, extra in (('m.npy', {}), ('m.png', {}), ('m.bin', {'raw_shape': [10, 14]})):
        capture = read_raw(str(tmp_path / name), dict(meta, **extra))
        np.testing.assert_array_equal(capture.mosaic, mosaic)
        assert capture.pattern == 'GRBG' and capture.iso == 400 and capture.black == [25.0] * 4
    with pytest.raises(RawReadError, match=r'm\.bin: .*truncated or wrong shape'):
        read_raw(str(tmp_path / 'm.bin'), dict(meta, raw_shape=[10, 15]))
    with pytest.raises(RawReadError, match=r'm\.npy: bare mosaic needs pattern'):
        read_raw(str(tmp_path / 'm.npy'), {'black': 0, 'white': 1023})
    with pytest.raises(UnsupportedCFAError, match='XTRANS'):
        read_raw(str(tmp_path / 'm.npy'), dict(meta, pattern='XTRANS'))
    np.save(tmp_path / 'rgb.npy', np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(RawReadError, match=r'rgb\.npy: a Bayer mosaic must be 2-D'):
        read_raw(str(tmp_path / 'rgb.npy'), meta)


def test_metadata_overrides_camera_values_but_not_a_conflicting_pattern(tmp_path):
    path = write_fake_dng(str(tmp_path / 'a.dng'), random_mosaic(np.random.default_rng(4), (24, 24)), 'RGGB')
    capture = read_raw(path, {'iso': 3200, 'black': 600, 'sensor': 'X'})
    assert capture.iso == 3200 and capture.black == [600.0] * 4 and capture.sensor == 'X'
    with pytest.raises(RawReadError, match='pattern BGGR but the file says RGGB'):
        read_raw(path, {'pattern': 'BGGR'})


# -- optional checks on real camera files (skipped when the shared data is absent) ---------------------------
@pytest.mark.skipif(not os.path.isdir(REAL), reason='real RAW samples not available')
def test_real_camera_files():
    kdc = read_raw(os.path.join(REAL, 'RAW_KODAK_DC50.KDC'))
    assert kdc.pattern == 'GRBG' and kdc.white == [16383.0] * 4 and kdc.iso == 84.0
    assert kdc.packed().shape == (4, 256, 383)  # GRBG: one column lost to the red offset
    dng = read_raw(os.path.join(REAL, 'Blackmagic_PocketCinema4K.dng'))
    assert dng.pattern == 'RGGB' and dng.black == [512.0] * 4
    assert dng.wb[0] == pytest.approx(2.206, abs=1e-3)
    png = read_raw(os.path.join(REAL, 'halide_N900_bayer_small.png'), {'pattern': 'GRBG', 'black': 25, 'white': 1023})
    assert png.mosaic.shape == (344, 256)
    raw = read_raw(os.path.join(REAL, 'openISP_test_1920x1080_u16le_rggb.RAW'),
                   {'pattern': 'RGGB', 'black': 0, 'white': 1023, 'raw_shape': [1080, 1920]})
    assert raw.packed().shape == (4, 540, 960) and raw.mosaic.max() <= 1023
