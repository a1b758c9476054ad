"""Atmospheric-scattering haze: I = J t + A (1 - t), t = exp(-beta d).

RESIDE (Li et al., TIP 2019) synthesises its hazy images with this model, beta in [0.6, 1.8] and A in
[0.7, 1.0] (ITS/OTS); per-domain ranges here default to such values. When no depth map is given, a depth
proxy is used: distance grows toward the top of the frame and in bright, low-saturation regions (sky), then
is smoothed; it is a rough stand-in, documented as such.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

BETA_LIMITS = (0.0, 5.0)


class HazeError(ValueError):
    """Haze parameters out of range (named in the message)."""


def check_haze_params(beta: float, airlight: float) -> None:
    if not BETA_LIMITS[0] < beta <= BETA_LIMITS[1]:
        raise HazeError(f'haze beta must be in ({BETA_LIMITS[0]}, {BETA_LIMITS[1]}], got {beta}')
    if not 0.0 < airlight <= 1.0:
        raise HazeError(f'haze airlight A must be in (0, 1], got {airlight}')


def check_range(name: str, lo_hi: Tuple[float, float], limits: Tuple[float, float]) -> None:
    lo, hi = lo_hi
    if not (limits[0] < lo <= hi <= limits[1]):
        raise HazeError(f'{name} range must satisfy {limits[0]} < low <= high <= {limits[1]}, got [{lo}, {hi}]')


def depth_proxy(clean: torch.Tensor) -> torch.Tensor:
    """A 1xHxW relative depth in [0, 1] for a CxHxW image in [0, 1] (no depth sensor needed)."""
    _, h, w = clean.shape
    rows = torch.linspace(1.0, 0.0, h, dtype=clean.dtype, device=clean.device).view(1, h, 1).expand(1, h, w)
    brightness = clean.mean(0, keepdim=True)
    saturation = clean.max(0, keepdim=True).values - clean.min(0, keepdim=True).values
    sky_like = (brightness * (1 - saturation)).clamp(0, 1)
    depth = 0.7 * rows + 0.3 * sky_like
    k = max(3, (min(h, w) // 8) | 1)
    depth = F.avg_pool2d(F.pad(depth.unsqueeze(0), (k // 2,) * 4, mode='replicate'), k, stride=1)[0]
    depth = depth - depth.min()
    return depth / depth.max().clamp_min(1e-6)


def add_haze(clean: torch.Tensor, beta: float, airlight: float, depth: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Hazy version of a CxHxW image in [0, 1]; ``depth`` (1xHxW or HxW, relative) defaults to the proxy."""
    check_haze_params(beta, airlight)
    if depth is None:
        depth = depth_proxy(clean)
    depth = depth.reshape(1, *clean.shape[-2:]).to(clean)
    transmission = torch.exp(-beta * depth)
    return (clean * transmission + airlight * (1 - transmission)).clamp(0, 1)
