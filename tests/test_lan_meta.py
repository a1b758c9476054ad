"""LAN's meta-learning baseline: the first-order MAML core and LANModel's ``lan.mode: meta``."""
import dataclasses
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from basicsr_adl.archs.dncnn_arch import DnCNN
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.lan import AdaptConfig, adapt_weights
from basicsr_adl.lan.meta import MetaConfig, gaussian_tasks, meta_train


def _net(seed: int = 0) -> DnCNN:
    torch.manual_seed(seed)
    return DnCNN(num_feat=6, num_layers=3, use_bn=False).eval()


def _images(count: int = 2, size: int = 24):
    g = torch.Generator().manual_seed(7)
    return [torch.rand(3, size, size, generator=g) * 0.6 + 0.2 for _ in range(count)]


def test_one_meta_step_is_adam_on_the_gradient_at_the_adapted_weights():
    """First-order MAML: the outer step uses d(MSE of the *adapted* copy)/d(adapted weights); Adam's first step
    moves each weight by about -lr * sign(gradient)."""
    net, tasks = _net(), gaussian_tasks(_images(), 16, (20, 20))
    adapt = AdaptConfig(loss='zsn2n', lr=1e-3)
    meta = MetaConfig(steps=1, inner_iters=3, outer_lr=1e-4, seed=5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = meta_train(net, tasks, adapt, meta)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), 'the pretrained net must not change'

    noisy, clean = tasks(torch.Generator().manual_seed(5))  # the same first task
    inner = dataclasses.replace(adapt, iters=3, report_iters=(0,), seed=5)
    adapted = adapt_weights(net, noisy, inner, 'full', keep_net=True).net
    adapted.zero_grad(set_to_none=True)  # drop the last inner update's gradient
    F.mse_loss(adapted(noisy), clean).backward()
    moved = checked = 0
    for name, p in result.net.named_parameters():
        grad = dict(adapted.named_parameters())[name].grad
        strong = grad.abs() > 1e-6
        step = (p.detach() - before[name])[strong]
        torch.testing.assert_close(step, -1e-4 * grad.sign()[strong], rtol=2e-2, atol=2e-7)
        moved += int((step != 0).sum())
        checked += int(strong.sum())
    assert checked > 50 and moved == checked
    assert len(result.before) == len(result.after) == 1 and result.after[0] > 0


def test_meta_training_is_deterministic_and_lowers_the_post_adaptation_loss_on_source_noise():
    net, tasks = _net(1), gaussian_tasks(_images(3, 32), 16, (25, 25))
    adapt, meta = AdaptConfig(loss='nbr2nbr', lr=1e-3), MetaConfig(steps=40, inner_iters=2, outer_lr=3e-3, seed=0)
    first = meta_train(net, tasks, adapt, meta)
    second = meta_train(net, tasks, adapt, meta)
    for a, b in zip(first.net.parameters(), second.net.parameters()):
        assert torch.equal(a, b)
    assert np.mean(first.after[-10:]) < 0.8 * np.mean(first.after[:10])  # a random tiny net learns to denoise


def test_gaussian_tasks_are_crops_with_the_asked_noise_level():
    images = [torch.full((3, 40, 40), 0.5)]
    noisy, clean = gaussian_tasks(images, 32, (10, 10))(torch.Generator().manual_seed(0))
    assert noisy.shape == clean.shape == (1, 3, 32, 32)
    assert float((noisy - clean).std() * 255) == pytest.approx(10, rel=0.1)
    with pytest.raises(ValueError, match='crop 64 is larger'):
        gaussian_tasks(images, 64, (10, 10))
    with pytest.raises(ValueError, match='noise_sigma'):
        gaussian_tasks(images, 16, (30, 10))
    with pytest.raises(ValueError, match="'steps' must be a positive integer"):
        MetaConfig(steps=0)


def _lan_opt(tmp_path, ckpt, network_g, **meta):
    from conftest import make_noisy_pairs
    clean_dir = make_noisy_pairs(tmp_path / 'clean', 2, size=24, seed=2) / 'gt'
    return {'name': 'meta', 'model_type': 'LANModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0, 'datasets': {},
            'network_g': network_g, 'is_train': False, 'dist': False, 'rank': 0, 'world_size': 1,
            'path': {'pretrain_network_g': str(ckpt), 'results_root': str(tmp_path / 'res'),
                     'visualization': str(tmp_path / 'vis')},
            'lan': {'mode': 'meta', 'loss': 'zsn2n', 'iters': 2, 'report_iters': [0, 2],
                    'meta': {'steps': 3, 'inner_iters': 2, 'crop': 16, 'clean_dir': str(clean_dir), **meta}},
            'val': {'save_img': False, 'suffix': None}}


def test_lan_model_meta_mode_trains_saves_and_reuses_the_starting_point(tmp_path):
    from basicsr_adl.models.lan_model import LANModel
    net_opt = {'type': 'FFDNet', 'num_in_ch': 3, 'num_feat': 4, 'num_layers': 3, 'sigma': 15}
    torch.manual_seed(0)
    from basicsr_adl.archs.ffdnet_arch import FFDNet
    torch.save({'params': FFDNet(num_in_ch=3, num_feat=4, num_layers=3).state_dict()}, tmp_path / 'net.pth')
    model = LANModel(_lan_opt(tmp_path, tmp_path / 'net.pth', dict(net_opt)))
    saved = tmp_path / 'res' / 'meta_init_zsn2n.pth'
    assert saved.is_file() and not (tmp_path / 'res' / 'meta_init_zsn2n.pth.tmp').exists()
    changed = [not torch.equal(a, b) for a, b in zip(model.meta_net.parameters(), model.net_g.parameters())]
    assert any(changed), 'meta-training must move the starting point away from the pretrained weights'
    noisy = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    model.feed_data({'lq': noisy, 'lq_path': ['a.png']})
    model.test()
    reused = LANModel(_lan_opt(tmp_path, tmp_path / 'net.pth', dict(net_opt), init=str(saved)))
    reused.feed_data({'lq': noisy, 'lq_path': ['a.png']})
    reused.test()
    torch.testing.assert_close(reused.output, model.output)


def test_meta_options_are_checked_and_a_missing_init_names_its_option(tmp_path):
    from basicsr_adl.models.lan_model import LANModel
    from basicsr_adl.options_schema import lan_options
    with pytest.raises(OptionError, match=re.escape("option 'lan.meta.crop': must be even")):
        lan_options({'lan': {'mode': 'meta', 'meta': {'crop': 15}}})
    torch.save({'params': DnCNN(num_feat=4, num_layers=3).state_dict()}, tmp_path / 'net.pth')
    opt = _lan_opt(tmp_path, tmp_path / 'net.pth', {'type': 'DnCNN', 'num_feat': 4, 'num_layers': 3},
                   init=str(tmp_path / 'gone.pth'))
    with pytest.raises(OptionError, match=re.escape("option 'lan.meta.init': checkpoint not found")):
        LANModel(opt)


def test_meta_mode_without_a_noise_level_is_an_option_error(tmp_path):
    from basicsr_adl.models.lan_model import LANModel
    torch.save({'params': DnCNN(num_feat=4, num_layers=3).state_dict()}, tmp_path / 'net.pth')
    net_opt = {'type': 'DnCNN', 'num_feat': 4, 'num_layers': 3}
    with pytest.raises(OptionError, match=re.escape("option 'lan.meta.noise_sigma' is needed for lan.mode 'meta'")):
        LANModel(_lan_opt(tmp_path, tmp_path / 'net.pth', net_opt))


def test_meta_config_defaults_are_the_schema_defaults():
    from basicsr_adl.options_schema import lan_options
    meta = lan_options({'lan': {'mode': 'meta'}})['meta']
    defaults = MetaConfig()
    assert (defaults.steps, defaults.inner_iters, defaults.outer_lr) == (meta['steps'], meta['inner_iters'],
                                                                         meta['outer_lr'])
