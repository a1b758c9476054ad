"""``RealNoisyPairsDataset``: real sRGB noisy/clean pairs with camera (domain) and ISO labels, split by scene."""
from typing import Any, Dict, List, Optional

import numpy as np
from torch.utils import data

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.data.restoration_pairs_dataset import read_rgb
from basicsr_adl.real_pairs import RealPairsError, polyu_pairs, split_pairs_by_scene, subfolder_pairs


@DATASET_REGISTRY.register()
class RealNoisyPairsDataset(data.Dataset):
    """Options: ``dataroot``; ``naming`` (polyu | subfolders); ``filename_tmpl`` (subfolders only: noisy stem =
    ``filename_tmpl.format(gt stem)``, e.g. ``'{}_noisy'``; default: pair by name, ``basicsr_adl.pairing``);
    ``cameras`` (keep only these); ``camera``/``iso`` (labels for subfolders without meta.csv); ``split``
    (all | train | test) with ``test_scenes`` or ``test_fraction`` + ``split_seed``; ``sensors`` (the camera
    order that defines ``sensor`` indices; default: the cameras found, sorted); ``max_pairs``; ``cache`` (keep
    decoded images in memory); BasicSR's ``gt_size``, ``use_hflip``, ``use_rot``, ``phase``.

    Samples: ``lq``, ``gt`` (RGB float in [0, 1]), ``sensor`` (index into ``sensors``), ``iso``, ``scene``,
    ``lq_path``, ``gt_path``.
    """

    def __init__(self, opt: Dict[str, Any]):
        super().__init__()
        self.opt = opt
        naming = opt.get('naming', 'polyu')
        if 'dataroot' not in opt:
            raise RealPairsError("RealNoisyPairsDataset: missing option 'dataroot'")
        if naming == 'polyu':
            if opt.get('filename_tmpl') is not None:
                raise RealPairsError("RealNoisyPairsDataset: option 'filename_tmpl' needs naming: subfolders "
                                     "(naming: polyu pairs '_real' with '_mean')")
            pairs = polyu_pairs(opt['dataroot'])
        elif naming == 'subfolders':
            pairs = subfolder_pairs(opt['dataroot'], opt.get('camera'), opt.get('iso'), opt.get('filename_tmpl'))
        else:
            raise RealPairsError(f"RealNoisyPairsDataset: option 'naming' must be polyu or subfolders, got {naming!r}")
        if opt.get('cameras'):
            pairs = [p for p in pairs if p.camera in set(opt['cameras'])]
        if not pairs:
            raise RealPairsError(f"RealNoisyPairsDataset '{opt.get('name')}': no pairs in {opt['dataroot']} for "
                                 f"cameras={opt.get('cameras')}")
        split = opt.get('split', 'all')
        if split != 'all':
            if split not in ('train', 'test'):
                raise RealPairsError(f"RealNoisyPairsDataset: option 'split' must be all, train or test, got {split!r}")
            train, test = split_pairs_by_scene(pairs, opt.get('test_scenes'), opt.get('test_fraction', 0.5),
                                               opt.get('split_seed', 0))
            pairs = train if split == 'train' else test
        if opt.get('max_pairs'):
            pairs = pairs[:int(opt['max_pairs'])]
        if not pairs:
            raise RealPairsError(f"RealNoisyPairsDataset '{opt.get('name')}': no pairs in {opt['dataroot']} after "
                                 f"filters (cameras={opt.get('cameras')}, split={split})")
        self.pairs = pairs
        # decoded images kept in memory (option cache: true): the small real sets ADL trains on are re-read
        # thousands of times, and decoding a 512x512 JPEG costs more than a CPU training step's data needs
        self.cache = {} if opt.get('cache', False) else None
        self.sensors = list(opt.get('sensors') or sorted({p.camera for p in pairs}))
        missing = sorted({p.camera for p in pairs} - set(self.sensors))
        if missing:
            raise RealPairsError(f"RealNoisyPairsDataset: cameras {missing} are not in option 'sensors' {self.sensors}")

    def item_isos(self) -> List[Optional[float]]:
        """Each pair's ISO from its name or options (no image read); None where it has none."""
        return [p.iso for p in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        pair = self.pairs[index]
        if self.cache is not None:
            if index not in self.cache:
                self.cache[index] = (read_rgb(pair.noisy), read_rgb(pair.clean))
            lq, gt = self.cache[index]
        else:
            lq, gt = read_rgb(pair.noisy), read_rgb(pair.clean)
        if lq.shape != gt.shape:
            raise RealPairsError(f'size mismatch: {pair.noisy} {lq.shape[:2]} vs {pair.clean} {gt.shape[:2]}')
        if self.opt.get('phase') == 'train':
            if self.opt.get('gt_size'):
                gt, lq = paired_random_crop(gt, lq, self.opt['gt_size'], 1, pair.clean)
            gt, lq = gt.copy(), lq.copy()  # BasicSR's augment flips in place: never touch the cached images
            gt, lq = augment([gt, lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        gt_t, lq_t = img2tensor([np.ascontiguousarray(gt), np.ascontiguousarray(lq)], bgr2rgb=False, float32=True)
        return {'lq': lq_t, 'gt': gt_t, 'sensor': self.sensors.index(pair.camera), 'iso': pair.iso,
                'scene': pair.scene, 'lq_path': pair.noisy, 'gt_path': pair.clean}
