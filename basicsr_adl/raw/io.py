"""Reading RAW captures: camera files through rawpy (LibRaw), or bare mosaics with a small metadata file.

Everything ends up as a ``RawCapture``: the Bayer mosaic plus its pattern, black/white levels (per canonical
channel R, G1, G2, B), white balance, colour matrix and ISO/exposure when known. ``RawCapture.packed()`` and
``RawCapture.meta()`` give what the RAW LMDB stores.

Bare mosaics (16-bit PNG/TIFF, ``.npy``, headerless little-endian uint16) carry no metadata themselves; a
JSON "sidecar" gives it (see ``docs/raw_data.md``): ``pattern``, ``black``, ``white`` and optionally ``iso``,
``exposure``, ``wb``, ``ccm``, ``sensor`` and, for headerless files, ``raw_shape`` [H, W].
Plain NumPy (+ rawpy/OpenCV/tifffile), no BasicSR import.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from basicsr_adl.raw.bayer import UnsupportedCFAError, canonical_positions, normalize_pattern, pack, red_offset
from basicsr_adl.raw.dng import LIBRAW_FLIP_TO_ORIENTATION
from basicsr_adl.raw.exif import ExifInfo, read_exif
from basicsr_adl.raw.unprocess import camera_to_srgb_matrix

MOSAIC_EXTENSIONS = ('.png', '.tif', '.tiff', '.npy')
SIDECAR_NAME = 'metadata.json'
CAMERA_EXTENSIONS = ('.dng', '.arw', '.srf', '.sr2', '.cr2', '.cr3', '.crw', '.nef', '.nrw', '.orf', '.rw2', '.raf',
                     '.pef', '.srw', '.kdc', '.dcr', '.mrw', '.3fr', '.erf', '.mef', '.mos', '.iiq', '.x3f', '.rwl',
                     '.raw')


class RawReadError(ValueError):
    """A file could not be read as RAW (truncated, not RAW, missing metadata)."""


@dataclass
class RawCapture:
    """One RAW capture. ``black``/``white``/``wb`` are per canonical channel (R, G1, G2, B)."""
    mosaic: np.ndarray
    pattern: str
    black: List[float]
    white: List[float]
    path: str = ''
    wb: Optional[List[float]] = None
    ccm: Optional[List[List[float]]] = None
    iso: Optional[float] = None
    exposure: Optional[float] = None
    sensor: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)
    # kept for writing the result back as a camera file (``basicsr_adl.raw.dng``); not stored in the LMDB
    xyz_to_cam: Optional[List[List[float]]] = None   # the file's XYZ -> camera matrix (LibRaw rgb_xyz_matrix)
    orientation: int = 1                             # TIFF Orientation
    exif: ExifInfo = field(default_factory=ExifInfo)

    def packed(self) -> np.ndarray:
        """Canonical packed (4, h, w) array, same dtype as the mosaic."""
        return pack(self.mosaic, self.pattern)

    def meta(self) -> Dict[str, Any]:
        """Metadata for the RAW LMDB (None values left out)."""
        record = {'pattern': self.pattern, 'black': [float(b) for b in self.black],
                  'white': [float(w) for w in self.white], 'source': os.path.basename(self.path),
                  'mosaic_shape': list(self.mosaic.shape), 'red_offset': list(red_offset(self.pattern))}
        for name in ('wb', 'ccm', 'iso', 'exposure', 'sensor'):
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        record.update(self.extra)
        return record


def _four(value, name: str, path: str) -> List[float]:
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 4)
    if arr.size == 3:  # R, G, B -> R, G1, G2, B
        arr = arr[[0, 1, 1, 2]]
    if arr.size != 4:
        raise RawReadError(f'{path}: "{name}" must have 1, 3 or 4 values, got {value!r}')
    return [float(v) for v in arr]


def read_camera_raw(path: str) -> RawCapture:
    """Read a camera RAW file with rawpy; one clear error for unreadable files and non-Bayer CFAs."""
    import rawpy
    if not os.path.isfile(path):
        raise RawReadError(f'RAW file not found: {path}')
    try:
        with rawpy.imread(path) as raw:
            pattern_idx = np.asarray(raw.raw_pattern)
            desc = raw.color_desc.decode('ascii', 'replace')
            if pattern_idx.shape != (2, 2) or raw.num_colors != 3:
                raise UnsupportedCFAError(
                    f'{path}: unsupported CFA (pattern {pattern_idx.shape}, colours {desc!r}); only 2x2 Bayer '
                    'sensors are supported (X-Trans and others are rejected)')
            letters = np.array([desc[i] for i in pattern_idx.reshape(-1)]).reshape(2, 2)
            pattern = normalize_pattern(letters, source=path)
            mosaic = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
            positions = canonical_positions(pattern)
            black_by_colour = list(raw.black_level_per_channel)
            black = [float(black_by_colour[pattern_idx[p]]) for p in positions]
            white_by_colour = raw.camera_white_level_per_channel
            if white_by_colour is not None and any(white_by_colour):
                white = [float(white_by_colour[pattern_idx[p]]) for p in positions]
            else:
                white = [float(raw.white_level)] * 4
            wb_by_colour = list(raw.camera_whitebalance)
            if wb_by_colour[3] == 0:
                wb_by_colour[3] = wb_by_colour[1]
            wb = [float(wb_by_colour[pattern_idx[p]]) for p in positions] if any(wb_by_colour) else None
            xyz_to_cam = np.asarray(raw.rgb_xyz_matrix)[:3]
            ccm = camera_to_srgb_matrix(xyz_to_cam).round(6).tolist() if np.any(xyz_to_cam) else None
            rgb_cam = np.asarray(raw.color_matrix)[:3, :3]
            if ccm is None and np.any(rgb_cam):  # DNGs: LibRaw gives camera -> sRGB from the file's ColorMatrix
                ccm = rgb_cam.round(6).tolist()
            other = raw.other
            iso = float(other.iso_speed) if other.iso_speed and other.iso_speed > 0 else None
            exposure = float(other.shutter_speed) if other.shutter_speed and other.shutter_speed > 0 else None
            aperture = float(other.aperture) if other.aperture and other.aperture > 0 else None
            orientation = LIBRAW_FLIP_TO_ORIENTATION.get(int(raw.sizes.flip), 1)
    except UnsupportedCFAError:
        raise
    except Exception as err:  # rawpy raises several LibRaw* classes plus OSError for truncated/bad files
        reason = err.args[0] if err.args else err
        reason = reason.decode('utf-8', 'replace') if isinstance(reason, bytes) else str(reason)
        raise RawReadError(f'{path}: not a readable camera RAW file (LibRaw/rawpy {type(err).__name__}: {reason}; '
                           'a truncated file, or not a RAW format LibRaw knows)') from err
    if wb is not None and wb[1] > 0:
        wb = [v / wb[1] for v in wb]
    exif = read_exif(path)  # LibRaw's values first; EXIF fills what LibRaw leaves out (ISO on some files)
    exif.iso = iso or exif.iso
    exif.exposure_time = exposure or exif.exposure_time
    exif.f_number = aperture or exif.f_number
    return RawCapture(mosaic=mosaic, pattern=pattern, black=black, white=white, path=path, wb=wb, ccm=ccm,
                      iso=exif.iso, exposure=exif.exposure_time, orientation=orientation, exif=exif,
                      xyz_to_cam=xyz_to_cam.round(6).tolist() if np.any(xyz_to_cam) else None)


def load_sidecar(path: str) -> Dict[str, Any]:
    """Load a JSON metadata file; a clear error names it when it is unreadable."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise RawReadError(f'cannot read metadata file {path}: {err}') from err


def metadata_for(file_path: str, sidecar: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Folder-level sidecar values, overridden by the file's own entry under ``files`` (by file name)."""
    if not sidecar:
        return {}
    merged = {k: v for k, v in sidecar.items() if k != 'files'}
    merged.update(sidecar.get('files', {}).get(os.path.basename(file_path), {}))
    return merged


def _load_mosaic_array(path: str, meta: Dict[str, Any]) -> np.ndarray:
    ext = os.path.splitext(path)[1].lower()
    if ext == '.npy':
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise RawReadError(f'{path}: not a readable .npy mosaic ({err})') from err
    elif ext in ('.tif', '.tiff'):
        import tifffile
        try:
            array = tifffile.imread(path)
        except Exception as err:
            raise RawReadError(f'{path}: not a readable TIFF mosaic ({err})') from err
    elif ext == '.png':
        import cv2
        array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if array is None:
            raise RawReadError(f'{path}: not a readable PNG mosaic')
    else:
        shape = meta.get('raw_shape')
        if not shape:
            raise RawReadError(f'{path}: headerless RAW needs "raw_shape": [H, W] in its metadata')
        height, width = (int(s) for s in shape)
        dtype = np.dtype(meta.get('raw_dtype', '<u2'))
        size = os.path.getsize(path)
        if size != height * width * dtype.itemsize:
            raise RawReadError(f'{path}: {size} bytes, expected {height * width * dtype.itemsize} for raw_shape '
                               f'{[height, width]} {dtype} (truncated or wrong shape)')
        array = np.fromfile(path, dtype=dtype).reshape(height, width)
    if array.ndim != 2:
        raise RawReadError(f'{path}: a Bayer mosaic must be 2-D (H, W), got shape {array.shape}')
    if array.dtype not in (np.uint16, np.uint8):
        if np.issubdtype(array.dtype, np.integer) and array.min() >= 0 and array.max() <= 65535:
            array = array.astype(np.uint16)
        else:
            raise RawReadError(f'{path}: mosaic dtype {array.dtype} is not an unsigned 8/16-bit integer')
    return array.astype(np.uint16, copy=False)


def read_mosaic_file(path: str, meta: Dict[str, Any]) -> RawCapture:
    """A bare mosaic plus its metadata dict (needs pattern, black, white)."""
    if not os.path.isfile(path):
        raise RawReadError(f'RAW file not found: {path}')
    missing = [k for k in ('pattern', 'black', 'white') if k not in meta]
    if missing:
        raise RawReadError(f'{path}: bare mosaic needs {", ".join(missing)} in its metadata file '
                           f'({SIDECAR_NAME} in its folder, see docs/raw_data.md; converters also take them as '
                           'options)')
    pattern = normalize_pattern(meta['pattern'], source=path)
    mosaic = _load_mosaic_array(path, meta)
    return RawCapture(mosaic=mosaic, pattern=pattern, black=_four(meta['black'], 'black', path),
                      white=_four(meta['white'], 'white', path), path=path,
                      wb=_four(meta['wb'], 'wb', path) if meta.get('wb') is not None else None,
                      ccm=meta.get('ccm'), iso=_opt_float(meta.get('iso')), exposure=_opt_float(meta.get('exposure')),
                      sensor=meta.get('sensor'))


def _opt_float(value) -> Optional[float]:
    return None if value is None else float(value)


def read_raw(path: str, meta: Optional[Dict[str, Any]] = None) -> RawCapture:
    """Read any supported file; ``meta`` (sidecar/CLI values) fills or overrides what the file says.

    Bare mosaics (.png/.tif/.tiff/.npy, or any file when ``raw_shape`` is given) go through
    ``read_mosaic_file``; everything else through rawpy.
    """
    meta = dict(meta or {})
    ext = os.path.splitext(path)[1].lower()
    if ext in MOSAIC_EXTENSIONS or 'raw_shape' in meta:
        return read_mosaic_file(path, meta)
    capture = read_camera_raw(path)
    if 'pattern' in meta and normalize_pattern(meta['pattern'], source=path) != capture.pattern:
        raise RawReadError(f'{path}: metadata says pattern {meta["pattern"]} but the file says {capture.pattern}')
    for name in ('black', 'white', 'wb'):
        if meta.get(name) is not None:
            setattr(capture, name, _four(meta[name], name, path))
    for name in ('iso', 'exposure'):
        if meta.get(name) is not None:
            setattr(capture, name, float(meta[name]))
    for name in ('ccm', 'sensor'):
        if meta.get(name) is not None:
            setattr(capture, name, meta[name])
    return capture


def read_raw_with_sidecar(path: str, overrides: Optional[Dict[str, Any]] = None) -> RawCapture:
    """``read_raw`` with the ``metadata.json`` of the file's folder (if any) and then ``overrides`` applied."""
    sidecar_path = os.path.join(os.path.dirname(os.path.abspath(path)), SIDECAR_NAME)
    sidecar = load_sidecar(sidecar_path) if os.path.isfile(sidecar_path) else None
    return read_raw(path, dict(metadata_for(path, sidecar), **(overrides or {})))


def list_camera_files(inputs: Sequence[str], what: str = 'input') -> List[str]:
    """Files named directly, plus each folder's camera files (by extension; bare mosaics too when the folder has
    a ``metadata.json``), sorted per folder. Two inputs with the same stem would write the same outputs: error."""
    files = []
    for item in inputs:
        if os.path.isdir(item):
            names = sorted(os.listdir(item))
            allowed = CAMERA_EXTENSIONS + (MOSAIC_EXTENSIONS if SIDECAR_NAME in names else ())
            found = [os.path.join(item, n) for n in names if not n.startswith('.')
                     and os.path.splitext(n)[1].lower() in allowed and os.path.isfile(os.path.join(item, n))]
            if not found:
                bare = [n for n in names if os.path.splitext(n)[1].lower() in MOSAIC_EXTENSIONS]
                hint = (f'; bare mosaics such as {bare[0]} are read only with a {SIDECAR_NAME} (pattern, black, '
                        'white) in the folder') if bare else ''
                raise RawReadError(f"{what} '{item}': the folder holds no camera RAW files "
                                   f"({', '.join(CAMERA_EXTENSIONS[:6])}, ...){hint}")
            files += found
        elif os.path.isfile(item):
            files.append(item)
        else:
            raise RawReadError(f"{what} '{item}': no such file or folder")
    unique, seen = [], set()
    for path in files:  # the same file named twice (directly and through its folder) is denoised once
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    files = unique
    stems: Dict[str, str] = {}
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in stems:
            raise RawReadError(f"{what}: '{path}' and '{stems[stem]}' would both write {stem}.dng; rename one")
        stems[stem] = path
    return files

