"""``MixedNoisePairsDataset``: real noisy/clean pairs mixed with synthetic noise on clean images (pretraining).

A denoiser pretrained only on a few heavy-noise real pairs (SIDD crops, ~23 dB) over-smooths the milder noise of
other cameras; LAN's input offset cannot undo that. This dataset draws, per sample, either a real pair (with
probability ``1 - synthetic_prob``) or a clean image with synthetic Poisson-Gaussian noise of a random level
(``basicsr_adl.lan.synthetic_noise``), so the net also sees mild noise.

Options (BasicSR dataset options; unknown ``noise.*`` keys are errors):

* ``real_pairs``: list of ``{dataroot, naming}`` with ``naming`` ``subfolders`` (``noisy/`` or ``lq/`` + ``gt/``,
  paired by name as in ``basicsr_adl.pairing``, or by an entry key ``filename_tmpl``: noisy stem =
  ``filename_tmpl.format(gt stem)``) or ``polyu`` (``*_real`` / ``*_mean`` in one folder); may be empty if
  ``clean_images`` is not;
* ``clean_images``: list of ``{dataroot, naming}``, ``naming`` ``folder`` (every image), ``subfolders`` /
  ``polyu`` (the clean image of each pair); ``clean_from_real: true`` adds the GTs of ``real_pairs``;
* ``synthetic_prob`` (default 0.5; 0 = real only, 1 = synthetic only), ``noise`` (``NoiseConfig`` ranges),
  ``cache`` (default true: decoded images kept in memory, fine for a few hundred crops);
* BasicSR's ``gt_size``, ``use_hflip``, ``use_rot``, ``phase``.

Randomness: NumPy's global RNG (choice, noise) and Python's ``random`` (BasicSR's ``paired_random_crop`` /
``augment``), both seeded by BasicSR from ``manual_seed``. Samples: ``lq``, ``gt`` (RGB float CHW in [0, 1]),
``synthetic`` (0/1), ``lq_path``, ``gt_path``.
"""
import os
from typing import Any, Dict, List, Tuple

import numpy as np
from torch.utils import data

from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import img2tensor
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.data.restoration_pairs_dataset import read_rgb
from basicsr_adl.lan.synthetic_noise import NoiseConfig, NoiseOptionError, add_synthetic_noise
from basicsr_adl.real_pairs import IMAGE_EXTENSIONS, RealPairsError, polyu_pairs, subfolder_pairs

PAIR_NAMINGS = ('subfolders', 'polyu')
CLEAN_NAMINGS = ('folder',) + PAIR_NAMINGS


def _sources(opt: Dict[str, Any], key: str, namings: Tuple[str, ...], name: str) -> List[Dict[str, str]]:
    entries = opt.get(key) or []
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise OptionError(f"option '{name}.{key}' must be a list of {{dataroot, naming}}, got {entries!r}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or 'dataroot' not in entry:
            raise OptionError(f"option '{name}.{key}[{i}]' needs a 'dataroot', got {entry!r}")
        if entry.get('naming', namings[0]) not in namings:
            raise OptionError(f"option '{name}.{key}[{i}].naming' must be one of {', '.join(namings)}, "
                              f"got {entry.get('naming')!r}")
        if entry.get('filename_tmpl') is not None and entry.get('naming', namings[0]) != 'subfolders':
            raise OptionError(f"option '{name}.{key}[{i}].filename_tmpl' needs naming: subfolders")
    return entries


def _pairs(entry: Dict[str, str], where: str = 'filename_tmpl') -> List[Tuple[str, str]]:
    naming = entry.get('naming', 'subfolders')
    found = (polyu_pairs(entry['dataroot']) if naming == 'polyu'
             else subfolder_pairs(entry['dataroot'], camera='unknown', filename_tmpl=entry.get('filename_tmpl'),
                                  tmpl_option=where))
    return [(p.noisy, p.clean) for p in found]


def _clean_files(entry: Dict[str, str], where: str = 'filename_tmpl') -> List[str]:
    if entry.get('naming', 'folder') != 'folder':
        return [clean for _, clean in _pairs(entry, where)]
    root = entry['dataroot']
    if not os.path.isdir(root):
        raise RealPairsError(f'folder not found: {root}')
    return [os.path.join(root, f) for f in sorted(os.listdir(root)) if f.lower().endswith(IMAGE_EXTENSIONS)]


@DATASET_REGISTRY.register()
class MixedNoisePairsDataset(data.Dataset):
    """Real pairs + synthetic noise on clean images; see the module docstring for the options."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        name = opt.get('name', 'MixedNoisePairsDataset')
        self.real: List[Tuple[str, str]] = []
        for i, entry in enumerate(_sources(opt, 'real_pairs', PAIR_NAMINGS, name)):
            self.real += _pairs(entry, f'{name}.real_pairs[{i}].filename_tmpl')
        self.clean: List[str] = []
        for i, entry in enumerate(_sources(opt, 'clean_images', CLEAN_NAMINGS, name)):
            self.clean += _clean_files(entry, f'{name}.clean_images[{i}].filename_tmpl')
        if opt.get('clean_from_real', False):
            self.clean += [gt for _, gt in self.real]
        self.synthetic_prob = opt.get('synthetic_prob', 0.5)
        if not isinstance(self.synthetic_prob, (int, float)) or not 0 <= self.synthetic_prob <= 1:
            raise OptionError(f"option '{name}.synthetic_prob' must be a probability in [0, 1], "
                              f"got {self.synthetic_prob!r}")
        if self.synthetic_prob < 1 and not self.real:
            raise OptionError(f"'{name}': no real pairs (option 'real_pairs') but synthetic_prob < 1")
        if self.synthetic_prob > 0 and not self.clean:
            raise OptionError(f"'{name}': no clean images (options 'clean_images' / 'clean_from_real') "
                              f"but synthetic_prob > 0")
        try:
            self.noise = NoiseConfig.from_options(opt.get('noise'), f'{name}.noise')
        except NoiseOptionError as err:
            raise OptionError(str(err)) from None
        self.cache_images = bool(opt.get('cache', True))
        self._cache: Dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.real) + len(self.clean)

    def _read(self, path: str) -> np.ndarray:
        """A private copy (BasicSR's ``augment`` flips in place: the cached image must not change)."""
        if not self.cache_images:
            return read_rgb(path)
        if path not in self._cache:
            self._cache[path] = read_rgb(path)
            self._cache[path].setflags(write=False)
        return self._cache[path]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        synthetic = bool(self.synthetic_prob >= 1 or (self.synthetic_prob > 0 and np.random.uniform() < self.synthetic_prob))
        train = self.opt.get('phase') == 'train'
        if synthetic:
            gt_path = self.clean[index % len(self.clean)]
            lq_path = gt_path
            gt = self._read(gt_path)
            if train and self.opt.get('gt_size'):  # crop first: noise only on the patch
                gt, _ = paired_random_crop(gt, gt, self.opt['gt_size'], 1, gt_path)
            lq, _ = add_synthetic_noise(gt, self.noise)
        else:
            lq_path, gt_path = self.real[index % len(self.real)]
            lq, gt = self._read(lq_path), self._read(gt_path)
            if lq.shape != gt.shape:
                raise RealPairsError(f'size mismatch: {lq_path} {lq.shape[:2]} vs {gt_path} {gt.shape[:2]}')
            if train and self.opt.get('gt_size'):
                gt, lq = paired_random_crop(gt, lq, self.opt['gt_size'], 1, gt_path)
        gt, lq = gt.copy(), lq.copy()  # crops are views of the cached images
        if train:
            gt, lq = augment([gt, lq], self.opt.get('use_hflip', False), self.opt.get('use_rot', False))
        gt_t, lq_t = img2tensor([np.ascontiguousarray(gt), np.ascontiguousarray(lq)], bgr2rgb=False, float32=True)
        return {'lq': lq_t, 'gt': gt_t, 'synthetic': int(synthetic), 'lq_path': lq_path, 'gt_path': gt_path}
