#!/usr/bin/env python
"""Convert the SID layout (Chen et al., Learning to See in the Dark) into noisy/clean RAW LMDBs.

Layout: <root>/Sony/{short,long}/*.ARW (or Fuji/*.RAF) and list files like <root>/Sony_train_list.txt with
lines "./Sony/short/10003_00_0.04s.ARW ./Sony/long/10003_00_10s.ARW ISO200 F9". Exposure times come from
the file names; RawPairedLMDBDataset multiplies inputs by min(long / short, 300). Each long exposure is
stored once; inputs point to it with gt_key. Fuji files are X-Trans and are rejected (unsupported CFA).
"""
import argparse
import sys

from basicsr_adl.raw.converters import sid_pairs
from basicsr_adl.raw.script_utils import add_output_args, run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', required=True, help='SID folder (holding Sony/ and the list files)')
    parser.add_argument('--list', required=True, help='list file, relative to --root or absolute')
    parser.add_argument('--sensor', help='sensor name (default: SonyA7S2 for Sony/, FujiXT2 for Fuji/)')
    add_output_args(parser)
    args = parser.parse_args(argv)
    return run(lambda: sid_pairs(args.root, args.list, args.sensor), args)


if __name__ == '__main__':
    sys.exit(main())
