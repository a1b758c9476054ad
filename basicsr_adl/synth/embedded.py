"""Embedded deblurring and dehazing data for ADL beyond denoising, made in seconds from scikit-image photos.

Each task gets synthetic **source** domains and a small **target** whose degradation differs from every
source, standing in for the paper's real target (GoPro for blur, I-HAZE for haze):

* deblur sources: uniform camera-shake kernels applied in sRGB, one domain per kernel size (the paper uses
  21/31/41 px on full frames; the 96-px tiles here use 9/13/17 by default). Target ("GoPro-like"): GoPro's
  blur is an average of consecutive sharp frames of a moving camera, so the target averages frames along a
  smooth path of shifts *and rotations* (spatially varying blur) in *linear* light, then re-applies gamma.
* dehaze sources: RESIDE-like scattering haze with a depth proxy, one domain per density range. Target
  ("I-HAZE-like", real haze from a haze machine indoors): nearly flat depth, a tinted, spatially varying
  airlight and a slight veil blur.

Scenes never cross splits: source, target-train and target-test tiles come from different photos. Written
in the layouts the real datasets use (GoPro ``<seq>/{blur,sharp}``, RESIDE ``hazy/``+``clear/``, I-HAZE
``*_hazy``/``*_GT``), so the same options work on the real data by changing paths.
"""
import json
import math
import os
import shutil
from typing import Dict, List, Sequence

import cv2
import numpy as np
import torch

from basicsr_adl.synth.blur import apply_blur, random_motion_kernel
from basicsr_adl.synth.haze import add_haze, depth_proxy

SOURCE_PHOTOS = ('astronaut', 'camera', 'brick', 'grass', 'gravel', 'moon', 'clock', 'coins', 'hubble_deep_field',
                 'immunohistochemistry')
TARGET_TRAIN_PHOTOS = ('coffee', 'chelsea')
TARGET_TEST_PHOTOS = ('rocket', 'stereo_motorcycle')
GAMMA = 2.2


def load_rgb_photo(name: str) -> np.ndarray:
    """float32 HxWx3 RGB in [0, 1] from ``skimage.data`` (grey photos are replicated to 3 channels)."""
    import skimage.data
    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):
        img = img[0]
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.float32)
    return img / (255.0 if img.max() > 1.5 else 1.0)


def tiles(photos: Sequence[str], count: int, size: int, rng: np.random.Generator) -> List[np.ndarray]:
    """``count`` random ``size``-px crops (random 0.5-1x rescale) spread over ``photos``."""
    images = [load_rgb_photo(p) for p in photos]
    out = []
    for i in range(count):
        img = images[i % len(images)]
        h, w = img.shape[:2]
        scale = rng.uniform(max(size / min(h, w), 0.5), 1.0)
        resized = cv2.resize(img, (max(size, round(w * scale)), max(size, round(h * scale))),
                             interpolation=cv2.INTER_AREA)
        y = rng.integers(0, resized.shape[0] - size + 1)
        x = rng.integers(0, resized.shape[1] - size + 1)
        out.append(np.ascontiguousarray(resized[y:y + size, x:x + size]))
    return out


def gopro_like_blur(sharp: np.ndarray, rng: np.random.Generator, frames: int = 9, reach: float = 5.0) -> np.ndarray:
    """Average of ``frames`` warped copies (smooth shift + rotation path) in linear light, then gamma."""
    h, w = sharp.shape[:2]
    linear = np.power(np.clip(sharp, 0, 1), GAMMA)
    direction = rng.uniform(0, 2 * math.pi)
    bend = rng.uniform(-1, 1)
    spin = rng.uniform(-3, 3)  # degrees over the exposure
    acc = np.zeros_like(linear)
    for t in np.linspace(-0.5, 0.5, frames):
        dx = reach * (t * math.cos(direction) + bend * t * t * math.sin(direction))
        dy = reach * (t * math.sin(direction) - bend * t * t * math.cos(direction))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), spin * t, 1.0)
        m[:, 2] += (dx, dy)
        acc += cv2.warpAffine(linear, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    blurred = np.power(acc / frames, 1 / GAMMA)
    return np.clip(blurred + rng.normal(0, 0.005, blurred.shape), 0, 1).astype(np.float32)


def ihaze_like_haze(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Thick, tinted, spatially varying indoor haze over a nearly flat depth, with a slight veil blur."""
    h, w = clean.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    density = rng.uniform(0.6, 1.1) * (0.8 + 0.2 * np.sin(2 * math.pi * (xx * rng.uniform(0.5, 1.5) + yy)))
    transmission = np.exp(-density)[..., None]
    tint = np.array([rng.uniform(0.85, 0.95), rng.uniform(0.88, 0.98), rng.uniform(0.9, 1.0)], np.float32)
    hazy = clean * transmission + tint * (1 - transmission)
    return np.clip(cv2.GaussianBlur(hazy, (0, 0), 0.8), 0, 1).astype(np.float32)


def _write(path: str, rgb: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(path, cv2.cvtColor((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))


def _as_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def _as_image(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy().transpose(1, 2, 0))


def build_embedded_restoration(out_dir: str, task: str, tile: int = 96, source_pairs: int = 48,
                               target_train: int = 8, target_test: int = 6, seed: int = 0,
                               kernel_sizes: Sequence[int] = (9, 13, 17),
                               haze_betas: Sequence[Sequence[float]] = ((0.4, 0.8), (0.8, 1.4), (1.4, 2.2))) -> Dict:
    """Write ``<out_dir>/<task>/`` (task: deblur | dehaze) atomically and return its manifest."""
    if task not in ('deblur', 'dehaze'):
        raise ValueError(f"task must be 'deblur' or 'dehaze', got {task!r}")
    rng = np.random.default_rng(seed)
    final = os.path.join(out_dir, task)
    tmp = final + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    domains: Dict[str, Dict] = {}
    try:
        if task == 'deblur':
            for k in kernel_sizes:
                name = f'blur_k{k}'
                for i, sharp in enumerate(tiles(SOURCE_PHOTOS, source_pairs, tile, rng)):
                    kernel = random_motion_kernel(int(k), rng)
                    blurred = _as_image(apply_blur(_as_tensor(sharp), kernel, 0.005,
                                                   torch.Generator().manual_seed(int(rng.integers(2**31)))))
                    _write(os.path.join(tmp, 'sources', name, 'lq', f'{i:04d}.png'), blurred)
                    _write(os.path.join(tmp, 'sources', name, 'gt', f'{i:04d}.png'), sharp)
                domains[name] = {'role': 'source', 'layout': 'folder', 'dataroot': f'sources/{name}',
                                 'kernel_size': int(k)}
            for split, photos, count in (('train', TARGET_TRAIN_PHOTOS, target_train),
                                         ('test', TARGET_TEST_PHOTOS, target_test)):
                for i, sharp in enumerate(tiles(photos, count, tile, rng)):
                    seq = f'GOPR{i % 2:04d}'
                    _write(os.path.join(tmp, 'target', split, seq, 'sharp', f'{i:06d}.png'), sharp)
                    _write(os.path.join(tmp, 'target', split, seq, 'blur', f'{i:06d}.png'), gopro_like_blur(sharp, rng))
                domains[f'target_{split}'] = {'role': 'target', 'layout': 'gopro', 'dataroot': f'target/{split}'}
        else:
            for lo_hi in haze_betas:
                name = f'haze_b{lo_hi[0]:g}-{lo_hi[1]:g}'
                for i, clear in enumerate(tiles(SOURCE_PHOTOS, source_pairs, tile, rng)):
                    t = _as_tensor(clear)
                    hazy = add_haze(t, float(rng.uniform(*lo_hi)), float(rng.uniform(0.7, 1.0)), depth_proxy(t))
                    _write(os.path.join(tmp, 'sources', name, 'hazy', f'{i:04d}_{lo_hi[0]:g}.png'), _as_image(hazy))
                    _write(os.path.join(tmp, 'sources', name, 'clear', f'{i:04d}.png'), clear)
                domains[name] = {'role': 'source', 'layout': 'reside', 'dataroot': f'sources/{name}',
                                 'beta_range': list(lo_hi)}
            for split, photos, count in (('train', TARGET_TRAIN_PHOTOS, target_train),
                                         ('test', TARGET_TEST_PHOTOS, target_test)):
                for i, clear in enumerate(tiles(photos, count, tile, rng)):
                    _write(os.path.join(tmp, 'target', split, 'hazy', f'{i:02d}_indoor_hazy.png'),
                           ihaze_like_haze(clear, rng))
                    _write(os.path.join(tmp, 'target', split, 'GT', f'{i:02d}_indoor_GT.png'), clear)
                domains[f'target_{split}'] = {'role': 'target', 'layout': 'ihaze', 'dataroot': f'target/{split}'}
        manifest = {'format': 'basicsr_adl.embedded_restoration', 'version': 1, 'task': task, 'tile': tile,
                    'seed': seed, 'domains': domains,
                    'photos': {'sources': list(SOURCE_PHOTOS), 'target_train': list(TARGET_TRAIN_PHOTOS),
                               'target_test': list(TARGET_TEST_PHOTOS), 'package': 'scikit-image (skimage.data)'}}
        with open(os.path.join(tmp, 'manifest.json'), 'w') as f:
            json.dump(manifest, f, indent=2)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
