#!/usr/bin/env python
"""Write an sRGB PNG preview of RAW data: a key of a RAW LMDB, or a camera file / bare mosaic.

White balance and colour matrix come from the metadata (or the file); the demosaic is a simple one (see
basicsr_adl/raw/preview.py), meant for looking at data, not for metrics.
    python scripts/preview_raw.py --lmdb datasets/embedded/raw/IMX686/test_lq.lmdb --key IMX686_test_0000 --out a.png
    python scripts/preview_raw.py --file photo.dng --out b.png --exposure 2
"""
import argparse
import sys

import numpy as np

from basicsr_adl.raw.bayer import normalize_levels
from basicsr_adl.raw.io import RawReadError, read_raw
from basicsr_adl.raw.lmdb_store import RawLMDBError, RawLMDBReader
from basicsr_adl.raw.pairs import normalize_from_meta
from basicsr_adl.raw.preview import save_preview


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--lmdb', help='RAW LMDB folder (with --key)')
    source.add_argument('--file', help='camera RAW file (or bare mosaic with --pattern/--black/--white)')
    parser.add_argument('--key', help='key in the RAW LMDB (default: the first)')
    parser.add_argument('--pattern')
    parser.add_argument('--black', type=float)
    parser.add_argument('--white', type=float)
    parser.add_argument('--exposure', type=float, default=1.0, help='brightness multiplier before gamma')
    parser.add_argument('--out', required=True, help='PNG to write')
    args = parser.parse_args(argv)
    try:
        if args.lmdb:
            reader = RawLMDBReader(args.lmdb)
            key = args.key or reader.keys()[0]
            array, meta = reader.get(key)
            packed = normalize_from_meta(array, meta)
        else:
            meta = {k: v for k, v in (('pattern', args.pattern), ('black', args.black), ('white', args.white))
                    if v is not None}
            capture = read_raw(args.file, meta)
            meta = capture.meta()
            packed = normalize_levels(capture.packed(), capture.black, capture.white)
        ccm = np.array(meta['ccm']) if meta.get('ccm') is not None else None
        save_preview(args.out, packed, wb=meta.get('wb'), ccm=ccm, exposure=args.exposure)
    except (RawReadError, RawLMDBError, KeyError, ValueError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
