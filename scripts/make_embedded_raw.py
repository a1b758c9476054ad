#!/usr/bin/env python
"""Build the embedded multi-sensor RAW set (scikit-image photos -> unprocessed RAW + calibrated noise).

Writes <out>/manifest.json and <out>/<sensor>/{train,test}_{lq,gt}.lmdb (see docs/raw_data.md).
"""
import argparse
import sys
import time

from basicsr_adl.raw.embedded import DEFAULT_OUT, DEFAULT_TARGET, DEFAULT_TARGET_ISO_BAND, build_embedded_raw
from basicsr_adl.raw.noise_models import NOISE_MODEL_SENSORS
from basicsr_adl.raw.script_utils import interrupted_message


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default=DEFAULT_OUT, help=f'output folder (default {DEFAULT_OUT}, relative to cwd)')
    parser.add_argument('--patch-size', type=int, default=128, help='image size in packed pixels (default 128)')
    parser.add_argument('--sensors', nargs='+', default=NOISE_MODEL_SENSORS, help='sensors (order = index)')
    parser.add_argument('--target', default=DEFAULT_TARGET, help=f'target sensor (default {DEFAULT_TARGET})')
    parser.add_argument('--target-pairs', '--target-train', dest='target_train', type=int, default=32,
                        help='target training pairs built (default 32; a run uses fewer with '
                             'datasets.train.target_pairs)')
    parser.add_argument('--target-test', type=int, default=12, help='target test pairs (span its whole ISO range)')
    parser.add_argument('--target-iso-band', type=float, nargs=2, default=list(DEFAULT_TARGET_ISO_BAND),
                        metavar=('LOW', 'HIGH'), help='fractions of the target\'s log-ISO range its training pairs '
                                                      'come from (default %(default)s)')
    parser.add_argument('--source-train', type=int, default=48)
    parser.add_argument('--source-test', type=int, default=4)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder')
    args = parser.parse_args(argv)
    start = time.time()
    try:
        manifest = build_embedded_raw(args.out, patch_size=args.patch_size, target=args.target, sensors=args.sensors,
                                      target_train=args.target_train, target_test=args.target_test,
                                      source_train=args.source_train, source_test=args.source_test, seed=args.seed,
                                      target_iso_band=tuple(args.target_iso_band),
                                      overwrite=args.overwrite, progress=True)
    except (OSError, ValueError, KeyError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM turned into atomic.Interrupted
        message, code = interrupted_message(err, args.out)
        print(message, file=sys.stderr)
        return code
    pairs = sum(d['train_pairs'] + d['test_pairs'] for d in manifest['domains'].values())
    print(f'wrote {pairs} pairs for {len(manifest["sensors"])} sensors (target {manifest["target"]}) to {args.out} '
          f'in {time.time() - start:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
