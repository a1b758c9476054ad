"""Real sRGB noisy/clean pairs as ADL domains: PolyU names, subfolders + meta.csv, scene splits."""
import random

import cv2
import numpy as np
import pytest

from basicsr_adl.data.real_noisy_pairs_dataset import RealNoisyPairsDataset
from basicsr_adl.real_pairs import RealPairsError, polyu_pairs, split_pairs_by_scene, subfolder_pairs


def _img(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8))


def _polyu(tmp_path):
    names = ['CamA_5_160_3200_chair_1', 'CamA_5_160_3200_chair_2', 'CamA_5_160_6400_desk_1',
             'CamB_8_8_12800_ball_1', 'CamB_8_8_800_printer_3', 'CamB_8_8_800_printer_4']
    for i, n in enumerate(names):
        _img(tmp_path / f'{n}_real.JPG', i)
        _img(tmp_path / f'{n}_mean.JPG', i + 100)
    return tmp_path


def test_polyu_names_give_camera_iso_scene(tmp_path):
    pairs = polyu_pairs(str(_polyu(tmp_path)))
    assert len(pairs) == 6
    p = [x for x in pairs if x.scene == 'ball'][0]
    assert (p.camera, p.iso) == ('CamB', 12800.0) and p.noisy.endswith('_real.JPG') and p.clean.endswith('_mean.JPG')
    _img(tmp_path / 'CamB_8_8_800_printer_9_real.JPG')
    with pytest.raises(RealPairsError, match='printer_9_real'):
        polyu_pairs(str(tmp_path))
    _img(tmp_path / 'holiday.JPG')
    with pytest.raises(RealPairsError, match='holiday.JPG'):
        polyu_pairs(str(tmp_path))


def test_scene_split_never_shares_a_scene(tmp_path):
    pairs = polyu_pairs(str(_polyu(tmp_path)))
    for seed in range(5):
        train, test = split_pairs_by_scene(pairs, test_fraction=0.5, seed=seed)
        assert train and test and len(train) + len(test) == len(pairs)
        assert not {p.scene for p in train} & {p.scene for p in test}
    train, test = split_pairs_by_scene(pairs, test_scenes=['printer'])
    assert {p.scene for p in test} == {'printer'} and len(test) == 2
    with pytest.raises(RealPairsError, match='garden'):
        split_pairs_by_scene(pairs, test_scenes=['garden'])


def test_subfolders_with_meta_csv(tmp_path):
    for i in (1, 2):
        _img(tmp_path / 'noisy' / f'{i:02d}_noise.png', i)
        _img(tmp_path / 'gt' / f'{i:02d}_gt.png', i + 10)
    (tmp_path / 'meta.csv').write_text('name,camera,iso,scene\n01_noise.png,Phone,800,s1\n02_noise.png,Phone,,s2\n')
    pairs = subfolder_pairs(str(tmp_path))
    assert [(p.camera, p.scene) for p in pairs] == [('Phone', 's1'), ('Phone', 's2')]
    assert pairs[0].iso == 800 and np.isnan(pairs[1].iso)
    (tmp_path / 'meta.csv').unlink()
    with pytest.raises(RealPairsError, match="'camera'"):
        subfolder_pairs(str(tmp_path))
    _img(tmp_path / 'noisy' / '07_noise.png')
    with pytest.raises(RealPairsError, match='07_noise.png'):
        subfolder_pairs(str(tmp_path), camera='X')


def test_dataset_filters_cameras_and_labels_sensors(tmp_path):
    root = str(_polyu(tmp_path))
    opt = {'name': 't', 'dataroot': root, 'cameras': ['CamB'], 'split': 'test', 'test_scenes': ['printer'],
           'sensors': ['CamA', 'CamB', 'CamC'], 'phase': 'train', 'gt_size': 16, 'use_hflip': True}
    ds = RealNoisyPairsDataset(opt)
    assert len(ds) == 2
    s = ds[0]
    assert s['lq'].shape == (3, 16, 16) and s['sensor'] == 1 and s['iso'] == 800.0 and s['scene'] == 'printer'
    with pytest.raises(RealPairsError, match="'sensors'"):
        RealNoisyPairsDataset({**opt, 'sensors': ['CamA']})
    with pytest.raises(RealPairsError, match='no pairs'):
        RealNoisyPairsDataset({**opt, 'cameras': ['Nikon']})


def test_cached_dataset_keeps_decoded_images_unchanged_by_augmentation(tmp_path):
    root = str(_polyu(tmp_path))
    opt = {'name': 't', 'dataroot': root, 'cameras': ['CamA'], 'phase': 'train', 'gt_size': 16,
           'use_hflip': True, 'use_rot': True}
    plain, cached = RealNoisyPairsDataset(opt), RealNoisyPairsDataset({**opt, 'cache': True})
    for seed in range(6):  # same global RNG -> same crops/flips; in-place flips must not leak into the cache
        random.seed(seed)  # BasicSR's crop and flips draw from Python's random
        a = plain[0]
        random.seed(seed)
        b = cached[0]
        assert np.array_equal(a['lq'].numpy(), b['lq'].numpy()) and np.array_equal(a['gt'].numpy(), b['gt'].numpy())
    lq, gt = cached.cache[0]
    assert np.array_equal(lq, cv2.imread(cached.pairs[0].noisy)[:, :, ::-1].astype(np.float32) / 255)


def test_multi_domain_fills_missing_iso_from_the_domain_option(tmp_path):
    from basicsr_adl.data.multi_domain_dataset import MultiDomainDataset
    for i in (1, 2):
        _img(tmp_path / 'nam' / 'noisy' / f'{i:02d}_noise.png', i)
        _img(tmp_path / 'nam' / 'gt' / f'{i:02d}_gt.png', i + 10)
    root = str(_polyu(tmp_path / 'polyu'))
    sensors = ['CamA', 'Nam']
    opt = {'name': 'md', 'phase': 'train', 'target': 'CamA', 'batch_size_per_gpu': 1, 'domains': {
        'CamA': {'type': 'RealNoisyPairsDataset', 'dataroot': root, 'cameras': ['CamA'], 'sensors': sensors,
                 'gt_size': 16},
        'Nam': {'type': 'RealNoisyPairsDataset', 'dataroot': str(tmp_path / 'nam'), 'naming': 'subfolders',
                'camera': 'Nam', 'sensors': sensors, 'gt_size': 16, 'iso': 3200}}}
    md = MultiDomainDataset(opt)
    item = md.train_item('Nam', 0)
    assert float(item['iso']) == 3200.0 and int(item['sensor']) == 1
    assert float(md.train_item('CamA', 0)['iso']) in (3200.0, 6400.0)  # the file name's ISO wins
    del opt['domains']['Nam']['iso']
    assert np.isnan(float(MultiDomainDataset(opt).train_item('Nam', 0)['iso']))
