#!/usr/bin/env python
"""Tiled vs whole-image RAW denoising (scripts/denoise_raw.py's path): output difference, speed, peak memory.

The net is the embedded ADL demo's ModulatedUNet (random weights with a non-zero head, so every output pixel
depends on its neighbourhood; sensor 0, ISO 1600), on synthetic 12-bit mosaics (black 256, white 4095).
1. Accuracy and speed at ``--sizes`` megapixels (default 4 and 16): whole image vs the default tiles, and at 4 MP
   every overlap in ``--overlaps``: max |tiled - whole| (normalised and in DN) and time tiled / whole.
2. Peak memory, one fresh process per case (VmHWM, reset after start-up): tiled at 4, 16 and 64 MP and whole at
   4 and 16 MP (``--whole-64`` adds 64 MP whole; it needs many GB). Reported: the pipeline's peak RSS; the RSS
   before the net (the mosaic and its packed input, which any tiling must hold); the output accumulators
   (float32 sum and weights, also image-sized); and the net's own working memory (the net phase's peak above
   the RSS before it, minus the accumulators), which tiling should keep flat in the image size.

    python scripts/benchmarks/bench_denoise_raw.py [--sizes 4 16] [--mem-sizes 4 16 64] [--device cpu]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from basicsr_adl.options_schema import DEFAULT_OVERLAP, DEFAULT_TILE  # noqa: E402

BLACK, WHITE = 256, 4095
DEMO_OPTIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'options', 'train', 'ADL',
                            'embedded', 'ADL_embedded_IMX686_adl.yml')


def build_net(device: str, opt_path: str = '', weights: str = ''):
    """The embedded demo's ModulatedUNet (random, the arch's own init), or ``weights`` for ``opt_path``."""
    import basicsr_adl.plugin  # noqa: F401
    from basicsr.archs import build_network
    from basicsr_adl.compat.entrypoints import load_options_file
    from basicsr_adl.inference import NetInputs, build_net as load_trained
    opt = load_options_file(opt_path or DEMO_OPTIONS)
    if weights:
        net = load_trained(opt, weights, torch.device(device))
    else:
        torch.manual_seed(0)
        net = build_network(dict(opt['network_g'])).to(device).eval()
    return NetInputs(net=net, args=('sensor', 'iso'), sensor=0, sensor_name='bench')


def synthetic_capture(megapixels: float, seed: int = 0):
    """A square mosaic of about ``megapixels`` (side a multiple of 32, so whole-image inference pads nothing and
    the difference measured is the tiles' own): a smooth pattern plus noise."""
    from basicsr_adl.raw.io import RawCapture
    side = int(round((megapixels * 1e6) ** 0.5 / 32)) * 32
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    scene = (0.2 + 0.6 * (0.5 + 0.5 * np.sin(12 * xx) * np.cos(9 * yy))) * (WHITE - BLACK) + BLACK
    scene += rng.normal(0, 40, scene.shape).astype(np.float32)
    mosaic = np.clip(scene, 0, 65535).astype(np.uint16)
    return RawCapture(mosaic=mosaic, pattern='RGGB', black=[BLACK] * 4, white=[WHITE] * 4, iso=1600.0)


def timed_denoise(capture, inputs, tile, overlap, device, repeats):
    from basicsr_adl.inference import denoise_capture
    best, out = float('inf'), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = denoise_capture(capture, inputs, 1600.0, tile, overlap, torch.device(device))
        if device == 'cuda':
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return out, best


def rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so import-time peaks do not count."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_mib() -> float:
    """VmHWM (peak RSS since the last reset) in MiB; ru_maxrss where /proc is not there."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(megapixels: float, tile: int, overlap: int, device: str, opt_path: str, weights: str) -> None:
    """One memory case: a JSON line with, in MiB, the peak RSS of the whole pipeline, the RSS before the net
    (mosaic and packed input held), the net phase's peak above that, and the output accumulators."""
    from basicsr_adl.raw.camera_denoise import mosaic_from_output, net_input
    from basicsr_adl.raw.tiling import run_tiled
    inputs = build_net(device, opt_path, weights)
    reset_peak()
    start = rss_mib()
    capture = synthetic_capture(megapixels)
    image = torch.from_numpy(net_input(capture))[None]
    before_net = rss_mib()
    reset_peak()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = run_tiled(lambda t: inputs.forward(t, 1600.0), image, tile, overlap, device=torch.device(device))
    seconds = time.perf_counter() - t0
    net_peak = peak_mib()
    mosaic_from_output(capture, out[0].numpy())
    accumulators = (image.numel() * 4 + image.numel() / 4 * 4) / 2**20  # output sum + weights (float32)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else None
    print(json.dumps({'peak': max(net_peak, peak_mib()), 'start': start, 'before_net': before_net,
                      'net_above': net_peak - before_net, 'accumulators': accumulators, 'seconds': seconds,
                      'gpu_peak': gpu}))


def memory_case(megapixels, tile, overlap, device, opt_path, weights):
    cmd = [sys.executable, os.path.abspath(__file__), '--child', str(megapixels), str(tile), str(overlap),
           '--device', device] + (['-opt', opt_path, '--weights', weights] if weights else [])
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f'exit {result.returncode}'
    return json.loads(result.stdout.strip().splitlines()[-1]), ''


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', type=float, nargs='+', default=[4, 16], help='MP for the accuracy/speed part')
    p.add_argument('--mem-sizes', type=float, nargs='+', default=[4, 16, 64], help='MP for the memory part')
    p.add_argument('--overlaps', type=int, nargs='+', default=[0, 16, 32, 64, 128])
    p.add_argument('-opt', default='', help='options file of a trained net (with --weights); default: the '
                   'embedded demo net with random weights')
    p.add_argument('--weights', default='', help='trained weights for -opt')
    p.add_argument('--tile', type=int, default=DEFAULT_TILE)
    p.add_argument('--overlap', type=int, default=DEFAULT_OVERLAP)
    p.add_argument('--repeats', type=int, default=2, help='timing: best of N')
    p.add_argument('--whole-64', action='store_true', help='also measure whole-image memory at the largest size')
    p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    p.add_argument('--child', nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(float(args.child[0]), int(args.child[1]), int(args.child[2]), args.device, args.opt, args.weights)
        return 0

    inputs = build_net(args.device, args.opt, args.weights)
    net_text = f'weights {args.weights}' if args.weights else 'ModulatedUNet of the embedded ADL demo, random weights'
    print(f'bench_denoise_raw: {net_text}, {args.device}, torch threads '
          f'{torch.get_num_threads()}; default tile {args.tile}, overlap {args.overlap} (packed pixels; the mosaic '
          'is 2x)')
    print('1. tiled vs whole image (time: best of %d)' % args.repeats)
    print(f'  {"MP":>5} {"tile/overlap":>12} {"tiles":>5} {"max|diff|":>10} {"DN":>7} {"whole s":>8} {"tiled s":>8}'
          f' {"speed tiled/whole":>18}')
    from basicsr_adl.raw.tiling import count_tiles
    for mp in args.sizes:
        capture = synthetic_capture(mp)
        whole, t_whole = timed_denoise(capture, inputs, 0, 0, args.device, args.repeats)
        overlaps = args.overlaps if mp == args.sizes[0] else [args.overlap]
        for overlap in overlaps:
            tiled, t_tiled = timed_denoise(capture, inputs, args.tile, overlap, args.device, args.repeats)
            diff = float(np.abs(tiled - whole).max())
            mark = ' (default)' if overlap == args.overlap else ''
            print(f'  {mp:>5.0f} {f"{args.tile}/{overlap}":>12} '
                  f'{count_tiles(whole.shape[-2], whole.shape[-1], args.tile, overlap):>5} {diff:>10.2e} '
                  f'{diff * (WHITE - BLACK):>7.2f} {t_whole:>8.2f} {t_tiled:>8.2f} {t_whole / t_tiled:>17.2f}x'
                  f'{mark}', flush=True)
    del inputs
    print('2. peak memory (one process per case, MiB): before net = RSS holding the mosaic and the packed input;'
          ' net = the net phase\'s peak above that, minus the output accumulators (flat when tiling works)')
    print(f'  {"MP":>5} {"mode":>6} {"peak RSS":>9} {"start":>7} {"before net":>11} {"accum.":>7} {"net":>7} '
          f'{"seconds":>8}' + ('  GPU peak' if args.device == 'cuda' else ''))
    for mp in args.mem_sizes:
        modes = [('tiled', args.tile, args.overlap)]
        if mp != max(args.mem_sizes) or args.whole_64:
            modes.append(('whole', 0, 0))
        for mode, tile, overlap in modes:
            record, error = memory_case(mp, tile, overlap, args.device, args.opt, args.weights)
            if record is None:
                print(f'  {mp:>5.0f} {mode:>6} failed: {error}')
                continue
            gpu = f'  {record["gpu_peak"]:8.0f}' if record['gpu_peak'] is not None else ''
            print(f'  {mp:>5.0f} {mode:>6} {record["peak"]:>9.0f} {record["start"]:>7.0f} '
                  f'{record["before_net"]:>11.0f} {record["accumulators"]:>7.0f} {record["net_above"] - record["accumulators"]:>7.0f} '
                  f'{record["seconds"]:>8.1f}{gpu}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
