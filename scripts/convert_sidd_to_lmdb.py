#!/usr/bin/env python
"""Convert the SIDD raw layout (SIDD_Small_Raw / SIDD_Medium_Raw) into noisy/clean RAW LMDBs.

Layout: <root>/Data/<0001_001_S6_00100_00060_3200_L>/<0001>_{NOISY,GT,METADATA}_RAW_<010>.MAT.
Sensor = the phone code, ISO = the 4th field of the scene name; the Bayer pattern comes from the METADATA
file (CFA tag) or --pattern PHONE=PATTERN. SIDD stores normalised doubles: they are kept as float32
(black 0, white 1), so values round-trip exactly. MATLAB v5 files are read with scipy; the v7.3 (HDF5)
files of the real dataset need h5py (not a dependency of this project: pip install h5py).
"""
import argparse
import sys

from basicsr_adl.raw.converters import sidd_pairs
from basicsr_adl.raw.script_utils import add_output_args, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', required=True, help='SIDD folder (holding Data/)')
    parser.add_argument('--pattern', action='append', default=[], metavar='PHONE=PATTERN',
                        help='Bayer pattern per phone, e.g. --pattern IP=RGGB (repeatable)')
    add_output_args(parser)
    args = parser.parse_args(argv)
    return run(lambda: sidd_pairs(args.root, dict(item.split('=', 1) for item in args.pattern)), args)


if __name__ == '__main__':
    sys.exit(main())
