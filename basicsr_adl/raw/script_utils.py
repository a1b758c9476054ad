"""Argument helpers shared by the ``scripts/convert_*_to_lmdb.py`` entry points (no BasicSR import)."""
import argparse
import sys
from typing import Callable, List

from basicsr_adl.raw.converters import PairSpec, write_pairs


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out-lq', required=True, help='noisy RAW LMDB to create (folder ending in .lmdb)')
    parser.add_argument('--out-gt', required=True, help='clean RAW LMDB to create (folder ending in .lmdb)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output LMDBs')
    parser.add_argument('--no-progress', action='store_true', help='hide the tqdm progress bar')


def run(list_pairs: Callable[[], List[PairSpec]], args: argparse.Namespace, require_iso: bool = False) -> int:
    """List the pairs, write them; print a one-line summary; return a process exit code (errors: one line, code 1)."""
    try:
        pairs = list_pairs()
    except (OSError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    try:
        counts = write_pairs(pairs, args.out_lq, args.out_gt, overwrite=args.overwrite,
                             progress=not args.no_progress, require_iso=require_iso)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'wrote {counts["pairs"]} noisy to {args.out_lq} and {counts["clean"]} clean to {args.out_gt}')
    return 0
