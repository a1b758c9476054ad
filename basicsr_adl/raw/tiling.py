"""Run an image-to-image net on overlapping tiles and blend them back: any image size, memory set by the tile.

Our choice (no paper prescribes one): tiles of ``tile`` x ``tile`` pixels step by ``tile - overlap``; the last
tile of a row or column is moved back to end at the image border, so every tile has the full size. Each tile's
output is weighted by a window that is 1 inside and ramps linearly over the ``overlap`` pixels it shares with a
neighbour (never to 0), and the weighted sum is divided by the summed weights. Borders of the image are not
ramped. The net sees only its tile, so a difference from whole-image inference remains where a tile edge cuts
the net's receptive field; ``scripts/benchmarks/bench_denoise_raw.py`` measures it.

Only one tile lives on the device at a time; the input and the accumulators stay on the CPU. Plain PyTorch,
no BasicSR import.
"""
import math
from typing import Callable, Iterator, List, Optional, Tuple

import torch

TileFn = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(size: int, tile: int, overlap: int) -> List[int]:
    """Start offsets along one axis: step ``tile - overlap``, the last tile ending at ``size``."""
    if tile <= 0 or size <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f'overlap {overlap} must be in [0, tile) for tile {tile}')
    stride = tile - overlap
    count = math.ceil((size - overlap) / stride)
    starts = sorted({min(i * stride, size - tile) for i in range(count)})
    return starts


def ramp_window(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weights: 1, with linear ramps (1/(overlap+1) .. overlap/(overlap+1)) on the shared sides."""
    weights = torch.ones(length, dtype=torch.float32)
    ramp_len = min(overlap, length // 2)
    if ramp_len > 0:
        ramp = torch.arange(1, ramp_len + 1, dtype=torch.float32) / (ramp_len + 1)
        if ramp_start:
            weights[:ramp_len] = ramp
        if ramp_end:
            weights[length - ramp_len:] = torch.minimum(weights[length - ramp_len:], ramp.flip(0))
    return weights


def tiles(height: int, width: int, tile: int, overlap: int) -> Iterator[Tuple[int, int, int, int]]:
    """(top, left, tile height, tile width) of every tile, row by row."""
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    for top in rows:
        for left in cols:
            yield top, left, min(tile, height) if tile > 0 else height, min(tile, width) if tile > 0 else width


def count_tiles(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def run_tiled(fn: TileFn, image: torch.Tensor, tile: int, overlap: int, device: Optional[torch.device] = None,
              on_tile: Optional[Callable[[int, int], None]] = None) -> torch.Tensor:
    """``fn`` applied to ``image`` (1, C, H, W) tile by tile; returns a (1, C_out, H, W) float32 CPU tensor.

    ``tile <= 0`` (or a tile at least the image size) runs the whole image at once. ``on_tile(done, total)``
    reports progress. ``fn`` must keep the spatial size.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f'run_tiled expects a (1, C, H, W) tensor, got {tuple(image.shape)}')
    device = torch.device(device) if device is not None else image.device
    height, width = image.shape[-2:]
    boxes = list(tiles(height, width, tile, overlap))
    out, weight = None, torch.zeros(height, width, dtype=torch.float32)
    for done, (top, left, th, tw) in enumerate(boxes, 1):
        piece = image[..., top:top + th, left:left + tw].to(device)
        result = fn(piece)
        if result.shape[-2:] != piece.shape[-2:]:
            raise ValueError(f'the net changed the tile size from {tuple(piece.shape[-2:])} to '
                             f'{tuple(result.shape[-2:])}; tiled inference needs a size-preserving net')
        result = result.detach().to('cpu', torch.float32)
        if len(boxes) == 1:
            if on_tile is not None:
                on_tile(1, 1)
            return result
        if out is None:
            out = torch.zeros(1, result.shape[1], height, width, dtype=torch.float32)
        window = (ramp_window(th, overlap, top > 0, top + th < height)[:, None]
                  * ramp_window(tw, overlap, left > 0, left + tw < width)[None, :])
        out[..., top:top + th, left:left + tw] += result * window
        weight[top:top + th, left:left + tw] += window
        if on_tile is not None:
            on_tile(done, len(boxes))
    return out / weight
