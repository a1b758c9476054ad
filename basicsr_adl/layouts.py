"""Pair the files of known dataset layouts (no BasicSR import).

* ``gopro``: ``<root>/<sequence>/blur/*.png`` with ``<root>/<sequence>/sharp/*.png`` (GoPro, Nah et al. 2017);
  ``<root>`` is the ``train`` or ``test`` folder. ``blur_gamma`` is used instead of ``blur`` if asked.
* ``reside``: ``<root>/hazy/<id>_<...>.<ext>`` with ``<root>/{clear,gt,GT}/<id>.<ext>`` (RESIDE ITS/OTS/SOTS:
  several hazy versions per clear image; the id is the part before the first ``_``).
* ``ihaze`` / ``ohaze``: ``*_hazy.<ext>`` with ``*_GT.<ext>`` anywhere under ``<root>`` (I-HAZE, O-HAZE).
* ``folder``: ``<root>/lq/`` with ``<root>/gt/``, paired by name (``basicsr_adl.pairing``: same stems, or the
  same after removing marker words such as lq/gt, noisy/clean, blur/sharp).

Every function returns sorted ``(lq_path, gt_path)`` pairs and raises ``LayoutError`` naming unpaired files.
"""
import os
from typing import Dict, List, Tuple

from basicsr_adl.errors import DataError
from basicsr_adl.pairing import PairingError, pair_names

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
LAYOUTS = ('gopro', 'reside', 'ihaze', 'ohaze', 'folder')
Pair = Tuple[str, str]


class LayoutError(DataError, ValueError):
    """The folder does not match the layout, or some files have no partner (named in the message); a
    ``DataError``, so ``train.py`` prints it as one line."""


def _images(folder: str) -> List[str]:
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def _require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise LayoutError(f'{what}: folder not found: {path}')


def _unpaired(names: List[str], where: str) -> None:
    if names:
        shown = ', '.join(names[:5]) + (f' (+{len(names) - 5} more)' if len(names) > 5 else '')
        raise LayoutError(f'{len(names)} unpaired file(s) in {where}: {shown}')


def pairs_by_name(lq_dir: str, gt_dir: str) -> List[Pair]:
    """Pairs of two folders by the project's one name rule (``basicsr_adl.pairing``): same stems, or the same
    after removing marker words (``x_blur`` <-> ``x_sharp``, ``x_lq`` <-> ``x_gt``)."""
    _require_dir(lq_dir, 'lq')
    _require_dir(gt_dir, 'gt')
    try:
        named = pair_names(_images(lq_dir), _images(gt_dir), where=f'{lq_dir} / {gt_dir}', tmpl_option=None)
    except PairingError as err:
        raise LayoutError(str(err)) from None
    return [(os.path.join(lq_dir, p.noisy), os.path.join(gt_dir, p.clean)) for p in named]


def gopro_pairs(root: str, blur_folder: str = 'blur') -> List[Pair]:
    _require_dir(root, 'GoPro root')
    sequences = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, blur_folder)))
    if not sequences:
        raise LayoutError(f"GoPro root {root} has no '<sequence>/{blur_folder}' folders")
    pairs: List[Pair] = []
    for seq in sequences:
        pairs += pairs_by_name(os.path.join(root, seq, blur_folder), os.path.join(root, seq, 'sharp'))
    return pairs


def reside_pairs(root: str) -> List[Pair]:
    hazy_dir = os.path.join(root, 'hazy')
    _require_dir(hazy_dir, 'RESIDE hazy')
    gt_dirs = [os.path.join(root, d) for d in ('clear', 'gt', 'GT') if os.path.isdir(os.path.join(root, d))]
    if not gt_dirs:
        raise LayoutError(f"RESIDE root {root} has no 'clear', 'gt' or 'GT' folder")
    clear: Dict[str, str] = {os.path.splitext(f)[0]: os.path.join(gt_dirs[0], f) for f in _images(gt_dirs[0])}
    pairs, missing = [], []
    for name in _images(hazy_dir):
        key = os.path.splitext(name)[0].split('_')[0]
        if key in clear:
            pairs.append((os.path.join(hazy_dir, name), clear[key]))
        else:
            missing.append(name)
    _unpaired(missing, hazy_dir)
    return pairs


def hazy_gt_suffix_pairs(root: str) -> List[Pair]:
    _require_dir(root, 'I-HAZE/O-HAZE root')
    hazy, gt = {}, {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            stem, ext = os.path.splitext(f)
            if ext.lower() not in IMAGE_EXTENSIONS:
                continue
            if stem.endswith('_hazy'):
                hazy[stem[:-5]] = os.path.join(dirpath, f)
            elif stem.endswith('_GT'):
                gt[stem[:-3]] = os.path.join(dirpath, f)
    if not hazy:
        raise LayoutError(f"no '*_hazy.<ext>' images under {root}")
    _unpaired(sorted(f'{k}_hazy' for k in set(hazy) - set(gt)) + sorted(f'{k}_GT' for k in set(gt) - set(hazy)),
              root)
    return [(hazy[k], gt[k]) for k in sorted(hazy)]


def layout_pairs(layout: str, root: str) -> List[Pair]:
    """Pairs for ``layout`` (one of ``LAYOUTS``) under ``root``."""
    if layout == 'gopro':
        return gopro_pairs(root)
    if layout == 'reside':
        return reside_pairs(root)
    if layout in ('ihaze', 'ohaze'):
        return hazy_gt_suffix_pairs(root)
    if layout == 'folder':
        return pairs_by_name(os.path.join(root, 'lq'), os.path.join(root, 'gt'))
    raise LayoutError(f"unknown layout '{layout}'; choices: {', '.join(LAYOUTS)}")
