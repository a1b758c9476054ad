"""The plugin's one PSNR/SSIM routine: float, data range 1, output clamped to [0, 1], no 8-bit rounding.

BasicSR's ``calculate_psnr``/``calculate_ssim`` round to 8-bit 3-channel images, which is wrong for packed RAW
(4 channels, linear values near 0). Everything that scores an image here - ADL's V' gate, the models'
validation, the experiment scripts, the noisy-input floor - goes through :func:`float_scores`, which calls
BasicSR's tensor versions (``calculate_psnr_pt``/``calculate_ssim_pt``).
"""
from typing import Any, Callable, Dict, Optional

import torch

from basicsr.metrics.psnr_ssim import calculate_psnr_pt, calculate_ssim_pt

from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.metadata import forward_args

# option val.metrics.<name>.type -> the float routine used for it
FLOAT_METRICS: Dict[str, Callable[..., torch.Tensor]] = {
    'calculate_psnr': calculate_psnr_pt, 'calculate_psnr_pt': calculate_psnr_pt,
    'calculate_ssim': calculate_ssim_pt, 'calculate_ssim_pt': calculate_ssim_pt}


def float_scores(output: torch.Tensor, gt: torch.Tensor, kind: str = 'calculate_psnr',
                 crop_border: int = 0) -> torch.Tensor:
    """Per-image PSNR (dB) or SSIM of a (N,C,H,W) batch against ``gt``; ``output`` is clamped to [0, 1]."""
    return FLOAT_METRICS[kind](output.clamp(0, 1), gt, crop_border)


def psnr_per_image(output: torch.Tensor, gt: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    return float_scores(output, gt, 'calculate_psnr', crop_border)


def check_float_metric(name: str, metric_opt: Dict[str, Any], model: str) -> str:
    """The metric's ``type`` if it has a float routine, else one error naming ``val.metrics.<name>.type``."""
    kind = metric_opt['type']
    if kind not in FLOAT_METRICS:
        raise OptionError(f"option 'val.metrics.{name}.type': {model} computes calculate_psnr and "
                          f"calculate_ssim in float; '{kind}' is not supported")
    return kind


@torch.no_grad()
def evaluate_net(net: torch.nn.Module, dataset, device: Optional[torch.device] = None,
                 keep_outputs: int = 0) -> Dict[str, Any]:
    """PSNR/SSIM of ``net`` over every item of ``dataset`` (items: lq, gt[, sensor, iso]).

    Metadata go to the net only if its forward takes them. Returns per-image lists, their means, and the
    first ``keep_outputs`` (lq, output, gt) triples for pictures."""
    device = device or torch.device('cpu')
    names = forward_args(net)
    was_training = net.training
    net.eval()
    psnrs, ssims, kept = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        lq = torch.as_tensor(item['lq'])[None].to(device)
        gt = torch.as_tensor(item['gt'])[None].to(device)
        kwargs = {k: torch.as_tensor(item[k]).reshape(1).to(device) for k in names if item.get(k) is not None}
        out = net(lq, **kwargs).clamp(0, 1)
        psnrs.append(float(float_scores(out, gt, 'calculate_psnr')))
        ssims.append(float(float_scores(out, gt, 'calculate_ssim')))
        if i < keep_outputs:
            kept.append((lq[0].cpu(), out[0].cpu(), gt[0].cpu()))
    net.train(was_training)
    return {'psnr': sum(psnrs) / len(psnrs), 'ssim': sum(ssims) / len(ssims), 'psnr_per_image': psnrs,
            'ssim_per_image': ssims, 'outputs': kept}


def noisy_input_scores(dataset) -> Dict[str, float]:
    """PSNR/SSIM of the noisy inputs themselves (the floor every method must beat)."""
    ps, ss = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        lq, gt = torch.as_tensor(item['lq'])[None], torch.as_tensor(item['gt'])[None]
        ps.append(float(float_scores(lq, gt, 'calculate_psnr')))
        ss.append(float(float_scores(lq, gt, 'calculate_ssim')))
    return {'psnr': sum(ps) / len(ps), 'ssim': sum(ss) / len(ss)}


def preview_image(t: torch.Tensor) -> torch.Tensor:
    """3-channel [0,1] view of an image tensor (C,H,W): RGB as is, packed RAW as (R, mean G, B) with gamma 1/2.2."""
    t = t.detach().float().clamp(0, 1)
    if t.shape[0] == 4:
        t = torch.stack([t[0], 0.5 * (t[1] + t[2]), t[3]]).pow(1 / 2.2)
    elif t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t[:3]
