"""Converters: tiny fake copies of each layout -> RAW LMDB -> RawPairedLMDBDataset, bit-exact."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.raw import converters
from basicsr_adl.raw.bayer import UnsupportedCFAError, normalize_levels, pack
from basicsr_adl.raw.io import RawReadError
from basicsr_adl.raw.lmdb_store import RawLMDBReader
from conftest import load_script
from raw_fakes import (XTRANS_6X6, make_eld_layout, make_folder_layout, make_sid_layout, make_sidd_layout,
                       random_mosaic, truncate_file, write_fake_dng)

REPO = Path(__file__).resolve().parents[1]
SENSORS = ['SonyA7S2', 'NikonD850', 'CanonEOS5D4', 'IMX686', 'HuaweiPhone', 'GP', 'IP', 'S6', 'N6', 'G4']


def _val_dataset(lq, gt, **opt):
    cls = DATASET_REGISTRY.get('RawPairedLMDBDataset')
    return cls(dict({'name': 'c', 'phase': 'val', 'dataroot_lq': lq, 'dataroot_gt': gt, 'sensors': SENSORS}, **opt))


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _run_script(name, *args, capsys=None):
    """Run a script's main(argv) in-process; returns exit code and captured output like subprocess.run."""
    code = load_script(name).main([*args, '--no-progress'])
    out = capsys.readouterr() if capsys is not None else None
    return _Result(code, out.out if out else '', out.err if out else '')


@pytest.mark.parametrize('kind', ['dng', 'npy', 'png'])
def test_folder_converter_round_trips_bit_exact(tmp_path, kind):
    rng = np.random.default_rng(0)
    mosaics = make_folder_layout(str(tmp_path / 'in'), rng, kind=kind, pattern='GRBG')
    lq_out, gt_out = str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb')
    if kind == 'dng':
        proc = _run_script('convert_raw_folder_to_lmdb.py', '--lq', str(tmp_path / 'in/noisy'), '--gt',
                           str(tmp_path / 'in/clean'), '--out-lq', lq_out, '--out-gt', gt_out, '--iso', '1600',
                           '--sensor', 'IMX686')
        assert proc.returncode == 0, proc.stderr
    else:  # sidecar metadata.json gives pattern/black/white/iso/sensor
        converters.write_pairs(converters.folder_pairs(str(tmp_path / 'in/noisy'), str(tmp_path / 'in/clean')),
                               lq_out, gt_out, progress=False)
    ds = _val_dataset(lq_out, gt_out)
    assert len(ds) == 3
    reader = RawLMDBReader(lq_out)
    for i in range(3):
        sample = ds[i]
        name = f'img_{i:02d}.{kind}'
        for folder, field in (('noisy', 'lq'), ('clean', 'gt')):
            packed = pack(mosaics[f'{folder}/{name}'], 'GRBG')
            np.testing.assert_array_equal(sample[field].numpy(), normalize_levels(packed, 64, 1023))
        np.testing.assert_array_equal(reader.get(f'img_{i:02d}')[0], pack(mosaics[f'noisy/{name}'], 'GRBG'))
        assert sample['sensor'] == SENSORS.index('IMX686') and sample['iso'] == 1600.0
    assert reader.meta('img_00')['pattern'] == 'GRBG'


def test_folder_converter_cli_failing_midway_leaves_nothing(tmp_path):
    rng = np.random.default_rng(1)
    make_folder_layout(str(tmp_path / 'in'), rng, n=4, kind='dng')
    truncate_file(str(tmp_path / 'in/noisy/img_02.dng'), keep=300)
    lq_out, gt_out = tmp_path / 'out' / 'lq.lmdb', tmp_path / 'out' / 'gt.lmdb'
    # the one real subprocess run: exit status and a single error line from the command line
    proc = subprocess.run([sys.executable, str(REPO / 'scripts/convert_raw_folder_to_lmdb.py'), '--lq',
                           str(tmp_path / 'in/noisy'), '--gt', str(tmp_path / 'in/clean'), '--out-lq', str(lq_out),
                           '--out-gt', str(gt_out), '--iso', '100'], cwd=str(REPO),
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert 'img_02.dng' in proc.stderr and proc.stderr.count('error:') == 1
    assert not lq_out.exists() and not gt_out.exists()
    assert os.listdir(tmp_path / 'out') == []


def test_folder_converter_shape_mismatch_and_missing_clean(tmp_path):
    rng = np.random.default_rng(2)
    for folder, shape in (('noisy', (24, 26)), ('clean', (24, 30))):
        write_fake_dng(str(tmp_path / folder / 'a.dng'), random_mosaic(rng, shape), 'RGGB')
    pairs = converters.folder_pairs(str(tmp_path / 'noisy'), str(tmp_path / 'clean'))
    with pytest.raises(ValueError, match=r'shape mismatch: noisy .*a\.dng'):
        converters.write_pairs(pairs, str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb'), progress=False)
    assert not (tmp_path / 'lq.lmdb').exists()
    write_fake_dng(str(tmp_path / 'noisy' / 'b.dng'), random_mosaic(rng, (24, 26)), 'RGGB')
    with pytest.raises(ValueError, match=r'1 file\(s\) without a partner in .*noisy b\.dng'):
        converters.folder_pairs(str(tmp_path / 'noisy'), str(tmp_path / 'clean'))


def test_folder_converter_rejects_xtrans(tmp_path):
    rng = np.random.default_rng(3)
    for folder in ('noisy', 'clean'):
        write_fake_dng(str(tmp_path / folder / 'x.raf'), random_mosaic(rng, (24, 24)), cfa=XTRANS_6X6)
    pairs = converters.folder_pairs(str(tmp_path / 'noisy'), str(tmp_path / 'clean'))
    with pytest.raises(UnsupportedCFAError, match=r'x\.raf.*unsupported CFA'):
        converters.write_pairs(pairs, str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb'), progress=False)


def test_sidd_converter_round_trips_bit_exact(tmp_path):
    rng = np.random.default_rng(4)
    arrays = make_sidd_layout(str(tmp_path / 'SIDD'), rng)
    lq_out, gt_out = str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb')
    proc = _run_script('convert_sidd_to_lmdb.py', '--root', str(tmp_path / 'SIDD'), '--out-lq', lq_out,
                       '--out-gt', gt_out)
    assert proc.returncode == 0, proc.stderr
    ds = _val_dataset(lq_out, gt_out)
    assert len(ds) == 2
    expected = {'0001_001_S6_00100_00060_3200_L': ('GRBG', 'S6', 100.0),
                '0002_002_IP_00800_00100_5500_N': ('RGGB', 'IP', 800.0)}
    for i, (scene, (pattern, phone, iso)) in enumerate(expected.items()):
        sample = ds[i]
        assert sample['lq_path'] == f'{scene}_010'
        assert sample['sensor'] == SENSORS.index(phone) and sample['iso'] == iso
        for kind, field in (('NOISY', 'lq'), ('GT', 'gt')):
            np.testing.assert_array_equal(sample[field].numpy(), pack(arrays[f'{scene}/{kind}'].astype(np.float32),
                                                                      pattern))
    # a --pattern override wins over the metadata file
    pairs = converters.sidd_pairs(str(tmp_path / 'SIDD'), {'S6': 'BGGR'})
    assert pairs[0].lq_meta['pattern'] == 'BGGR'


MAT73_HEADER = b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 .'


def _write_mat73(path, **arrays):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte MATLAB header, arrays column-major."""
    import h5py
    with h5py.File(path, 'w', userblock_size=512) as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=np.asarray(value).T)
    with open(path, 'r+b') as f:
        f.write(MAT73_HEADER.ljust(116, b' ') + b'\x00' * 8 + b'\x00\x02' + b'IM')


def test_sidd_v73_mat_files_round_trip_with_h5py(tmp_path):
    rng = np.random.default_rng(14)
    scene = '0001_001_S6_00100_00060_3200_L'
    folder = tmp_path / 'SIDD' / 'Data' / scene
    folder.mkdir(parents=True)
    arrays = {kind: rng.random((18, 22)) for kind in ('NOISY', 'GT')}
    for kind, x in arrays.items():
        _write_mat73(str(folder / f'0001_{kind}_RAW_010.MAT'), x=x)
    _write_mat73(str(folder / '0001_METADATA_RAW_010.MAT'), unused=np.zeros(1))
    np.testing.assert_array_equal(converters.load_mat(str(folder / '0001_GT_RAW_010.MAT'))['x'], arrays['GT'])
    lq_out, gt_out = str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb')
    proc = _run_script('convert_sidd_to_lmdb.py', '--root', str(tmp_path / 'SIDD'), '--out-lq', lq_out,
                       '--out-gt', gt_out, '--pattern', 'S6=GRBG')
    assert proc.returncode == 0, proc.stderr
    sample = _val_dataset(lq_out, gt_out)[0]
    np.testing.assert_array_equal(sample['gt'].numpy(), pack(arrays['GT'].astype(np.float32), 'GRBG'))
    np.testing.assert_array_equal(sample['lq'].numpy(), pack(arrays['NOISY'].astype(np.float32), 'GRBG'))


def test_sidd_v73_mat_without_h5py_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / '0001_NOISY_RAW_010.MAT'
    _write_mat73(str(path), x=np.zeros((4, 4)))
    monkeypatch.setitem(sys.modules, 'h5py', None)  # as if h5py were not installed
    with pytest.raises(RawReadError, match=r'0001_NOISY_RAW_010\.MAT.*h5py'):
        converters.load_mat(str(path))


def test_sid_converter_stores_long_exposures_once_and_applies_the_ratio(tmp_path):
    rng = np.random.default_rng(5)
    mosaics = make_sid_layout(str(tmp_path / 'SID'), rng)
    lq_out, gt_out = str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb')
    proc = _run_script('convert_sid_to_lmdb.py', '--root', str(tmp_path / 'SID'), '--list', 'Sony_test_list.txt',
                       '--out-lq', lq_out, '--out-gt', gt_out)
    assert proc.returncode == 0, proc.stderr
    assert len(RawLMDBReader(gt_out).keys()) == 2 and len(RawLMDBReader(lq_out).keys()) == 4
    ds = _val_dataset(lq_out, gt_out)
    raw_ds = _val_dataset(lq_out, gt_out, exposure_ratio=False)
    for i in range(len(ds)):
        sample, raw = ds[i], raw_ds[i]
        short = next(n for n in mosaics if n.replace('.', 'p').startswith(sample['lq_path']))
        long = f"{sample['gt_path']}.ARW"
        assert sample['ratio'] == pytest.approx(10.0 / float(short.split('_')[-1][:-5]))
        assert sample['sensor'] == 0 and sample['iso'] == 200.0
        np.testing.assert_array_equal(raw['lq'].numpy(), normalize_levels(pack(mosaics[short], 'RGGB'), 512, 4095))
        np.testing.assert_array_equal(sample['gt'].numpy(), normalize_levels(pack(mosaics[long], 'RGGB'), 512, 4095))
        expected = np.minimum(raw['lq'].numpy() * np.float32(sample['ratio']), 1.0)
        np.testing.assert_array_equal(sample['lq'].numpy(), expected)


def test_sid_fuji_xtrans_is_rejected(tmp_path):
    rng = np.random.default_rng(6)
    root = tmp_path / 'SID'
    write_fake_dng(str(root / 'Fuji/short/20001_00_0.1s.RAF'), random_mosaic(rng, (24, 24)), cfa=XTRANS_6X6)
    write_fake_dng(str(root / 'Fuji/long/20001_00_10s.RAF'), random_mosaic(rng, (24, 24)), cfa=XTRANS_6X6)
    (root / 'Fuji_test_list.txt').write_text('./Fuji/short/20001_00_0.1s.RAF ./Fuji/long/20001_00_10s.RAF ISO100 F8\n')
    pairs = converters.sid_pairs(str(root), 'Fuji_test_list.txt')
    assert pairs[0].lq_meta['sensor'] == 'FujiXT2'
    with pytest.raises(UnsupportedCFAError, match=r'20001_00_0\.1s\.RAF'):
        converters.write_pairs(pairs, str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb'), progress=False)
    assert not (tmp_path / 'lq.lmdb').exists()


def test_eld_converter_round_trips_with_ratios(tmp_path):
    rng = np.random.default_rng(7)
    mosaics = make_eld_layout(str(tmp_path / 'ELD'), rng)
    lq_out, gt_out = str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb')
    proc = _run_script('convert_eld_to_lmdb.py', '--root', str(tmp_path / 'ELD'), '--camera', 'SonyA7S2',
                       '--scenes', '1-2', '--noisy-ids', '4,9', '--out-lq', lq_out, '--out-gt', gt_out)
    assert proc.returncode == 0, proc.stderr
    ds = _val_dataset(lq_out, gt_out, exposure_ratio=False)
    assert len(ds) == 4 and len(RawLMDBReader(gt_out).keys()) == 4
    by_key = {ds[i]['lq_path']: ds[i] for i in range(4)}
    sample = by_key['SonyA7S2_scene2_0009']
    assert sample['gt_path'] == 'SonyA7S2_scene2_0011' and sample['iso'] == 6400.0 and sample['sensor'] == 0
    np.testing.assert_array_equal(sample['lq'].numpy(), normalize_levels(pack(mosaics['2/IMG_0009.CR2'], 'RGGB'),
                                                                         512, 4095))
    np.testing.assert_array_equal(sample['gt'].numpy(), normalize_levels(pack(mosaics['2/IMG_0011.CR2'], 'RGGB'),
                                                                         512, 4095))
    meta = RawLMDBReader(lq_out).meta('SonyA7S2_scene2_0009')
    assert meta['ratio'] == pytest.approx((1.0 * 100) / (0.01 * 6400))
    assert _val_dataset(lq_out, gt_out)[0]['ratio'] == pytest.approx(1.5625)


def test_eld_converter_missing_iso_fails_and_writes_nothing(tmp_path, capsys):
    rng = np.random.default_rng(8)
    make_eld_layout(str(tmp_path / 'ELD'), rng, scenes=(1, ), with_iso=False)
    lq_out, gt_out = tmp_path / 'lq.lmdb', tmp_path / 'gt.lmdb'
    proc = _run_script('convert_eld_to_lmdb.py', '--root', str(tmp_path / 'ELD'), '--camera', 'SonyA7S2',
                       '--noisy-ids', '4', '--out-lq', str(lq_out), '--out-gt', str(gt_out), capsys=capsys)
    assert proc.returncode == 1 and 'IMG_0004.CR2: no ISO' in proc.stderr
    assert not lq_out.exists() and not gt_out.exists()


@pytest.mark.parametrize('script', ['convert_raw_folder_to_lmdb.py', 'convert_sidd_to_lmdb.py',
                                    'convert_sid_to_lmdb.py', 'convert_eld_to_lmdb.py', 'make_embedded_raw.py',
                                    'benchmarks/bench_raw_io.py', 'preview_raw.py'])
def test_scripts_have_help(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(['--help'])
    assert exit_info.value.code == 0 and 'usage' in capsys.readouterr().out
