"""The lean backward path gives plain autograd's outputs and offset gradients while keeping far less."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from basicsr_adl.archs.dncnn_arch import DnCNN
from basicsr_adl.lan import AdaptConfig, adapt_offset, make_lean
from basicsr_adl.lan.lean_backward import (FrozenChannelAffine, LeanConv2d, LeanConvTranspose2d, LeanLeakyReLU)
from basicsr_adl.lan.losses import self_supervised_loss


def randomise_batchnorm(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.3, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


class TinyUNet(nn.Module):
    """Two levels: strided conv down, transposed conv up, skip concat, LeakyReLU, a standalone BatchNorm,
    a reflect-padded conv, a grouped dilated conv and an average pool: every lean replacement (both adjoint
    forms: stride 1 and strided) plus layers left to autograd."""

    def __init__(self, ch: int = 3, feat: int = 8):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(ch, feat, 3, 1, 1, padding_mode='reflect'), nn.LeakyReLU(0.2))
        self.down = nn.Conv2d(feat, 2 * feat, 3, 2, 1)
        self.norm = nn.BatchNorm2d(2 * feat)
        self.act = nn.LeakyReLU(0.2)
        self.mid = nn.Conv2d(2 * feat, 2 * feat, 3, 1, 2, dilation=2, groups=2)  # grouped, dilated
        self.up = nn.ConvTranspose2d(2 * feat, feat, 2, 2)
        self.dec = nn.Sequential(nn.Conv2d(2 * feat, feat, 3, 1, 1), nn.ReLU(), nn.Conv2d(feat, ch, 1))

    def forward(self, x):
        e = self.enc(x)
        m = self.act(self.norm(self.down(e)))
        m = self.mid(m) + F.avg_pool2d(F.pad(m, (1, 1, 1, 1), mode='replicate'), 3, 1)
        return x + self.dec(torch.cat([e, self.up(m)], 1))


def nets():
    torch.manual_seed(0)
    return {'dncnn': randomise_batchnorm(DnCNN(num_feat=8, num_layers=5)),
            'unet': randomise_batchnorm(TinyUNet())}


@pytest.mark.parametrize('name', ['dncnn', 'unet'])
def test_lean_copy_swaps_layers_and_leaves_the_original_alone(name):
    net = nets()[name]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    lean = make_lean(net)
    kinds = {type(m) for m in lean.modules()}
    assert LeanConv2d in kinds and LeanLeakyReLU in kinds
    assert nn.Conv2d not in kinds and nn.ReLU not in kinds and nn.LeakyReLU not in kinds
    if name == 'dncnn':
        assert lean.lean_folded_batchnorms == 3 and nn.BatchNorm2d not in kinds
    else:
        assert LeanConvTranspose2d in kinds and FrozenChannelAffine in kinds
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(type(m) in (nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.BatchNorm2d, nn.ConvTranspose2d, nn.Sequential,
                           type(net)) for m in net.modules())


@pytest.mark.parametrize('loss', ['zsn2n', 'nbr2nbr'])
@pytest.mark.parametrize('name', ['dncnn', 'unet'])
def test_lean_outputs_and_offset_gradients_match_plain_autograd(name, loss):
    net = nets()[name]
    lean = make_lean(net)
    y = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(lean(y), net(y), rtol=1e-5, atol=1e-5)
    grads, values = [], []
    for model in (net, lean):
        offset = (0.1 * torch.randn(y.shape, generator=torch.Generator().manual_seed(2))).requires_grad_()
        for p in model.parameters():
            p.requires_grad_(False)
        value = self_supervised_loss(loss, model, y + torch.tanh(offset), 7, 20, torch.Generator().manual_seed(3))
        value.backward()
        grads.append(offset.grad)
        values.append(value.item())
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('name', ['dncnn', 'unet'])
def test_lean_adaptation_matches_plain_adaptation(name):
    net = nets()[name]
    config = AdaptConfig(loss='zsn2n', iters=5, lr=5e-3, report_iters=[0, 5])
    plain = adapt_offset(net, torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)), config)
    lean = adapt_offset(make_lean(net), torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4)), config)
    torch.testing.assert_close(lean.offset, plain.offset, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(lean.outputs[5], plain.outputs[5], rtol=1e-4, atol=1e-5)
    assert plain.offset.abs().max() > 1e-3


def saved_bytes(model: nn.Module, y: torch.Tensor) -> int:
    """Bytes autograd keeps for backward during one ZS-N2N loss (distinct storages, counted once)."""
    seen = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.dtype)] = t.untyped_storage().nbytes()
        return t

    offset = torch.zeros_like(y, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = self_supervised_loss('zsn2n', model, y + torch.tanh(offset), 0, 1)
    loss.backward()
    return sum(seen.values())


@pytest.mark.parametrize('name', ['dncnn', 'unet'])
def test_lean_path_keeps_far_less_for_backward(name):
    net = nets()[name]
    for p in net.parameters():
        p.requires_grad_(False)
    y = torch.rand(1, 3, 32, 32)
    plain, lean = saved_bytes(net, y), saved_bytes(make_lean(net), y)
    # measured: ~0.22 (DnCNN), ~0.33 (UNet: its pooling, padding and concatenation stay with autograd)
    assert lean < (0.3 if name == 'dncnn' else 0.4) * plain, (lean, plain)


def test_lean_conv_still_trains_when_weights_require_grad():
    conv = make_lean(nn.Conv2d(3, 4, 3, 1, 1))
    conv.weight.requires_grad_(True)
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    conv(x).sum().backward()
    assert conv.weight.grad is not None and x.grad is not None


def test_lean_path_on_the_modulated_raw_unet_with_metadata():
    """LAN on packed RAW through the ADL work's ModulatedUNet (skipped until it is registered)."""
    from basicsr.utils.registry import ARCH_REGISTRY
    if 'ModulatedUNet' not in ARCH_REGISTRY:
        pytest.skip('ModulatedUNet is not registered')
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('ModulatedUNet')(in_ch=4, out_ch=4, base_ch=8, num_sensors=3).eval()
    with torch.no_grad():  # as after training: the modulation is no longer the identity it starts as
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    y = torch.rand(1, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    config = AdaptConfig(loss='nbr2nbr', iters=2, lr=1e-2, report_iters=[2])
    calls = []
    for sensor, iso in ((0, 100.0), (2, 6400.0)):
        kwargs = {'sensor': torch.tensor([sensor]), 'iso': torch.tensor([iso])}
        plain, lean = adapt_offset(net, y, config, kwargs), adapt_offset(make_lean(net), y, config, kwargs)
        torch.testing.assert_close(lean.outputs[2], plain.outputs[2], rtol=1e-4, atol=1e-5)
        calls.append(plain.outputs[2])
    assert not torch.allclose(calls[0], calls[1]), 'the metadata must reach the net'
