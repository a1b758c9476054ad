"""ModulatedUNet: switches, identity start, metadata use, shapes, registry."""
import pytest
import torch

from basicsr.archs import build_network

from basicsr_adl.archs.modulated_unet_arch import ModulatedUNet, encode_iso


def _pair(**kw):
    """A small net whose zero-initialised residual head is replaced by random weights (as after training)."""
    torch.manual_seed(0)
    net = ModulatedUNet(in_ch=4, out_ch=4, base_ch=4, num_sensors=3, mlp_hidden=8, **kw)
    torch.nn.init.normal_(net.head.weight, 0, 0.1)
    return net


def test_residual_net_starts_near_the_identity_with_gradient_in_every_layer():
    exact = ModulatedUNet(in_ch=4, out_ch=4, base_ch=4, num_sensors=3, head_init_scale=0)
    assert torch.equal(exact(X, sensor=S, iso=ISO), X)
    net = ModulatedUNet(in_ch=4, out_ch=4, base_ch=4, num_sensors=3)
    out = net(X, sensor=S, iso=ISO)
    assert 0 < float((out - X).detach().abs().mean()) < 0.05 * float(X.abs().mean())
    for model, reaches_body in ((net, True), (exact, False)):  # a zero head passes no gradient to the body
        model.zero_grad()
        (model(X, sensor=S, iso=ISO) - X.flip(-1)).abs().mean().backward()
        assert (float(model.encoders[0].body[0].weight.grad.abs().sum()) > 0) == reaches_body


def _randomise_mlps(net):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith('mlp_'):
                p.normal_(0, 0.5)


X = torch.rand(2, 4, 20, 24)
S = torch.tensor([0, 2])
ISO = torch.tensor([100.0, 3200.0])


def test_both_switches_off_is_a_plain_unet_with_backbone_weights():
    plain = _pair(use_sensor=False, use_iso=False)
    assert not plain.modulated
    assert not any(n.startswith('mlp_') for n, _ in plain.named_parameters())
    full = _pair()
    missing = full.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith('mlp_') for k in missing.missing_keys) and not missing.unexpected_keys
    # zero-initialised last MLP layers: gamma = 1, beta = 0, so the modulated net starts as the plain one
    assert torch.equal(full(X, sensor=S, iso=ISO), plain(X))
    assert plain(X, sensor=S, iso=ISO).shape == X.shape  # metadata ignored by a plain net


def test_sensor_and_iso_change_the_output_only_when_switched_on():
    full = _pair()
    _randomise_mlps(full)
    base = full(X, sensor=S, iso=ISO)
    assert not torch.allclose(base, full(X, sensor=torch.tensor([1, 1]), iso=ISO))
    assert not torch.allclose(base, full(X, sensor=S, iso=torch.tensor([800.0, 800.0])))

    sensor_only = _pair(use_iso=False)
    _randomise_mlps(sensor_only)
    out = sensor_only(X, sensor=S)
    assert torch.equal(out, sensor_only(X, sensor=S, iso=torch.tensor([6400.0, 6400.0])))
    assert not torch.allclose(out, sensor_only(X, sensor=torch.tensor([1, 1])))

    iso_only = _pair(use_sensor=False)
    _randomise_mlps(iso_only)
    out = iso_only(X, iso=ISO)
    assert torch.equal(out, iso_only(X, sensor=torch.tensor([1, 1]), iso=ISO))
    assert not torch.allclose(out, iso_only(X, iso=torch.tensor([800.0, 800.0])))


def test_modulation_is_per_image_in_a_batch():
    full = _pair()
    _randomise_mlps(full)
    both = full(X, sensor=S, iso=ISO)
    first = full(X[:1], sensor=S[:1], iso=ISO[:1])
    assert torch.allclose(both[:1], first, atol=1e-6)


def test_missing_or_bad_metadata_is_a_clear_error():
    full = _pair()
    with pytest.raises(ValueError, match='sensor'):
        full(X, iso=ISO)
    with pytest.raises(ValueError, match='iso'):
        full(X, sensor=S)
    with pytest.raises(ValueError, match='num_sensors'):
        full(X, sensor=torch.tensor([0, 3]), iso=ISO)


def test_dense_variant_and_odd_sizes_and_gradients():
    net = _pair(dense=True, dense_layers=3)
    x = torch.rand(1, 4, 17, 33, requires_grad=True)
    out = net(x, sensor=1, iso=400.0)
    assert out.shape == x.shape
    out.mean().backward()
    assert net.mlp_gamma[-1].weight.grad is not None and net.mlp_gamma[-1].weight.grad.abs().sum() > 0


def test_iso_encoding_and_registry():
    assert encode_iso(torch.tensor([100.0, 800.0, 6400.0])).tolist() == [0.0, 3.0, 6.0]
    net = build_network({'type': 'ModulatedUNet', 'in_ch': 3, 'out_ch': 3, 'base_ch': 4, 'num_sensors': 2})
    assert isinstance(net, ModulatedUNet) and net(torch.rand(1, 3, 16, 16), sensor=0, iso=100).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match='residual'):
        ModulatedUNet(in_ch=4, out_ch=3)


def test_inference_path_matches_training_path():
    full = _pair()
    _randomise_mlps(full)
    with torch.no_grad():
        fast = full(X, sensor=S, iso=ISO)
    assert torch.allclose(fast, full(X, sensor=S, iso=ISO), atol=1e-6)


def test_iso_outside_the_training_range_is_treated_as_the_nearest_trained_iso():
    net = _pair()
    _randomise_mlps(net)
    unclamped = net(X, sensor=S, iso=torch.tensor([6400.0, 6400.0]))
    net.set_iso_range(400, 1600)
    assert torch.equal(net(X, sensor=S, iso=torch.tensor([6400.0, 50.0])),
                       net(X, sensor=S, iso=torch.tensor([1600.0, 400.0])))
    assert not torch.allclose(unclamped, net(X, sensor=S, iso=torch.tensor([6400.0, 6400.0])))
    inside = torch.tensor([800.0, 1000.0])
    fresh = _pair()
    _randomise_mlps(fresh)
    assert torch.equal(net(X, sensor=S, iso=inside), fresh(X, sensor=S, iso=inside))  # inside: unchanged
    # the range travels with the weights; a checkpoint without it loads and clamps nothing
    loaded = _pair()
    loaded.load_state_dict(net.state_dict())
    assert torch.allclose(loaded.iso_range, encode_iso(torch.tensor([400.0, 1600.0])))
    old = {k: v for k, v in net.state_dict().items() if k != 'iso_range'}
    loaded.load_state_dict(old)
    assert torch.equal(loaded(X, sensor=S, iso=torch.tensor([6400.0, 6400.0])), unclamped)
    with pytest.raises(ValueError, match='ISO range'):
        net.set_iso_range(0, 100)
