"""LAN's offset adapter and the fine-tuning baselines on tiny nets: frozen weights, no leaks, scopes, sizes."""
import subprocess
import sys

import pytest
import torch
from torch import nn

from basicsr_adl.archs.dncnn_arch import DnCNN
from basicsr_adl.lan import AdaptConfig, adapt_offset, adapt_weights
from basicsr_adl.lan.baselines import parameterised_layers_in_order

from conftest import REPO, cli_env


def tiny_dncnn(seed: int = 0) -> DnCNN:
    torch.manual_seed(seed)
    net = DnCNN(num_feat=8, num_layers=4, use_bn=True)
    for m in net.modules():  # non-trivial running statistics, as after pretraining
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net


def image(seed: int, size=(16, 16)) -> torch.Tensor:
    return torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def snapshot(net: nn.Module) -> dict:
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.mark.parametrize('loss', ['zsn2n', 'nbr2nbr'])
def test_lan_leaves_weights_flags_and_mode_unchanged_and_learns_an_offset(loss):
    net = tiny_dncnn().train()
    before = snapshot(net)
    result = adapt_offset(net, image(0), AdaptConfig(loss=loss, iters=6, lr=1e-2, report_iters=[0, 3, 6]))
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), 'LAN must not change the weights'
    assert net.training and all(p.requires_grad for p in net.parameters()), 'mode and flags are restored'
    assert all(p.grad is None for p in net.parameters()), 'no weight gradient is computed'
    assert sorted(result.outputs) == [0, 3, 6] and len(result.losses) == 6
    assert result.offset.abs().max() > 0
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(result.outputs[0], net(image(0)).clamp(0, 1))
        torch.testing.assert_close(result.outputs[6], net(image(0) + torch.tanh(result.offset)).clamp(0, 1))
    assert result.outputs[6].min() >= 0 and result.outputs[6].max() <= 1


def test_lan_reduces_its_own_loss():
    net = tiny_dncnn()
    result = adapt_offset(net, image(1), AdaptConfig(loss='zsn2n', iters=15, lr=1e-2, report_iters=[15]))
    assert result.losses[-1] < 0.9 * result.losses[0], result.losses


@pytest.mark.parametrize('mode', ['offset', 'full', 'first_layer', 'last_layer'])
def test_no_state_leaks_between_images(mode):
    """Adapting image A first must not change the result on image B (fresh phi / fresh weights per image)."""
    net = tiny_dncnn()
    before = snapshot(net)
    config = AdaptConfig(loss='nbr2nbr', iters=4, lr=1e-2, report_iters=[4])

    def run(img):
        if mode == 'offset':
            return adapt_offset(net, img, config)
        return adapt_weights(net, img, config, mode)

    alone = run(image(2)).outputs[4]
    run(image(3))
    after_a = run(image(2)).outputs[4]
    torch.testing.assert_close(alone, after_a, rtol=0, atol=0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


class HeadFirstNet(nn.Module):
    """Registers its output layer first, so 'last layer' must come from execution order, not registration."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(4, 3, 3, 1, 1)
        self.stem = nn.Conv2d(3, 4, 3, 1, 1)
        self.mid = nn.Conv2d(4, 4, 3, 1, 1)

    def forward(self, x):
        return self.head(torch.relu(self.mid(torch.relu(self.stem(x)))))


@pytest.mark.parametrize('scope, changed', [('first_layer', {'stem.weight', 'stem.bias'}),
                                            ('last_layer', {'head.weight', 'head.bias'}),
                                            ('full', {'stem.weight', 'stem.bias', 'mid.weight', 'mid.bias',
                                                      'head.weight', 'head.bias'})])
def test_baselines_change_only_their_layers(scope, changed):
    torch.manual_seed(0)
    net = HeadFirstNet()
    assert parameterised_layers_in_order(net, image(0)) == ['stem', 'mid', 'head']
    before = snapshot(net)
    result = adapt_weights(net, image(4), AdaptConfig(iters=3, lr=1e-2, report_iters=[3]), scope, keep_net=True)
    adapted = result.net.state_dict()
    moved = {k for k in before if not torch.equal(before[k], adapted[k])}
    assert moved == changed
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), 'the pretrained net is untouched'


def test_dncnn_first_and_last_layer_baselines():
    net = tiny_dncnn()
    for scope, layer in (('first_layer', 'body.0.'), ('last_layer', 'body.8.')):
        result = adapt_weights(net, image(5), AdaptConfig(iters=2, lr=1e-2, report_iters=[2]), scope, keep_net=True)
        moved = {k for k, v in result.net.state_dict().items() if not torch.equal(v, net.state_dict()[k])}
        assert moved and all(k.startswith(layer) for k in moved), moved


@pytest.mark.parametrize('odd_size, expected', [('pad', (15, 17)), ('crop', (14, 16))])
def test_odd_sizes_are_padded_or_cropped(odd_size, expected):
    net = tiny_dncnn()
    config = AdaptConfig(loss='zsn2n', iters=2, report_iters=[0, 2], odd_size=odd_size)
    for result in (adapt_offset(net, image(6, (15, 17)), config), adapt_weights(net, image(6, (15, 17)), config)):
        assert tuple(result.outputs[2].shape[-2:]) == expected
    if odd_size == 'pad':  # before any update: the plain output wherever the padded pixel is out of reach (4 px)
        with torch.no_grad():
            plain = net.eval()(image(6, (15, 17))).clamp(0, 1)
        assert (adapt_offset(net, image(6, (15, 17)), config).outputs[0] - plain)[..., :11, :13].abs().max() < 1e-6


def test_bad_config_names_the_option():
    with pytest.raises(ValueError, match="unknown LAN loss 'n2v'"):
        AdaptConfig(loss='n2v')
    with pytest.raises(ValueError, match="odd_size 'wrap'"):
        AdaptConfig(odd_size='wrap')
    with pytest.raises(ValueError, match="report_iters.*0..iters=5"):
        AdaptConfig(iters=5, report_iters=[0, 10])
    with pytest.raises(ValueError, match="unknown LAN baseline mode 'middle_layer'"):
        adapt_weights(tiny_dncnn(), image(0), AdaptConfig(iters=1, report_iters=[1]), 'middle_layer')


def test_core_imports_without_basicsr():
    """The lan package must not need BasicSR: import it with basicsr made unimportable."""
    code = ('import sys, types; sys.modules["basicsr"] = None; '
            f'pkg = types.ModuleType("basicsr_adl"); pkg.__path__ = [r"{REPO / "basicsr_adl"}"]; '
            'sys.modules["basicsr_adl"] = pkg; '
            'import basicsr_adl.lan as lan, torch; '
            'r = lan.adapt_offset(lan.make_lean(torch.nn.Conv2d(3, 3, 3, 1, 1)), torch.rand(1, 3, 8, 8), '
            'lan.AdaptConfig(iters=1, report_iters=[1])); print(sorted(r.outputs))')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[1]'
