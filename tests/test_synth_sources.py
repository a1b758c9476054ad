"""Blur/haze source synthesis, layout pairing and their datasets (issue: ADL beyond denoising)."""
import re

import cv2
import numpy as np
import pytest
import torch

from conftest import PYTHON, REPO, run_cli

from basicsr_adl.data.restoration_pairs_dataset import LayoutPairedDataset, SyntheticDegradationDataset
from basicsr_adl.layouts import LayoutError, layout_pairs
from basicsr_adl.synth.blur import BlurError, apply_blur, check_kernel, random_motion_kernel
from basicsr_adl.synth.haze import HazeError, add_haze, depth_proxy


@pytest.mark.parametrize('size', [21, 31, 41])
def test_motion_kernels_are_normalised_connected_trajectories(size):
    kernels = [random_motion_kernel(size, np.random.default_rng(s)) for s in range(5)]
    for k in kernels:
        assert k.shape == (size, size) and k.dtype == np.float32
        assert abs(k.sum() - 1) < 1e-5 and (k >= 0).all()
        support = (k > 0).sum()
        assert size // 2 <= support < size * size // 4  # a thin path, not a blob or a dot
        assert cv2.connectedComponents((k > 0).astype(np.uint8), connectivity=8)[0] == 2  # one path
    assert not np.array_equal(kernels[0], kernels[1])
    np.testing.assert_array_equal(random_motion_kernel(size, np.random.default_rng(3)), kernels[3])


def test_apply_blur_matches_direct_convolution_and_keeps_brightness():
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.random((3, 40, 48)).astype(np.float32))
    kernel = random_motion_kernel(9, rng)
    out = apply_blur(img, kernel)
    # reference: explicit sum over kernel taps (true convolution, reflect padding), away from the border
    pad = 4
    padded = np.pad(img.numpy(), ((0, 0), (pad, pad), (pad, pad)), mode='reflect')
    ref = np.zeros_like(img.numpy())
    for dy in range(9):
        for dx in range(9):
            ref += kernel[dy, dx] * padded[:, 8 - dy:8 - dy + 40, 8 - dx:8 - dx + 48]
    np.testing.assert_allclose(out.numpy(), np.clip(ref, 0, 1), atol=1e-5)
    flat = torch.full((3, 32, 32), 0.4)
    assert torch.allclose(apply_blur(flat, kernel), flat, atol=1e-6)


def test_bad_kernels_are_rejected_by_name():
    with pytest.raises(BlurError, match='sum to one'):
        check_kernel(np.full((5, 5), 0.1, np.float32), 32, 32)
    with pytest.raises(BlurError, match='larger than the image'):
        apply_blur(torch.rand(3, 16, 16), random_motion_kernel(21, np.random.default_rng(0)))
    with pytest.raises(BlurError, match='odd'):
        random_motion_kernel(20, np.random.default_rng(0))


def test_haze_follows_the_scattering_model():
    clean = torch.rand(3, 24, 24)
    depth = torch.linspace(0, 1, 24).view(1, 24, 1).expand(1, 24, 24)
    hazy = add_haze(clean, beta=1.2, airlight=0.9, depth=depth)
    t = torch.exp(-1.2 * depth)
    assert torch.allclose(hazy, clean * t + 0.9 * (1 - t), atol=1e-6)
    assert torch.allclose(add_haze(clean, 1.0, 0.8, torch.zeros(24, 24)), clean)  # zero depth: no haze
    thick, thin = add_haze(clean, 3.0, 0.9), add_haze(clean, 0.5, 0.9)
    assert (thick - 0.9).abs().mean() < (thin - 0.9).abs().mean()  # denser haze moves toward the airlight
    d = depth_proxy(clean)
    assert d.shape == (1, 24, 24) and d.min() >= 0 and d.max() <= 1


@pytest.mark.parametrize('beta,airlight,match', [(0.0, 0.8, 'beta'), (9.0, 0.8, 'beta'), (1.0, 1.5, 'airlight')])
def test_bad_haze_parameters_are_rejected_by_name(beta, airlight, match):
    with pytest.raises(HazeError, match=match):
        add_haze(torch.rand(3, 8, 8), beta, airlight)


def _png(path, value=None, size=(20, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(len(str(path))).integers(0, 255, (*size, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)


def test_layouts_pair_files_and_name_unpaired_ones(tmp_path):
    for seq in ('GOPR0001', 'GOPR0002'):
        for i in range(2):
            _png(tmp_path / 'gopro' / seq / 'blur' / f'{i:06d}.png')
            _png(tmp_path / 'gopro' / seq / 'sharp' / f'{i:06d}.png')
    pairs = layout_pairs('gopro', str(tmp_path / 'gopro'))
    assert len(pairs) == 4 and all('/blur/' in a and '/sharp/' in b for a, b in pairs)
    for name in ('1_1_0.90179.png', '1_2_0.97842.png', '2_1_0.8.png'):
        _png(tmp_path / 'reside' / 'hazy' / name)
    _png(tmp_path / 'reside' / 'clear' / '1.png')
    _png(tmp_path / 'reside' / 'clear' / '2.png')
    pairs = layout_pairs('reside', str(tmp_path / 'reside'))
    assert [p[1].rsplit('/', 1)[1] for p in pairs] == ['1.png', '1.png', '2.png']
    _png(tmp_path / 'ihaze' / 'hazy' / '01_indoor_hazy.jpg')
    _png(tmp_path / 'ihaze' / 'GT' / '01_indoor_GT.jpg')
    assert len(layout_pairs('ihaze', str(tmp_path / 'ihaze'))) == 1
    _png(tmp_path / 'ihaze' / 'hazy' / '02_indoor_hazy.jpg')
    with pytest.raises(LayoutError, match='02_indoor_hazy'):
        layout_pairs('ihaze', str(tmp_path / 'ihaze'))
    _png(tmp_path / 'gopro' / 'GOPR0002' / 'blur' / '000009.png')
    with pytest.raises(LayoutError, match='000009.png'):
        layout_pairs('gopro', str(tmp_path / 'gopro'))
    with pytest.raises(LayoutError, match='unknown layout'):
        layout_pairs('sidd', str(tmp_path))


def test_datasets_return_basicsr_samples(tmp_path):
    for i in range(3):
        _png(tmp_path / 'clean' / f'{i}.png', size=(48, 48))
    opt = {'degradation': 'blur', 'dataroot_gt': str(tmp_path / 'clean'), 'phase': 'train', 'gt_size': 32,
           'kernel_sizes': [9], 'use_hflip': True, 'use_rot': True}
    sample = SyntheticDegradationDataset(opt)[0]
    assert sample['lq'].shape == sample['gt'].shape == (3, 32, 32)
    assert not torch.equal(sample['lq'], sample['gt'])
    haze = SyntheticDegradationDataset({**opt, 'degradation': 'haze', 'beta_range': [1.0, 2.0]})[1]
    assert haze['lq'].mean() > 0 and haze['lq'].shape == (3, 32, 32)
    with pytest.raises(HazeError, match='beta_range'):
        SyntheticDegradationDataset({**opt, 'degradation': 'haze', 'beta_range': [2.0, 1.0]})
    with pytest.raises(ValueError, match='degradation'):
        SyntheticDegradationDataset({**opt, 'degradation': 'rain'})
    for i in range(2):
        _png(tmp_path / 'pairs' / 'lq' / f'{i}.png', size=(40, 40))
        _png(tmp_path / 'pairs' / 'gt' / f'{i}.png', size=(40, 40))
    ds = LayoutPairedDataset({'layout': 'folder', 'dataroot': str(tmp_path / 'pairs'), 'phase': 'train',
                              'gt_size': 16})
    assert len(ds) == 2 and ds[1]['lq'].shape == (3, 16, 16)


def test_offline_script_writes_folders_and_lmdb_atomically(tmp_path):
    for i in range(2):
        _png(tmp_path / 'clean' / f'{i}.png', size=(48, 48))
    out = tmp_path / 'blur_src'
    run_cli([PYTHON, str(REPO / 'scripts' / 'synthesize_sources.py'), 'blur', '--src', str(tmp_path / 'clean'),
             '--out', str(out), '--kernel-sizes', '9', '--per-image', '2', '--lmdb'], cwd=tmp_path)
    assert len(list((out / 'lq').glob('*.png'))) == 4 and (out / 'gt.lmdb' / 'meta_info.txt').is_file()
    bad = run_cli([PYTHON, str(REPO / 'scripts' / 'synthesize_sources.py'), 'haze', '--src',
                   str(tmp_path / 'clean'), '--out', str(tmp_path / 'haze_src'), '--beta', '0', '1'],
                  cwd=tmp_path, check=False)
    assert bad.returncode != 0 and 'beta_range' in bad.stderr
    assert not (tmp_path / 'haze_src').exists() and not (tmp_path / 'haze_src.partial').exists()


def test_embedded_restoration_sets_use_real_layouts_and_separate_scenes(tmp_path):
    from basicsr_adl.synth.embedded import build_embedded_restoration
    for task, target_layout in (('deblur', 'gopro'), ('dehaze', 'ihaze')):
        manifest = build_embedded_restoration(str(tmp_path), task, tile=48, source_pairs=2, target_train=2,
                                              target_test=2, kernel_sizes=(5, 7), haze_betas=((0.5, 1.0),))
        root = tmp_path / task
        assert (root / 'manifest.json').is_file() and not (tmp_path / f'{task}.partial').exists()
        doms = manifest['domains']
        assert doms['target_train']['layout'] == target_layout
        for name, dom in doms.items():
            pairs = layout_pairs(dom['layout'], str(root / dom['dataroot']))
            assert len(pairs) == 2, name
            lq, gt = cv2.imread(pairs[0][0]), cv2.imread(pairs[0][1])
            assert lq.shape == gt.shape == (48, 48, 3) and not np.array_equal(lq, gt)
        photos = manifest['photos']
        assert not set(photos['sources']) & set(photos['target_test'])
        assert not set(photos['target_train']) & set(photos['target_test'])


@pytest.mark.parametrize('task', ['deblur', 'dehaze'])
def test_adl_trains_on_embedded_restoration_data_through_train_py(tmp_path, task):
    from basicsr_adl.synth.embedded import build_embedded_restoration
    from basicsr_adl.synth.recipes import restoration_network, restoration_options
    from conftest import write_yaml
    manifest = build_embedded_restoration(str(tmp_path / 'data'), task, tile=48, source_pairs=3, target_train=4,
                                          target_test=2, kernel_sizes=(5, 7), haze_betas=((0.5, 1.0), (1.0, 2.0)))
    root = tmp_path / 'data' / task
    doms = manifest['domains']
    sources = {n: str(root / d['dataroot']) for n, d in doms.items() if d['role'] == 'source'}
    opt = restoration_options(f'tiny_{task}', task, 'adl', sources, str(root / 'target' / 'train'),
                              str(root / 'target' / 'test'), total_iter=6, stages=[2, 3, 1],
                              network=restoration_network('unet', 4), gt_size=32, batch=2, target_batch=1,
                              val_crop=32, print_freq=1)
    write_yaml(tmp_path / 'o.yml', opt)
    run_cli([PYTHON, str(REPO / 'basicsr_adl' / 'train.py'), '-opt', 'o.yml'], cwd=tmp_path)
    exp = tmp_path / 'experiments' / f'tiny_{task}'
    assert (exp / 'models' / 'net_g_latest.pth').is_file() and (exp / 'adl_accept_rates.csv').is_file()
    log = next(exp.glob('train_*.log')).read_text()
    summary = [line for line in log.splitlines() if 'ADL source steps:' in line][-1]
    counts = re.findall(r'(\S+): (\d+) accepted / (\d+) rejected', summary)
    assert {name for name, _, _ in counts} == set(sources)
    assert sum(int(a) + int(r) for _, a, r in counts) == 3  # one gated source step per stage-2 iteration
