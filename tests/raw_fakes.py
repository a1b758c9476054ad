"""Tiny fake RAW files and dataset layouts for the RAW tests.

Camera files are minimal uncompressed DNGs written with tifffile; LibRaw (rawpy) reads them like real camera
files (pattern, black/white, white balance, exposure), whatever their extension (.ARW/.CR2 for the fake
SID/ELD layouts). These fakes carry no ISO (``write_minimal_dng`` writes one only when asked), so layouts that
need ISO give it the way the real datasets do (SID list files, SIDD scene names, ELD metadata sidecars).
"""
import json
import os
from typing import Dict, Sequence, Tuple

import numpy as np

from basicsr_adl.raw.dng import CFA_CODES, XTRANS_6X6, write_minimal_dng  # noqa: F401


def random_mosaic(rng: np.random.Generator, shape: Tuple[int, int], black: int = 512, white: int = 4095) -> np.ndarray:
    return rng.integers(black, white + 1, size=shape, dtype=np.uint16)


def write_fake_dng(path: str, mosaic: np.ndarray, pattern: str = 'RGGB', black: int = 512, white: int = 4095,
                   neutral: Sequence[float] = (0.5, 1.0, 0.6), exposure: float = None, cfa=None) -> str:
    """Minimal DNG that rawpy opens; ``cfa`` may give a 6x6 (X-Trans) pattern."""
    return write_minimal_dng(path, mosaic, pattern, black, white, neutral, exposure, cfa)


def truncate_file(path: str, keep: int = 200) -> str:
    with open(path, 'rb') as handle:
        head = handle.read(keep)
    with open(path, 'wb') as handle:
        handle.write(head)
    return path


# -- layouts -------------------------------------------------------------------------------------------------
def make_folder_layout(root: str, rng: np.random.Generator, n: int = 3, shape=(24, 26), pattern: str = 'GRBG',
                       kind: str = 'dng') -> Dict[str, np.ndarray]:
    """<root>/noisy/<name>, <root>/clean/<name>; kind 'dng' (camera files) or 'npy'/'png' (+ metadata.json)."""
    mosaics = {}
    for folder in ('noisy', 'clean'):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for i in range(n):
        for folder in ('noisy', 'clean'):
            mosaic = random_mosaic(rng, shape, 64, 1023)
            name = f'img_{i:02d}.{kind}'
            path = os.path.join(root, folder, name)
            if kind == 'dng':
                write_fake_dng(path, mosaic, pattern, black=64, white=1023)
            elif kind == 'npy':
                np.save(path, mosaic)
            elif kind == 'png':
                import cv2
                cv2.imwrite(path, mosaic)
            mosaics[f'{folder}/{name}'] = mosaic
    if kind != 'dng':
        for folder in ('noisy', 'clean'):
            with open(os.path.join(root, folder, 'metadata.json'), 'w') as handle:
                json.dump({'pattern': pattern, 'black': 64, 'white': 1023, 'iso': 1600, 'sensor': 'IMX686'}, handle)
    return mosaics


def make_sidd_layout(root: str, rng: np.random.Generator, scenes=(('0001_001_S6_00100_00060_3200_L', 'GRBG'),
                                                                 ('0002_002_IP_00800_00100_5500_N', 'RGGB')),
                     shape=(18, 22)) -> Dict[str, np.ndarray]:
    """SIDD raw layout with MATLAB v5 files (normalised doubles in 'x', CFA tag in the metadata struct)."""
    import scipy.io
    arrays = {}
    for scene, pattern in scenes:
        folder = os.path.join(root, 'Data', scene)
        os.makedirs(folder, exist_ok=True)
        scene_id = scene[:4]
        for kind in ('NOISY', 'GT'):
            x = rng.random(shape)
            scipy.io.savemat(os.path.join(folder, f'{scene_id}_{kind}_RAW_010.MAT'), {'x': x})
            arrays[f'{scene}/{kind}'] = x
        tags = np.empty((2, ), dtype=object)
        tags[0] = {'ID': 33421, 'Value': np.array([2, 2])}
        tags[1] = {'ID': 33422, 'Value': np.array(CFA_CODES[pattern])}
        scipy.io.savemat(os.path.join(folder, f'{scene_id}_METADATA_RAW_010.MAT'),
                         {'metadata': {'Make': 'fake', 'UnknownTags': tags}})
    return arrays


def make_sid_layout(root: str, rng: np.random.Generator, shape=(24, 28)) -> Dict[str, np.ndarray]:
    """SID Sony layout: two scenes, two short exposures each sharing one long exposure, + a list file."""
    mosaics, lines = {}, []
    for scene in ('10003', '10011'):
        long_name = f'{scene}_00_10s.ARW'
        mosaic = random_mosaic(rng, shape)
        write_fake_dng(os.path.join(root, 'Sony', 'long', long_name), mosaic, 'RGGB', exposure=10.0)
        mosaics[long_name] = mosaic
        for shot, exposure in (('00', 0.1), ('01', 0.04)):
            short_name = f'{scene}_{shot}_{exposure}s.ARW'
            mosaic = random_mosaic(rng, shape, white=1000)
            write_fake_dng(os.path.join(root, 'Sony', 'short', short_name), mosaic, 'RGGB', exposure=exposure)
            mosaics[short_name] = mosaic
            lines.append(f'./Sony/short/{short_name} ./Sony/long/{long_name} ISO200 F9')
    with open(os.path.join(root, 'Sony_test_list.txt'), 'w') as handle:
        handle.write('\n'.join(lines) + '\n')
    return mosaics


def make_eld_layout(root: str, rng: np.random.Generator, camera: str = 'SonyA7S2', scenes=(1, 2),
                    shape=(24, 26), pattern: str = 'RGGB', with_iso: bool = True) -> Dict[str, np.ndarray]:
    """ELD layout: <camera>/scene-<n>/IMG_0001..0016 (.CR2 names), ISO/exposure in a metadata.json sidecar."""
    mosaics = {}
    for scene in scenes:
        folder = os.path.join(root, camera, f'scene-{scene}')
        files_meta = {}
        for img_id in range(1, 17):
            name = f'IMG_{img_id:04d}.CR2'
            mosaic = random_mosaic(rng, shape)
            reference = img_id in (1, 6, 11, 16)
            write_fake_dng(os.path.join(folder, name), mosaic, pattern)
            entry = {'exposure': 1.0 if reference else 0.01}
            if with_iso:
                entry['iso'] = 100 if reference else 6400
            files_meta[name] = entry
            mosaics[f'{scene}/{name}'] = mosaic
        with open(os.path.join(folder, 'metadata.json'), 'w') as handle:
            json.dump({'files': files_meta}, handle)
    return mosaics
