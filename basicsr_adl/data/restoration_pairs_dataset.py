"""sRGB restoration pairs for ADL beyond denoising: known folder layouts and on-the-fly synthetic sources.

* ``LayoutPairedDataset`` reads GoPro, RESIDE, I-HAZE/O-HAZE or lq/gt folders directly (``layout`` option).
* ``SyntheticDegradationDataset`` turns clean images into a source domain on the fly: camera-shake blur
  (``degradation: blur``, kernel sizes per domain) or haze (``degradation: haze``, beta/airlight ranges).

Both return BasicSR's keys (``lq``, ``gt``, ``lq_path``, ``gt_path``), RGB float tensors in [0, 1].
"""
import os
from typing import Any, Dict, List

import cv2
import numpy as np
import torch
from torch.utils import data

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.layouts import IMAGE_EXTENSIONS, layout_pairs
from basicsr_adl.synth.blur import random_motion_kernel, apply_blur
from basicsr_adl.synth.haze import BETA_LIMITS, add_haze, check_range


def read_rgb(path: str) -> np.ndarray:
    """HxWx3 float32 RGB in [0, 1] (8- or 16-bit files)."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f'cannot read image: {path}')
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / scale


def _crop_and_augment(opt: Dict[str, Any], lq: np.ndarray, gt: np.ndarray, path: str):
    if opt.get('phase') == 'train':
        if opt.get('gt_size'):
            gt, lq = paired_random_crop(gt, lq, opt['gt_size'], 1, path)
        gt, lq = augment([gt, lq], opt.get('use_hflip', False), opt.get('use_rot', False))
    return lq, gt


@DATASET_REGISTRY.register()
class LayoutPairedDataset(data.Dataset):
    """Pairs read straight from a dataset's own layout (``layout``: gopro, reside, ihaze, ohaze, folder)."""

    def __init__(self, opt: Dict[str, Any]):
        super().__init__()
        self.opt = opt
        for key in ('layout', 'dataroot'):
            if key not in opt:
                raise ValueError(f"LayoutPairedDataset: missing option '{key}'")
        self.pairs = layout_pairs(opt['layout'], opt['dataroot'])
        limit = opt.get('max_pairs')
        if limit:
            self.pairs = self.pairs[:int(limit)]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        lq_path, gt_path = self.pairs[index]
        lq, gt = read_rgb(lq_path), read_rgb(gt_path)
        if lq.shape != gt.shape:
            raise ValueError(f'size mismatch: {lq_path} {lq.shape[:2]} vs {gt_path} {gt.shape[:2]}')
        lq, gt = _crop_and_augment(self.opt, lq, gt, gt_path)
        gt_t, lq_t = img2tensor([gt, lq], bgr2rgb=False, float32=True)
        return {'lq': lq_t, 'gt': gt_t, 'lq_path': lq_path, 'gt_path': gt_path}


@DATASET_REGISTRY.register()
class SyntheticDegradationDataset(data.Dataset):
    """Clean images from ``dataroot_gt`` degraded on the fly into a synthetic source domain.

    Options: ``degradation`` (blur | haze); blur: ``kernel_sizes`` (e.g. [21, 31, 41]), ``noise_sigma``
    (on [0, 1] intensities, default 0.01); haze: ``beta_range`` (default [0.6, 1.8]), ``airlight_range``
    (default [0.7, 1.0]); ``gt_size`` crops before degrading, so the kernel sees the patch it blurs.
    Randomness comes from NumPy's global generator, which BasicSR seeds per dataloader worker.
    """

    def __init__(self, opt: Dict[str, Any]):
        super().__init__()
        self.opt = opt
        self.degradation = opt.get('degradation')
        if self.degradation not in ('blur', 'haze'):
            raise ValueError(f"SyntheticDegradationDataset: option 'degradation' must be blur or haze, "
                             f'got {self.degradation!r}')
        root = opt.get('dataroot_gt')
        if not root or not os.path.isdir(root):
            raise ValueError(f"SyntheticDegradationDataset: option 'dataroot_gt' is not a folder: {root!r}")
        self.paths: List[str] = [os.path.join(root, f) for f in sorted(os.listdir(root))
                                 if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not self.paths:
            raise ValueError(f"SyntheticDegradationDataset: no images in 'dataroot_gt' {root}")
        if self.degradation == 'blur':
            self.kernel_sizes = [int(k) for k in opt.get('kernel_sizes', [21, 31, 41])]
            self.noise_sigma = float(opt.get('noise_sigma', 0.01))
        else:
            self.beta_range = tuple(opt.get('beta_range', (0.6, 1.8)))
            self.airlight_range = tuple(opt.get('airlight_range', (0.7, 1.0)))
            check_range('beta_range', self.beta_range, BETA_LIMITS)
            check_range('airlight_range', self.airlight_range, (0.0, 1.0))

    def __len__(self) -> int:
        return len(self.paths)

    def degrade(self, gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        clean = torch.from_numpy(np.ascontiguousarray(gt.transpose(2, 0, 1)))
        if self.degradation == 'blur':
            size = self.kernel_sizes[rng.integers(len(self.kernel_sizes))]
            kernel = random_motion_kernel(size, rng)
            gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
            out = apply_blur(clean, kernel, self.noise_sigma, gen)
        else:
            out = add_haze(clean, float(rng.uniform(*self.beta_range)), float(rng.uniform(*self.airlight_range)))
        return np.ascontiguousarray(out.numpy().transpose(1, 2, 0))  # cv2 ops in BasicSR's augment need this

    def __getitem__(self, index: int) -> Dict[str, Any]:
        path = self.paths[index]
        gt = read_rgb(path)
        if self.opt.get('phase') == 'train' and self.opt.get('gt_size'):
            gt, _ = paired_random_crop(gt, gt, self.opt['gt_size'], 1, path)
        rng = np.random.default_rng(np.random.randint(2**31))
        lq = self.degrade(gt, rng)
        if self.opt.get('phase') == 'train':
            gt, lq = augment([gt, lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        gt_t, lq_t = img2tensor([np.ascontiguousarray(gt), np.ascontiguousarray(lq)], bgr2rgb=False, float32=True)
        return {'lq': lq_t, 'gt': gt_t, 'lq_path': f'{path}#{self.degradation}', 'gt_path': path}
