"""Real noisy/clean sRGB pairs as labelled domains: file-name rules, metadata files and scene splits.

No BasicSR import. A pair carries its camera (the ADL domain), ISO and scene, taken from

* ``naming: polyu``: ``<camera>_<f-number>_<shutter>_<ISO>_<scene>_<index>_{real,mean}.<ext>`` in one folder
  (PolyU, Xu et al. 2018): camera, ISO and scene from the name;
* ``naming: subfolders``: ``<root>/{noisy,gt}/`` (or ``lq``/``gt``) paired by the first number in the file
  name (``01_noise.png`` <-> ``01_gt.png``, ``3.png`` <-> ``3.png``); camera/ISO/scene from an optional
  ``meta.csv`` (``name,camera,iso,scene``; name = the noisy file name) or from the dataset options.

Splits are by scene, so no test scene is seen in training (``split_pairs_by_scene``).
"""
import csv
import os
import random
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
POLYU_NAME = re.compile(r'^(?P<camera>[^_]+)_(?P<fnum>[^_]+)_(?P<shutter>[^_]+)_(?P<iso>\d+)_(?P<scene>[^_]+)_'
                        r'(?P<index>[^_]+)_(?P<kind>real|mean)$', re.IGNORECASE)


class RealPairsError(ValueError):
    """A folder, file name or metadata row that does not fit the naming rule (named in the message)."""


@dataclass(frozen=True)
class RealPair:
    noisy: str
    clean: str
    camera: str
    iso: float
    scene: str


def _images(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        raise RealPairsError(f'folder not found: {folder}')
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))


def polyu_pairs(root: str) -> List[RealPair]:
    """Pairs of a PolyU-named folder; every ``_real`` needs its ``_mean`` and vice versa."""
    found: Dict[Tuple[str, str], str] = {}
    for name in _images(root):
        match = POLYU_NAME.match(os.path.splitext(name)[0])
        if match is None:
            raise RealPairsError(f"{os.path.join(root, name)}: not a PolyU name "
                                 f"'<camera>_<f>_<shutter>_<ISO>_<scene>_<index>_real|mean'")
        base = os.path.splitext(name)[0][:match.start('kind') - 1]
        found[(base, match.group('kind').lower())] = name
    pairs, unpaired = [], []
    for (base, kind), name in sorted(found.items()):
        other = found.get((base, 'mean' if kind == 'real' else 'real'))
        if other is None:
            unpaired.append(name)
        elif kind == 'real':
            m = POLYU_NAME.match(os.path.splitext(name)[0])
            pairs.append(RealPair(os.path.join(root, name), os.path.join(root, other), m.group('camera'),
                                  float(m.group('iso')), m.group('scene')))
    if unpaired:
        raise RealPairsError(f'unpaired PolyU files in {root}: {", ".join(unpaired[:5])}')
    return pairs


def _number(name: str) -> Optional[str]:
    match = re.search(r'\d+', name)
    return str(int(match.group())) if match else None


def _read_meta(path: str) -> Dict[str, Dict[str, str]]:
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    for key in ('name', 'camera'):
        if rows and key not in rows[0]:
            raise RealPairsError(f"{path}: missing column '{key}' (columns: name,camera,iso,scene)")
    return {row['name']: row for row in rows}


def subfolder_pairs(root: str, camera: Optional[str] = None, iso: Optional[float] = None) -> List[RealPair]:
    """Pairs of ``<root>/{noisy|lq}/`` and ``<root>/gt/`` matched by number; labels from meta.csv or arguments."""
    noisy_dir = next((os.path.join(root, d) for d in ('noisy', 'lq') if os.path.isdir(os.path.join(root, d))), None)
    if noisy_dir is None:
        raise RealPairsError(f"{root}: needs a 'noisy' (or 'lq') and a 'gt' folder")
    gt_dir = os.path.join(root, 'gt')
    clean = {}
    for name in _images(gt_dir):
        clean.setdefault(_number(name) or name, name)
    meta_path = os.path.join(root, 'meta.csv')
    meta = _read_meta(meta_path) if os.path.isfile(meta_path) else {}
    pairs, unpaired = [], []
    for name in _images(noisy_dir):
        key = _number(name) or name
        if key not in clean:
            unpaired.append(name)
            continue
        row = meta.get(name, {})
        cam = row.get('camera') or camera
        if not cam:
            raise RealPairsError(f"{os.path.join(noisy_dir, name)}: no camera (add it to {meta_path} or set the "
                                 f"dataset option 'camera')")
        row_iso = row.get('iso') or iso
        pairs.append(RealPair(os.path.join(noisy_dir, name), os.path.join(gt_dir, clean[key]), cam,
                              float(row_iso) if row_iso not in (None, '') else float('nan'),
                              row.get('scene') or f'{os.path.basename(root.rstrip(os.sep))}-{key}'))
    if unpaired:
        raise RealPairsError(f'no ground truth in {gt_dir} for: {", ".join(unpaired[:5])}')
    return pairs


def split_pairs_by_scene(pairs: Sequence[RealPair], test_scenes: Optional[Sequence[str]] = None,
                         test_fraction: float = 0.5, seed: int = 0) -> Tuple[List[RealPair], List[RealPair]]:
    """(train, test) with every scene on one side only: ``test_scenes`` if given, else a seeded fraction."""
    scenes = sorted({p.scene for p in pairs})
    if test_scenes is None:
        shuffled = scenes[:]
        random.Random(seed).shuffle(shuffled)
        n_test = max(1, round(len(scenes) * test_fraction)) if len(scenes) > 1 else 0
        test_scenes = shuffled[:n_test]
    unknown = sorted(set(test_scenes) - set(scenes))
    if unknown:
        raise RealPairsError(f'test_scenes not found: {", ".join(unknown)}; scenes: {", ".join(scenes)}')
    test = [p for p in pairs if p.scene in set(test_scenes)]
    train = [p for p in pairs if p.scene not in set(test_scenes)]
    return train, test
