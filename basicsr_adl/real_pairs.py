"""Real noisy/clean sRGB pairs as labelled domains: file-name rules, metadata files and scene splits.

No BasicSR import. A pair carries its camera (the ADL domain), ISO and scene, taken from

* ``naming: polyu``: ``<camera>_<f-number>_<shutter>_<ISO>_<scene>_<index>_{real,mean}.<ext>`` in one folder
  (PolyU, Xu et al. 2018): camera, ISO and scene from the name. Empty fields are ignored (the real set has
  ``NikonD800_6-3_125_5000_plant__4_real.JPG``: camera NikonD800, f/6.3, 1/125 s, ISO 5000, scene ``plant``,
  index 4); more than one field between ISO and index is a scene of several words (joined by ``_``).
  ``_real`` pairs with the ``_mean`` of exactly the same prefix;
* ``naming: subfolders``: ``<root>/{noisy,gt}/`` (or ``lq``/``gt``) paired by name (``basicsr_adl.pairing``:
  equal stems, or equal after removing marker words such as NOISY/GT, noise/gt; ``0001_NOISY_SRGB_011.PNG``
  <-> ``0001_GT_SRGB_011.PNG``, ``01_noise.png`` <-> ``01_gt.png``, ``3.png`` <-> ``3.png``), or by the
  option ``filename_tmpl`` (noisy stem = ``filename_tmpl.format(gt stem)``); camera/ISO/scene from an optional
  ``meta.csv`` (``name,camera,iso,scene``; name = the noisy file name) or from the dataset options (default
  scene: ``<root folder>-<pair name>``, the pair name being the common stem, e.g. ``nam-01``).

Splits are by scene, so no test scene is seen in training (``split_pairs_by_scene``).
"""
import csv
import os
import random
import re
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from basicsr_adl.errors import DataError
from basicsr_adl.pairing import PairingError, pair_names

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
POLYU_KIND = re.compile(r'^(?P<base>.+)_(?P<kind>real|mean)$', re.IGNORECASE)
POLYU_FORM = "'<camera>_<f>_<shutter>_<ISO>_<scene>_<index>_real|mean'"


class RealPairsError(DataError, ValueError):
    """A folder, file name or metadata row that does not fit the naming rule (named in the message); a
    ``DataError``, so ``train.py`` prints it as one line."""


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


class PolyUName(NamedTuple):
    """The fields of a PolyU file name (f-number and shutter as written, e.g. '6-3' for f/6.3)."""
    base: str
    kind: str
    camera: str
    fnum: str
    shutter: str
    iso: float
    scene: str
    index: str


def parse_polyu_name(stem: str) -> Optional[PolyUName]:
    """Fields of a PolyU stem, or None. Empty fields (``plant__4``) are dropped before reading by position,
    because the real set has them and a field shifted by one would silently give a wrong ISO."""
    match = POLYU_KIND.match(stem)
    if match is None:
        return None
    fields = [f for f in match.group('base').split('_') if f]
    if len(fields) < 6 or not fields[3].isdigit():
        return None
    return PolyUName(match.group('base'), match.group('kind').lower(), fields[0], fields[1], fields[2],
                     float(fields[3]), '_'.join(fields[4:-1]), fields[-1])


def polyu_pairs(root: str) -> List[RealPair]:
    """Pairs of a PolyU-named folder; every ``_real`` needs the ``_mean`` of the same prefix and vice versa."""
    found: Dict[Tuple[str, str], Tuple[str, PolyUName]] = {}
    for name in _images(root):
        parsed = parse_polyu_name(os.path.splitext(name)[0])
        if parsed is None:
            raise RealPairsError(f"{os.path.join(root, name)}: not a PolyU name {POLYU_FORM}")
        other = found.setdefault((parsed.base, parsed.kind), (name, parsed))
        if other[0] != name:
            raise RealPairsError(f'ambiguous PolyU files in {root}: {other[0]} and {name} are both '
                                 f'{parsed.base}_{parsed.kind}')
    pairs, unpaired = [], []
    for (base, kind), (name, parsed) in sorted(found.items()):
        other = found.get((base, 'mean' if kind == 'real' else 'real'))
        if other is None:
            unpaired.append(name)
        elif kind == 'real':
            pairs.append(RealPair(os.path.join(root, name), os.path.join(root, other[0]), parsed.camera,
                                  parsed.iso, parsed.scene))
    if unpaired:
        more = f' (+{len(unpaired) - 5} more)' if len(unpaired) > 5 else ''
        raise RealPairsError(f'{len(unpaired)} unpaired PolyU file(s) in {root}: {", ".join(unpaired[:5])}{more}')
    return pairs


def _read_meta(path: str) -> Dict[str, Dict[str, str]]:
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    for key in ('name', 'camera'):
        if rows and key not in rows[0]:
            raise RealPairsError(f"{path}: missing column '{key}' (columns: name,camera,iso,scene)")
    return {row['name']: row for row in rows}


def subfolder_pairs(root: str, camera: Optional[str] = None, iso: Optional[float] = None,
                    filename_tmpl: Optional[str] = None, tmpl_option: str = 'filename_tmpl') -> List[RealPair]:
    """Pairs of ``<root>/{noisy|lq}/`` and ``<root>/gt/`` matched by name (``basicsr_adl.pairing``) or by
    ``filename_tmpl`` (set through the option ``tmpl_option``, named in errors); labels from meta.csv or the
    arguments."""
    noisy_dir = next((os.path.join(root, d) for d in ('noisy', 'lq') if os.path.isdir(os.path.join(root, d))), None)
    if noisy_dir is None:
        raise RealPairsError(f"{root}: needs a 'noisy' (or 'lq') and a 'gt' folder")
    gt_dir = os.path.join(root, 'gt')
    try:
        named = pair_names(_images(noisy_dir), _images(gt_dir), filename_tmpl, f'{noisy_dir} / {gt_dir}', tmpl_option)
    except PairingError as err:
        raise RealPairsError(str(err)) from None
    meta_path = os.path.join(root, 'meta.csv')
    meta = _read_meta(meta_path) if os.path.isfile(meta_path) else {}
    pairs = []
    for name, clean, key in named:
        row = meta.get(name, {})
        cam = row.get('camera') or camera
        if not cam:
            raise RealPairsError(f"{os.path.join(noisy_dir, name)}: no camera (add it to {meta_path} or set the "
                                 f"dataset option 'camera')")
        row_iso = row.get('iso') or iso
        pairs.append(RealPair(os.path.join(noisy_dir, name), os.path.join(gt_dir, clean), cam,
                              float(row_iso) if row_iso not in (None, '') else float('nan'),
                              row.get('scene') or f'{os.path.basename(root.rstrip(os.sep))}-{key}'))
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
