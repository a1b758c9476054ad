"""BasicSR dataset over a noisy/clean pair of RAW LMDBs (see ``docs/raw_data.md``)."""
from typing import Any, Dict, List

import numpy as np
import torch
from torch.utils import data as data

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.raw.lmdb_store import RawLMDBReader
from basicsr_adl.raw.noise_models import SENSOR_NAMES
from basicsr_adl.raw.pairs import (SID_RATIO_CAP, augment_pair, choose_window, exposure_ratio, normalize_from_meta,
                                   resolve_iso,
                                   resolve_sensor_index)


@DATASET_REGISTRY.register()
class RawPairedLMDBDataset(data.Dataset):
    """Noisy (``dataroot_lq``) / clean (``dataroot_gt``) packed RAW pairs from RAW LMDBs.

    Options (BasicSR style):
        dataroot_lq, dataroot_gt (str): RAW LMDB folders (``*.lmdb``) written by ``RawLMDBWriter``.
        phase (str): ``train`` -> random aligned crop of ``gt_size`` packed pixels + Bayer-safe flips/rotations;
            other phases -> the whole image (or a centre crop of ``center_crop`` packed pixels).
        gt_size (int): train crop size in *packed* pixels (a 2x2 Bayer quad is one packed pixel).
        use_hflip, use_rot (bool): augmentation (train only), applied on packed data so it means the same as
            on the mosaic (G1/G2 swap on transposes).
        sensors (list[str]): sensor order for the ``sensor`` index; default ``noise_models.SENSOR_NAMES``.
        sensor (str): force one sensor name for every pair (when the metadata has none).
        default_iso (float): ISO when the metadata has none (else a missing ISO is an error).
        keep_negative (bool, False): keep values below black after normalisation.
        exposure_ratio (bool, True): multiply the input by the SID ratio (GT / input exposure, capped at
            ``ratio_cap``, 300) when exposures (or a ``ratio``) are in the metadata; then clip at 1.
    Returns ``lq``, ``gt`` (float32 4xHxW in [0,1]), ``sensor`` (int), ``iso`` (float), ``ratio`` (float),
    ``lq_path``, ``gt_path`` (LMDB keys).
    """

    def __init__(self, opt: Dict[str, Any]):
        super().__init__()
        self.opt = opt
        for name in ('dataroot_lq', 'dataroot_gt'):
            if not opt.get(name):
                raise KeyError(f'RawPairedLMDBDataset {opt.get("name", "")}: option "{name}" is required')
        self.lq_reader = RawLMDBReader(opt['dataroot_lq'])
        self.gt_reader = RawLMDBReader(opt['dataroot_gt'])
        self.sensors: List[str] = list(opt.get('sensors') or SENSOR_NAMES)
        self.phase = opt.get('phase', 'train')
        self.gt_size = opt.get('gt_size')
        self.keys = self.lq_reader.keys()
        if not self.keys:
            raise ValueError(f'{self.lq_reader.path} holds no pairs')
        self._check_pairs()

    def _check_pairs(self) -> None:
        """Fail early, naming the key, for missing GT keys and noisy/clean shape mismatches."""
        for key in self.keys:
            lq_meta = self.lq_reader.meta(key)
            gt_key = lq_meta.get('gt_key', key)
            try:
                gt_meta = self.gt_reader.meta(gt_key)
            except KeyError as err:
                raise KeyError(f'noisy key {key!r} of {self.lq_reader.path}: clean key {gt_key!r} missing in '
                               f'{self.gt_reader.path}') from err
            if list(lq_meta['shape']) != list(gt_meta['shape']):
                raise ValueError(f'shape mismatch for key {key!r}: noisy {lq_meta["shape"]} in {self.lq_reader.path}'
                                 f' vs clean {gt_meta["shape"]} ({gt_key!r}) in {self.gt_reader.path}')
            resolve_sensor_index([lq_meta, gt_meta], self.sensors, key, self.opt.get('sensor'))
            resolve_iso([lq_meta, gt_meta], key, self.opt.get('default_iso'))

    def __len__(self) -> int:
        return len(self.keys)

    def item_isos(self) -> List[float]:
        """Each pair's ISO from the metadata alone (no image read): what a model needs to know the ISO range."""
        isos = []
        for key in self.keys:
            lq_meta = self.lq_reader.meta(key)
            isos.append(resolve_iso([lq_meta, self.gt_reader.meta(lq_meta.get('gt_key', key))], key,
                                    self.opt.get('default_iso')))
        return isos

    def __getitem__(self, index: int) -> Dict[str, Any]:
        key = self.keys[index]
        lq_meta = self.lq_reader.meta(key)
        gt_key = lq_meta.get('gt_key', key)
        gt_meta = self.gt_reader.meta(gt_key)
        shape_hw = tuple(lq_meta['shape'][-2:])
        rng = np.random.default_rng(np.random.randint(2**31))  # seeded by BasicSR (per worker): reproducible, resumable
        (top, left, size_h, size_w), flags, final_size = choose_window(self.opt, self.phase, shape_hw, rng, key)
        lq = self.lq_reader.read_crop(key, top, left, size_h, size_w)
        gt = self.gt_reader.read_crop(gt_key, top, left, size_h, size_w)

        keep_negative = bool(self.opt.get('keep_negative', False))
        ratio = 1.0
        if self.opt.get('exposure_ratio', True):
            ratio = exposure_ratio(lq_meta, gt_meta, float(self.opt.get('ratio_cap', SID_RATIO_CAP)))
        lq = normalize_from_meta(lq, lq_meta, keep_negative=keep_negative, clip_high=True)
        if ratio != 1.0:
            lq = lq * np.float32(ratio)
            if self.opt.get('clip_after_ratio', True):
                lq = np.minimum(lq, np.float32(1.0))
        gt = normalize_from_meta(gt, gt_meta, keep_negative=keep_negative, clip_high=True)

        if flags is not None:
            lq, gt = augment_pair([lq, gt], flags, final_size)

        return {
            'lq': torch.from_numpy(np.ascontiguousarray(lq, dtype=np.float32)),
            'gt': torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32)),
            'sensor': resolve_sensor_index([lq_meta, gt_meta], self.sensors, key, self.opt.get('sensor')),
            'iso': resolve_iso([lq_meta, gt_meta], key, self.opt.get('default_iso')),
            'ratio': float(ratio),
            'lq_path': key,
            'gt_path': gt_key,
        }
