"""Dataset layouts -> noisy/clean RAW LMDB pairs (shared logic of the ``scripts/convert_*`` entry points).

Every converter reduces its layout to a list of ``PairSpec`` (noisy file, clean file, keys, metadata) and
hands it to ``write_pairs``, which reads, packs (canonical R, G1, G2, B), checks shapes and writes the two
LMDBs all-or-nothing. Clean captures shared by several noisy ones (SID, ELD) are stored once; the noisy
record's ``gt_key`` points at them.

Supported layouts (see ``docs/raw_data.md``):
- plain folder: ``<lq_dir>/<name>`` and ``<gt_dir>/<name>`` (any rawpy-readable file, or bare mosaics with a
  ``metadata.json`` sidecar);
- SIDD raw: ``<root>/Data/<scene>/<id>_{NOISY,GT,METADATA}_RAW_<n>.MAT`` (MATLAB v5 via scipy; v7.3/HDF5
  needs h5py);
- SID: ``<root>/<Camera>/{short,long}/*.ARW|RAF`` with ``<Camera>_{train,val,test}_list.txt`` list files;
- ELD: ``<root>/<Camera>/scene-<n>/IMG_<id>.<ext>``, noisy/reference ids as in the ELD benchmark.
"""
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from basicsr_adl.pairing import pair_names
from basicsr_adl.raw.bayer import normalize_pattern, pack, red_offset
from basicsr_adl.raw.io import SIDECAR_NAME, RawCapture, RawReadError, load_sidecar, metadata_for, read_raw
from basicsr_adl.raw.atomic import InterruptGuard, publish_together
from basicsr_adl.raw.lmdb_store import RawLMDBWriter


@dataclass
class PairSpec:
    """One noisy/clean pair to convert. ``*_meta`` fill or override what the files say."""
    lq_path: str
    gt_path: str
    lq_key: str
    gt_key: str
    lq_meta: Dict[str, Any] = field(default_factory=dict)
    gt_meta: Dict[str, Any] = field(default_factory=dict)
    loader: Optional[Callable[[str, Dict[str, Any]], Tuple[np.ndarray, Dict[str, Any]]]] = None


def sanitize_key(name: str) -> str:
    """File stem -> LMDB key (dots and other characters become ``p``/``_``: '0.04s' -> '0p04s')."""
    key = name.replace('.', 'p')
    return re.sub(r'[^A-Za-z0-9_\-]', '_', key)


def _load_capture(path: str, meta: Dict[str, Any]) -> Tuple[np.ndarray, Dict[str, Any]]:
    capture: RawCapture = read_raw(path, meta)
    record = capture.meta()
    for name, value in meta.items():  # dataset-provided fields (ratio, scene, ...) kept as given
        if name not in record and name not in ('raw_shape', 'raw_dtype', 'files'):
            record[name] = value
    return capture.packed(), record


def same_or_nested(a: str, b: str) -> bool:
    """True when two paths (after abspath/realpath) are one folder or one lies inside the other."""
    a, b = (os.path.realpath(os.path.abspath(p)) for p in (a, b))
    return a == b or a.startswith(b + os.sep) or b.startswith(a + os.sep)


def check_distinct_outputs(lq_out: str, gt_out: str) -> None:
    """The clean LMDB would replace (or live inside) the noisy one: refuse before anything is read."""
    if same_or_nested(lq_out, gt_out):
        raise ValueError(f'--out-lq {lq_out} and --out-gt {gt_out} are the same folder (or one is inside the '
                         'other): give the noisy and the clean LMDB different paths')


def write_pairs(pairs: Sequence[PairSpec], lq_out: str, gt_out: str, overwrite: bool = False,
                progress: bool = True, require_iso: bool = False) -> Dict[str, int]:
    """Read, pack and write all pairs; both LMDBs appear at ``lq_out``/``gt_out`` or neither does.

    Both are built in temporary sibling folders and renamed together once both are complete; an error,
    Ctrl-C or SIGTERM (``atomic.Interrupted``) removes them, and a failed ``overwrite`` keeps the old pair.
    """
    check_distinct_outputs(lq_out, gt_out)
    if not pairs:
        raise ValueError('no noisy/clean pairs found to convert')
    for out in (lq_out, gt_out):
        if os.path.exists(out) and not overwrite:
            raise FileExistsError(f'{out} already exists (use --overwrite)')
    lq_writer = RawLMDBWriter(lq_out, overwrite=overwrite, publish=False)
    gt_writer = RawLMDBWriter(gt_out, overwrite=overwrite, publish=False)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(pairs), desc=f'-> {os.path.basename(lq_out)}', unit='pair')
    written_gt: Dict[str, Tuple[int, ...]] = {}
    try:
        with InterruptGuard() as guard:
            with lq_writer, gt_writer:
                for spec in pairs:
                    load = spec.loader or _load_capture
                    lq, lq_meta = load(spec.lq_path, spec.lq_meta)
                    if spec.gt_key not in written_gt:
                        gt, gt_meta = load(spec.gt_path, spec.gt_meta)
                        gt_writer.put(spec.gt_key, gt, gt_meta)
                        written_gt[spec.gt_key] = tuple(gt.shape)
                    if tuple(lq.shape) != written_gt[spec.gt_key]:
                        raise ValueError(f'shape mismatch: noisy {spec.lq_path} packs to {tuple(lq.shape)} but '
                                         f'clean {spec.gt_path} to {written_gt[spec.gt_key]}')
                    if require_iso and lq_meta.get('iso') is None:
                        raise RawReadError(f'{spec.lq_path}: no ISO in the file or the dataset metadata')
                    lq_meta['gt_key'] = spec.gt_key
                    lq_writer.put(spec.lq_key, lq, lq_meta)
                    if bar is not None:
                        bar.update(1)
            with guard.holding():  # both complete: publish them as one
                publish_together([(lq_writer.built_dir, lq_writer.path), (gt_writer.built_dir, gt_writer.path)],
                                 overwrite=overwrite)
    except BaseException:
        lq_writer.abort()
        gt_writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return {'pairs': len(pairs), 'clean': len(written_gt)}


# -- plain folder ------------------------------------------------------------------------------------------
def _data_files(folder: str) -> List[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'folder not found: {folder}')
    return sorted(f for f in os.listdir(folder)
                  if not f.startswith('.') and f != SIDECAR_NAME and os.path.isfile(os.path.join(folder, f)))


def folder_pairs(lq_dir: str, gt_dir: str, overrides: Optional[Dict[str, Any]] = None,
                 filename_tmpl: Optional[str] = None) -> List[PairSpec]:
    """Pairs of two folders by name (``basicsr_adl.pairing``: same stems, or the same without marker words such
    as noisy/gt; or noisy stem = ``filename_tmpl.format(clean stem)``); both LMDBs use the pair's common name
    as key. ``metadata.json`` sidecars and ``overrides`` add metadata."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    sidecars = {}
    for folder in (lq_dir, gt_dir):
        path = os.path.join(folder, SIDECAR_NAME)
        sidecars[folder] = load_sidecar(path) if os.path.isfile(path) else None
    named = pair_names(_data_files(lq_dir), _data_files(gt_dir), filename_tmpl, f'{lq_dir} / {gt_dir}',
                       '--filename-tmpl')
    pairs = []
    for name, gt_name, common in named:
        lq_path, gt_path = os.path.join(lq_dir, name), os.path.join(gt_dir, gt_name)
        key = sanitize_key(common)
        lq_meta = dict(metadata_for(lq_path, sidecars[lq_dir]), **overrides)
        gt_meta = dict(metadata_for(gt_path, sidecars[gt_dir]), **overrides)
        pairs.append(PairSpec(lq_path, gt_path, key, key, lq_meta, gt_meta))
    return pairs


# -- SIDD ----------------------------------------------------------------------------------------------------
SIDD_SCENE = re.compile(r'^(\d{4})_(\d{3})_([A-Z0-9]+)_(\d+)_(\d+)_(\d+)_([A-Z])$')
SIDD_FILE = re.compile(r'^(\d+)_(NOISY|GT)_RAW_(\d+)\.MAT$', re.IGNORECASE)
CFA_TAG_ID = 33422  # TIFF/EXIF CFAPattern


def load_mat(path: str) -> Dict[str, Any]:
    """MATLAB file as a dict: v5 through scipy, v7.3 (HDF5) through h5py when installed."""
    import scipy.io
    try:
        return scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError as err:  # scipy raises this for v7.3 files
        try:
            import h5py
        except ImportError:
            raise RawReadError(f'{path}: MATLAB v7.3 (HDF5) file; reading it needs h5py (pip install h5py)') from err
        out = {}
        with h5py.File(path, 'r') as handle:
            for name, item in handle.items():
                if isinstance(item, h5py.Dataset):
                    out[name] = np.array(item).T  # MATLAB is column-major
        return out
    except (ValueError, OSError, TypeError) as err:
        raise RawReadError(f'{path}: not a readable MATLAB file ({err})') from err


def _find_cfa(obj: Any, depth: int = 0) -> Optional[List[int]]:
    """Search a loaded SIDD metadata struct for the CFA pattern (field CFAPattern/CFAPattern2 or tag 33422)."""
    if depth > 6 or obj is None:
        return None
    if isinstance(obj, dict):
        items = list(obj.items())
    elif hasattr(obj, '_fieldnames'):
        items = [(n, getattr(obj, n)) for n in obj._fieldnames]
    elif isinstance(obj, np.ndarray) and obj.dtype == object:
        for element in obj.reshape(-1):
            found = _find_cfa(element, depth + 1)
            if found:
                return found
        return None
    else:
        return None
    names = {n for n, _ in items}
    if 'ID' in names and 'Value' in names:
        values = dict(items)
        if int(np.asarray(values['ID']).reshape(-1)[0]) == CFA_TAG_ID:
            return [int(v) for v in np.asarray(values['Value']).reshape(-1)[:4]]
    for name, value in items:
        if name in ('CFAPattern', 'CFAPattern2'):
            arr = np.asarray(value).reshape(-1)
            if arr.size >= 4 and np.issubdtype(arr.dtype, np.number):
                return [int(v) for v in arr[:4]]
    for name, value in items:
        if not name.startswith('__'):
            found = _find_cfa(value, depth + 1)
            if found:
                return found
    return None


def cfa_indices_to_pattern(indices: Sequence[int], source: str = '') -> str:
    """EXIF CFA colour indices (0=R, 1=G, 2=B) -> 'RGGB' etc."""
    letters = {0: 'R', 1: 'G', 2: 'B'}
    try:
        return normalize_pattern(''.join(letters[int(i)] for i in indices), source)
    except KeyError as err:
        raise RawReadError(f'{source}: CFA colour index {err} is not R/G/B') from err


def _sidd_loader(path: str, meta: Dict[str, Any]) -> Tuple[np.ndarray, Dict[str, Any]]:
    mat = load_mat(path)
    if 'x' not in mat:
        raise RawReadError(f'{path}: no variable "x" (SIDD raw image) in the MAT file')
    mosaic = np.asarray(mat['x'])
    if mosaic.ndim != 2:
        raise RawReadError(f'{path}: "x" has shape {mosaic.shape}, expected a 2-D Bayer mosaic')
    pattern = meta['pattern']
    record = {k: v for k, v in meta.items() if k != 'pattern'}
    if np.issubdtype(mosaic.dtype, np.floating):  # SIDD stores normalised [0, 1] doubles
        packed = pack(mosaic.astype(np.float32), pattern)
        record.update({'black': [0.0] * 4, 'white': [1.0] * 4})
    else:
        packed = pack(mosaic.astype(np.uint16), pattern)
        if 'black' not in record or 'white' not in record:
            raise RawReadError(f'{path}: integer SIDD mosaic needs --black and --white')
    record.update({'pattern': pattern, 'mosaic_shape': list(mosaic.shape), 'red_offset': list(red_offset(pattern)),
                   'source': os.path.basename(path)})
    return packed, record


def sidd_pairs(root: str, pattern_overrides: Optional[Dict[str, str]] = None,
               extra_meta: Optional[Dict[str, Any]] = None) -> List[PairSpec]:
    """SIDD Small/Medium raw layout. Sensor = phone code (GP, IP, S6, N6, G4), ISO from the scene name."""
    data_dir = os.path.join(root, 'Data') if os.path.isdir(os.path.join(root, 'Data')) else root
    pattern_overrides = pattern_overrides or {}
    pairs = []
    scenes = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
    if not scenes:
        raise FileNotFoundError(f'no SIDD scene folders in {data_dir}')
    for scene in scenes:
        match = SIDD_SCENE.match(scene)
        if not match:
            raise RawReadError(f'{os.path.join(data_dir, scene)}: not a SIDD scene folder name '
                               '(expected e.g. 0001_001_S6_00100_00060_3200_L)')
        phone, iso, shutter = match.group(3), float(match.group(4)), float(match.group(5))
        folder = os.path.join(data_dir, scene)
        files = sorted(os.listdir(folder))
        for name in files:
            file_match = SIDD_FILE.match(name)
            if not file_match or file_match.group(2).upper() != 'NOISY':
                continue
            number = file_match.group(3)
            stem = name[:file_match.start(2)]
            gt_name = next((f for f in files if f.upper() == f'{stem}GT_RAW_{number}.MAT'.upper()), None)
            if gt_name is None:
                raise FileNotFoundError(f'no GT file for {os.path.join(folder, name)}')
            meta_name = next((f for f in files if f.upper() == f'{stem}METADATA_RAW_{number}.MAT'.upper()), None)
            if phone in pattern_overrides:
                pattern = normalize_pattern(pattern_overrides[phone], source=f'--pattern {phone}')
            elif meta_name is not None:
                meta_path = os.path.join(folder, meta_name)
                indices = _find_cfa(load_mat(meta_path))
                if indices is None:
                    raise RawReadError(f'{meta_path}: no CFA pattern found; pass --pattern {phone}=RGGB (etc.)')
                pattern = cfa_indices_to_pattern(indices, meta_path)
            else:
                raise RawReadError(f'{os.path.join(folder, name)}: no METADATA file; pass --pattern {phone}=RGGB')
            meta = dict(extra_meta or {})
            meta.update({'pattern': pattern, 'sensor': phone, 'iso': iso, 'shutter': shutter, 'scene': scene})
            key = sanitize_key(f'{scene}_{number}')
            pairs.append(PairSpec(os.path.join(folder, name), os.path.join(folder, gt_name), key, key, dict(meta),
                                  dict(meta), loader=_sidd_loader))
    return pairs


# -- SID -----------------------------------------------------------------------------------------------------
SID_EXPOSURE = re.compile(r'_(\d+(?:\.\d+)?)s$')
SID_SENSORS = {'Sony': 'SonyA7S2', 'Fuji': 'FujiXT2'}


def sid_exposure(path: str) -> float:
    """Exposure time in seconds from a SID file name like 10003_00_0.04s.ARW."""
    match = SID_EXPOSURE.search(os.path.splitext(os.path.basename(path))[0])
    if not match:
        raise RawReadError(f'{path}: SID file name has no exposure time (expected e.g. 10003_00_0.04s.ARW)')
    return float(match.group(1))


def sid_pairs(root: str, list_file: str, sensor: Optional[str] = None) -> List[PairSpec]:
    """Pairs from a SID list file (``./Sony/short/X.ARW ./Sony/long/Y.ARW ISO200 F9`` per line)."""
    list_path = list_file if os.path.isabs(list_file) else os.path.join(root, list_file)
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f'SID list file not found: {list_path}')
    pairs = []
    with open(list_path) as handle:
        for line_no, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise RawReadError(f'{list_path}:{line_no}: expected "<short> <long> [ISO<n>] [F<n>]"')
            short, long = (os.path.normpath(os.path.join(root, p)) for p in parts[:2])
            iso = next((float(p[3:]) for p in parts[2:] if p.upper().startswith('ISO')), None)
            camera = os.path.normpath(parts[0]).split(os.sep)[0]
            name = sensor or SID_SENSORS.get(camera, camera)
            lq_exp, gt_exp = sid_exposure(short), sid_exposure(long)
            common = {'sensor': name, 'iso': iso}
            lq_meta = dict(common, exposure=lq_exp)
            gt_meta = dict(common, exposure=gt_exp)
            lq_key = sanitize_key(os.path.splitext(os.path.basename(short))[0])
            gt_key = sanitize_key(os.path.splitext(os.path.basename(long))[0])
            pairs.append(PairSpec(short, long, lq_key, gt_key, lq_meta, gt_meta))
    return pairs


# -- ELD -----------------------------------------------------------------------------------------------------
ELD_NOISY_IDS = (4, 9, 14, 5, 10, 15)   # the ELD benchmark's ratio-100 and ratio-200 inputs
ELD_GT_IDS = (1, 6, 11, 16)             # long-exposure references; each input uses the nearest one


def eld_pairs(root: str, camera: str, scenes: Optional[Iterable[int]] = None,
              noisy_ids: Sequence[int] = ELD_NOISY_IDS, gt_ids: Sequence[int] = ELD_GT_IDS,
              sensor: Optional[str] = None) -> List[PairSpec]:
    """ELD per-camera scenes: ``<root>/<camera>/scene-<n>/IMG_<id:04d>.<ext>``.

    ISO and exposure come from the file (rawpy) or an optional ``metadata.json`` in the scene folder. The
    ratio stored with each input is (GT exposure x GT ISO) / (input exposure x input ISO), the brightness
    gap ELD's evaluation scales inputs by.
    """
    cam_dir = os.path.join(root, camera)
    if not os.path.isdir(cam_dir):
        raise FileNotFoundError(f'ELD camera folder not found: {cam_dir}')
    available = sorted(int(d.split('-')[1]) for d in os.listdir(cam_dir) if re.match(r'^scene-\d+$', d))
    scenes = list(scenes) if scenes is not None else available
    pairs = []
    for scene in scenes:
        folder = os.path.join(cam_dir, f'scene-{scene}')
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'ELD scene folder not found: {folder}')
        by_id = {}
        for name in os.listdir(folder):
            match = re.match(r'^IMG_(\d+)\.\w+$', name)
            if match:
                by_id[int(match.group(1))] = os.path.join(folder, name)
        sidecar_path = os.path.join(folder, SIDECAR_NAME)
        sidecar = load_sidecar(sidecar_path) if os.path.isfile(sidecar_path) else None
        for img_id in noisy_ids:
            if img_id not in by_id:
                raise FileNotFoundError(f'{folder}: IMG_{img_id:04d} missing')
            gt_id = min(gt_ids, key=lambda g: abs(g - img_id))
            if gt_id not in by_id:
                raise FileNotFoundError(f'{folder}: reference IMG_{gt_id:04d} missing')
            base = {'sensor': sensor or camera, 'scene': scene}
            lq_meta = dict(base, **metadata_for(by_id[img_id], sidecar))
            gt_meta = dict(base, **metadata_for(by_id[gt_id], sidecar))
            pairs.append(PairSpec(by_id[img_id], by_id[gt_id], f'{camera}_scene{scene}_{img_id:04d}',
                                  f'{camera}_scene{scene}_{gt_id:04d}', lq_meta, gt_meta, loader=_eld_loader))
    return pairs


def _eld_loader(path: str, meta: Dict[str, Any]) -> Tuple[np.ndarray, Dict[str, Any]]:
    return _load_capture(path, meta)


def add_eld_ratios(pairs: Sequence[PairSpec]) -> None:
    """Fill ``ratio`` in each input's metadata from file/sidecar exposure and ISO (reads headers only once)."""
    cache: Dict[str, Tuple[Optional[float], Optional[float]]] = {}

    def exposure_iso(path: str, meta: Dict[str, Any]):
        if path not in cache:
            exp, iso = meta.get('exposure'), meta.get('iso')
            if exp is None or iso is None:
                capture = read_raw(path, meta)
                exp = exp if exp is not None else capture.exposure
                iso = iso if iso is not None else capture.iso
            cache[path] = (exp, iso)
        return cache[path]

    for spec in pairs:
        lq_exp, lq_iso = exposure_iso(spec.lq_path, spec.lq_meta)
        gt_exp, gt_iso = exposure_iso(spec.gt_path, spec.gt_meta)
        if lq_iso is None:
            raise RawReadError(f'{spec.lq_path}: no ISO in the file or in {SIDECAR_NAME}; ELD inputs need one')
        if not lq_exp or not gt_exp:
            raise RawReadError(f'{spec.lq_path}: exposure time unknown (file or {SIDECAR_NAME})')
        spec.lq_meta.update({'iso': lq_iso, 'exposure': lq_exp,
                             'ratio': (gt_exp * (gt_iso or lq_iso)) / (lq_exp * lq_iso)})
        spec.gt_meta.update({'iso': gt_iso, 'exposure': gt_exp})
