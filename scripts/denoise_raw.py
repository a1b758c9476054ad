#!/usr/bin/env python
"""Denoise camera RAW files with a trained BasicSR net: for every input, DIR/<stem>.dng and an sRGB DIR/<stem>.png.

    python scripts/denoise_raw.py -opt options/train/ADL/embedded/ADL_embedded_IMX686_adl.yml \\
        --weights experiments/ADL_embedded_IMX686_adl/models/net_g_latest.pth \\
        --input photo.dng more_photos/ --out denoised/ --sensor IMX686 [--iso 1600] [--tile 512 --overlap 32]

``-opt`` is the options file (train or test) whose ``network_g`` built the net. The sensor names of the one-hot
come from it (a top-level ``sensors:`` list, else the datasets' ``sensors:`` lists, else the domains of the
MultiDomainDataset); ``--sensor`` picks one. ISO comes from the file (LibRaw, else its EXIF), else ``--iso``.
Camera files are read by rawpy (LibRaw); bare mosaics (16-bit PNG/TIFF, .npy, headerless) need a
``metadata.json`` beside them (docs/raw_data.md). The net runs on overlapping tiles (``--tile 0``: whole image).
Errors (unreadable file, non-Bayer CFA, unknown sensor, a net that is not a 4-channel RAW net, a missing ISO,
an output folder that cannot be written) stop with one line; no half-written output is left behind.
"""
import argparse
import os
import sys
import tempfile
import time

if __package__ in (None, ''):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import basicsr_adl.plugin  # noqa: E402,F401  (registers the archs)
import torch  # noqa: E402

from basicsr_adl.cli import EXIT_DATA_ERROR  # noqa: E402
from basicsr_adl.compat.entrypoints import EXIT_OPTION_ERROR, load_options_file  # noqa: E402
from basicsr_adl.compat.options_check import OptionError, check_options  # noqa: E402
from basicsr_adl.errors import DataError  # noqa: E402
from basicsr_adl.options_schema import DEFAULT_OVERLAP, DEFAULT_TILE  # noqa: E402
from basicsr_adl.inference import build_net, capture_iso, denoise_file, pick_sensor  # noqa: E402
from basicsr_adl.raw.bayer import UnsupportedCFAError, packed_shape  # noqa: E402
from basicsr_adl.raw.camera_denoise import colour_source  # noqa: E402
from basicsr_adl.raw.io import RawReadError, list_camera_files, read_raw_with_sidecar  # noqa: E402
from basicsr_adl.raw.tiling import count_tiles  # noqa: E402

def check_out_dir(out_dir: str) -> bool:
    """Make the output folder (True if this run created it) and check that it can be written."""
    created = not os.path.exists(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix='.write-test-'):
            pass
    except OSError as err:
        raise DataError(f"--out '{out_dir}': the output folder cannot be written ({err.strerror or err})") from None
    return created


def read_capture(path: str):
    try:
        return read_raw_with_sidecar(path)
    except (RawReadError, UnsupportedCFAError) as err:
        raise DataError(str(err)) from None


def preflight(files, args, inputs):
    """Read every file once before any output is written: unreadable files, non-Bayer CFAs and missing ISOs stop
    the run before it starts (costs one extra read per file, small next to the net)."""
    for path in files:
        capture_iso(read_capture(path), args.iso, inputs)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, help='BasicSR options file (train or test) with network_g')
    parser.add_argument('--weights', required=True, help='net weights (BasicSR net_g_*.pth)')
    parser.add_argument('--input', nargs='+', required=True, help='camera RAW files and/or folders of them')
    parser.add_argument('--out', required=True, help='output folder for <stem>.dng and <stem>.png')
    parser.add_argument('--sensor', help='sensor name for the one-hot (see -opt); needed when the net takes one')
    parser.add_argument('--iso', type=float, help='ISO for files that carry none (the file\'s own ISO wins)')
    parser.add_argument('--tile', type=int, default=DEFAULT_TILE, help='tile size in packed pixels (2x in the '
                        f'mosaic); 0: whole image (default {DEFAULT_TILE})')
    parser.add_argument('--overlap', type=int, default=DEFAULT_OVERLAP,
                        help=f'tile overlap in packed pixels (default {DEFAULT_OVERLAP})')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    args = parser.parse_args(argv)
    if args.tile < 0 or args.overlap < 0 or (args.tile and args.overlap >= args.tile):
        parser.error(f'--overlap {args.overlap} must be >= 0 and smaller than --tile {args.tile}')
    if args.iso is not None and args.iso <= 0:
        parser.error(f'--iso {args.iso:g} must be > 0')
    return args


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise OptionError('--device cuda: no CUDA device is available here; use --device cpu')
    device = torch.device(args.device)
    opt = load_options_file(args.opt)
    check_options(opt, is_train='train' in (opt.get('datasets') or {}))
    inputs = pick_sensor(opt, build_net(opt, args.weights, device), args.sensor)
    inputs.check_channels('network_g')
    try:
        files = list_camera_files(args.input, what='--input')
    except RawReadError as err:
        raise DataError(str(err)) from None
    preflight(files, args, inputs)
    created = check_out_dir(args.out)
    print(f'denoise_raw: {len(files)} file(s) -> {args.out} ({args.device}, tile {args.tile}, overlap {args.overlap}'
          f'{", sensor " + inputs.sensor_name if inputs.sensor_name else ""})', flush=True)
    total_mp, total_net, start, written = 0.0, 0.0, time.perf_counter(), 0
    try:
        for number, path in enumerate(files, 1):
            capture = read_capture(path)
            iso, iso_from = capture_iso(capture, args.iso, inputs)
            stem = os.path.splitext(os.path.basename(path))[0]
            existing = [n for n in (f'{stem}.dng', f'{stem}.png') if os.path.exists(os.path.join(args.out, n))]
            h, w = capture.mosaic.shape
            n_tiles = count_tiles(*packed_shape((h, w), capture.pattern)[1:], args.tile, args.overlap)
            with tqdm(total=n_tiles, desc=f'[{number}/{len(files)}] {os.path.basename(path)}', unit='tile',
                      leave=False, file=sys.stderr, disable=n_tiles < 2) as bar:
                result = denoise_file(capture, inputs, iso, args.out, stem, args.tile, args.overlap, device,
                                      on_tile=lambda done, total: bar.update(done - bar.n))
            written += 1
            total_mp += result['megapixels']
            total_net += result['seconds_net']
            iso_text = f'ISO {iso:g} ({iso_from})' if iso is not None else 'no ISO'
            print(f'[{number}/{len(files)}] {path}: {w}x{h} {capture.pattern}, {iso_text}, {result["tiles"]} tile(s), '
                  f'{result["seconds"]:.1f} s -> {result["dng"]}, {os.path.basename(result["png"])}'
                  + (f' (replaced the existing {" and ".join(existing)})' if existing else ''), flush=True)
            if not colour_source(capture):
                print(f'  note: {path} gives no colour matrix (none that rawpy exposes, no "ccm" in a metadata.json);'
                      ' the DNG takes camera RGB as linear sRGB (ColorMatrix1 = XYZ -> sRGB), so its colours are '
                      'only approximate', flush=True)
    except BaseException:
        if created and not os.listdir(args.out):
            os.rmdir(args.out)
        raise
    elapsed = time.perf_counter() - start
    print(f'denoise_raw: {written} file(s), {total_mp:.1f} MP in {elapsed:.1f} s: {total_mp / elapsed:.2f} MP/s '
          f'overall, {total_mp / max(total_net, 1e-9):.2f} MP/s in the net', flush=True)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except OptionError as err:
        print(f'denoise_raw: error: {err}', file=sys.stderr)
        return EXIT_OPTION_ERROR
    except DataError as err:
        print(f'denoise_raw: error: {err}', file=sys.stderr)
        return EXIT_DATA_ERROR


if __name__ == '__main__':
    sys.exit(main())
