"""Write minimal uncompressed DNG files (CFA mosaic + levels + white balance) that rawpy/LibRaw can read.

Why: tests and benchmarks need real camera files without shipping any; a DNG is a TIFF with a few extra
tags, and LibRaw parses it like any camera RAW (pattern, black/white, AsShotNeutral, exposure time).
LibRaw needs at least ~22 pixels per side. It does not pick up ISO from these files.
"""
import os
from typing import Optional, Sequence, Tuple

import numpy as np

CFA_CODES = {'RGGB': (0, 1, 1, 2), 'BGGR': (2, 1, 1, 0), 'GRBG': (1, 0, 2, 1), 'GBRG': (1, 2, 0, 1)}
XTRANS_6X6 = (1, 1, 0, 1, 1, 2, 1, 1, 2, 1, 1, 0, 2, 0, 1, 0, 2, 1,
              1, 1, 2, 1, 1, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1, 2, 0, 1)
_RATIONAL, _BYTE, _SHORT, _ASCII = 5, 'B', 'H', 's'


def _rational(value: float, den: int = 10000) -> Tuple[int, int]:
    return int(round(value * den)), den


def write_minimal_dng(path: str, mosaic: np.ndarray, pattern: str = 'RGGB', black: int = 512, white: int = 4095,
                      neutral: Sequence[float] = (0.5, 1.0, 0.6), exposure: Optional[float] = None,
                      cfa: Optional[Sequence[int]] = None) -> str:
    """Write ``mosaic`` (uint16 HxW) as a DNG; ``cfa`` may give a 6x6 (X-Trans-like) pattern instead."""
    import tifffile
    codes = tuple(cfa) if cfa is not None else CFA_CODES[pattern]
    repeat = (6, 6) if len(codes) == 36 else (2, 2)
    tags = [(50706, _BYTE, 4, (1, 4, 0, 0), True),                          # DNGVersion
            (50708, _ASCII, 0, 'basicsr-adl minimal DNG', True),             # UniqueCameraModel
            (33421, _SHORT, 2, repeat, True),                                # CFARepeatPatternDim
            (33422, _BYTE, len(codes), codes, True),                         # CFAPattern
            (50714, _SHORT, 1, (int(black), ), True),                        # BlackLevel
            (50717, _SHORT, 1, (int(white), ), True),                        # WhiteLevel
            (50728, _RATIONAL, 3, sum((_rational(v) for v in neutral), ()), True)]  # AsShotNeutral
    if exposure is not None:
        tags.append((33434, _RATIONAL, 1, _rational(exposure, 100000), True))  # ExposureTime
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tifffile.imwrite(path, np.ascontiguousarray(mosaic, dtype=np.uint16), photometric=32803, extratags=tags,
                     metadata=None)
    return path
