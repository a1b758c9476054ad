"""Inverse camera pipeline: sRGB photo -> plausible linear RAW mosaic.

After the idea of Brooks et al., "Unprocessing Images for Learned Raw Denoising", CVPR 2019: undo each
step of a simple camera pipeline in reverse order:

    sRGB (8 bit) -> inverse gamma -> inverse global tone curve -> inverse colour matrix (linear sRGB -> camera
    RGB) -> inverse white balance (divide by the WB gains) -> Bayer mosaic -> scale to [black, white] DN.

``preview.py`` runs the forward steps, so ``preview(unprocess(x)) ~ x``. Plain NumPy, no BasicSR import.
"""
from dataclasses import dataclass
from typing import Dict, Sequence

import numpy as np

from basicsr_adl.raw.bayer import normalize_pattern, pack

# Linear sRGB -> XYZ (D65), the standard sRGB definition.
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function (piecewise, IEC 61966-2-1)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Forward sRGB transfer function."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def tone_curve(x: np.ndarray) -> np.ndarray:
    """Global S-shaped tone curve 3x^2 - 2x^3 (smoothstep) a simple camera applies after gamma."""
    x = np.clip(x, 0.0, 1.0)
    return 3 * x ** 2 - 2 * x ** 3


def inverse_tone_curve(y: np.ndarray) -> np.ndarray:
    """Closed-form inverse of the smoothstep on [0, 1]: x = 1/2 - sin(asin(1 - 2y) / 3)."""
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def camera_to_srgb_matrix(xyz_to_camera: np.ndarray) -> np.ndarray:
    """3x3 matrix taking white-balanced camera RGB to linear sRGB from a camera's XYZ->camera matrix.

    Rows of sRGB->camera are normalised to sum to 1 so that white stays white after white balance
    (the convention dcraw/LibRaw use for ``rgb_xyz_matrix``).
    """
    xyz_to_camera = np.asarray(xyz_to_camera, dtype=np.float64)[:3, :3]
    if not np.any(xyz_to_camera):
        return np.eye(3)
    srgb_to_camera = xyz_to_camera @ SRGB_TO_XYZ
    srgb_to_camera = srgb_to_camera / srgb_to_camera.sum(axis=1, keepdims=True)
    return np.linalg.inv(srgb_to_camera)


@dataclass
class UnprocessParams:
    """Camera settings used to unprocess one image (stored with it as metadata)."""
    camera_to_srgb: np.ndarray      # 3x3
    wb_gains: np.ndarray            # (R, G, B) multipliers the camera would apply
    black: int
    white: int
    pattern: str = 'RGGB'

    def as_meta(self) -> Dict:
        r, g, b = (float(v) for v in self.wb_gains)
        return {'pattern': self.pattern, 'black': int(self.black), 'white': int(self.white),
                'wb': [r, g, g, b], 'ccm': np.asarray(self.camera_to_srgb).round(6).tolist()}


def unprocess_to_linear_camera(srgb: np.ndarray, params: UnprocessParams) -> np.ndarray:
    """HxWx3 sRGB in [0,1] (or uint8) -> HxWx3 linear camera RGB before white balance, in [0,1]."""
    img = np.asarray(srgb)
    if img.dtype == np.uint8:
        img = img.astype(np.float64) / 255.0
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'unprocess expects an HxWx3 RGB image, got shape {img.shape}')
    linear = srgb_to_linear(inverse_tone_curve(img))
    camera = linear @ np.linalg.inv(params.camera_to_srgb).T
    camera = camera / np.asarray(params.wb_gains, dtype=np.float64)[None, None, :]
    return np.clip(camera, 0.0, 1.0)


def mosaic_rgb(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an HxWx3 image into an HxW Bayer mosaic laid out in ``pattern``."""
    pattern = normalize_pattern(pattern)
    index = {'R': 0, 'G': 1, 'B': 2}
    height, width = rgb.shape[:2]
    mosaic = np.empty((height, width), dtype=rgb.dtype)
    for pos, letter in enumerate(pattern):
        dy, dx = divmod(pos, 2)
        mosaic[dy::2, dx::2] = rgb[dy::2, dx::2, index[letter]]
    return mosaic


def unprocess(srgb: np.ndarray, params: UnprocessParams, packed: bool = True) -> np.ndarray:
    """sRGB image -> uint16 RAW: packed (4, H/2, W/2) canonical by default, else the HxW mosaic."""
    camera = unprocess_to_linear_camera(srgb, params)
    height, width = camera.shape[:2]
    camera = camera[:height - height % 2, :width - width % 2]
    mosaic = mosaic_rgb(camera, params.pattern)
    dn = np.rint(mosaic * (params.white - params.black) + params.black)
    dn = np.clip(dn, 0, params.white).astype(np.uint16)
    return pack(dn, params.pattern) if packed else dn


def random_unprocess_params(rng: np.random.Generator, xyz_to_camera: np.ndarray, black: int, white: int,
                            red_gain: Sequence[float] = (1.9, 2.4), blue_gain: Sequence[float] = (1.5, 1.9),
                            pattern: str = 'RGGB') -> UnprocessParams:
    """Random daylight-like white balance for one image of a given camera."""
    gains = np.array([rng.uniform(*red_gain), 1.0, rng.uniform(*blue_gain)])
    return UnprocessParams(camera_to_srgb=camera_to_srgb_matrix(xyz_to_camera), wb_gains=gains, black=black,
                           white=white, pattern=pattern)
