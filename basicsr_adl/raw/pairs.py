"""Turning stored RAW (uint16 + metadata) into training samples: crop, exposure ratio, normalise, augment.

Shared by the BasicSR datasets (``basicsr_adl/data/raw_*``) so they stay thin. Plain NumPy.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from basicsr_adl.raw.bayer import augment_and_crop, normalize_levels

SID_RATIO_CAP = 300.0


def center_crop_origin(shape_hw: Tuple[int, int], size: int) -> Tuple[int, int]:
    height, width = shape_hw
    size_h, size_w = min(size, height), min(size, width)
    return (height - size_h) // 2, (width - size_w) // 2


def random_augment_flags(rng: np.random.Generator, use_hflip: bool, use_rot: bool) -> Tuple[bool, bool, bool]:
    """(hflip, vflip, transpose) drawn like BasicSR's ``augment``: all 8 symmetries of the square."""
    hflip = bool(use_hflip and rng.random() < 0.5)
    vflip = bool(use_rot and rng.random() < 0.5)
    transpose = bool(use_rot and rng.random() < 0.5)
    return hflip, vflip, transpose


def exposure_ratio(lq_meta: Dict[str, Any], gt_meta: Dict[str, Any], cap: float = SID_RATIO_CAP) -> float:
    """SID rule: GT exposure / input exposure, capped (300 in SID); 1 when either exposure is unknown."""
    if 'ratio' in lq_meta and lq_meta['ratio']:
        return float(min(float(lq_meta['ratio']), cap))
    lq_exp, gt_exp = lq_meta.get('exposure'), gt_meta.get('exposure')
    if not lq_exp or not gt_exp:
        return 1.0
    return float(min(float(gt_exp) / float(lq_exp), cap))


def normalize_from_meta(array: np.ndarray, meta: Dict[str, Any], keep_negative: bool = False,
                        clip_high: bool = True) -> np.ndarray:
    """(x - black) / (white - black) with the levels stored in the metadata (float data: 0 and 1)."""
    if np.issubdtype(array.dtype, np.floating) and 'black' not in meta:
        black, white = 0.0, 1.0
    else:
        black, white = meta.get('black', 0), meta.get('white')
        if white is None:
            white = float(np.iinfo(array.dtype).max) if np.issubdtype(array.dtype, np.integer) else 1.0
    return normalize_levels(array, black, white, keep_negative=keep_negative, clip_high=clip_high)


def resolve_sensor_index(meta_list: Sequence[Dict[str, Any]], sensors: List[str], key: str,
                         override: Optional[str] = None) -> int:
    """Index of the capture's sensor in ``sensors`` (override, else first metadata that names one)."""
    name = override
    for meta in meta_list:
        if name is None and meta.get('sensor') is not None:
            name = meta['sensor']
    if name is None:
        raise ValueError(f'{key}: no "sensor" in its metadata; set the dataset option "sensor"')
    if name not in sensors:
        raise ValueError(f'{key}: sensor {name!r} is not in the dataset\'s sensor list {sensors} (option "sensors")')
    return sensors.index(name)


def resolve_iso(meta_list: Sequence[Dict[str, Any]], key: str, default: Optional[float] = None) -> float:
    """ISO from the first metadata that has it, else ``default``; raise naming the key otherwise."""
    for meta in meta_list:
        if meta.get('iso') is not None:
            return float(meta['iso'])
    if default is not None:
        return float(default)
    raise ValueError(f'{key}: no "iso" in its metadata; set the dataset option "default_iso" or convert with --iso')


def plan_train_crop(shape_hw: Tuple[int, int], size: int, rng: np.random.Generator, use_hflip: bool, use_rot: bool,
                    key: str = '') -> Tuple[Tuple[int, int, int, int], Tuple[bool, bool, bool]]:
    """Random crop window and augmentation flags for one training sample.

    A Bayer-safe flip loses one quad row/column (``bayer.packed_hflip``), so the window is one packed pixel
    larger along each flipped axis; when the image has no spare pixel on that axis, that flip is skipped.
    Returns ((top, left, height, width), (hflip, vflip, transpose)).
    """
    hflip, vflip, transpose = random_augment_flags(rng, use_hflip, use_rot)
    height, width = shape_hw
    if height < size or width < size:
        raise ValueError(f'{key}: packed image {height}x{width} is smaller than gt_size {size} (packed pixels)')
    hflip = hflip and width > size
    vflip = vflip and height > size
    need_h, need_w = size + int(vflip), size + int(hflip)
    top, left = int(rng.integers(0, height - need_h + 1)), int(rng.integers(0, width - need_w + 1))
    return (top, left, need_h, need_w), (hflip, vflip, transpose)


def augment_pair(arrays: List[np.ndarray], flags: Tuple[bool, bool, bool], size: int) -> List[np.ndarray]:
    """Apply the planned flips to every array and crop to ``size`` x ``size``."""
    hflip, vflip, transpose = flags
    return augment_and_crop(arrays, (size, size), hflip=hflip, vflip=vflip, transpose=transpose)


def choose_window(opt: Dict[str, Any], phase: str, shape_hw: Tuple[int, int], rng: np.random.Generator,
                  key: str = '') -> Tuple[Tuple[int, int, int, int], Optional[Tuple[bool, bool, bool]], Optional[int]]:
    """Window to read for one sample, augmentation flags (train only) and the final size.

    train + ``gt_size``: random crop (+1 spare pixel per flipped axis); other phases: ``center_crop`` or the
    whole image. Returns ((top, left, h, w), flags or None, final size or None).
    """
    if phase == 'train' and opt.get('gt_size'):
        size = int(opt['gt_size'])
        window, flags = plan_train_crop(shape_hw, size, rng, bool(opt.get('use_hflip', False)),
                                        bool(opt.get('use_rot', False)), key)
        return window, flags, size
    if opt.get('center_crop'):
        size = int(opt['center_crop'])
        top, left = center_crop_origin(shape_hw, size)
        return (top, left, min(size, shape_hw[0]), min(size, shape_hw[1])), None, None
    return (0, 0, shape_hw[0], shape_hw[1]), None, None
