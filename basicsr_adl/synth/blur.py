"""Camera-shake motion blur: random trajectory kernels and their application to sharp images.

A kernel is drawn by integrating a random camera trajectory (a 2-D walk with inertia, occasional jerks and
a drift toward its start, in the spirit of Boracchi & Foi, "Modeling the performance of image restoration from
motion blur", TIP 2012) and splatting it onto a ``size x size`` grid with bilinear weights. The ADL paper
synthesises its deblurring sources with kernel sizes 21, 31 and 41.
"""
import math
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

KERNEL_SUM_TOLERANCE = 1e-3


class BlurError(ValueError):
    """A blur kernel or request that cannot be applied (named in the message)."""


def random_motion_kernel(size: int, rng: np.random.Generator, steps: int = 64, intensity: float = 0.6) -> np.ndarray:
    """A ``size x size`` float32 kernel summing to one, drawn from a random shake trajectory.

    ``intensity`` in (0, 1] scales how jerky the trajectory is; the path length is fitted to the kernel size.
    """
    if size < 3 or size % 2 == 0:
        raise BlurError(f'kernel size must be odd and >= 3, got {size}')
    if not 0 < intensity <= 1:
        raise BlurError(f'kernel intensity must be in (0, 1], got {intensity}')
    velocity = complex(rng.normal(), rng.normal())
    velocity /= abs(velocity) + 1e-12
    position = 0j
    path = [position]
    for _ in range(steps - 1):
        jerk = intensity * float(rng.random() < 0.03)  # rare sudden change of direction
        accel = (0.6 * intensity + 4.0 * jerk) * complex(rng.normal(), rng.normal())
        velocity = velocity + 0.15 * accel - 0.002 * intensity * position  # inertia + slight pull back
        velocity /= max(abs(velocity), 1e-12)  # constant speed: the shape, not the speed, is random
        position = position + velocity
        path.append(position)
    pts = np.array([[p.real, p.imag] for p in path], dtype=np.float64)
    pts -= pts.mean(0)
    extent = np.abs(pts).max()
    reach = (size - 1) / 2 - 1
    pts *= reach * rng.uniform(0.5, 1.0) / max(extent, 1e-12)
    pts += (size - 1) / 2
    kernel = np.zeros((size, size), dtype=np.float64)
    for x, y in pts:  # bilinear splat of each trajectory sample
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                yy, xx = y0 + dy, x0 + dx
                if 0 <= yy < size and 0 <= xx < size:
                    kernel[yy, xx] += wy * wx
    kernel /= kernel.sum()
    return kernel.astype(np.float32)


def check_kernel(kernel: np.ndarray, height: int, width: int) -> None:
    """Reject kernels that are not 2-D odd squares, do not sum to one, or are larger than the image."""
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
        raise BlurError(f'blur kernel must be a 2-D odd square, got shape {tuple(kernel.shape)}')
    total = float(kernel.sum())
    if abs(total - 1.0) > KERNEL_SUM_TOLERANCE:
        raise BlurError(f'blur kernel must sum to one (brightness-preserving), it sums to {total:.6f}')
    if kernel.shape[0] > min(height, width):
        raise BlurError(f'blur kernel {kernel.shape[0]}x{kernel.shape[1]} is larger than the image {height}x{width}')


def apply_blur(image: torch.Tensor, kernel: np.ndarray, noise_sigma: float = 0.0,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Blur a CxHxW (or NxCxHxW) float image with ``kernel`` (reflect padding), then add Gaussian noise."""
    batched = image.dim() == 4
    x = image if batched else image.unsqueeze(0)
    check_kernel(kernel, x.shape[-2], x.shape[-1])
    c = x.shape[1]
    k = torch.as_tensor(kernel, dtype=x.dtype, device=x.device).flip(0, 1)  # true convolution
    weight = k.expand(c, 1, *k.shape).contiguous()
    pad = kernel.shape[0] // 2
    out = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode='reflect'), weight, groups=c)
    if noise_sigma > 0:
        noise = torch.randn(out.shape, generator=generator, dtype=out.dtype, device='cpu').to(out.device)
        out = out + noise_sigma * noise
    out = out.clamp(0, 1)
    return out if batched else out[0]
