"""Argument helpers shared by the ``scripts/convert_*_to_lmdb.py`` entry points (no BasicSR import)."""
import argparse
import signal
import sys
from typing import Callable, List, Optional, Sequence, Tuple

from basicsr_adl.raw.converters import PairSpec, check_distinct_outputs, same_or_nested, write_pairs


def add_output_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out-lq', required=True, help='noisy RAW LMDB to create (folder ending in .lmdb)')
    parser.add_argument('--out-gt', required=True, help='clean RAW LMDB to create (folder ending in .lmdb)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output LMDBs')
    parser.add_argument('--no-progress', action='store_true', help='hide the tqdm progress bar')


def interrupted_message(err: KeyboardInterrupt, outputs: str) -> Tuple[str, int]:
    """One line and the shell's exit status (128 + signal) for Ctrl-C / SIGTERM during a conversion."""
    signum = getattr(err, 'signum', signal.SIGINT)
    name = signal.Signals(signum).name
    if getattr(err, 'published', False):
        return f'error: interrupted by {name} just after publishing {outputs} (complete)', 128 + signum
    return f'error: interrupted by {name}: {outputs} unchanged, temporary folders removed', 128 + signum


def run(list_pairs: Callable[[], List[PairSpec]], args: argparse.Namespace, require_iso: bool = False,
        distinct_inputs: Optional[Sequence[Tuple[str, str]]] = None) -> int:
    """List the pairs, write them; print a one-line summary; return a process exit code (errors: one line, code 1).

    ``distinct_inputs``: two ``(option, folder)`` that must not be the same folder (noisy vs clean input).
    """
    outputs = f'{args.out_lq} and {args.out_gt}'
    try:
        check_distinct_outputs(args.out_lq, args.out_gt)
        if distinct_inputs is not None:
            (a_name, a_path), (b_name, b_path) = distinct_inputs
            if same_or_nested(a_path, b_path):
                raise ValueError(f'{a_name} {a_path} and {b_name} {b_path} are the same folder (or one is inside '
                                 'the other): every file would pair with itself')
        pairs = list_pairs()
    except (OSError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        message, code = interrupted_message(err, outputs)
        print(message, file=sys.stderr)
        return code
    try:
        counts = write_pairs(pairs, args.out_lq, args.out_gt, overwrite=args.overwrite,
                             progress=not args.no_progress, require_iso=require_iso)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM turned into atomic.Interrupted
        message, code = interrupted_message(err, outputs)
        print(message, file=sys.stderr)
        return code
    print(f'wrote {counts["pairs"]} noisy to {args.out_lq} and {counts["clean"]} clean to {args.out_gt}')
    return 0
