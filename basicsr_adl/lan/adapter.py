"""LAN's offset adapter: learn phi so that a frozen denoiser sees y + tanh(phi) (Kim et al., CVPR 2024).

Per image: phi is zero-initialised with y's shape, optimised with Adam for ``iters`` steps on a
self-supervised loss; the output is clip(f(y + tanh(phi*)), 0, 1). The network is frozen (no weight
gradients) and in eval mode during adaptation; its flags and mode are restored afterwards.
"""
import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from basicsr_adl.lan.losses import LOSS_NAMES, self_supervised_loss

ODD_SIZE_MODES = ('pad', 'crop')


@dataclass
class AdaptConfig:
    """Options shared by LAN and the fine-tuning baselines (paper defaults: 20 iterations, Adam lr 5e-4)."""
    loss: str = 'zsn2n'
    iters: int = 20
    lr: float = 5e-4
    report_iters: Sequence[int] = (0, 5, 10, 20)
    seed: int = 0
    nbr_max_weight: float = 0.1
    odd_size: str = 'pad'

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown LAN loss '{self.loss}'; choices: {', '.join(LOSS_NAMES)}")
        if self.odd_size not in ODD_SIZE_MODES:
            raise ValueError(f"unknown LAN odd_size '{self.odd_size}'; choices: {', '.join(ODD_SIZE_MODES)}")
        if not isinstance(self.iters, int) or self.iters < 0:
            raise ValueError(f"LAN option 'iters' must be a non-negative integer, got {self.iters!r}")
        bad = [k for k in self.report_iters if not isinstance(k, int) or k < 0 or k > self.iters]
        if bad:
            raise ValueError(f"LAN option 'report_iters' must lie in 0..iters={self.iters}, got {bad}")
        self.report_iters = tuple(sorted(set(self.report_iters)))


@dataclass
class AdaptResult:
    """Clipped outputs at each report iteration (after that many updates), the loss and wall seconds per update
    (scoring passes excluded: what a user pays to reach iteration k is ``sum(step_seconds[:k])``), and phi*."""
    outputs: Dict[int, Tensor] = field(default_factory=dict)
    losses: List[float] = field(default_factory=list)
    step_seconds: List[float] = field(default_factory=list)
    offset: Optional[Tensor] = None
    net: Optional[nn.Module] = None  # the adapted copy, only from baselines with keep_net=True


@contextlib.contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter for the block; flags and mode restored after."""
    flags = [(p, p.requires_grad) for p in net.parameters()]
    was_training = net.training
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        net.eval()
        yield net
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        net.train(was_training)


def make_even(y: Tensor, mode: str) -> Tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Make H and W even for the 2x2-cell losses: 'pad' reflects one row/column at the bottom/right and the
    returned function crops outputs back to y's size; 'crop' drops the last row/column (outputs stay smaller)."""
    h, w = y.shape[-2:]
    pad_h, pad_w = h % 2, w % 2
    if not (pad_h or pad_w):
        return y, lambda out: out
    if mode == 'pad':
        padded = F.pad(y, (0, pad_w, 0, pad_h), mode='reflect' if min(h, w) > 1 else 'replicate')
        return padded, lambda out: out[..., :h, :w]
    if mode == 'crop':
        return y[..., :h - pad_h, :w - pad_w], lambda out: out
    raise ValueError(f"unknown LAN odd_size '{mode}'; choices: {', '.join(ODD_SIZE_MODES)}")


def _denoiser(net: nn.Module, forward_kwargs: Optional[dict]) -> Callable[[Tensor], Tensor]:
    kwargs = forward_kwargs or {}
    return lambda x: net(x, **kwargs)


def adapt_offset(net: nn.Module, noisy: Tensor, config: AdaptConfig,
                 forward_kwargs: Optional[dict] = None) -> AdaptResult:
    """Run LAN on one noisy batch (usually one image) with a fresh zero offset; ``net`` is left unchanged.

    ``net`` may be the plain network or its lean copy (``lean_backward.make_lean``); ``forward_kwargs``
    (e.g. sensor, iso) are passed to every forward call.
    """
    noisy, restore = make_even(noisy.detach(), config.odd_size)
    denoise = _denoiser(net, forward_kwargs)
    generator = torch.Generator().manual_seed(config.seed)
    result = AdaptResult()
    with frozen(net), torch.enable_grad():
        offset = torch.zeros_like(noisy, requires_grad=True)
        optimizer = torch.optim.Adam([offset], lr=config.lr)

        def record(step: int) -> None:
            if step in config.report_iters:
                with torch.no_grad():
                    result.outputs[step] = restore(denoise(noisy + torch.tanh(offset)).clamp(0, 1))

        record(0)
        for step in range(config.iters):
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = self_supervised_loss(config.loss, denoise, noisy + torch.tanh(offset), step, config.iters,
                                        generator, config.nbr_max_weight)
            loss.backward()
            optimizer.step()
            result.losses.append(float(loss.detach()))
            result.step_seconds.append(time.perf_counter() - started)
            record(step + 1)
    result.offset = restore(offset.detach())
    return result
