"""EXIF fields a RAW file carries beside its mosaic: ISO, exposure, f-number, make/model, capture time.

Why a second reader: LibRaw (rawpy) does not expose make/model or the capture time and leaves ISO at 0 for
some files; ExifRead (maintained, pure Python) reads the TIFF-based RAW containers (DNG, NEF, CR2, ARW, ...)
directly. Files it cannot parse simply give no values. Plain Python, no BasicSR import.
"""
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

# A DNG source's colour profile and crop, copied verbatim into the output DNG: LibRaw gives only a matrix it has
# normalised for its own use, which no longer fits the file's AsShotNeutral for other readers.
DNG_COPY_TAGS = {50719: 'DefaultCropOrigin', 50720: 'DefaultCropSize', 50721: 'ColorMatrix1', 50722: 'ColorMatrix2',
                 50723: 'CameraCalibration1', 50724: 'CameraCalibration2', 50727: 'AnalogBalance',
                 50730: 'BaselineExposure', 50778: 'CalibrationIlluminant1', 50779: 'CalibrationIlluminant2',
                 50936: 'ProfileName', 50964: 'ForwardMatrix1', 50965: 'ForwardMatrix2'}
ISO_TAGS = ('EXIF ISOSpeedRatings', 'Image ISOSpeedRatings', 'EXIF PhotographicSensitivity',
            'EXIF RecommendedExposureIndex')


@dataclass
class ExifInfo:
    iso: Optional[float] = None
    exposure_time: Optional[float] = None
    f_number: Optional[float] = None
    make: str = ''
    model: str = ''
    datetime_original: str = ''
    unique_camera_model: str = ''          # DNG UniqueCameraModel (CinemaDNG files often have no Make/Model)
    dng_tags: List[Tuple[int, int, int, Any]] = field(default_factory=list)  # DNG_COPY_TAGS, (tag, type, count, value)


def _number(tag: Any) -> Optional[float]:
    """The first value of an ExifRead tag as a float (rationals included); None when absent or zero."""
    if tag is None:
        return None
    values = getattr(tag, 'values', tag)
    if isinstance(values, (list, tuple)):
        if not values:
            return None
        values = values[0]
    try:
        number = float(values.num) / float(values.den) if hasattr(values, 'den') else float(values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if number > 0 else None


def _tag_value(tag: Any) -> Optional[Tuple[int, int, Any]]:
    """(TIFF type, count, value as tifffile writes it) of an ExifRead tag; rationals as flat (num, den) pairs."""
    kind, values = int(tag.field_type), tag.values
    if kind == 2:  # ASCII
        return kind, 0, str(values)
    if kind == 1 and isinstance(values, (bytes, str)):  # BYTE text (ProfileName)
        return 2, 0, values.decode('latin-1') if isinstance(values, bytes) else values
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    if kind in (5, 10):
        return kind, len(values), tuple(int(x) for v in values for x in (v.num, v.den))
    if kind in (3, 4):
        return kind, len(values), tuple(int(v) for v in values)
    return None


def _text(tag: Any) -> str:
    return str(tag.printable).strip().strip('\0').strip() if tag is not None else ''


def read_exif(path: str) -> ExifInfo:
    """What ExifRead finds in ``path`` (an empty ``ExifInfo`` for files without readable EXIF)."""
    import logging

    import exifread
    logging.getLogger('exifread').setLevel(logging.ERROR)  # it logs 'no EXIF' for PNGs and the like
    try:
        with open(path, 'rb') as handle:
            tags = exifread.process_file(handle, details=False, builtin_types=False)
    except Exception:  # ExifRead raises assorted errors on non-TIFF data; no EXIF is not an error here
        return ExifInfo()
    iso = next((v for v in (_number(tags.get(name)) for name in ISO_TAGS) if v), None)
    return ExifInfo(iso=iso, exposure_time=_number(tags.get('EXIF ExposureTime') or tags.get('Image ExposureTime')),
                    f_number=_number(tags.get('EXIF FNumber') or tags.get('Image FNumber')),
                    make=_text(tags.get('Image Make')), model=_text(tags.get('Image Model')),
                    datetime_original=_text(tags.get('EXIF DateTimeOriginal')),
                    unique_camera_model=_text(tags.get('Image Tag 0xC614')),
                    dng_tags=_dng_tags(tags))


def _dng_tags(tags: Any) -> List[Tuple[int, int, int, Any]]:
    out = []
    if 'Image Tag 0xC612' not in tags and 'Image DNGVersion' not in tags:  # only a DNG's own profile
        return out
    for code, name in DNG_COPY_TAGS.items():
        tag = tags.get(f'Image Tag 0x{code:04X}') or tags.get(f'Image {name}')
        value = _tag_value(tag) if tag is not None else None
        if value is not None:
            out.append((code, ) + value)
    return out
