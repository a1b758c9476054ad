"""Evidence for LAN on real data: pretrain DnCNN on one real noisy/clean set, adapt on another.

Rows like the paper's Table 1: pretrained / full / first-layer / last-layer fine-tuning / LAN, at 5, 10 and 20
iterations, for both self-supervised losses, mean PSNR / SSIM (8-bit, BasicSR's metrics) over the test images.
Every method runs 20 iterations once per image; the outputs after 5, 10 and 20 are scored (the optimiser
trajectory is the same as separate 5- and 10-iteration runs).

    python scripts/evidence_lan.py --train-dir /path/to/SIDD_pairs --test-dir /path/to/Nam_pairs

Each folder holds ``noisy/`` and ``gt/``; files pair by name once a trailing _noise/_noisy/_real/_gt/_mean/_clean
is removed. Nothing is copied from the data folders; the pretrained net goes to ``--work-dir``.
Defaults keep the run to minutes on 2 CPU cores: a small DnCNN, brief pretraining, centre crops of the test
images (--crop) and at most --max-images of them.
"""
import argparse
import os
import re
import sys
import time
from typing import Dict, List, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import basicsr_adl.plugin  # noqa: E402,F401  (registers DnCNN, applies the basicsr compat fixes)
from basicsr.metrics import calculate_psnr, calculate_ssim  # noqa: E402
from basicsr.utils import tensor2img  # noqa: E402

from basicsr_adl.archs.dncnn_arch import DnCNN  # noqa: E402
from basicsr_adl.lan import AdaptConfig, adapt_offset, adapt_weights, make_lean  # noqa: E402

SUFFIX = re.compile(r'[_-](noise|noisy|real|gt|mean|clean)$', re.IGNORECASE)
IMAGE_EXT = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
REPORT = (5, 10, 20)


def paired_files(folder: str) -> List[Tuple[str, str, str]]:
    """(name, noisy path, gt path) for every pair in ``folder/noisy`` and ``folder/gt``."""
    def index(sub: str) -> Dict[str, str]:
        path = os.path.join(folder, sub)
        if not os.path.isdir(path):
            raise SystemExit(f"evidence_lan: '{path}' not found (expected {folder}/noisy and {folder}/gt)")
        return {SUFFIX.sub('', os.path.splitext(f)[0]): os.path.join(path, f)
                for f in sorted(os.listdir(path)) if f.lower().endswith(IMAGE_EXT)}
    noisy, gt = index('noisy'), index('gt')
    names = sorted(set(noisy) & set(gt), key=lambda n: (len(n), n))
    if not names:
        raise SystemExit(f"evidence_lan: no noisy/gt pairs with matching names in '{folder}'")
    return [(n, noisy[n], gt[n]) for n in names]


def read_rgb(path: str) -> torch.Tensor:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"evidence_lan: cannot read image '{path}'")
    return torch.from_numpy(img[:, :, ::-1].astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def pretrain(pairs, args) -> DnCNN:
    """Brief L2 pretraining on random patches (Adam 1e-3, halved at 60 % and 85 %), flips and rotations.

    With ``--intensity-aug`` a pair is also inverted (1 - x, which negates the noise) half of the time and scaled by
    a gain in [0.6, 1]: the few SIDD crops are dim, and without this the net compresses the highlights of brighter
    test sets by several dB, a gap that no input offset bounded by 20 steps of lr 5e-4 can close.
    """
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = [(read_rgb(n), read_rgb(g)) for _, n, g in pairs]
    net = DnCNN(num_feat=args.feat, num_layers=args.layers, use_bn=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(0.6 * args.pretrain_iters), int(0.85 * args.pretrain_iters)], 0.5)
    p = args.patch
    start = time.time()
    for it in range(1, args.pretrain_iters + 1):
        lq, gt = [], []
        for _ in range(args.batch):
            noisy, clean = data[rng.integers(len(data))]
            y, x = rng.integers(0, noisy.shape[1] - p + 1), rng.integers(0, noisy.shape[2] - p + 1)
            a, b = noisy[:, y:y + p, x:x + p], clean[:, y:y + p, x:x + p]
            k = int(rng.integers(8))
            if k & 1:
                a, b = a.flip(-1), b.flip(-1)
            a, b = torch.rot90(a, k >> 1, (1, 2)), torch.rot90(b, k >> 1, (1, 2))
            if args.intensity_aug:  # exact pair transforms that widen the brightness range seen
                if rng.random() < 0.5:
                    a, b = 1 - a, 1 - b
                gain = float(rng.uniform(0.6, 1.0))
                a, b = a * gain, b * gain
            lq.append(a)
            gt.append(b)
        net.train()
        loss = F.mse_loss(net(torch.stack(lq)), torch.stack(gt))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % max(1, args.pretrain_iters // 10) == 0:
            print(f'  pretrain {it}/{args.pretrain_iters}  L2 {loss.item():.5f}  {time.time() - start:.0f}s', flush=True)
    return net.eval()


def scores(out: torch.Tensor, gt: torch.Tensor) -> Tuple[float, float]:
    a, b = tensor2img([out.cpu()]), tensor2img([gt.cpu()])
    return calculate_psnr(a, b, 0), calculate_ssim(a, b, 0)


def centre_crop(img: torch.Tensor, size: int) -> torch.Tensor:
    if not size:
        return img
    h, w = img.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[..., top:top + size, left:left + size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--train-dir', required=True, help='real noisy/clean pairs for pretraining (noisy/, gt/)')
    parser.add_argument('--test-dir', required=True, help='real noisy/clean pairs to adapt on (noisy/, gt/)')
    parser.add_argument('--work-dir', default='experiments/lan_evidence', help='where the pretrained net is saved')
    parser.add_argument('--pretrained', help='load this DnCNN state dict instead of pretraining')
    parser.add_argument('--feat', type=int, default=32)
    parser.add_argument('--layers', type=int, default=8)
    parser.add_argument('--pretrain-iters', type=int, default=2000)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--patch', type=int, default=48)
    parser.add_argument('--intensity-aug', type=int, default=1, help='1: inversion + gain augmentation in pretraining')
    parser.add_argument('--crop', type=int, default=128, help='centre crop of test images (0 = whole image)')
    parser.add_argument('--max-images', type=int, default=10, help='test pairs used (0 = all)')
    parser.add_argument('--lan-lr', type=float, default=5e-4, help='LAN offset lr (paper: 5e-4)')
    parser.add_argument('--finetune-lr', type=float, default=5e-6, help='fine-tuning lr (official code: 5e-6)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    train_pairs, test_pairs = paired_files(args.train_dir), paired_files(args.test_dir)[:args.max_images or None]
    print(f'train: {len(train_pairs)} pairs from {args.train_dir}; test: {len(test_pairs)} pairs from {args.test_dir} '
          f'(centre crop {args.crop or "none"})')
    if args.pretrained:
        net = DnCNN(num_feat=args.feat, num_layers=args.layers, use_bn=True)
        net.load_state_dict(torch.load(args.pretrained, map_location='cpu', weights_only=True)['params'])
        net.eval()
    else:
        print(f'pretraining DnCNN ({args.layers} layers, {args.feat} features) for {args.pretrain_iters} iterations')
        net = pretrain(train_pairs, args)
        os.makedirs(args.work_dir, exist_ok=True)
        path = os.path.join(args.work_dir, 'dncnn_pretrained.pth')
        torch.save({'params': net.state_dict()}, path)
        print(f'saved {path}')
    lean = make_lean(net)

    methods = [('full', 'full'), ('first-layer', 'first_layer'), ('last-layer', 'last_layer'), ('LAN', 'offset')]
    results: Dict[Tuple[str, str, int], List[Tuple[float, float]]] = {}
    pretrained_scores, noisy_scores = [], []
    start = time.time()
    for idx, (name, noisy_path, gt_path) in enumerate(test_pairs):
        noisy = centre_crop(read_rgb(noisy_path), args.crop).unsqueeze(0)
        gt = centre_crop(read_rgb(gt_path), args.crop).unsqueeze(0)
        noisy_scores.append(scores(noisy, gt))
        for loss in ('zsn2n', 'nbr2nbr'):
            for label, mode in methods:
                config = AdaptConfig(loss=loss, iters=max(REPORT), report_iters=(0,) + REPORT, seed=args.seed + idx,
                                     lr=args.lan_lr if mode == 'offset' else args.finetune_lr)
                result = (adapt_offset(lean, noisy, config) if mode == 'offset'
                          else adapt_weights(net, noisy, config, mode))
                if loss == 'zsn2n' and mode == 'offset':
                    pretrained_scores.append(scores(result.outputs[0], gt))
                for k in REPORT:
                    results.setdefault((loss, label, k), []).append(scores(result.outputs[k], gt))
        print(f'  adapted {name} ({idx + 1}/{len(test_pairs)}, {time.time() - start:.0f}s)', flush=True)

    def mean(values):
        return f'{np.mean([v[0] for v in values]):.2f} / {np.mean([v[1] for v in values]):.4f}'

    print(f'\nmean PSNR / SSIM over {len(test_pairs)} test images '
          f'(noisy input: {mean(noisy_scores)}; pretrained, no adaptation: {mean(pretrained_scores)})')
    header = f"| {'method':12} | {'iters':>5} | {'ZS-N2N':>17} | {'Nbr2Nbr':>17} |"
    print(header)
    print('|' + '|'.join('-' * (len(c)) for c in header.split('|')[1:-1]) + '|')
    print(f"| {'pretrained':12} | {0:5d} | {mean(pretrained_scores):>17} | {mean(pretrained_scores):>17} |")
    for k in REPORT:
        for label, _ in methods:
            print(f"| {label:12} | {k:5d} | {mean(results[('zsn2n', label, k)]):>17} | "
                  f"{mean(results[('nbr2nbr', label, k)]):>17} |")


if __name__ == '__main__':
    main()
