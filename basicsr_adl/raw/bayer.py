"""Bayer mosaics <-> packed 4-channel arrays in the canonical order R, G1, G2, B.

Why canonical: networks trained on several sensors must see the same colour in the same channel whatever
the sensor's CFA. We pick the crop offset at which the 2x2 quad reads R, G, G, B (row-major), so

    packed[0] = R, packed[1] = G1 (green on the red row), packed[2] = G2 (green on the blue row), packed[3] = B.

Depending on the pattern, packing drops at most one row/column at each border (odd sizes included);
``unpack`` puts the covered pixels back exactly.

Geometric augmentation keeps the Bayer meaning: ``packed_hflip``/``packed_vflip``/``packed_rot90``/
``packed_transpose`` give exactly what packing the flipped/rotated/transposed *mosaic* (with its new pattern)
gives. That is not a flip of the four planes: see the comment above ``packed_hflip``.

Plain NumPy/PyTorch, no BasicSR import.
"""
from typing import List, Sequence, Tuple, Union

import numpy as np

try:  # torch is optional for the NumPy paths
    import torch
except ImportError:  # pragma: no cover
    torch = None

BAYER_PATTERNS = ('RGGB', 'BGGR', 'GRBG', 'GBRG')
CANONICAL_ORDER = ('R', 'G1', 'G2', 'B')

ArrayLike = Union[np.ndarray, 'torch.Tensor']


class UnsupportedCFAError(ValueError):
    """The colour filter array is not a 2x2 Bayer pattern (e.g. Fujifilm X-Trans)."""


def normalize_pattern(pattern: Union[str, Sequence, np.ndarray], source: str = '') -> str:
    """Return the pattern as one of ``BAYER_PATTERNS``; raise ``UnsupportedCFAError`` otherwise.

    Accepts a string ('rggb'), 4 letters, or a 2x2 array of letters. ``source`` names the file/key for the
    error message.
    """
    where = f' ({source})' if source else ''
    if isinstance(pattern, np.ndarray):
        if pattern.shape != (2, 2):
            raise UnsupportedCFAError(f'unsupported CFA{where}: pattern of shape {pattern.shape} is not a 2x2 '
                                      'Bayer pattern (X-Trans and other non-Bayer CFAs are not supported)')
        pattern = ''.join(str(c) for c in pattern.reshape(-1))
    if not isinstance(pattern, str):
        pattern = ''.join(str(c) for c in pattern)
    name = pattern.upper().strip()
    if name not in BAYER_PATTERNS:
        raise UnsupportedCFAError(f'unsupported CFA{where}: {pattern!r}; supported Bayer patterns: '
                                  f'{", ".join(BAYER_PATTERNS)} (X-Trans and other non-Bayer CFAs are rejected)')
    return name


def red_offset(pattern: str) -> Tuple[int, int]:
    """(row, col) of the red site within the 2x2 pattern: the crop offset that makes the quad R,G,G,B."""
    index = normalize_pattern(pattern).index('R')
    return index // 2, index % 2


def canonical_positions(pattern: str) -> List[Tuple[int, int]]:
    """(row, col) within the 2x2 CFA of the canonical R, G1, G2, B sites."""
    oy, ox = red_offset(pattern)
    return [((oy + dy) % 2, (ox + dx) % 2) for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1))]


def packed_shape(mosaic_shape: Tuple[int, int], pattern: str) -> Tuple[int, int, int]:
    """(4, h, w) that ``pack`` returns for a mosaic of ``mosaic_shape``."""
    oy, ox = red_offset(pattern)
    height, width = mosaic_shape[-2:]
    return 4, (height - oy) // 2, (width - ox) // 2


def pack(mosaic: ArrayLike, pattern: str) -> ArrayLike:
    """Pack a (..., H, W) Bayer mosaic into (..., 4, h, w) in the canonical order R, G1, G2, B.

    Works on NumPy arrays and torch tensors, any dtype; returns a new contiguous array.
    """
    oy, ox = red_offset(pattern)
    if mosaic.ndim < 2:
        raise ValueError(f'pack expects a (..., H, W) mosaic, got shape {tuple(mosaic.shape)}')
    height, width = mosaic.shape[-2:]
    h, w = (height - oy) // 2, (width - ox) // 2
    if h < 1 or w < 1:
        raise ValueError(f'mosaic of shape {tuple(mosaic.shape)} is too small to pack with pattern {pattern}')
    quads = mosaic[..., oy:oy + 2 * h, ox:ox + 2 * w]
    planes = [quads[..., dy::2, dx::2] for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1))]
    if torch is not None and isinstance(mosaic, torch.Tensor):
        return torch.stack(planes, dim=-3).contiguous()
    return np.ascontiguousarray(np.stack(planes, axis=-3))


def unpack(packed: ArrayLike, pattern: str = 'RGGB', mosaic_shape: Tuple[int, int] = None,
           fill: float = 0) -> ArrayLike:
    """Inverse of ``pack``: (..., 4, h, w) -> (..., H, W) mosaic laid out in ``pattern``.

    ``mosaic_shape`` (H, W) gives the original size; the border rows/columns that packing dropped are set
    to ``fill``. Without it the mosaic is exactly the packed area plus the pattern offset.
    """
    oy, ox = red_offset(pattern)
    if packed.ndim < 3 or packed.shape[-3] != 4:
        raise ValueError(f'unpack expects a (..., 4, h, w) array, got shape {tuple(packed.shape)}')
    h, w = packed.shape[-2:]
    if mosaic_shape is None:
        mosaic_shape = (2 * h + oy, 2 * w + ox)
    height, width = mosaic_shape
    if height < 2 * h + oy or width < 2 * w + ox:
        raise ValueError(f'mosaic_shape {mosaic_shape} cannot hold packed {tuple(packed.shape)} ({pattern})')
    lead = tuple(packed.shape[:-3])
    if torch is not None and isinstance(packed, torch.Tensor):
        mosaic = torch.full(lead + (height, width), fill, dtype=packed.dtype, device=packed.device)
    else:
        mosaic = np.full(lead + (height, width), fill, dtype=packed.dtype)
    for channel, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        mosaic[..., oy + dy:oy + 2 * h:2, ox + dx:ox + 2 * w:2] = packed[..., channel, :, :]
    return mosaic


def per_channel(value: Union[float, Sequence[float]], name: str) -> np.ndarray:
    """Broadcast a scalar or 4 per-channel values (canonical order) to shape (4, 1, 1) float32."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 4)
    if arr.size != 4:
        raise ValueError(f'{name} must be a scalar or 4 values (R, G1, G2, B), got {value!r}')
    return arr.reshape(4, 1, 1)


def normalize_levels(packed: np.ndarray, black: Union[float, Sequence[float]], white: Union[float, Sequence[float]],
                     keep_negative: bool = False, clip_high: bool = True) -> np.ndarray:
    """(x - black) / (white - black) per channel, as float32.

    ``keep_negative`` keeps values below black (useful in low light, where clipping at 0 biases the mean);
    otherwise they are clipped to 0. ``clip_high`` clips above 1.
    """
    black_arr, white_arr = per_channel(black, 'black'), per_channel(white, 'white')
    if np.any(white_arr <= black_arr):
        raise ValueError(f'white level {white!r} must exceed black level {black!r}')
    out = np.array(packed, dtype=np.float32, copy=True)  # one array, the rest in place (large mosaics)
    out -= black_arr.astype(np.float32)
    out /= (white_arr - black_arr).astype(np.float32)
    low = None if keep_negative else 0.0
    high = 1.0 if clip_high else None
    if low is not None or high is not None:
        np.clip(out, low, high, out=out)
    return out


def denormalize_levels(normalized: np.ndarray, black, white, dtype=np.uint16) -> np.ndarray:
    """Back to integer DN: round(x * (white - black) + black), clipped to the dtype's range.

    Computed in float32, in place on one temporary (a 64 MP mosaic needs 256 MB, not 1 GB of float64
    temporaries); float32 holds every integer DN below 2**24 exactly.
    """
    black_arr = per_channel(black, 'black').astype(np.float32)
    scale = (per_channel(white, 'white') - per_channel(black, 'black')).astype(np.float32)
    values = np.multiply(np.asarray(normalized, dtype=np.float32), scale)
    values += black_arr
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        np.rint(values, out=values)
        np.clip(values, info.min, info.max, out=values)
    return values.astype(dtype)


# ----------------------------------------------------------------------------------------------------------
# Geometry on packed data (canonical order) that means the same as on the mosaic.
#
# Flipping a mosaic changes its pattern (RGGB -> GRBG for a left-right flip); re-packing it in canonical
# order then pairs every red pixel with the green pixel that is now on its right, i.e. the one that was on its
# left. So a flip is *not* a flip of the four planes: the planes of the quad's second column (G1, B) must move
# by one quad against the first column (R, G2), and one quad column is lost. Likewise for up-down flips with the
# quad's second row (G2, B). A transpose keeps quads whole but swaps G1 and G2 (red rows become red columns).
# Rotations are compositions. Each function below equals: op on the mosaic, then pack with the new pattern
# (tested in tests/test_raw_bayer.py for every pattern, including odd sizes).
# ----------------------------------------------------------------------------------------------------------

def _swap_greens(packed: ArrayLike) -> ArrayLike:
    return packed[..., [0, 2, 1, 3], :, :]


def _flip(array: ArrayLike, axis: int) -> ArrayLike:
    if torch is not None and isinstance(array, torch.Tensor):
        return torch.flip(array, dims=(axis,))
    return np.flip(array, axis=axis)


def _stack(planes, like: ArrayLike) -> ArrayLike:
    if torch is not None and isinstance(like, torch.Tensor):
        return torch.stack(planes, dim=-3)
    return np.stack(planes, axis=-3)


def packed_crop(packed: ArrayLike, top: int, left: int, height: int, width: int) -> ArrayLike:
    """Crop in packed pixels; equals cropping the mosaic at (oy + 2*top, ox + 2*left), size 2h x 2w."""
    if top < 0 or left < 0 or top + height > packed.shape[-2] or left + width > packed.shape[-1]:
        raise ValueError(f'crop ({top}, {left}, {height}, {width}) outside packed shape {tuple(packed.shape)}')
    return packed[..., top:top + height, left:left + width]


def packed_hflip(packed: ArrayLike) -> ArrayLike:
    """Left-right mosaic flip, re-packed: (..., 4, h, w) -> (..., 4, h, w - 1)."""
    flipped = _flip(packed, -1)
    width = packed.shape[-1]
    first_col = [flipped[..., c, :, :width - 1] for c in (0, 2)]   # R, G2
    second_col = [flipped[..., c, :, 1:] for c in (1, 3)]          # G1, B
    return _stack([first_col[0], second_col[0], first_col[1], second_col[1]], packed)


def packed_vflip(packed: ArrayLike) -> ArrayLike:
    """Up-down mosaic flip, re-packed: (..., 4, h, w) -> (..., 4, h - 1, w)."""
    flipped = _flip(packed, -2)
    height = packed.shape[-2]
    first_row = [flipped[..., c, :height - 1, :] for c in (0, 1)]  # R, G1
    second_row = [flipped[..., c, 1:, :] for c in (2, 3)]          # G2, B
    return _stack(first_row + second_row, packed)


def packed_transpose(packed: ArrayLike) -> ArrayLike:
    """Mosaic transpose, re-packed: swap H and W and swap G1/G2 (no pixel lost)."""
    swapped = _swap_greens(packed)
    if torch is not None and isinstance(packed, torch.Tensor):
        return swapped.transpose(-1, -2)
    return np.swapaxes(swapped, -1, -2)


def packed_rot90(packed: ArrayLike, k: int = 1) -> ArrayLike:
    """Mosaic rotation by k*90 degrees counter-clockwise (``np.rot90`` convention), re-packed."""
    k %= 4
    if k == 0:
        return packed
    if k == 1:
        return packed_transpose(packed_hflip(packed))
    if k == 2:
        return packed_vflip(packed_hflip(packed))
    return packed_hflip(packed_transpose(packed))


def augment_packed(arrays, hflip: bool = False, vflip: bool = False, transpose: bool = False):
    """Apply the same mosaic-equivalent flips/transpose to every packed array in ``arrays`` (a list).

    The three flags reach all 8 symmetries of the square, as BasicSR's ``augment`` does. Each flip costs one
    quad row/column (see above): crop one packed pixel more than needed, augment, then crop to size
    (``augment_and_crop``). Returns contiguous copies.
    """
    out = []
    for arr in arrays:
        if hflip:
            arr = packed_hflip(arr)
        if vflip:
            arr = packed_vflip(arr)
        if transpose:
            arr = packed_transpose(arr)
        if torch is not None and isinstance(arr, torch.Tensor):
            out.append(arr.contiguous())
        else:
            out.append(np.ascontiguousarray(arr))
    return out


def augment_and_crop(arrays, size_hw: Tuple[int, int], hflip: bool = False, vflip: bool = False,
                     transpose: bool = False):
    """``augment_packed`` then keep the top-left ``size_hw`` (packed pixels) of each result.

    Inputs must be at least one packed pixel larger than ``size_hw`` along every flipped axis (before the
    transpose); a flip along an axis without that spare pixel raises ``ValueError``.
    """
    height, width = size_hw
    if transpose:
        height, width = width, height  # size needed before the transpose
    for arr in arrays:
        if hflip and arr.shape[-1] < width + 1 or vflip and arr.shape[-2] < height + 1:
            raise ValueError(f'a Bayer-safe flip needs one spare packed pixel: got {tuple(arr.shape)} for '
                             f'output {tuple(size_hw)}')
    out = augment_packed(arrays, hflip, vflip, transpose)
    return [np.ascontiguousarray(a[..., :size_hw[0], :size_hw[1]]) if isinstance(a, np.ndarray)
            else a[..., :size_hw[0], :size_hw[1]].contiguous() for a in out]


def pattern_after(pattern: str, op: str, shape: Tuple[int, int] = None, k: int = 1) -> str:
    """The CFA pattern read at the mosaic origin after a mosaic op ('hflip', 'vflip', 'transpose', 'rot90').

    ``shape`` (H, W) of the mosaic matters for flips/rotations of odd-sized mosaics.
    """
    grid = np.array(list(normalize_pattern(pattern))).reshape(2, 2)
    height, width = shape if shape is not None else (2, 2)
    tile = np.tile(grid, ((height + 1) // 2 + 1, (width + 1) // 2 + 1))[:height, :width]
    moved = mosaic_op(tile, op, k)
    return ''.join(moved[:2, :2].reshape(-1))


def mosaic_op(mosaic: np.ndarray, op: str, k: int = 1) -> np.ndarray:
    """Reference operation in the mosaic domain (used by tests and ``pattern_after``)."""
    if op == 'hflip':
        return np.flip(mosaic, -1)
    if op == 'vflip':
        return np.flip(mosaic, -2)
    if op == 'transpose':
        return np.swapaxes(mosaic, -1, -2)
    if op == 'rot90':
        return np.rot90(mosaic, k, axes=(-2, -1))
    raise ValueError(f'unknown mosaic op {op!r}')
