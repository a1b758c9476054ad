"""Write uncompressed DNG files that raw developers (LibRaw, exiftool, darktable, Lightroom) open.

Library choice: `tifffile` (maintained, released monthly, already a dependency) writes the TIFF container and
every DNG tag of IFD0. It does not write an EXIF sub-IFD (it refuses tag 34665), and DNG readers look for
ISO, exposure time, f-number and capture date there (LibRaw ignores ISO in IFD0), so ``write_dng`` has
tifffile write a placeholder entry, appends a small EXIF IFD when tifffile has finished and turns the
placeholder into IFD0's ExifIFD pointer. PiDNG was the other candidate: it writes EXIF, but its last
release is from 2023 and it needs a C build; rawpy/LibRaw read only.

Atomic: the file is written under a temporary name in the target folder and renamed when complete, so a
failed or interrupted write never leaves a half-written ``.dng`` behind.

DNG facts used (Adobe DNG Specification 1.4): ``ColorMatrix1`` maps XYZ to camera RGB, normalised so that
the D65 white maps to a maximum of 1; ``AsShotNeutral`` is the camera-RGB value of neutral (the inverse of
the white-balance gains); ``BlackLevelRepeatDim`` 2x2 gives one black level per CFA position;
CalibrationIlluminant 21 is D65.
"""
import datetime
import os
import struct
import uuid
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from basicsr_adl.raw.bayer import canonical_positions

CFA_CODES = {'RGGB': (0, 1, 1, 2), 'BGGR': (2, 1, 1, 0), 'GRBG': (1, 0, 2, 1), 'GBRG': (1, 2, 0, 1)}
XTRANS_6X6 = (1, 1, 0, 1, 1, 2, 1, 1, 2, 1, 1, 0, 2, 0, 1, 0, 2, 1,
              1, 1, 2, 1, 1, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1, 2, 0, 1)
D65 = 21
# LibRaw's ``sizes.flip`` -> TIFF Orientation (1 normal, 3 rotate 180, 6 rotate 90 CW, 8 rotate 270 CW)
LIBRAW_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}
_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED, _SRATIONAL = 1, 2, 3, 4, 5, 7, 10
EXIF_IFD_TAG = 34665
_EXIF_PLACEHOLDER = 34664  # tifffile refuses to write tag 34665; this unused number sorts at the same place


@dataclass
class DngMetadata:
    """What a DNG keeps of its source. ``black`` is per canonical channel (R, G1, G2, B)."""
    pattern: str = 'RGGB'
    black: Sequence[float] = (0, 0, 0, 0)
    white: float = 65535
    xyz_to_camera: Optional[Sequence[Sequence[float]]] = None   # ColorMatrix1 (D65)
    as_shot_neutral: Optional[Sequence[float]] = None          # camera R, G, B of neutral
    orientation: int = 1
    make: str = ''
    model: str = ''
    exposure_time: Optional[float] = None
    f_number: Optional[float] = None
    iso: Optional[float] = None
    datetime_original: str = ''                                 # 'YYYY:MM:DD HH:MM:SS'
    unique_model: str = ''                                      # UniqueCameraModel; default: make + model
    copied_tags: Sequence[Tuple[int, int, int, Any]] = ()       # a DNG source's profile, verbatim (exif.DNG_COPY_TAGS)
    software: str = 'basicsr-adl'
    cfa: Optional[Sequence[int]] = None                         # a 36-code (6x6) CFA instead of ``pattern``

    @property
    def unique_camera_model(self) -> str:
        return self.unique_model or ' '.join(part for part in (self.make, self.model) if part) or 'basicsr-adl'


def _rational(value: float, den: int = 1000000) -> Tuple[int, int]:
    """A (numerator, denominator) pair; exposure times like 1/8000 s stay exact."""
    value = float(value)
    if 0 < value < 1 and abs(1 / value - round(1 / value)) < 1e-6:
        return 1, int(round(1 / value))
    return int(round(value * den)), den


def _srational(value: float) -> Tuple[int, int]:
    return int(round(float(value) * 10000)), 10000


def black_by_position(pattern: str, black: Sequence[float]) -> List[float]:
    """Canonical (R, G1, G2, B) black levels -> the 2x2 CFA positions in row-major order."""
    out = [0.0] * 4
    for (row, col), value in zip(canonical_positions(pattern), black):
        out[2 * row + col] = float(value)
    return out


def _ifd0_tags(meta: DngMetadata) -> list:
    codes = tuple(meta.cfa) if meta.cfa is not None else CFA_CODES[meta.pattern]
    repeat = (6, 6) if len(codes) == 36 else (2, 2)
    tags = [(50706, _BYTE, 4, (1, 4, 0, 0), True),                              # DNGVersion
            (50707, _BYTE, 4, (1, 1, 0, 0), True),                              # DNGBackwardVersion
            (50708, _ASCII, 0, meta.unique_camera_model, True),                 # UniqueCameraModel
            (274, _SHORT, 1, (int(meta.orientation), ), True),                  # Orientation
            (33421, _SHORT, 2, repeat, True),                                    # CFARepeatPatternDim
            (33422, _BYTE, len(codes), codes, True),                             # CFAPattern
            (50710, _BYTE, 3, (0, 1, 2), True),                                  # CFAPlaneColor
            (50711, _SHORT, 1, (1, ), True),                                     # CFALayout: rectangular
            (50717, _LONG, 1, (int(round(meta.white)), ), True),                 # WhiteLevel
            (_EXIF_PLACEHOLDER, _LONG, 1, (0, ), True)]                          # becomes ExifIFD after writing
    if meta.cfa is None:
        blacks = black_by_position(meta.pattern, meta.black)
        tags += [(50713, _SHORT, 2, (2, 2), True),                              # BlackLevelRepeatDim
                 (50714, _RATIONAL, 4, sum((_rational(b, 10000) for b in blacks), ()), True)]  # BlackLevel
    else:
        tags.append((50714, _RATIONAL, 1, _rational(float(np.mean(meta.black)), 10000), True))
    for tag, text in ((271, meta.make), (272, meta.model)):
        if text:
            tags.append((tag, _ASCII, 0, text, True))
    copied = {tag for tag, *_ in meta.copied_tags}
    tags += [(tag, kind, count, value, True) for tag, kind, count, value in meta.copied_tags]
    if meta.xyz_to_camera is not None and 50721 not in copied:
        matrix = np.asarray(meta.xyz_to_camera, dtype=np.float64).reshape(3, 3)
        tags += [(50721, _SRATIONAL, 9, sum((_srational(v) for v in matrix.reshape(-1)), ()), True),  # ColorMatrix1
                 (50778, _SHORT, 1, (D65, ), True)]                               # CalibrationIlluminant1
    if meta.as_shot_neutral is not None:
        tags.append((50728, _RATIONAL, 3, sum((_rational(v, 1000000) for v in meta.as_shot_neutral), ()), True))
    return tags


def _exif_ifd(meta: DngMetadata, offset: int) -> bytes:
    """A little-endian EXIF IFD placed at file ``offset``: exposure, f-number, ISO, ExifVersion, date."""
    entries = [(36864, _UNDEFINED, 4, b'0230')]                                  # ExifVersion
    if meta.exposure_time:
        entries.append((33434, _RATIONAL, 1, struct.pack('<II', *_rational(meta.exposure_time))))
    if meta.f_number:
        entries.append((33437, _RATIONAL, 1, struct.pack('<II', *_rational(meta.f_number, 100))))
    if meta.iso:
        iso = int(round(meta.iso))
        entries.append((34855, _SHORT, 1, struct.pack('<H', min(iso, 65535))))    # ISOSpeedRatings
        if iso > 65535:
            entries.append((34866, _LONG, 1, struct.pack('<I', iso)))             # RecommendedExposureIndex
    if meta.datetime_original:
        text = meta.datetime_original.encode('ascii', 'replace')[:19] + b'\0'
        entries.append((36867, _ASCII, len(text), text))                          # DateTimeOriginal
    entries.sort()
    data_start = offset + 2 + 12 * len(entries) + 4
    table, data = b'', b''
    for tag, kind, count, payload in entries:
        if len(payload) <= 4:
            value = payload.ljust(4, b'\0')
        else:
            value = struct.pack('<I', data_start + len(data))
            data += payload + (b'\0' if len(payload) % 2 else b'')
        table += struct.pack('<HHI', tag, kind, count) + value
    return struct.pack('<H', len(entries)) + table + struct.pack('<I', 0) + data


def temp_sibling(path: str) -> str:
    """A hidden sibling of ``path`` with the same extension (encoders pick the format from it), unique to this
    process: written first, renamed to ``path`` when complete."""
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, f'.{stem}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{ext}')


def _attach_exif(path: str, meta: DngMetadata) -> None:
    import tifffile
    with tifffile.TiffFile(path) as tif:
        if tif.byteorder != '<' or tif.is_bigtiff:
            raise OSError(f'{path}: expected a little-endian classic TIFF from tifffile')
        value_offset = tif.pages[0].tags[_EXIF_PLACEHOLDER].valueoffset
    with open(path, 'r+b') as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        if end % 2:
            handle.write(b'\0')
            end += 1
        handle.write(_exif_ifd(meta, end))
        handle.seek(value_offset - 8)  # the entry: tag, type, count, value
        handle.write(struct.pack('<HHII', EXIF_IFD_TAG, _LONG, 1, end))


def write_dng(path: str, mosaic: np.ndarray, meta: DngMetadata) -> str:
    """Write ``mosaic`` (uint16 H x W, the file's own CFA layout) as a DNG at ``path``, atomically."""
    import tifffile
    mosaic = np.ascontiguousarray(mosaic, dtype=np.uint16)
    if mosaic.ndim != 2:
        raise ValueError(f'write_dng expects a 2-D mosaic, got shape {mosaic.shape}')
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temp = temp_sibling(path)
    try:
        stamp = datetime.datetime.now().strftime('%Y:%m:%d %H:%M:%S')
        tifffile.imwrite(temp, mosaic, photometric=32803, extratags=_ifd0_tags(meta), metadata=None,
                         software=meta.software, datetime=stamp, bigtiff=False)
        _attach_exif(temp, meta)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
    return path


def write_minimal_dng(path: str, mosaic: np.ndarray, pattern: str = 'RGGB', black: int = 512, white: int = 4095,
                      neutral: Sequence[float] = (0.5, 1.0, 0.6), exposure: Optional[float] = None,
                      cfa: Optional[Sequence[int]] = None, iso: Optional[float] = None) -> str:
    """A DNG with only pattern (or a 6x6 ``cfa``), levels, neutral, exposure and ISO: for tests and benchmarks."""
    meta = DngMetadata(pattern=pattern, black=(black, ) * 4, white=white, as_shot_neutral=neutral,
                       exposure_time=exposure, iso=iso, cfa=cfa, make='basicsr-adl', model='minimal DNG')
    return write_dng(path, mosaic, meta)
