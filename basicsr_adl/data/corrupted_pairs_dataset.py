"""CorruptedPairsDataset: a registered dataset that corrupts another dataset's pairs (ADL's harmful sources).

Wraps any registered paired dataset (option ``base``) and corrupts each pair (option ``corruption``):

* ``noisy_gt`` - the paper's Harmful1: input = the clean image, GT = clean + Gaussian noise of ``sigma``
  (8-bit levels, i.e. sigma/255 in [0, 1] units). A Noise2Noise-like target: only mildly harmful under L1;
* ``misaligned`` - Harmful2: GT rolled by ``shift`` pixels down and right;
* ``black_gt`` - GT all zeros;
* ``blurred_gt`` - GT box-blurred with a ``blur`` x ``blur`` kernel.

Noise uses NumPy's global RNG, which BasicSR seeds per rank and the compat layer saves for resume.
"""
from copy import deepcopy
from typing import Any, Dict

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils import data

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.compat.options_check import OptionError

CORRUPTIONS = ('noisy_gt', 'misaligned', 'black_gt', 'blurred_gt')


@DATASET_REGISTRY.register()
class CorruptedPairsDataset(data.Dataset):
    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        name = opt.get('name', 'CorruptedPairsDataset')
        base = deepcopy(opt.get('base'))
        if not isinstance(base, dict) or base.get('type') not in DATASET_REGISTRY:
            raise OptionError(f"option '{name}.base' must hold the options of a registered dataset "
                              f"(got type {None if not isinstance(base, dict) else base.get('type')!r})")
        self.corruption = opt.get('corruption')
        if self.corruption not in CORRUPTIONS:
            raise OptionError(f"option '{name}.corruption': {self.corruption!r} is not one of {', '.join(CORRUPTIONS)}")
        base.setdefault('name', f'{name}_base')
        base.setdefault('phase', opt.get('phase', 'train'))
        base.setdefault('scale', opt.get('scale', 1))
        self.base = DATASET_REGISTRY.get(base['type'])(base)
        self.sigma = float(opt.get('sigma', 30.0)) / 255.0
        self.shift = int(opt.get('shift', 4))
        self.blur = int(opt.get('blur', 7))

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        item = dict(self.base[index])
        gt = torch.as_tensor(item['gt']).clone()
        if self.corruption == 'noisy_gt':
            noise = torch.from_numpy(np.random.normal(0.0, self.sigma, size=tuple(gt.shape)).astype(np.float32))
            item['lq'], item['gt'] = gt, gt + noise
        elif self.corruption == 'misaligned':
            item['gt'] = torch.roll(gt, shifts=(self.shift, self.shift), dims=(-2, -1))
        elif self.corruption == 'black_gt':
            item['gt'] = torch.zeros_like(gt)
        else:
            k = self.blur
            weight = torch.full((gt.shape[0], 1, k, k), 1.0 / (k * k))
            item['gt'] = F.conv2d(F.pad(gt[None], (k // 2,) * 4, mode='replicate'), weight, groups=gt.shape[0])[0]
        return item
