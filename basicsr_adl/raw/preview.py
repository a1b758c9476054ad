"""Packed RAW -> sRGB preview, so RAW inputs/outputs can be looked at.

Forward of ``unprocess.py``: white balance -> simple demosaic -> colour matrix (camera RGB -> linear sRGB)
-> sRGB gamma -> optional tone curve. The demosaic is deliberately simple (each packed quad gives one RGB
pixel, G = mean(G1, G2), then 2x bilinear upsampling): good enough to inspect, not for metrics.
Plain NumPy, no BasicSR import.
"""
from typing import Optional, Sequence

import numpy as np

from basicsr_adl.raw.unprocess import linear_to_srgb, tone_curve


def _bilinear_upsample2(img: np.ndarray) -> np.ndarray:
    """HxWxC -> 2Hx2WxC with half-pixel-centred bilinear interpolation (edge-clamped)."""
    height, width = img.shape[:2]

    def coords(n):
        pos = (np.arange(2 * n) + 0.5) / 2 - 0.5
        lo = np.clip(np.floor(pos).astype(int), 0, n - 1)
        hi = np.clip(lo + 1, 0, n - 1)
        frac = np.clip(pos - np.floor(pos), 0, 1)
        frac = np.where(pos < 0, 0.0, frac)
        return lo, hi, frac

    y0, y1, fy = coords(height)
    x0, x1, fx = coords(width)
    rows = img[y0] * (1 - fy)[:, None, None] + img[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def packed_to_srgb(packed: np.ndarray, wb: Optional[Sequence[float]] = None, ccm: Optional[np.ndarray] = None,
                   apply_tone_curve: bool = True, full_resolution: bool = True, exposure: float = 1.0) -> np.ndarray:
    """Normalised packed (4, h, w) in [0, 1] -> sRGB float HxWx3 in [0, 1].

    ``wb``: 3 (R, G, B) or 4 (R, G1, G2, B) gains; ``ccm``: 3x3 camera RGB -> linear sRGB (both as in the
    RAW LMDB metadata). ``full_resolution`` doubles h and w to the mosaic size.
    """
    packed = np.asarray(packed, dtype=np.float64)
    if hasattr(packed, 'ndim') and packed.ndim == 4:
        packed = packed[0]
    if packed.ndim != 3 or packed.shape[0] != 4:
        raise ValueError(f'packed_to_srgb expects (4, h, w), got {packed.shape}')
    rgb = np.stack([packed[0], (packed[1] + packed[2]) / 2, packed[3]], axis=-1) * exposure
    if wb is not None:
        gains = np.asarray(wb, dtype=np.float64).reshape(-1)
        gains = gains[[0, 1, 3]] if gains.size == 4 else gains
        rgb = rgb * (gains / gains[1])[None, None, :]
    rgb = np.clip(rgb, 0, 1)
    if ccm is not None:
        rgb = np.clip(rgb @ np.asarray(ccm, dtype=np.float64).T, 0, 1)
    if full_resolution:
        rgb = _bilinear_upsample2(rgb)
    out = linear_to_srgb(rgb)
    if apply_tone_curve:
        out = tone_curve(out)
    return np.clip(out, 0, 1).astype(np.float32)


def save_preview(path: str, packed: np.ndarray, **kwargs) -> str:
    """Write an 8-bit PNG preview of a normalised packed image."""
    import cv2  # local: keeps the module importable without OpenCV
    rgb = packed_to_srgb(packed, **kwargs)
    bgr = (np.round(rgb * 255)).astype(np.uint8)[..., ::-1]
    if not cv2.imwrite(path, bgr):
        raise OSError(f'could not write preview {path}')
    return path
