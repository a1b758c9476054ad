"""Real sRGB noisy/clean pairs as ADL domains: PolyU names, subfolders + meta.csv, scene splits."""
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
