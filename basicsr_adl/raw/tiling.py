"""Run an image-to-image net on overlapping tiles and blend them back: any image size, memory set by the tile.

Our choice (no paper prescribes one): the fewest tiles of at most ``tile`` x ``tile`` pixels that overlap by at
least ``overlap``, all of one size and spread evenly over the image (``tile_span``). Each tile's
output is weighted by a window that is 1 inside and, over the ``overlap`` pixels it shares with a neighbour,
nearly 0 at the edge and rising to 1 (``ramp_window``); the weighted sum is divided by the summed weights.
Borders of the image are not ramped. The net sees only its tile, so a difference from whole-image inference remains where a tile edge cuts
the net's receptive field; ``scripts/benchmarks/bench_denoise_raw.py`` measures it.

Only one tile lives on the device at a time; the input and the accumulators stay on the CPU. Plain PyTorch,
no BasicSR import.
"""
import math
from typing import Callable, Iterator, List, Optional, Tuple

import torch

TileFn = Callable[[torch.Tensor], torch.Tensor]
TILE_MULTIPLE = 16  # ModulatedUNet pads to 2**4; a multiple of it costs other nets nothing


def tile_span(size: int, tile: int, overlap: int) -> Tuple[List[int], int]:
    """(start offsets, tile length) along one axis.

    The fewest tiles of at most ``tile`` pixels that overlap by at least ``overlap``; all of one length (rounded
    up to ``TILE_MULTIPLE`` where that still fits, so a net that pads to that multiple pads nothing), spread
    evenly from one border to the other. Shrinking the tiles to fit keeps the extra work small: 1000 pixels with
    tile 512 and overlap 32 are 3 tiles of 368, not 3 of 512.
    """
    if tile <= 0 or size <= tile:
        return [0], size
    if not 0 <= overlap < tile:
        raise ValueError(f'overlap {overlap} must be in [0, tile) for tile {tile}')
    count = math.ceil((size - overlap) / (tile - overlap))
    length = math.ceil((size + (count - 1) * overlap) / count)
    rounded = math.ceil(length / TILE_MULTIPLE) * TILE_MULTIPLE
    length = rounded if rounded <= min(tile, size) else length
    starts = [round(i * (size - length) / (count - 1)) for i in range(count)]
    return starts, length


def tile_starts(size: int, tile: int, overlap: int) -> List[int]:
    """Start offsets along one axis (see ``tile_span``)."""
    return tile_span(size, tile, overlap)[0]


def ramp_window(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D blending weights over ``length`` pixels: 1 inside; on a side shared with a neighbour, the outer quarter
    of the overlap gets almost no weight (1e-3: the net saw least context there) and the next half rises linearly
    to 1, so the neighbour's better-informed pixels dominate and the seam stays smooth."""
    weights = torch.ones(length, dtype=torch.float32)
    span = min(overlap, length // 2)
    if span > 0:
        distance = torch.arange(span, dtype=torch.float32) + 0.5  # from the tile's edge
        ramp = ((distance - span / 4) / (span / 2)).clamp(1e-3, 1.0)
        if ramp_start:
            weights[:span] = ramp
        if ramp_end:
            weights[length - span:] = torch.minimum(weights[length - span:], ramp.flip(0))
    return weights


def tiles(height: int, width: int, tile: int, overlap: int) -> Iterator[Tuple[int, int, int, int]]:
    """(top, left, tile height, tile width) of every tile, row by row."""
    (rows, th), (cols, tw) = tile_span(height, tile, overlap), tile_span(width, tile, overlap)
    for top in rows:
        for left in cols:
            yield top, left, th, tw


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
    out /= weight  # in place: no second image-sized tensor
    return out
