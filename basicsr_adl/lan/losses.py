"""Self-supervised denoising losses used by LAN at test time (DESIGN.md section 3).

Both losses take ``denoise``, a callable returning the network's clean estimate, and the (offset) noisy
input ``y`` of shape (B, C, H, W) with even H and W. Nothing here imports BasicSR.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

Denoiser = Callable[[Tensor], Tensor]

LOSS_NAMES = ('zsn2n', 'nbr2nbr')

# Cell positions in a 2x2 cell, flattened row-major: 0=(0,0), 1=(0,1), 2=(1,0), 3=(1,1).
# The 8 ordered pairs of horizontally or vertically adjacent positions (Neighbor2Neighbor's sampler).
NEIGHBOUR_PAIRS = torch.tensor([[0, 1], [1, 0], [2, 3], [3, 2], [0, 2], [2, 0], [1, 3], [3, 1]], dtype=torch.long)


def _check_even(y: Tensor, what: str) -> None:
    if y.dim() != 4:
        raise ValueError(f'{what}: expected a (B, C, H, W) tensor, got shape {tuple(y.shape)}')
    if y.shape[-2] % 2 or y.shape[-1] % 2:
        raise ValueError(f'{what}: height and width must be even (2x2 cells), got {tuple(y.shape[-2:])}; '
                         "pad or crop first (LAN option 'odd_size')")


def zsn2n_downsample(x: Tensor) -> Tuple[Tensor, Tensor]:
    """ZS-N2N's two stride-2 per-channel filters: D1 = [[0, .5], [.5, 0]], D2 = [[.5, 0], [0, .5]]."""
    top_left, top_right = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    bottom_left, bottom_right = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return 0.5 * (top_right + bottom_left), 0.5 * (top_left + bottom_right)


def zsn2n_loss(denoise: Denoiser, y: Tensor) -> Tensor:
    """Zero-Shot Noise2Noise: residual term plus consistency term, both halves weighted 1/2, nothing detached."""
    _check_even(y, 'zsn2n loss')
    d1, d2 = zsn2n_downsample(y)
    f_d1, f_d2 = denoise(d1), denoise(d2)
    residual = 0.5 * (F.mse_loss(f_d2, d1) + F.mse_loss(f_d1, d2))
    down1_f, down2_f = zsn2n_downsample(denoise(y))
    consistency = 0.5 * (F.mse_loss(f_d1, down1_f) + F.mse_loss(f_d2, down2_f))
    return residual + consistency


def sample_neighbour_pairs(batch: int, height: int, width: int,
                           generator: Optional[torch.Generator] = None,
                           device: Optional[torch.device] = None) -> Tuple[Tensor, Tensor]:
    """Pick, per 2x2 cell and batch item, one of the 8 ordered adjacent pairs; return the two cell positions.

    Indices are drawn on the CPU from ``generator`` (a CPU ``torch.Generator``) and then moved to ``device``,
    so a seed gives the same sub-images on CPU and GPU. Returns two (B, H/2, W/2) long tensors in 0..3.
    """
    if height % 2 or width % 2:
        raise ValueError(f'neighbour sampler: height and width must be even, got {(height, width)}')
    choice = torch.randint(0, len(NEIGHBOUR_PAIRS), (batch, height // 2, width // 2), generator=generator)
    pairs = NEIGHBOUR_PAIRS[choice]
    return pairs[..., 0].to(device), pairs[..., 1].to(device)


def neighbour_subsample(x: Tensor, cell_index: Tensor) -> Tensor:
    """Take from every 2x2 cell of ``x`` the pixel at ``cell_index`` (B, H/2, W/2), same for all channels."""
    b, c, h, w = x.shape
    cells = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
    index = cell_index.to(x.device).unsqueeze(1).expand(b, c, h // 2, w // 2).unsqueeze(-1)
    return torch.gather(cells, -1, index).squeeze(-1)


def nbr2nbr_loss(denoise: Denoiser, y: Tensor, regulariser_weight: float,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """Neighbor2Neighbor: reconstruction + weight * regulariser, with f(y) computed without gradient, clipped to [0, 1]."""
    _check_even(y, 'nbr2nbr loss')
    first, second = sample_neighbour_pairs(y.shape[0], y.shape[2], y.shape[3], generator, y.device)
    g1_y, g2_y = neighbour_subsample(y, first), neighbour_subsample(y, second)
    with torch.no_grad():
        full = denoise(y).clamp(0, 1)
        g1_f, g2_f = neighbour_subsample(full, first), neighbour_subsample(full, second)
    estimate = denoise(g1_y)
    reconstruction = torch.mean((estimate - g2_y) ** 2)
    regulariser = torch.mean((estimate - g2_y - (g1_f - g2_f)) ** 2)
    return reconstruction + regulariser_weight * regulariser


def nbr2nbr_weight(step: int, total_steps: int, max_weight: float = 0.1) -> float:
    """LAN's schedule for Nbr2Nbr's regulariser weight: lambda = max_weight * step / total_steps (step from 0)."""
    return max_weight * step / max(total_steps, 1)


def self_supervised_loss(name: str, denoise: Denoiser, y: Tensor, step: int, total_steps: int,
                         generator: Optional[torch.Generator] = None, nbr_max_weight: float = 0.1) -> Tensor:
    """Dispatch by loss name ('zsn2n' or 'nbr2nbr'); ``step`` counts from 0 and only matters for nbr2nbr."""
    if name == 'zsn2n':
        return zsn2n_loss(denoise, y)
    if name == 'nbr2nbr':
        return nbr2nbr_loss(denoise, y, nbr2nbr_weight(step, total_steps, nbr_max_weight), generator)
    raise ValueError(f"unknown LAN loss '{name}'; choices: {', '.join(LOSS_NAMES)}")
