"""Fault injection, issue 15 cases 1-2: files pair by name (never by their first number), every doubt is an
error naming the files, and PolyU names with empty fields load."""
import os

import cv2
import numpy as np
import pytest

from conftest import PYTHON, REPO, load_script, run_cli, sr_train_options, write_yaml
from raw_fakes import random_mosaic, write_fake_dng

from basicsr_adl.data.mixed_noise_pairs_dataset import MixedNoisePairsDataset
from basicsr_adl.data.real_noisy_pairs_dataset import RealNoisyPairsDataset
from basicsr_adl.layouts import LayoutError, layout_pairs
from basicsr_adl.pairing import PairingError, pair_names
from basicsr_adl.raw import converters
from basicsr_adl.raw.lmdb_store import RawLMDBReader
from basicsr_adl.real_pairs import RealPairsError, parse_polyu_name, polyu_pairs, subfolder_pairs

SIDD_NOISY = ['0001_NOISY_SRGB_011.PNG', '0001_NOISY_SRGB_012.PNG', '0002_NOISY_SRGB_011.PNG']
SIDD_GT = ['0001_GT_SRGB_011.PNG', '0001_GT_SRGB_012.PNG', '0002_GT_SRGB_011.PNG']


def _img(path, value):
    """A flat image whose value identifies the file (so a wrong pair shows in the pixels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((20, 20, 3), value, np.uint8))


def _folders(root, noisy, gt, noisy_dir='noisy', gt_dir='gt'):
    for i, name in enumerate(noisy):
        _img(root / noisy_dir / name, 10 + 20 * i)
    for i, name in enumerate(gt):
        _img(root / gt_dir / name, 11 + 20 * i)
    return root


def _names(pairs):
    return [(os.path.basename(p.noisy), os.path.basename(p.clean)) for p in pairs]


# -- the rule ------------------------------------------------------------------------------------------------
def test_sidd_names_pair_each_noisy_with_its_own_gt(tmp_path):
    pairs = subfolder_pairs(str(_folders(tmp_path, SIDD_NOISY, SIDD_GT)), camera='SIDD')
    assert _names(pairs) == list(zip(SIDD_NOISY, SIDD_GT))
    assert [p.scene for p in pairs] == [f'{tmp_path.name}-0001_SRGB_011', f'{tmp_path.name}-0001_SRGB_012',
                                        f'{tmp_path.name}-0002_SRGB_011']


def test_same_first_number_pairs_by_whole_name(tmp_path):
    names = ['IMG_2024_03.png', 'IMG_2024_01.png', 'IMG_2024_02.png']
    pairs = subfolder_pairs(str(_folders(tmp_path, names, sorted(names))), camera='X')
    assert _names(pairs) == [(n, n) for n in sorted(names)]


def test_marker_words_and_numbers_as_written():
    assert pair_names(['01_noise.png', '02_noise.png'], ['02_gt.png', '01_gt.png']) == [
        ('01_noise.png', '01_gt.png', '01'), ('02_noise.png', '02_gt.png', '02')]
    assert pair_names(['x-Real.jpg'], ['X_MEAN.JPG'])[0].clean == 'X_MEAN.JPG'  # tokens, any case
    with pytest.raises(PairingError, match=r'2 file\(s\) without a partner.*noisy 01_noise\.png; clean 1_gt\.png'):
        pair_names(['01_noise.png'], ['1_gt.png'])  # numbers are never reinterpreted
    with pytest.raises(PairingError, match=r'noisy 01noisy\.png'):
        pair_names(['01noisy.png'], ['01.png'])  # only whole tokens are markers
    with pytest.raises(PairingError, match=r'noisy a_gt\.png; clean a_noisy\.png'):
        pair_names(['a_gt.png'], ['a_noisy.png'])  # markers count only on their own side
    # an exact match wins over a marker match, so exposure words in both folders stay distinct
    assert pair_names(['s_low_1.png', 's_high_1.png'], ['s_high_1.png', 's_low_1.png']) == [
        ('s_high_1.png', 's_high_1.png', 's_high_1'), ('s_low_1.png', 's_low_1.png', 's_low_1')]


def test_ambiguous_folder_names_every_candidate(tmp_path):
    root = _folders(tmp_path, SIDD_NOISY[:1], ['0001_GT_SRGB_011.PNG', '0001_GT_SRGB_011.JPG'])
    with pytest.raises(RealPairsError) as err:
        subfolder_pairs(str(root), camera='X')
    msg = str(err.value)
    assert msg.startswith(f'ambiguous pairs in {root / "noisy"} / {root / "gt"}: 1 name(s)')
    assert '0001_NOISY_SRGB_011.PNG <-> 0001_GT_SRGB_011.JPG, 0001_GT_SRGB_011.PNG' in msg
    assert "'filename_tmpl'" in msg and '\n' not in msg
    with pytest.raises(PairingError, match=r'a\.png <-> a\.png and a_noisy\.png <-> a_gt\.png share the name'):
        pair_names(['a.png', 'a_noisy.png'], ['a.png', 'a_gt.png'])  # one name for two pairs


def test_unmatched_files_on_either_side_are_named_with_a_count(tmp_path):
    root = _folders(tmp_path, SIDD_NOISY + ['0003_NOISY_SRGB_011.PNG'], SIDD_GT + ['0009_GT_SRGB_011.PNG'])
    with pytest.raises(RealPairsError, match=r'^2 file\(s\) without a partner in .*noisy 0003_NOISY_SRGB_011\.PNG; '
                                             r'clean 0009_GT_SRGB_011\.PNG'):
        subfolder_pairs(str(root), camera='X')
    with pytest.raises(PairingError, match=r'^8 file\(s\) without a partner.*n4\.png \(\+3 more\)'):
        pair_names([f'n{i}.png' for i in range(8)], [])


def test_filename_tmpl_pairs_other_layouts():
    assert pair_names(['a_x.png', 'b_x.jpg'], ['b.png', 'a.png'], '{}_x') == [
        ('a_x.png', 'a.png', 'a'), ('b_x.jpg', 'b.png', 'b')]
    with pytest.raises(PairingError, match=r"partner.*noisy a_y\.png; clean a\.png \(filename_tmpl '\{\}_x'\)"):
        pair_names(['a_y.png'], ['a.png'], '{}_x')
    with pytest.raises(PairingError, match=r"ambiguous.*a_x\.jpg, a_x\.png <-> a\.png"):
        pair_names(['a_x.png', 'a_x.jpg'], ['a.png'], '{}_x')
    for bad in ('noisy', '{}{}', '{0}_{1}'):
        with pytest.raises(PairingError, match=r"option 'filename_tmpl': .* must hold '\{\}' once"):
            pair_names(['a.png'], ['a.png'], bad)


# -- PolyU ---------------------------------------------------------------------------------------------------
def test_polyu_names_with_empty_fields_load(tmp_path):
    for base in ('NikonD800_6-3_125_5000_plant__4', 'Canon5D2_5__160_3200_chair_11', 'CamA_8_8_800_big_desk_2'):
        _img(tmp_path / f'{base}_real.JPG', 1)
        _img(tmp_path / f'{base}_mean.JPG', 2)
    pairs = {os.path.basename(p.noisy): p for p in polyu_pairs(str(tmp_path))}
    nikon = pairs['NikonD800_6-3_125_5000_plant__4_real.JPG']
    assert (nikon.camera, nikon.iso, nikon.scene) == ('NikonD800', 5000.0, 'plant')
    assert nikon.clean.endswith('NikonD800_6-3_125_5000_plant__4_mean.JPG')
    assert (pairs['Canon5D2_5__160_3200_chair_11_real.JPG'].iso, pairs['CamA_8_8_800_big_desk_2_real.JPG'].scene) \
        == (3200.0, 'big_desk')
    fields = parse_polyu_name('NikonD800_6-3_125_5000_plant__4_real')
    assert (fields.fnum, fields.shutter, fields.index, fields.kind) == ('6-3', '125', '4', 'real')


def test_polyu_real_mean_pairing_stays_exact(tmp_path):
    _img(tmp_path / 'NikonD800_6-3_125_5000_plant__4_real.JPG', 1)
    _img(tmp_path / 'NikonD800_6-3_125_5000_plant_4_mean.JPG', 2)  # one '_' fewer: another prefix
    with pytest.raises(RealPairsError, match=r'2 unpaired PolyU file\(s\) in .*plant_4_mean\.JPG, .*plant__4_real'):
        polyu_pairs(str(tmp_path))
    (tmp_path / 'NikonD800_6-3_125_5000_plant_4_mean.JPG').unlink()
    _img(tmp_path / 'NikonD800_6-3_125_5000_plant__4_mean.JPG', 2)
    _img(tmp_path / 'NikonD800_6-3_125_5000_plant__4_mean.png', 3)
    with pytest.raises(RealPairsError, match=r'ambiguous PolyU files .*plant__4_mean\.JPG and .*plant__4_mean\.png'):
        polyu_pairs(str(tmp_path))
    (tmp_path / 'NikonD800_6-3_125_5000_plant__4_mean.png').unlink()
    _img(tmp_path / 'NikonD800_6-3_125_X_plant__4_real.JPG', 1)
    with pytest.raises(RealPairsError, match=r'NikonD800_6-3_125_X_plant__4_real\.JPG: not a PolyU name'):
        polyu_pairs(str(tmp_path))


# -- through the datasets, layouts and the RAW converter -----------------------------------------------------
def test_real_noisy_pairs_dataset_subfolders_reads_the_right_images(tmp_path):
    root = _folders(tmp_path, SIDD_NOISY, SIDD_GT)
    ds = RealNoisyPairsDataset({'name': 't', 'dataroot': str(root), 'naming': 'subfolders', 'camera': 'SIDD',
                                'phase': 'val'})
    assert len(ds) == 3
    for i in range(3):
        item = ds[i]
        assert round(float(item['lq'][0, 0, 0]) * 255) == 10 + 20 * i  # noisy file i ...
        assert round(float(item['gt'][0, 0, 0]) * 255) == 11 + 20 * i  # ... with its own GT
    tmpl_root = _folders(tmp_path / 'tmpl', ['a_n.png', 'b_n.png'], ['b.png', 'a.png'])
    opt = {'name': 't', 'dataroot': str(tmpl_root), 'naming': 'subfolders', 'camera': 'X', 'filename_tmpl': '{}_n'}
    assert _names(RealNoisyPairsDataset(opt).pairs) == [('a_n.png', 'a.png'), ('b_n.png', 'b.png')]
    with pytest.raises(RealPairsError, match=r"option 'filename_tmpl': 'n' must hold"):
        RealNoisyPairsDataset({**opt, 'filename_tmpl': 'n'})
    with pytest.raises(RealPairsError, match=r"option 'filename_tmpl' needs naming: subfolders"):
        RealNoisyPairsDataset({**opt, 'naming': 'polyu'})


def test_mixed_noise_dataset_pairs_by_name_and_template(tmp_path):
    _folders(tmp_path / 'sidd', SIDD_NOISY, SIDD_GT)
    _folders(tmp_path / 'other', ['a_n.png'], ['a.png'])
    opt = {'name': 'mix', 'phase': 'val', 'synthetic_prob': 0,
           'real_pairs': [{'dataroot': str(tmp_path / 'sidd'), 'naming': 'subfolders'},
                          {'dataroot': str(tmp_path / 'other'), 'naming': 'subfolders', 'filename_tmpl': '{}_n'}]}
    ds = MixedNoisePairsDataset(opt)
    assert [(os.path.basename(n), os.path.basename(c)) for n, c in ds.real] == list(zip(SIDD_NOISY, SIDD_GT)) + [
        ('a_n.png', 'a.png')]
    opt['real_pairs'][1]['filename_tmpl'] = '{}_m'
    with pytest.raises(RealPairsError, match=r"without a partner .*noisy a_n\.png; clean a\.png "
                                             r"\(mix\.real_pairs\[1\]\.filename_tmpl '\{\}_m'\)"):
        MixedNoisePairsDataset(opt)
    opt['real_pairs'][1]['naming'] = 'polyu'
    with pytest.raises(ValueError, match=r"option 'mix\.real_pairs\[1\]\.filename_tmpl' needs naming: subfolders"):
        MixedNoisePairsDataset(opt)


def test_folder_layout_pairs_by_name(tmp_path):
    _folders(tmp_path, ['x_lq.png', 'y_lq.png'], ['x_gt.png', 'y_gt.png'], 'lq', 'gt')
    assert [tuple(os.path.basename(p) for p in pair) for pair in layout_pairs('folder', str(tmp_path))] == [
        ('x_lq.png', 'x_gt.png'), ('y_lq.png', 'y_gt.png')]
    _img(tmp_path / 'gt' / 'y_hq.png', 5)
    with pytest.raises(LayoutError, match=r'ambiguous pairs .*y_lq\.png <-> y_gt\.png, y_hq\.png$'):
        layout_pairs('folder', str(tmp_path))


def _convert_cli(*args):
    return load_script('convert_raw_folder_to_lmdb.py').main([*args, '--no-progress', '--iso', '100'])


def test_raw_folder_converter_pairs_by_name(tmp_path, capsys):
    rng = np.random.default_rng(0)
    mosaics = {}
    for folder, names in (('noisy', ['0001_NOISY_RAW_010.dng', '0002_NOISY_RAW_010.dng']),
                          ('clean', ['0001_GT_RAW_010.dng', '0002_GT_RAW_010.dng'])):
        for name in names:
            mosaics[name] = random_mosaic(rng, (24, 26))
            write_fake_dng(str(tmp_path / folder / name), mosaics[name], 'RGGB')
    pairs = converters.folder_pairs(str(tmp_path / 'noisy'), str(tmp_path / 'clean'))
    assert [(os.path.basename(p.lq_path), os.path.basename(p.gt_path), p.lq_key, p.gt_key) for p in pairs] == [
        ('0001_NOISY_RAW_010.dng', '0001_GT_RAW_010.dng', '0001_RAW_010', '0001_RAW_010'),
        ('0002_NOISY_RAW_010.dng', '0002_GT_RAW_010.dng', '0002_RAW_010', '0002_RAW_010')]
    lq_out, gt_out = tmp_path / 'out' / 'lq.lmdb', tmp_path / 'out' / 'gt.lmdb'
    assert _convert_cli('--lq', str(tmp_path / 'noisy'), '--gt', str(tmp_path / 'clean'), '--out-lq', str(lq_out),
                        '--out-gt', str(gt_out)) == 0
    assert sorted(RawLMDBReader(str(gt_out)).keys()) == ['0001_RAW_010', '0002_RAW_010']
    capsys.readouterr()
    write_fake_dng(str(tmp_path / 'clean' / '0002-gt-raw-010.dng'), mosaics['0001_GT_RAW_010.dng'], 'RGGB')
    lq2, gt2 = tmp_path / 'out2' / 'lq.lmdb', tmp_path / 'out2' / 'gt.lmdb'
    assert _convert_cli('--lq', str(tmp_path / 'noisy'), '--gt', str(tmp_path / 'clean'), '--out-lq', str(lq2),
                        '--out-gt', str(gt2)) == 1
    err = capsys.readouterr().err
    assert err.count('error:') == 1 and err.count('\n') == 1 and 'Traceback' not in err
    assert '0002_NOISY_RAW_010.dng <-> 0002-gt-raw-010.dng, 0002_GT_RAW_010.dng' in err
    assert "'--filename-tmpl'" in err
    assert not lq2.exists() and not gt2.exists()


def test_raw_folder_converter_filename_tmpl(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for folder, name in (('noisy', 'shot7_short.dng'), ('clean', 'shot7.dng')):
        write_fake_dng(str(tmp_path / folder / name), random_mosaic(rng, (24, 26)), 'RGGB')
    lq_out, gt_out = tmp_path / 'lq.lmdb', tmp_path / 'gt.lmdb'
    args = ['--lq', str(tmp_path / 'noisy'), '--gt', str(tmp_path / 'clean'), '--out-lq', str(lq_out),
            '--out-gt', str(gt_out)]
    assert _convert_cli(*args) == 1
    assert 'noisy shot7_short.dng; clean shot7.dng' in capsys.readouterr().err
    assert not lq_out.exists() and not gt_out.exists()
    assert _convert_cli(*args, '--filename-tmpl', '{}_short') == 0
    assert RawLMDBReader(str(lq_out)).keys() == ['shot7']


def test_train_cli_names_the_ambiguous_files_in_one_line(tmp_path):
    data = _folders(tmp_path / 'data', SIDD_NOISY[:1], ['0001_GT_SRGB_011.PNG', '0001_GT_SRGB_011.JPG'])
    opt = sr_train_options('pairing_fault', 'x', 'x', 'x', 'x')
    real = {'name': 'real', 'type': 'RealNoisyPairsDataset', 'dataroot': str(data), 'naming': 'subfolders',
            'camera': 'SIDD'}
    opt['datasets'] = {'train': dict(real, gt_size=16, num_worker_per_gpu=0, batch_size_per_gpu=1,
                                     dataset_enlarge_ratio=1, prefetch_mode=None),
                       'val': dict(real, name='real_val')}
    write_yaml(tmp_path / 'opt.yml', opt)
    proc = run_cli([PYTHON, str(REPO / 'basicsr_adl' / 'train.py'), '-opt', str(tmp_path / 'opt.yml')], tmp_path,
                   check=False)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if 'error' in line.lower()]
    assert errors == [f'basicsr_adl: error: ambiguous pairs in {data / "noisy"} / {data / "gt"}: 1 name(s) match '
                      f"more than one file: 0001_NOISY_SRGB_011.PNG <-> 0001_GT_SRGB_011.JPG, 0001_GT_SRGB_011.PNG; "
                      f"set 'filename_tmpl' for other layouts"]
    assert not (tmp_path / 'experiments').exists()  # neither the run's folder nor the experiments/ made for it
