"""A meta-learned starting point for self-supervised fine-tuning, LAN's fourth baseline (Kim et al., CVPR 2024).

Paper: besides full / first-layer / last-layer fine-tuning, LAN is compared with fine-tuning that starts from
meta-learned weights, i.e. weights trained so that a few self-supervised updates on one noisy image help most.
The paper gives no recipe we follow; our choice is **first-order MAML** (Finn et al., ICML 2017, section 5.2):

* a task is one clean source crop with *source* noise (noise the pretrained net was trained on, e.g. Gaussian
  of the level FFDNet is told), made by the caller's ``tasks`` function;
* the inner loop is exactly the test-time baseline: ``adapt_weights(..., scope='full')`` with the same loss,
  learning rate and optimizer (fresh Adam), for ``inner_iters`` updates;
* the outer loss is the supervised MSE of the adapted copy's output against the clean crop; its gradient with
  respect to the *adapted* weights is applied to the meta weights (the first-order approximation) by Adam at
  ``outer_lr``.

At test time the result is adapted like the full-trainable baseline (same loss and iterations). Nothing here
imports BasicSR.
"""
import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from basicsr_adl.lan.adapter import AdaptConfig
from basicsr_adl.lan.baselines import adapt_weights

TaskSampler = Callable[[torch.Generator], Tuple[Tensor, Tensor]]  # generator -> (noisy, clean), (B, C, H, W)


@dataclass(frozen=True)
class MetaConfig:
    """First-order MAML settings (our choices; see the module docstring)."""
    steps: int = 100          # outer updates (one task each)
    inner_iters: int = 5      # self-supervised updates per task (the test-time loop runs AdaptConfig.iters)
    outer_lr: float = 1e-6    # Adam on the meta weights (1e-5 broke FFDNet's start within 10 steps)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ('steps', 'inner_iters'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LAN meta option '{name}' must be a positive integer, got {value!r}")
        if not self.outer_lr > 0:
            raise ValueError(f"LAN meta option 'outer_lr' must be > 0, got {self.outer_lr!r}")


@dataclass
class MetaResult:
    """The meta-trained copy and, per outer step, the supervised MSE (clipped outputs) before and after the inner
    loop."""
    net: nn.Module
    before: List[float] = dataclasses.field(default_factory=list)
    after: List[float] = dataclasses.field(default_factory=list)


def meta_train(pretrained: nn.Module, tasks: TaskSampler, adapt: AdaptConfig, meta: MetaConfig,
               forward_kwargs: Optional[dict] = None,
               progress: Optional[Callable[[int, float, float], None]] = None) -> MetaResult:
    """First-order MAML from ``pretrained`` (left unchanged); returns a meta-trained copy in eval mode.

    ``adapt`` supplies the inner loop's loss and lr (its ``iters`` are replaced by ``meta.inner_iters``);
    ``progress(step, mse_before, mse_after)`` is called after every outer update.
    """
    meta_net = copy.deepcopy(pretrained).eval()
    params: Dict[str, nn.Parameter] = dict(meta_net.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(list(params.values()), lr=meta.outer_lr)
    generator = torch.Generator().manual_seed(meta.seed)
    inner = dataclasses.replace(adapt, iters=meta.inner_iters, report_iters=(0,))
    result = MetaResult(net=meta_net)
    kwargs = forward_kwargs or {}
    for step in range(meta.steps):
        noisy, clean = tasks(generator)
        inner = dataclasses.replace(inner, seed=meta.seed + step)
        adapted = adapt_weights(meta_net, noisy, inner, 'full', forward_kwargs, keep_net=True)
        before = F.mse_loss(adapted.outputs[0], clean)
        with torch.enable_grad():
            for p in adapted.net.parameters():
                p.grad = None
            loss = F.mse_loss(adapted.net(noisy, **kwargs), clean)
            loss.backward()
            after = F.mse_loss(adapted.net(noisy, **kwargs).detach().clamp(0, 1), clean)  # comparable to before
        optimizer.zero_grad(set_to_none=True)
        adapted_params = dict(adapted.net.named_parameters())
        for name, p in params.items():
            grad = adapted_params[name].grad
            p.grad = None if grad is None else grad.detach().clone()
        optimizer.step()
        result.before.append(float(before))
        result.after.append(float(after))
        if progress is not None:
            progress(step + 1, result.before[-1], result.after[-1])
    for p in params.values():
        p.requires_grad_(False)
    return result


def gaussian_tasks(clean_images: List[Tensor], crop: int, sigma_range: Tuple[float, float]) -> TaskSampler:
    """Tasks of source noise: a random ``crop`` of a random clean (C, H, W) image in [0, 1] with additive Gaussian
    noise of a level drawn uniformly from ``sigma_range`` (8-bit levels), clipped to [0, 1] like a saved image."""
    if not clean_images:
        raise ValueError('LAN meta-training needs at least one clean image')
    small = [tuple(img.shape[-2:]) for img in clean_images if min(img.shape[-2:]) < crop]
    if small:
        raise ValueError(f'LAN meta crop {crop} is larger than clean image(s) of size {small[:3]}')
    low, high = sigma_range
    if not 0 <= low <= high <= 255:
        raise ValueError(f'LAN meta noise_sigma must be [low, high] within 0..255, got {list(sigma_range)}')

    def sample(generator: torch.Generator) -> Tuple[Tensor, Tensor]:
        img = clean_images[int(torch.randint(len(clean_images), (1,), generator=generator))]
        h, w = img.shape[-2:]
        top = int(torch.randint(h - crop + 1, (1,), generator=generator))
        left = int(torch.randint(w - crop + 1, (1,), generator=generator))
        clean = img[..., top:top + crop, left:left + crop].unsqueeze(0)
        sigma = low + (high - low) * float(torch.rand(1, generator=generator))
        noise = torch.randn(clean.shape, generator=generator).to(clean.device)  # CPU generator, any device
        noisy = (clean + noise * sigma / 255.0).clamp(0, 1)
        return noisy, clean

    return sample
