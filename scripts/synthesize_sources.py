#!/usr/bin/env python
"""Write a synthetic source domain offline: blurred or hazy copies of clean images, as lq/gt folders or LMDBs.

Examples:
  python scripts/synthesize_sources.py blur --src datasets/clean --out datasets/blur_k21 --kernel-sizes 21
  python scripts/synthesize_sources.py haze --src datasets/clean --out datasets/haze_thick --beta 1.5 2.5 --lmdb
The result is an ``lq/`` + ``gt/`` folder pair (``layout: folder`` in LayoutPairedDataset, or BasicSR's
PairedImageDataset); with ``--lmdb`` also ``lq.lmdb``/``gt.lmdb`` made by BasicSR's own LMDB tool. Output is
written to a temporary folder next to ``--out`` and moved into place only when complete.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

import basicsr_adl.plugin  # noqa: E402,F401  (basicsr import fix)
from basicsr_adl.data.restoration_pairs_dataset import SyntheticDegradationDataset, read_rgb  # noqa: E402


def write_png(path: str, rgb: np.ndarray) -> None:
    cv2.imwrite(path, cv2.cvtColor((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('degradation', choices=['blur', 'haze'])
    parser.add_argument('--src', required=True, help='folder of clean images')
    parser.add_argument('--out', required=True, help='output folder (must not exist)')
    parser.add_argument('--kernel-sizes', type=int, nargs='+', default=[21, 31, 41])
    parser.add_argument('--noise-sigma', type=float, default=0.01)
    parser.add_argument('--beta', type=float, nargs=2, default=[0.6, 1.8], metavar=('LOW', 'HIGH'))
    parser.add_argument('--airlight', type=float, nargs=2, default=[0.7, 1.0], metavar=('LOW', 'HIGH'))
    parser.add_argument('--per-image', type=int, default=1, help='degraded copies per clean image')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--lmdb', action='store_true', help='also pack lq/gt into LMDBs (BasicSR format)')
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f'--out {args.out} already exists')
    opt = {'degradation': args.degradation, 'dataroot_gt': args.src, 'phase': 'offline',
           'kernel_sizes': args.kernel_sizes, 'noise_sigma': args.noise_sigma, 'beta_range': args.beta,
           'airlight_range': args.airlight}
    try:
        dataset = SyntheticDegradationDataset(opt)
    except ValueError as err:
        parser.error(str(err))
    tmp = f'{args.out.rstrip(os.sep)}.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, 'lq'))
    os.makedirs(os.path.join(tmp, 'gt'))
    rng = np.random.default_rng(args.seed)
    try:
        for path in tqdm(dataset.paths, desc=f'{args.degradation} sources', unit='img'):
            gt = read_rgb(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            for k in range(args.per_image):
                name = f'{stem}_{k:02d}.png'
                write_png(os.path.join(tmp, 'gt', name), gt)
                write_png(os.path.join(tmp, 'lq', name), dataset.degrade(gt, rng))
        if args.lmdb:
            from basicsr.utils.lmdb_util import make_lmdb_from_imgs
            for part in ('lq', 'gt'):
                names = sorted(os.listdir(os.path.join(tmp, part)))
                make_lmdb_from_imgs(os.path.join(tmp, part), os.path.join(tmp, f'{part}.lmdb'), names,
                                    [os.path.splitext(n)[0] for n in names], n_thread=1)
        os.replace(tmp, args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f'wrote {len(dataset.paths) * args.per_image} pairs to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
