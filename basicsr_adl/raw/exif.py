"""EXIF fields a RAW file carries beside its mosaic: ISO, exposure, f-number, make/model, capture time.

Why a second reader: LibRaw (rawpy) does not expose make/model or the capture time and leaves ISO at 0 for
some files; ExifRead (maintained, pure Python) reads the TIFF-based RAW containers (DNG, NEF, CR2, ARW, ...)
directly. Files it cannot parse simply give no values. Plain Python, no BasicSR import.
"""
from dataclasses import dataclass
from typing import Any, Optional

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
    baseline_exposure: Optional[float] = None  # DNG BaselineExposure, in stops


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


def _signed(tag: Any) -> Optional[float]:
    values = getattr(tag, 'values', None)
    if not values:
        return None
    value = values[0]
    try:
        return float(value.num) / float(value.den) if hasattr(value, 'den') else float(value)
    except (TypeError, ValueError, ZeroDivisionError):
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
                    datetime_original=_text(tags.get('EXIF DateTimeOriginal') or tags.get('Image DateTime')),
                    unique_camera_model=_text(tags.get('Image Tag 0xC614')),
                    baseline_exposure=_signed(tags.get('Image Tag 0xC62A')))
