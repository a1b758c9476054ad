"""LAN's self-supervised losses against hand-computed values, and the neighbour sampler's properties."""
import pytest
import torch
import torch.nn.functional as F

from basicsr_adl.lan.losses import (NEIGHBOUR_PAIRS, nbr2nbr_loss, nbr2nbr_weight, neighbour_subsample,
                                    sample_neighbour_pairs, self_supervised_loss, zsn2n_downsample, zsn2n_loss)


def square(x):
    """A non-linear 'denoiser', so the consistency term of ZS-N2N is not trivially zero."""
    return x * x


def test_zsn2n_matches_hand_computation():
    # y = [[0, 1], [0.5, 0]]: D1 y = (1 + 0.5) / 2 = 0.75, D2 y = (0 + 0) / 2 = 0; f(x) = x^2.
    # residual    = 1/2 [(0.75 - f(0))^2 + (0 - f(0.75))^2] = 1/2 [0.5625 + 0.31640625] = 0.439453125
    # f(y) = [[0, 1], [0.25, 0]]: D1 f(y) = 0.625, D2 f(y) = 0
    # consistency = 1/2 [(f(0.75) - 0.625)^2 + (f(0) - 0)^2] = 1/2 * 0.00390625 = 0.001953125
    y = torch.tensor([[[[0.0, 1.0], [0.5, 0.0]]]])
    assert zsn2n_loss(square, y).item() == pytest.approx(0.439453125 + 0.001953125, abs=1e-7)


def test_zsn2n_downsample_equals_stride2_filters_per_channel():
    x = torch.rand(2, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    d1 = torch.tensor([[0, .5], [.5, 0]]).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    d2 = torch.tensor([[.5, 0], [0, .5]]).view(1, 1, 2, 2).repeat(3, 1, 1, 1)
    got1, got2 = zsn2n_downsample(x)
    torch.testing.assert_close(got1, F.conv2d(x, d1, stride=2, groups=3))
    torch.testing.assert_close(got2, F.conv2d(x, d2, stride=2, groups=3))


def test_zsn2n_gradient_flows_through_every_term():
    """Nothing is detached: a denoiser used only on the full-size input still gets gradient (consistency term)."""
    y = torch.rand(1, 1, 4, 4, requires_grad=True)
    zsn2n_loss(square, y).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def _hand_nbr2nbr(y, first, second, weight):
    """Plain-Python Nbr2Nbr for one 1-channel image with f(x) = x^2, given the chosen cell positions."""
    h, w = len(y), len(y[0])
    rec = reg = 0.0
    cells = 0
    for i in range(h // 2):
        for j in range(w // 2):
            p, q = int(first[i][j]), int(second[i][j])
            a, b = y[2 * i + p // 2][2 * j + p % 2], y[2 * i + q // 2][2 * j + q % 2]
            fa, fb = min(max(a * a, 0.0), 1.0), min(max(b * b, 0.0), 1.0)
            rec += (a * a - b) ** 2
            reg += (a * a - b - (fa - fb)) ** 2
            cells += 1
    return rec / cells + weight * reg / cells


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_nbr2nbr_matches_hand_computation(seed):
    values = [[0.2, 1.3, 0.4, 0.1], [0.4, 0.7, 0.9, 1.1], [0.0, 0.6, 0.3, 0.8], [1.2, 0.5, 0.25, 0.05]]
    y = torch.tensor(values, dtype=torch.float64).view(1, 1, 4, 4)
    first, second = sample_neighbour_pairs(1, 4, 4, torch.Generator().manual_seed(seed))
    expected = _hand_nbr2nbr(values, first[0].tolist(), second[0].tolist(), 0.05)
    got = nbr2nbr_loss(square, y, 0.05, torch.Generator().manual_seed(seed))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_nbr2nbr_full_image_term_carries_no_gradient():
    """The gradient equals that of the loss with f(y) as a constant, and differs from an undetached f(y)."""
    y = torch.rand(1, 2, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 1.2
    first, second = sample_neighbour_pairs(1, 4, 6, torch.Generator().manual_seed(5))

    def reference(detach_full):
        leaf = y.clone().requires_grad_()
        g1, g2 = neighbour_subsample(leaf, first), neighbour_subsample(leaf, second)
        full = square(leaf.detach() if detach_full else leaf).clamp(0, 1)
        offset = neighbour_subsample(full, first) - neighbour_subsample(full, second)
        loss = torch.mean((g1 * g1 - g2) ** 2) + 0.1 * torch.mean((g1 * g1 - g2 - offset) ** 2)
        loss.backward()
        return leaf.grad

    leaf = y.clone().requires_grad_()
    nbr2nbr_loss(square, leaf, 0.1, torch.Generator().manual_seed(5)).backward()
    torch.testing.assert_close(leaf.grad, reference(detach_full=True))
    assert not torch.allclose(leaf.grad, reference(detach_full=False))


def test_sampler_picks_adjacent_pixels_same_for_all_channels_and_covers_all_pairs():
    first, second = sample_neighbour_pairs(3, 64, 64, torch.Generator().manual_seed(0))
    r1, c1, r2, c2 = first // 2, first % 2, second // 2, second % 2
    assert torch.all((r1 - r2).abs() + (c1 - c2).abs() == 1), 'every pair must be horizontal or vertical neighbours'
    pairs = {tuple(p) for p in torch.stack([first, second], -1).view(-1, 2).tolist()}
    assert pairs == {tuple(p) for p in NEIGHBOUR_PAIRS.tolist()}
    counts = torch.bincount((first * 4 + second).view(-1), minlength=16).float()
    used = counts[counts > 0]
    assert len(used) == 8 and used.min() / used.max() > 0.8, 'the 8 pairs should be about equally likely'

    x = torch.arange(3 * 2 * 8 * 8, dtype=torch.float32).view(3, 2, 8, 8)
    idx, _ = sample_neighbour_pairs(3, 8, 8, torch.Generator().manual_seed(1))
    sub = neighbour_subsample(x, idx)
    for b in range(3):
        for c in range(2):
            for i in range(4):
                for j in range(4):
                    p = int(idx[b, i, j])
                    assert sub[b, c, i, j] == x[b, c, 2 * i + p // 2, 2 * j + p % 2]


def test_sampler_is_seedable_and_seeds_differ():
    a = sample_neighbour_pairs(1, 16, 16, torch.Generator().manual_seed(3))
    b = sample_neighbour_pairs(1, 16, 16, torch.Generator().manual_seed(3))
    c = sample_neighbour_pairs(1, 16, 16, torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_sampler_gives_same_pairs_on_gpu():
    cpu = sample_neighbour_pairs(1, 16, 16, torch.Generator().manual_seed(3))
    gpu = sample_neighbour_pairs(1, 16, 16, torch.Generator().manual_seed(3), torch.device('cuda'))
    assert gpu[0].is_cuda and torch.equal(cpu[0], gpu[0].cpu())
    y = torch.rand(1, 3, 16, 16)
    cpu_loss = nbr2nbr_loss(square, y, 0.1, torch.Generator().manual_seed(9))
    gpu_loss = nbr2nbr_loss(square, y.cuda(), 0.1, torch.Generator().manual_seed(9))
    assert cpu_loss.item() == pytest.approx(gpu_loss.item(), rel=1e-5)


def test_nbr2nbr_weight_schedule_and_bad_input():
    assert nbr2nbr_weight(0, 20) == 0.0 and nbr2nbr_weight(10, 20) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="unknown LAN loss 'l1'.*zsn2n, nbr2nbr"):
        self_supervised_loss('l1', square, torch.rand(1, 1, 4, 4), 0, 1)
    with pytest.raises(ValueError, match='must be even'):
        zsn2n_loss(square, torch.rand(1, 1, 5, 4))
    with pytest.raises(ValueError, match='must be even'):
        nbr2nbr_loss(square, torch.rand(1, 1, 4, 3), 0.1)
