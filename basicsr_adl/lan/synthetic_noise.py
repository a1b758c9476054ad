"""Synthetic camera-like sRGB noise for pretraining denoisers that LAN later adapts (NumPy + OpenCV, no BasicSR).

``add_synthetic_noise`` turns a clean HxWx3 float image in [0, 1] into a noisy one with a level drawn per call:

* Poisson-Gaussian: variance ``a * x + b**2`` per pixel (``a`` = shot-noise gain, ``b`` = read-noise sigma),
  both drawn log-uniformly from their ranges (8-bit units for ``b``: ``sigma_range: [0.5, 12]`` means
  0.5/255 .. 12/255), so mild levels are drawn as often as heavy ones (a real-noise net trained only on SIDD's
  heavy noise over-smooths mild noise);
* optional mild spatial correlation (probability ``correlation_prob``): the noise field is blurred with a
  Gaussian of sigma drawn from ``correlation_sigma_range`` and rescaled to its former standard deviation, as
  demosaicing does;
* optional mild JPEG (probability ``jpeg_prob``, quality from ``jpeg_quality_range``) after 8-bit quantisation.

Randomness comes from NumPy's global RNG (``np.random``), which BasicSR seeds per rank (``manual_seed``), so
training runs repeat. ``NoiseConfig.from_options`` checks a dataset's ``noise:`` options and names bad keys.
"""
from dataclasses import dataclass, fields
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np


class NoiseOptionError(ValueError):
    """A ``noise`` option that is unknown or out of range (named in the message)."""


@dataclass(frozen=True)
class NoiseConfig:
    """Ranges the per-call noise parameters are drawn from (see the module docstring)."""
    sigma_range: Tuple[float, float] = (0.5, 12.0)        # read-noise sigma, 8-bit levels
    shot_range: Tuple[float, float] = (1e-5, 5e-3)        # shot-noise gain a (variance a * x, x in [0, 1])
    shot_prob: float = 0.7                                 # probability of adding shot noise at all
    correlation_prob: float = 0.5
    correlation_sigma_range: Tuple[float, float] = (0.4, 1.0)
    jpeg_prob: float = 0.3
    jpeg_quality_range: Tuple[int, int] = (75, 95)
    quantize: bool = True                                  # round to 8 bits (as an sRGB file would)

    def __post_init__(self) -> None:
        for name in ('sigma_range', 'shot_range', 'correlation_sigma_range', 'jpeg_quality_range'):
            value = getattr(self, name)
            if (not isinstance(value, (tuple, list)) or len(value) != 2
                    or not all(isinstance(v, (int, float)) for v in value) or value[0] > value[1]):
                raise NoiseOptionError(f"noise option '{name}' must be [low, high] with low <= high, got {value!r}")
        for name in ('sigma_range', 'shot_range', 'correlation_sigma_range'):
            if getattr(self, name)[0] < 0:
                raise NoiseOptionError(f"noise option '{name}' must not be negative, got {getattr(self, name)!r}")
        q = self.jpeg_quality_range
        if not (1 <= q[0] <= q[1] <= 100):
            raise NoiseOptionError(f"noise option 'jpeg_quality_range' must lie in 1..100, got {q!r}")
        for name in ('shot_prob', 'correlation_prob', 'jpeg_prob'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise NoiseOptionError(f"noise option '{name}' must be a probability in [0, 1], got {value!r}")

    @classmethod
    def from_options(cls, opt: Optional[Dict[str, Any]], where: str = 'noise') -> 'NoiseConfig':
        """Build from a YAML mapping; unknown keys raise ``NoiseOptionError`` naming ``where.<key>``."""
        opt = dict(opt or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(opt) - known)
        if unknown:
            raise NoiseOptionError(f"unknown option(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                                   f"known: {', '.join(sorted(known))}")
        for key, value in opt.items():
            if isinstance(value, list):
                opt[key] = tuple(value)
        try:
            return cls(**opt)
        except NoiseOptionError as err:
            raise NoiseOptionError(f'{where}: {err}') from None


def _log_uniform(low: float, high: float) -> float:
    if high <= 0:
        return 0.0
    if low <= 0:  # a zero lower bound: draw uniformly instead (log-uniform needs low > 0)
        return float(np.random.uniform(low, high))
    return float(np.exp(np.random.uniform(np.log(low), np.log(high))))


def add_synthetic_noise(clean: np.ndarray, config: NoiseConfig = NoiseConfig()) -> Tuple[np.ndarray, Dict[str, float]]:
    """(noisy HxWxC float32 in [0, 1], the drawn parameters) for a clean HxWxC float image in [0, 1]."""
    if clean.ndim != 3:
        raise ValueError(f'add_synthetic_noise: expected an HxWxC image, got shape {clean.shape}')
    clean = clean.astype(np.float32)
    sigma = _log_uniform(*config.sigma_range) / 255.0
    shot = _log_uniform(*config.shot_range) if np.random.uniform() < config.shot_prob else 0.0
    std = np.sqrt(shot * np.clip(clean, 0, 1) + sigma ** 2).astype(np.float32)
    noise = np.random.standard_normal(clean.shape).astype(np.float32)
    blur = 0.0
    if np.random.uniform() < config.correlation_prob:
        blur = float(np.random.uniform(*config.correlation_sigma_range))
        if blur > 0:
            smoothed = cv2.GaussianBlur(noise, (0, 0), blur, borderType=cv2.BORDER_REFLECT)
            noise = smoothed.reshape(clean.shape) / max(float(smoothed.std()), 1e-8)
    noisy = np.clip(clean + std * noise, 0, 1)
    quality = 0
    if config.quantize:  # (the JPEG branch below quantises by itself)
        noisy = np.round(noisy * 255.0) / 255.0
    if np.random.uniform() < config.jpeg_prob and clean.shape[2] in (1, 3):
        quality = int(np.random.randint(config.jpeg_quality_range[0], config.jpeg_quality_range[1] + 1))
        bgr = (noisy[..., ::-1] * 255.0).round().astype(np.uint8)
        ok, buf = cv2.imencode('.jpg', np.ascontiguousarray(bgr), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
        if not ok:
            raise RuntimeError('add_synthetic_noise: JPEG encoding failed')
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        noisy = decoded.reshape(clean.shape[:2] + (-1,))[..., ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(noisy, dtype=np.float32), {'sigma': sigma * 255.0, 'shot': shot,
                                                         'correlation': blur, 'jpeg_quality': quality}
