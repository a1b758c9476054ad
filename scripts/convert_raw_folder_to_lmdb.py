#!/usr/bin/env python
"""Convert a folder of noisy/clean RAW pairs (two folders, files paired by name) into two RAW LMDBs.

Pairing (basicsr_adl.pairing): same stems, or the same after removing marker words (noisy/gt, lq/hq, ...:
0001_NOISY.dng <-> 0001_GT.dng); --filename-tmpl '{}_noisy' pairs <clean stem>_noisy with <clean stem>. A file
with two partners or none stops the conversion naming the files.

Files: anything rawpy reads (DNG, ARW, CR2, NEF, ...), or bare mosaics (.png/.tif/.tiff/.npy, or headerless
uint16 with --raw-shape) described by a metadata.json in the folder or by the options below.
Example:
    python scripts/convert_raw_folder_to_lmdb.py --lq data/noisy --gt data/clean \
        --out-lq datasets/mine/lq.lmdb --out-gt datasets/mine/gt.lmdb --sensor IMX686 --iso 1600
"""
import argparse
import sys

from basicsr_adl.raw.converters import folder_pairs
from basicsr_adl.raw.script_utils import add_output_args, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--lq', required=True, help='folder of noisy files')
    parser.add_argument('--gt', required=True, help='folder of clean files (paired by name)')
    parser.add_argument('--filename-tmpl', help="noisy stem = template.format(clean stem), e.g. '{}_noisy' "
                        '(default: pair by name)')
    parser.add_argument('--pattern', help='Bayer pattern of bare mosaics: RGGB, BGGR, GRBG or GBRG')
    parser.add_argument('--black', type=float, nargs='+', help='black level (1 or 4 values R,G1,G2,B)')
    parser.add_argument('--white', type=float, nargs='+', help='white level (1 or 4 values)')
    parser.add_argument('--iso', type=float, help='ISO of every file (overrides the files)')
    parser.add_argument('--exposure', type=float, help='exposure time in seconds')
    parser.add_argument('--sensor', help='sensor name stored with every pair')
    parser.add_argument('--raw-shape', type=int, nargs=2, metavar=('H', 'W'), help='shape of headerless uint16 files')
    add_output_args(parser)
    args = parser.parse_args(argv)
    overrides = {'pattern': args.pattern, 'black': args.black, 'white': args.white, 'iso': args.iso,
                 'exposure': args.exposure, 'sensor': args.sensor, 'raw_shape': args.raw_shape}
    return run(lambda: folder_pairs(args.lq, args.gt, overrides, args.filename_tmpl), args,
               distinct_inputs=(('--lq', args.lq), ('--gt', args.gt)))


if __name__ == '__main__':
    sys.exit(main())
