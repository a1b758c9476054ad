"""Embedded default RAW data: a small multi-sensor noisy/clean set built from the sample photos installed packages ship.

Why: the demo, the evidence scripts and the tests need RAW data from several sensors without downloading
SIDD/SID/ELD. Each photo crop is turned into RAW by the inverse camera pipeline (``unprocess.py``) with one
sensor's colour matrix, white balance, CFA pattern and black/white levels, then given that sensor's calibrated
noise (``noise_models.py``) at an ISO drawn from its range.

The split has ADL's premise, target *scarcity* (paper, Sec. 1 and Fig. 3: ~20 pairs of one new sensor against
large, diverse sources). Our choices:

* the **target** sensor's training pairs come from few photos (``TARGET_PHOTOS``, 2) and a narrow ISO band
  (``target_iso_band``: a slice of its log-ISO range, default 0.3-0.6); how many the training uses is the
  dataset option ``datasets.train.target_pairs`` (a seeded subset), so one build serves a whole scarcity sweep;
* its **test** pairs come from photos no sensor trains on (``TEST_PHOTOS``) and span its whole ISO range
  (stratified in log ISO), so the test asks what the target set alone cannot teach: other scenes, other ISOs;
* the **sources** cover every other suitable photo (``SOURCE_PHOTOS``: scikit-image's and matplotlib's RGB
  photos and two grey ones), crops at scales 0.25-1x, over each sensor's whole ISO range.

Output (all RAW LMDB, see ``lmdb_store.py``)::

    <out>/manifest.json
    <out>/<sensor>/{train,test}_{lq,gt}.lmdb

Plain NumPy, no BasicSR import.
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from basicsr_adl.raw.atomic import InterruptGuard, make_temp_dir, publish_together, remove_temp_dir
from basicsr_adl.raw.bayer import pack
from basicsr_adl.raw.lmdb_store import RawLMDBWriter
from basicsr_adl.raw.noise_models import SENSOR_PROFILES, get_profile, synthesize_noisy_uint16
from basicsr_adl.raw.unprocess import UnprocessParams, camera_to_srgb_matrix, mosaic_rgb, unprocess_to_linear_camera

MANIFEST_FORMAT = 'basicsr_adl.embedded_raw'
DEFAULT_OUT = os.path.join('datasets', 'embedded', 'raw')
DEFAULT_TARGET = 'IMX686'
MANIFEST_VERSION = 2  # 2: scarce target (few photos, narrow ISO band), held-out test photos, wide sources
#: the target's few training scenes
TARGET_PHOTOS = ('astronaut', 'rocket')
#: photos no sensor trains on: the target's test pairs (skimage's ``cat`` is this ``chelsea`` again: unused)
TEST_PHOTOS = ('chelsea', 'coffee')
#: every other suitable photo the installed packages ship ('mpl:' = matplotlib's sample data; camera and moon
#: are grey photos, used as colourless scenes)
SOURCE_PHOTOS = ('astronaut', 'rocket', 'immunohistochemistry', 'hubble_deep_field', 'retina', 'mpl:grace_hopper.jpg',
                 'camera', 'moon')
DEFAULT_TARGET_ISO_BAND = (0.3, 0.6)  # [choice] fraction of the target's log-ISO range it trains on
TARGET_SCALES, SOURCE_SCALES = (0.5, 1.0), (0.25, 1.0)  # [choice] random rescale of a photo before cropping


@dataclass(frozen=True)
class SensorColour:
    """Colour side of a synthetic camera: XYZ->camera matrix, CFA pattern, white-balance gain ranges."""
    xyz_to_camera: Tuple[float, ...]   # 9 values, row-major, as in DNG ColorMatrix (x 1/10000)
    pattern: str
    red_gain: Tuple[float, float]
    blue_gain: Tuple[float, float]
    note: str


# The Sony/Nikon/Canon matrices are the cameras' Adobe DNG ColorMatrix values as tabulated by dcraw/LibRaw
# (ILCE-7S, D850, EOS 5D Mark IV); they only need to make the sensors' colours differ, not be colorimetric.
# The two phone matrices, all WB ranges and the IMX686/HuaweiPhone CFA patterns are [choice].
SENSOR_COLOURS: Dict[str, SensorColour] = {
    'SonyA7S2': SensorColour((5838, -1430, -246, -3497, 11477, 2297, -748, 1885, 5778), 'RGGB', (1.9, 2.5),
                             (1.4, 1.8), 'DNG ColorMatrix of the Sony ILCE-7S (dcraw table)'),
    'NikonD850': SensorColour((10405, -3755, -1270, -5461, 13787, 1793, -1040, 2015, 6785), 'RGGB', (1.8, 2.2),
                              (1.3, 1.6), 'DNG ColorMatrix of the Nikon D850 (dcraw table)'),
    'CanonEOS5D4': SensorColour((6446, -366, -864, -4436, 12204, 2513, -952, 2496, 6348), 'RGGB', (1.9, 2.3),
                                (1.5, 1.9), 'DNG ColorMatrix2 of the Canon EOS 5D Mark IV'),
    'IMX686': SensorColour((7000, -1500, -600, -4500, 12500, 2200, -900, 2000, 6200), 'GRBG', (1.7, 2.1),
                           (1.6, 2.2), '[choice] synthetic phone matrix'),
    'HuaweiPhone': SensorColour((9000, -2800, -900, -5000, 13200, 2000, -1100, 2300, 6500), 'BGGR', (1.6, 2.0),
                                (1.8, 2.4), '[choice] synthetic phone matrix'),
}


def load_photos(names: Sequence[str]) -> List[np.ndarray]:
    """RGB uint8 sample photos shipped with scikit-image (``name``) or matplotlib (``mpl:<file>``); no download.
    Grey photos become three equal channels."""
    photos = []
    for name in names:
        if name.startswith('mpl:'):
            import matplotlib.cbook
            import matplotlib.image
            img = np.asarray(matplotlib.image.imread(matplotlib.cbook.get_sample_data(name[4:], asfileobj=False)))
        else:
            import skimage.data
            img = getattr(skimage.data, name)()
        if img.dtype != np.uint8:
            raise ValueError(f'sample photo {name} is {img.dtype}, not an 8-bit photo')
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] < 3:
            raise ValueError(f'sample photo {name} is not an RGB or grey photo')
        photos.append(np.ascontiguousarray(img[..., :3]))
    return photos


def random_crop_rgb(photo: np.ndarray, size: int, rng: np.random.Generator,
                    scales: Tuple[float, float] = TARGET_SCALES) -> np.ndarray:
    """Random rescale (``scales``, at least what the crop needs), crop ``size`` x ``size`` and flip of an RGB photo."""
    import cv2
    height, width = photo.shape[:2]
    min_scale = size / min(height, width)
    scale = rng.uniform(max(scales[0], min_scale), max(scales[1], min_scale))
    if abs(scale - 1.0) > 1e-3:
        photo = cv2.resize(photo, (max(size, round(width * scale)), max(size, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    height, width = photo.shape[:2]
    top, left = rng.integers(0, height - size + 1), rng.integers(0, width - size + 1)
    crop = photo[top:top + size, left:left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


def make_clean_packed(rgb: np.ndarray, sensor: str, rng: np.random.Generator,
                      patch_size: int) -> Tuple[np.ndarray, Dict]:
    """Unprocess one RGB crop into the sensor's RAW; returns packed uint16 (4, P, P) and its metadata."""
    profile, colour = get_profile(sensor), SENSOR_COLOURS[sensor]
    gains = np.array([rng.uniform(*colour.red_gain), 1.0, rng.uniform(*colour.blue_gain)])
    params = UnprocessParams(camera_to_srgb=camera_to_srgb_matrix(np.array(colour.xyz_to_camera).reshape(3, 3)),
                             wb_gains=gains, black=profile.black, white=profile.white, pattern=colour.pattern)
    camera = unprocess_to_linear_camera(rgb, params)
    brightness = rng.uniform(0.25, 1.0)  # darker scenes -> relatively more noise, as at high ISO
    mosaic = mosaic_rgb(camera * brightness, colour.pattern)
    dn = np.clip(np.rint(mosaic * profile.range_dn + profile.black), 0, profile.white).astype(np.uint16)
    packed = pack(dn, colour.pattern)[:, :patch_size, :patch_size]
    meta = params.as_meta()
    meta.update({'sensor': sensor, 'brightness': round(float(brightness), 4)})
    return np.ascontiguousarray(packed), meta


def _split_counts(sensors: Sequence[str], target: str, target_train: int, target_test: int, source_train: int,
                  source_test: int) -> Dict[str, Tuple[int, int]]:
    return {s: (target_train, target_test) if s == target else (source_train, source_test) for s in sensors}


def iso_band(iso_range: Tuple[float, float], band: Tuple[float, float]) -> Tuple[float, float]:
    """The ISOs between fractions ``band`` of the log-ISO range (0 = lowest ISO, 1 = highest)."""
    lo, hi = np.log(iso_range[0]), np.log(iso_range[1])
    return float(np.exp(lo + band[0] * (hi - lo))), float(np.exp(lo + band[1] * (hi - lo)))


def stratified_isos(iso_range: Tuple[float, float], count: int) -> List[float]:
    """``count`` ISOs evenly spread in log ISO over the whole range (bin centres), so a small test set spans it."""
    lo, hi = np.log(iso_range[0]), np.log(iso_range[1])
    return [float(np.round(np.exp(lo + (i + 0.5) / count * (hi - lo)))) for i in range(count)]


def _log_uniform_iso(iso_range: Tuple[float, float], rng: np.random.Generator) -> float:
    lo, hi = np.log(iso_range[0]), np.log(iso_range[1])
    return float(np.round(np.exp(rng.uniform(lo, hi))))


def build_embedded_raw(out_dir: str = DEFAULT_OUT, patch_size: int = 128, target: str = DEFAULT_TARGET,
                       sensors: Optional[Sequence[str]] = None, target_train: int = 32, target_test: int = 12,
                       source_train: int = 48, source_test: int = 4, seed: int = 0,
                       target_iso_band: Tuple[float, float] = DEFAULT_TARGET_ISO_BAND, overwrite: bool = False,
                       progress: bool = False) -> Dict:
    """Build the embedded multi-sensor RAW set at ``out_dir``; returns the manifest.

    ``patch_size`` is in packed pixels (the mosaic is twice as large). ``target_train`` pairs are built for the
    target (a run picks fewer with ``datasets.train.target_pairs``). The folder appears only when complete: it is
    built in a temporary sibling folder (``atomic.make_temp_dir``) and renamed into place; an error, Ctrl-C or
    SIGTERM removes it, and a failed ``overwrite`` keeps the old folder.
    """
    sensors = list(sensors or SENSOR_PROFILES)
    unknown = [s for s in sensors if s not in SENSOR_COLOURS]
    if unknown:
        raise ValueError(f'no embedded camera model for sensors {unknown}; known: {list(SENSOR_COLOURS)}')
    if target not in sensors:
        raise ValueError(f'target sensor {target!r} is not among sensors {sensors}')
    if not 0 <= target_iso_band[0] < target_iso_band[1] <= 1:
        raise ValueError(f'target_iso_band must be two fractions 0 <= low < high <= 1, got {tuple(target_iso_band)}')
    if min(target_train, target_test) < 1 or min(source_train, source_test) < 0:
        raise ValueError(f'need at least 1 target training and test pair and no negative source count, got '
                         f'target {target_train}/{target_test}, sources {source_train}/{source_test}')
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir) and not overwrite:
        raise FileExistsError(f'{out_dir} already exists (use overwrite=True / --overwrite)')
    counts = _split_counts(sensors, target, target_train, target_test, source_train, source_test)
    names = sorted(set(TARGET_PHOTOS + TEST_PHOTOS + SOURCE_PHOTOS))
    photos = dict(zip(names, load_photos(names)))
    mosaic_size = 2 * patch_size + 2  # +2: room for the pattern offset
    total = sum(a + b for a, b in counts.values())
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc='embedded RAW', unit='pair')
    guard = InterruptGuard().__enter__()
    tmp = None
    try:
        tmp = make_temp_dir(out_dir)
        domains = {}
        for sensor_index, sensor in enumerate(sensors):
            profile = get_profile(sensor)
            rng = np.random.default_rng([seed, sensor_index])
            is_target = sensor == target
            train_isos = iso_band(profile.iso_range, target_iso_band) if is_target else tuple(profile.iso_range)
            plan = {  # split -> (photos, crop scales)
                'train': (TARGET_PHOTOS if is_target else SOURCE_PHOTOS, TARGET_SCALES if is_target else SOURCE_SCALES),
                'test': (TEST_PHOTOS, TARGET_SCALES)}
            entry = {'role': 'target' if is_target else 'source', 'iso_range': list(profile.iso_range),
                     'train_iso_range': [round(v, 1) for v in train_isos],
                     'black': profile.black, 'white': profile.white, 'pattern': SENSOR_COLOURS[sensor].pattern,
                     'noise_source': profile.source, 'colour_source': SENSOR_COLOURS[sensor].note,
                     'train_photos': list(plan['train'][0]), 'test_photos': list(TEST_PHOTOS)}
            for split, count in zip(('train', 'test'), counts[sensor]):
                photo_names, scales = plan[split]
                test_isos = stratified_isos(profile.iso_range, count) if split == 'test' else None
                lq_rel, gt_rel = f'{sensor}/{split}_lq.lmdb', f'{sensor}/{split}_gt.lmdb'
                with RawLMDBWriter(os.path.join(tmp, lq_rel)) as lq_writer, \
                        RawLMDBWriter(os.path.join(tmp, gt_rel)) as gt_writer:
                    for i in range(count):
                        name = photo_names[i % len(photo_names)]  # every photo of the split in turn
                        rgb = random_crop_rgb(photos[name], mosaic_size, rng, scales)
                        clean, meta = make_clean_packed(rgb, sensor, rng, patch_size)
                        iso = test_isos[i] if test_isos is not None else _log_uniform_iso(train_isos, rng)
                        noisy, params = synthesize_noisy_uint16(clean, profile, iso, rng)
                        key = f'{sensor}_{split}_{i:04d}'
                        meta.update({'iso': iso, 'split': split, 'photo': name})
                        gt_writer.put(key, clean, meta)
                        lq_meta = dict(meta, gt_key=key, noise={'K': round(params.system_gain, 6),
                                                                 'read_scale': round(params.read_scale, 6),
                                                                 'row_scale': round(params.row_scale, 6),
                                                                 'tukey_lambda': params.tukey_lambda})
                        lq_writer.put(key, noisy, lq_meta)
                        if bar is not None:
                            bar.update(1)
                entry[f'{split}_pairs'] = count
                entry[f'{split}_lq'], entry[f'{split}_gt'] = lq_rel, gt_rel
            domains[sensor] = entry
        manifest = {'format': MANIFEST_FORMAT, 'version': MANIFEST_VERSION, 'packed_patch_size': patch_size,
                    'layout': 'packed R,G1,G2,B (4,H,W) uint16', 'sensors': sensors, 'target': target,
                    'sources': [s for s in sensors if s != target], 'domains': domains, 'seed': seed,
                    'target_iso_band': list(target_iso_band),
                    'source_images': {'target_train': list(TARGET_PHOTOS), 'source_train': list(SOURCE_PHOTOS),
                                      'test': list(TEST_PHOTOS),
                                      'package': 'scikit-image (skimage.data), matplotlib (mpl: sample data)'}}
        with open(os.path.join(tmp, 'manifest.json'), 'w') as handle:
            json.dump(manifest, handle, indent=2)
        with guard.holding():
            publish_together([(tmp, out_dir)], overwrite=overwrite)
    except BaseException:
        remove_temp_dir(tmp)
        raise
    finally:
        guard.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    return manifest


def load_manifest(out_dir: str) -> Dict:
    """Read ``<out_dir>/manifest.json`` with a clear error when the set was not built."""
    path = os.path.join(out_dir, 'manifest.json')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} not found: build it with python scripts/make_embedded_raw.py --out {out_dir}')
    with open(path) as handle:
        return json.load(handle)
