#!/usr/bin/env python
"""Build the embedded deblurring / dehazing data (synthetic sources + a differently degraded small target).

  python scripts/make_embedded_restoration.py --task deblur dehaze --out datasets/embedded
writes datasets/embedded/{deblur,dehaze}/ with a manifest.json each (see basicsr_adl/synth/embedded.py).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from basicsr_adl.synth.embedded import build_embedded_restoration  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--task', nargs='+', choices=['deblur', 'dehaze'], default=['deblur', 'dehaze'])
    parser.add_argument('--out', default=os.path.join('datasets', 'embedded'))
    parser.add_argument('--tile', type=int, default=96)
    parser.add_argument('--source-pairs', type=int, default=48, help='pairs per source domain')
    parser.add_argument('--target-train', type=int, default=8)
    parser.add_argument('--target-test', type=int, default=6)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    for task in args.task:
        start = time.time()
        manifest = build_embedded_restoration(args.out, task, args.tile, args.source_pairs, args.target_train,
                                              args.target_test, args.seed)
        print(f'{task}: {", ".join(manifest["domains"])} -> {os.path.join(args.out, task)} '
              f'({time.time() - start:.1f} s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
