"""Fine-tuning baselines for LAN (DESIGN.md section 3): adapt weights instead of an input offset.

Same self-supervised loss and iterations as LAN; every call works on a deep copy of the pretrained net,
so each image starts from the pretrained weights and the caller's net never changes. Scopes:
``full`` (all parameters), ``first_layer`` / ``last_layer`` (the first / last parameterised leaf module in
execution order, found with forward hooks, so a UNet's decoder head counts as last even if it was
registered earlier). The net stays in eval mode (BatchNorm uses its running statistics) [choice].
"""
import copy
import time
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

from basicsr_adl.lan.adapter import AdaptConfig, AdaptResult, _denoiser, make_even
from basicsr_adl.lan.losses import self_supervised_loss

SCOPES = ('full', 'first_layer', 'last_layer')


def parameterised_layers_in_order(net: nn.Module, example: Tensor, forward_kwargs: Optional[dict] = None) -> List[str]:
    """Names of leaf modules that own parameters, in the order a forward pass on ``example`` runs them."""
    order: List[str] = []
    handles = []
    for name, module in net.named_modules():
        if not list(module.children()) and any(True for _ in module.parameters(recurse=False)):
            handles.append(module.register_forward_hook(
                lambda mod, inp, out, name=name: order.append(name) if name not in order else None))
    try:
        with torch.no_grad():
            net(example, **(forward_kwargs or {}))
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ValueError('the network has no parameterised layer to fine-tune')
    return order


def trainable_parameters(net: nn.Module, scope: str, example: Tensor, forward_kwargs: Optional[dict] = None,
                         skip_layers: Sequence[str] = ()) -> Dict[str, nn.Parameter]:
    """The parameters a baseline of ``scope`` updates, by qualified name.

    ``skip_layers``: leaf-module names the first/last-layer rule passes over (e.g. ``sub_mean`` / ``add_mean``, the
    1x1 mean-shift convs BasicSR's RIDNet and EDSR run before / after their first / last 3x3 conv).
    """
    if scope == 'full':
        return dict(net.named_parameters())
    if scope not in SCOPES:
        raise ValueError(f"unknown LAN baseline mode '{scope}'; choices: {', '.join(SCOPES)}")
    all_layers = parameterised_layers_in_order(net, example, forward_kwargs)
    unknown = sorted(set(skip_layers) - set(all_layers))
    if unknown:
        raise ValueError(f'skip_layers {unknown} are not parameterised layers of the net; layers: {all_layers}')
    order = [name for name in all_layers if name not in set(skip_layers)]
    if not order:
        raise ValueError('skip_layers leaves no parameterised layer to fine-tune')
    layer = order[0] if scope == 'first_layer' else order[-1]
    module = net.get_submodule(layer)
    return {f'{layer}.{n}': p for n, p in module.named_parameters(recurse=False)}


def adapt_weights(pretrained: nn.Module, noisy: Tensor, config: AdaptConfig, scope: str = 'full',
                  forward_kwargs: Optional[dict] = None, keep_net: bool = False,
                  skip_layers: Sequence[str] = ()) -> AdaptResult:
    """Fine-tune a fresh copy of ``pretrained`` on one noisy batch with the LAN loss; outputs clipped to [0, 1].

    With ``keep_net`` the adapted copy is returned as ``result.net`` (to inspect what changed). ``skip_layers``: see
    ``trainable_parameters``.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown LAN baseline mode '{scope}'; choices: {', '.join(SCOPES)}")
    noisy, restore = make_even(noisy.detach(), config.odd_size)
    net = copy.deepcopy(pretrained).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    params = trainable_parameters(net, scope, noisy, forward_kwargs, skip_layers)
    for p in params.values():
        p.requires_grad_(True)
    denoise = _denoiser(net, forward_kwargs)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(list(params.values()), lr=config.lr)
    result = AdaptResult()

    def record(step: int) -> None:
        if step in config.report_iters:
            with torch.no_grad():
                result.outputs[step] = restore(denoise(noisy).clamp(0, 1))

    with torch.enable_grad():
        record(0)
        for step in range(config.iters):
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = self_supervised_loss(config.loss, denoise, noisy, step, config.iters, generator,
                                        config.nbr_max_weight)
            loss.backward()
            optimizer.step()
            result.losses.append(float(loss.detach()))
            result.step_seconds.append(time.perf_counter() - started)
            record(step + 1)
    if keep_net:
        result.net = net
    return result
