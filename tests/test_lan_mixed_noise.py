"""Synthetic noise for LAN pretraining, MixedNoisePairsDataset, and the mixed-noise option files via train.py."""
import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from basicsr.utils.registry import DATASET_REGISTRY
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.lan.synthetic_noise import NoiseConfig, NoiseOptionError, add_synthetic_noise

from conftest import PYTHON, REPO, make_noisy_pairs, run_cli, write_yaml

OPTION_FILES = [REPO / 'options' / 'train' / 'DnCNN' / 'train_DnCNN_MixedNoise_sRGB.yml',
                REPO / 'options' / 'train' / 'RIDNet' / 'train_RIDNet_MixedNoise_sRGB.yml']


def _gray(size: int = 64, value: float = 0.5) -> np.ndarray:
    return np.full((size, size, 3), value, np.float32)


def test_noise_shape_range_and_level():
    config = NoiseConfig(sigma_range=(5.0, 5.0), shot_prob=0.0, correlation_prob=0.0, jpeg_prob=0.0)
    np.random.seed(0)
    noisy, params = add_synthetic_noise(_gray(128), config)
    assert noisy.shape == (128, 128, 3) and noisy.dtype == np.float32
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert params['sigma'] == pytest.approx(5.0) and params['shot'] == 0 and params['jpeg_quality'] == 0
    assert np.allclose(noisy * 255, np.round(noisy * 255), atol=1e-3)  # quantised to 8 bits
    assert (noisy - 0.5).std() * 255 == pytest.approx(5.0, rel=0.05)


def test_noise_levels_stay_in_range_and_vary():
    config = NoiseConfig(sigma_range=(1.0, 10.0), shot_range=(1e-4, 1e-3), correlation_prob=0.5, jpeg_prob=0.5)
    np.random.seed(1)
    drawn = [add_synthetic_noise(_gray(32), config)[1] for _ in range(40)]
    sigmas = [d['sigma'] for d in drawn]
    assert 1.0 <= min(sigmas) and max(sigmas) <= 10.0 and max(sigmas) - min(sigmas) > 3
    assert all(d['shot'] == 0 or 1e-4 <= d['shot'] <= 1e-3 for d in drawn)
    assert any(d['correlation'] > 0 for d in drawn) and any(d['correlation'] == 0 for d in drawn)
    assert all(d['jpeg_quality'] == 0 or 75 <= d['jpeg_quality'] <= 95 for d in drawn)


def test_correlated_noise_keeps_its_level():
    config = NoiseConfig(sigma_range=(6.0, 6.0), shot_prob=0.0, correlation_prob=1.0,
                         correlation_sigma_range=(1.0, 1.0), jpeg_prob=0.0, quantize=False)
    np.random.seed(2)
    noisy, _ = add_synthetic_noise(_gray(128), config)
    noise = noisy - 0.5
    assert noise.std() * 255 == pytest.approx(6.0, rel=0.05)
    neighbour = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
    assert neighbour > 0.3  # spatially correlated


def test_noise_is_repeatable_with_numpy_seed():
    clean = np.random.default_rng(0).uniform(size=(24, 24, 3)).astype(np.float32)
    np.random.seed(5)
    a = add_synthetic_noise(clean)[0]
    np.random.seed(5)
    b = add_synthetic_noise(clean)[0]
    c = add_synthetic_noise(clean)[0]
    assert np.array_equal(a, b) and not np.array_equal(b, c)


@pytest.mark.parametrize('opt, words', [
    ({'sigma_rang': [1, 2]}, 'noise.sigma_rang'),
    ({'sigma_range': [5, 1]}, 'sigma_range'),
    ({'jpeg_prob': 1.5}, 'jpeg_prob'),
    ({'jpeg_quality_range': [0, 90]}, 'jpeg_quality_range'),
    ({'shot_range': [-1, 1]}, 'shot_range'),
])
def test_bad_noise_options_are_named(opt, words):
    with pytest.raises(NoiseOptionError, match=words):
        NoiseConfig.from_options(opt, 'noise')


def _polyu_folder(folder: Path, count: int = 2, size: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for i in range(count):
        clean = (rng.uniform(0.2, 0.8, size=(size, size, 3)) * 255).astype(np.uint8)
        noisy = np.clip(clean.astype(int) + rng.integers(-6, 7, clean.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f'Canon5D2_5_160_3200_scene{i}_1_mean.png'), clean)
        cv2.imwrite(str(folder / f'Canon5D2_5_160_3200_scene{i}_1_real.png'), noisy)
    return folder


def _dataset(tmp_path: Path, **extra):
    pairs = make_noisy_pairs(tmp_path / 'pairs', 3, size=32, seed=4)
    opt = {'name': 'mix', 'type': 'MixedNoisePairsDataset', 'phase': 'train', 'gt_size': 16, 'use_hflip': True,
           'use_rot': True, 'real_pairs': [{'dataroot': str(pairs), 'naming': 'subfolders'}],
           'clean_images': [{'dataroot': str(pairs / 'gt'), 'naming': 'folder'}]}
    opt.update(extra)
    return DATASET_REGISTRY.get('MixedNoisePairsDataset')(opt)


def test_dataset_samples(tmp_path):
    ds = _dataset(tmp_path)
    assert len(ds) == 6 and len(ds.real) == 3 and len(ds.clean) == 3
    np.random.seed(0)
    random.seed(0)
    items = [ds[i] for i in range(len(ds))]
    for item in items:
        assert item['lq'].shape == item['gt'].shape == (3, 16, 16) and item['lq'].dtype == torch.float32
        assert 0 <= float(item['lq'].min()) and float(item['lq'].max()) <= 1
    assert {item['synthetic'] for item in items} <= {0, 1}


@pytest.mark.parametrize('prob, expected', [(0.0, 0), (1.0, 1)])
def test_dataset_synthetic_prob_extremes(tmp_path, prob, expected):
    ds = _dataset(tmp_path, synthetic_prob=prob)
    assert all(ds[i]['synthetic'] == expected for i in range(len(ds)))


def test_dataset_is_repeatable(tmp_path):
    ds = _dataset(tmp_path)

    def draw():
        np.random.seed(11)
        random.seed(11)
        return [ds[i] for i in range(len(ds))]
    a, b = draw(), draw()
    for x, y in zip(a, b):
        assert torch.equal(x['lq'], y['lq']) and torch.equal(x['gt'], y['gt']) and x['synthetic'] == y['synthetic']


def test_dataset_polyu_and_clean_from_real(tmp_path):
    polyu = _polyu_folder(tmp_path / 'polyu')
    ds = DATASET_REGISTRY.get('MixedNoisePairsDataset')(
        {'name': 'mix', 'phase': 'val', 'real_pairs': [{'dataroot': str(polyu), 'naming': 'polyu'}],
         'clean_from_real': True, 'synthetic_prob': 1.0})
    assert len(ds.real) == 2 and ds.clean == [gt for _, gt in ds.real]
    np.random.seed(0)
    item = ds[0]
    assert item['gt'].shape == (3, 40, 40) and item['gt_path'].endswith('_mean.png')


@pytest.mark.parametrize('extra, words', [
    ({'synthetic_prob': 2}, 'mix.synthetic_prob'),
    ({'real_pairs': [{'dataroot': 'x', 'naming': 'sidd'}]}, r'mix.real_pairs\[0\].naming'),
    ({'clean_images': [{'naming': 'folder'}]}, r"mix.clean_images\[0\]' needs a 'dataroot'"),
    ({'noise': {'sigma': 3}}, 'mix.noise.sigma'),
    ({'clean_images': [], 'synthetic_prob': 0.5}, 'no clean images'),
])
def test_dataset_bad_options_are_named(tmp_path, extra, words):
    with pytest.raises(OptionError, match=words):
        _dataset(tmp_path, **extra)


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: p.parent.name)
def test_option_file_trains_through_train_py(tmp_path, path):
    """The shipped option file, with its placeholders pointing at tiny generated data, trains 2 iterations."""
    datasets = tmp_path / 'datasets'
    pairs = make_noisy_pairs(datasets / 'SIDD_samples', 2, size=32, seed=6)
    (pairs / 'lq').rename(pairs / 'noisy')
    _polyu_folder(datasets / 'PolyU')
    opt = yaml.safe_load(path.read_text())
    opt.update(num_gpu=0, name=f"tiny_{opt['name']}")
    opt['datasets']['train'].update(gt_size=16, batch_size_per_gpu=2, dataset_enlarge_ratio=1)
    opt['train'].update(total_iter=2)
    opt['train']['scheduler']['milestones'] = [1]
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2)
    run_cli([PYTHON, str(REPO / 'basicsr_adl' / 'train.py'), '-opt', str(write_yaml(tmp_path / 'opt.yml', opt))],
            cwd=tmp_path)
    exp = tmp_path / 'experiments' / opt['name']
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    log = next(exp.glob('train_*.log')).read_text()
    assert 'MixedNoisePairsDataset' in log and '# psnr' in log


def test_dataset_cache_is_not_changed_by_augmentation(tmp_path):
    """BasicSR's augment flips in place; the cached images (shared by real and synthetic samples) must stay."""
    ds = _dataset(tmp_path, clean_from_real=True)
    np.random.seed(0)
    random.seed(0)
    for i in range(len(ds)):
        ds[i]
    before = {k: v.copy() for k, v in ds._cache.items()}
    for _ in range(5):
        for i in range(len(ds)):
            ds[i]
    assert before.keys() == ds._cache.keys()
    assert all(np.array_equal(before[k], ds._cache[k]) for k in before)


def test_baselines_can_skip_mean_shift_layers():
    """RIDNet runs 1x1 mean-shift convs first and last; ``skip_layers`` makes the baselines tune head / tail."""
    from basicsr.archs import build_network
    from basicsr_adl.lan import AdaptConfig, adapt_weights
    from basicsr_adl.lan.baselines import trainable_parameters
    torch.manual_seed(0)
    net = build_network({'type': 'RIDNet', 'in_channels': 3, 'mid_channels': 16, 'out_channels': 3, 'num_block': 1,
                         'img_range': 1.0, 'rgb_mean': [0.0, 0.0, 0.0]}).eval()
    img = torch.rand(1, 3, 16, 16)
    assert set(trainable_parameters(net, 'first_layer', img)) == {'sub_mean.weight', 'sub_mean.bias'}
    skip = ('sub_mean', 'add_mean')
    assert set(trainable_parameters(net, 'first_layer', img, skip_layers=skip)) == {'head.weight', 'head.bias'}
    assert set(trainable_parameters(net, 'last_layer', img, skip_layers=skip)) == {'tail.weight', 'tail.bias'}
    result = adapt_weights(net, img, AdaptConfig(iters=1, lr=1e-2, report_iters=[1]), 'last_layer', keep_net=True,
                           skip_layers=skip)
    changed = {n for n, p in result.net.named_parameters() if not torch.equal(p, net.get_parameter(n))}
    assert changed == {'tail.weight', 'tail.bias'}
    with pytest.raises(ValueError, match='not parameterised layers'):
        trainable_parameters(net, 'first_layer', img, skip_layers=('nope',))
