"""``CameraRawDataset``: camera RAW files without ground truth, for ``basicsr_adl/test.py`` to denoise.

Options: ``dataroot_lq`` (a folder, or one file); ``files`` (optional: only these names in the folder);
``sensors`` (the one-hot order) with ``sensor`` (the name these files' camera has in it); ``iso`` (for files that
carry no ISO; the file's own wins). Bare mosaics need a ``metadata.json`` in their folder (docs/raw_data.md).

Items: ``lq`` (4, h, w) float32 packed R, G1, G2, B, normalised by the file's black/white levels without
clipping; ``lq_path``; ``iso`` (NaN when unknown); ``sensor`` (index, when ``sensor`` is given); ``camera_raw``
(True: the model writes DNG + PNG outputs for the item, see ``basicsr_adl.raw.camera_denoise.write_outputs``).
Use ``batch_size_per_gpu: 1`` (files differ in size).
"""
import math
import os
from typing import Any, Dict, List

import torch
from torch.utils import data

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.errors import DataError
from basicsr_adl.raw.bayer import UnsupportedCFAError
from basicsr_adl.raw.camera_denoise import net_input
from basicsr_adl.raw.io import RawReadError, list_camera_files, read_raw_with_sidecar


@DATASET_REGISTRY.register()
class CameraRawDataset(data.Dataset):
    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        where = f"datasets.{opt.get('phase', 'test')} ({opt.get('name', 'CameraRawDataset')})"
        root = opt['dataroot_lq']
        try:
            if opt.get('files'):
                self.paths: List[str] = list_camera_files([os.path.join(root, f) for f in opt['files']],
                                                          what=f'{where} files')
            else:
                self.paths = list_camera_files([root], what=f'{where} dataroot_lq')
        except RawReadError as err:
            raise DataError(str(err)) from None
        self.sensor_index = None
        if opt.get('sensor') is not None:
            sensors = [str(s) for s in opt.get('sensors') or []]
            if opt['sensor'] not in sensors:
                raise OptionError(f"option '{where}.sensor': '{opt['sensor']}' is not in its 'sensors' list "
                                  f"({', '.join(sensors) or 'not given'})")
            self.sensor_index = sensors.index(opt['sensor'])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        path = self.paths[index]
        try:
            capture = read_raw_with_sidecar(path)
        except (RawReadError, UnsupportedCFAError) as err:
            raise DataError(str(err)) from None
        iso = capture.iso or self.opt.get('iso') or math.nan
        item = {'lq': torch.from_numpy(net_input(capture)), 'lq_path': path, 'camera_raw': True,
                'iso': torch.tensor(float(iso), dtype=torch.float32)}
        if self.sensor_index is not None:
            item['sensor'] = torch.tensor(self.sensor_index, dtype=torch.long)
        return item
