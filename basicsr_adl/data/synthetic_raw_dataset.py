"""BasicSR dataset: clean RAW LMDB + per-sensor physics noise sampled on the fly (see ``docs/raw_data.md``)."""
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch.utils import data as data

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.raw.lmdb_store import RawLMDBReader
from basicsr_adl.raw.noise_models import SENSOR_NAMES, get_profile, synthesize_noisy
from basicsr_adl.raw.pairs import augment_pair, choose_window, normalize_from_meta


@DATASET_REGISTRY.register()
class SyntheticRawDataset(data.Dataset):
    """Noisy/clean pairs made from clean packed RAW with a calibrated sensor noise model.

    Options:
        dataroot_gt (str): clean RAW LMDB.
        noise_sensors (list[str]): sensors whose noise models to sample from (one per sample, uniformly);
            default: the clean image's own ``sensor`` (must have a calibrated model).
        sensors (list[str]): order for the returned ``sensor`` index; default ``noise_models.SENSOR_NAMES``.
        iso_from_metadata (bool, False): use the clean image's ``iso`` (an error names the key if missing);
            otherwise ISO is drawn log-uniformly from ``iso_range`` or the sensor's calibrated range.
        iso_range ([lo, hi]): override the ISO range.
        ratio_range ([lo, hi], [1, 1]): SID-style dark exposure: signal / ratio before noise, x ratio after.
        gt_size, use_hflip, use_rot, phase, center_crop, keep_negative: as ``RawPairedLMDBDataset``.
        seed (int, 0): non-train phases draw the same noise for the same index every time.
    Returns ``lq``, ``gt``, ``sensor``, ``iso``, ``ratio``, ``lq_path``, ``gt_path`` like ``RawPairedLMDBDataset``.
    """

    def __init__(self, opt: Dict[str, Any]):
        super().__init__()
        self.opt = opt
        if not opt.get('dataroot_gt'):
            raise KeyError(f'SyntheticRawDataset {opt.get("name", "")}: option "dataroot_gt" is required')
        self.gt_reader = RawLMDBReader(opt['dataroot_gt'])
        self.sensors: List[str] = list(opt.get('sensors') or SENSOR_NAMES)
        self.noise_sensors: Optional[List[str]] = opt.get('noise_sensors')
        if isinstance(self.noise_sensors, str):
            self.noise_sensors = [self.noise_sensors]
        for name in self.noise_sensors or []:
            get_profile(name)
            if name not in self.sensors:
                raise ValueError(f'noise sensor {name!r} is not in the dataset\'s sensor list {self.sensors}')
        self.phase = opt.get('phase', 'train')
        self.keys = self.gt_reader.keys()
        if not self.keys:
            raise ValueError(f'{self.gt_reader.path} holds no images')

    def __len__(self) -> int:
        return len(self.keys)

    def _pick_sensor(self, meta: Dict[str, Any], key: str, rng: np.random.Generator) -> str:
        if self.noise_sensors:
            return self.noise_sensors[int(rng.integers(len(self.noise_sensors)))]
        name = meta.get('sensor')
        if name is None:
            raise ValueError(f'{key}: clean image has no "sensor" in its metadata; set option "noise_sensors"')
        get_profile(name)
        if name not in self.sensors:
            raise ValueError(f'{key}: sensor {name!r} is not in the dataset\'s sensor list {self.sensors}')
        return name

    def _pick_iso(self, meta: Dict[str, Any], key: str, profile, rng: np.random.Generator) -> float:
        if self.opt.get('iso_from_metadata', False):
            if meta.get('iso') is None:
                raise ValueError(f'{key}: the noise model of sensor {profile.name!r} needs an ISO but the clean image '
                               f'in {self.gt_reader.path} has no "iso" (set iso_from_metadata: false to sample one)')
            return float(meta['iso'])
        low, high = self.opt.get('iso_range') or profile.iso_range
        return float(np.round(np.exp(rng.uniform(np.log(low), np.log(high)))))

    def __getitem__(self, index: int) -> Dict[str, Any]:
        key = self.keys[index]
        meta = self.gt_reader.meta(key)
        if self.phase == 'train':
            rng = np.random.default_rng(np.random.randint(2**31))  # seeded by BasicSR (per worker)
        else:
            rng = np.random.default_rng([int(self.opt.get('seed', 0)), index])
        shape_hw = tuple(meta['shape'][-2:])
        (top, left, size_h, size_w), flags, final_size = choose_window(self.opt, self.phase, shape_hw, rng, key)
        clean = self.gt_reader.read_crop(key, top, left, size_h, size_w)
        gt = normalize_from_meta(clean, meta, keep_negative=False, clip_high=True)

        sensor = self._pick_sensor(meta, key, rng)
        profile = get_profile(sensor)
        iso = self._pick_iso(meta, key, profile, rng)
        ratio_lo, ratio_hi = self.opt.get('ratio_range') or (1.0, 1.0)
        ratio = float(np.exp(rng.uniform(np.log(ratio_lo), np.log(ratio_hi))))
        lq, _ = synthesize_noisy(gt, profile, iso, rng, ratio=ratio,
                                 keep_negative=bool(self.opt.get('keep_negative', False)))
        if flags is not None:
            lq, gt = augment_pair([lq, gt], flags, final_size)
        return {
            'lq': torch.from_numpy(np.ascontiguousarray(lq, dtype=np.float32)),
            'gt': torch.from_numpy(np.ascontiguousarray(gt, dtype=np.float32)),
            'sensor': self.sensors.index(sensor),
            'iso': iso,
            'ratio': ratio,
            'lq_path': f'{key}_{sensor}_iso{int(iso)}',
            'gt_path': key,
        }
