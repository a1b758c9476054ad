"""Run ADL/baseline trainings through ``basicsr_adl/train.py`` and score them (demo, evidence, benchmarks).

Each run writes its options YAML, trains in a subprocess exactly as a user would (BasicSR's train_pipeline),
then loads ``net_g_latest.pth`` and measures float PSNR/SSIM on the target's held-out test pairs.
"""
import copy
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import yaml

from basicsr_adl.adl.recipes import adl_options, embedded_network

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(REPO, 'basicsr_adl', 'train.py')


def ensure_embedded_data(data_root: str) -> Dict[str, Any]:
    """The embedded RAW set's manifest, building the set first when it is missing."""
    manifest = osp.join(data_root, 'manifest.json')
    if not osp.isfile(manifest):
        from basicsr_adl.raw.embedded import build_embedded_raw
        print(f'building the embedded RAW data in {data_root} ...', flush=True)
        build_embedded_raw(data_root, progress=False)
    with open(manifest) as f:
        return json.load(f)


def embedded_options(name: str, mode: str, manifest: Dict[str, Any], data_root: str, target: Optional[str] = None,
                     sources: Optional[Sequence[str]] = None, total_iter: int = 600,
                     stage_fractions: Sequence[float] = (0.2, 0.6, 0.2), gate: Optional[Dict[str, Any]] = None,
                     base_ch: int = 16, gt_size: int = 48, batch: int = 4, target_batch: int = 4, lr: float = 1e-3,
                     val_crop: int = 64, seed: int = 10, **adl_overrides) -> Dict[str, Any]:
    """Options for one CPU-sized run on the embedded data (same net, data and budget for every method)."""
    sensors = list(manifest['sensors'])
    target = target or manifest['target']
    if target not in sensors:
        raise ValueError(f"--target: '{target}' is not an embedded sensor; choices: {', '.join(sensors)}")
    sources = list(sources) if sources is not None else [s for s in sensors if s != target]
    p = int(round(stage_fractions[0] * total_iter))
    f = int(round(stage_fractions[2] * total_iter))
    network = embedded_network(sensors)
    network['base_ch'] = base_ch
    opt = adl_options(name, mode, target, sources, sensors, osp.abspath(data_root), gt_size=gt_size, batch=batch,
                      target_batch=target_batch, network=network, total_iter=total_iter,
                      stages=[p, total_iter - p - f, f], lr=lr, val_crop=val_crop, num_gpu=0,
                      print_freq=max(total_iter // 10, 1), ckpt_freq=10 ** 9, val_freq=10 ** 9,
                      heatmap_epochs=6, gate=gate, augment=False)
    opt['manual_seed'] = seed
    opt['logger']['use_tb_logger'] = False
    opt['val']['metrics'] = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}
    opt['adl'].update(adl_overrides)
    return opt


def run_training(opt: Dict[str, Any], workdir: str, quiet: bool = True, extra_args: Sequence[str] = ()) -> str:
    """Train with ``basicsr_adl/train.py`` in ``workdir``; returns the experiment folder."""
    # generated options go under results/ (ignored by git), not into the repository's options/ tree;
    # BasicSR also copies them into the experiment folder
    os.makedirs(osp.join(workdir, 'results', 'run_options'), exist_ok=True)
    path = osp.join(workdir, 'results', 'run_options', f"{opt['name']}.yml")
    with open(path, 'w') as fh:
        yaml.safe_dump(opt, fh, sort_keys=False)
    exp_dir = osp.join(workdir, 'experiments', opt['name'])
    if osp.isdir(exp_dir):
        shutil.rmtree(exp_dir)  # a re-run replaces its own earlier result
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, TRAIN, '-opt', path, *extra_args], cwd=workdir, env=env,
                          stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
                          text=True)
    if proc.returncode != 0:
        tail = (proc.stdout or '')[-4000:] if quiet else ''
        raise RuntimeError(f"training {opt['name']} failed (exit {proc.returncode}):\n{tail}")
    return exp_dir


def test_dataset(opt: Dict[str, Any]):
    """The run's held-out target test set (its ``datasets.val`` options)."""
    from basicsr.data import build_dataset
    dopt = copy.deepcopy(opt['datasets']['val'])
    dopt['phase'] = 'val'
    return build_dataset(dopt)


def evaluate_run(opt: Dict[str, Any], exp_dir: str, dataset=None, keep_outputs: int = 0) -> Dict[str, Any]:
    """PSNR/SSIM of the run's final weights on the target's test pairs."""
    import torch
    from basicsr.archs import build_network
    from basicsr_adl.models.adl_model import evaluate_net
    net = build_network(copy.deepcopy(opt['network_g']))
    state = torch.load(osp.join(exp_dir, 'models', 'net_g_latest.pth'), map_location='cpu')
    net.load_state_dict(state['params'])
    return evaluate_net(net, dataset if dataset is not None else test_dataset(opt), keep_outputs=keep_outputs)


def noisy_input_scores(dataset) -> Dict[str, float]:
    """PSNR/SSIM of the noisy inputs themselves (the floor every method must beat)."""
    import torch
    from basicsr.metrics.psnr_ssim import calculate_psnr_pt, calculate_ssim_pt
    ps, ss = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        lq, gt = torch.as_tensor(item['lq'])[None].clamp(0, 1), torch.as_tensor(item['gt'])[None]
        ps.append(float(calculate_psnr_pt(lq, gt, 0)))
        ss.append(float(calculate_ssim_pt(lq, gt, 0)))
    return {'psnr': sum(ps) / len(ps), 'ssim': sum(ss) / len(ss)}


def accept_counts(exp_dir: str) -> Dict[str, List[int]]:
    """source -> [accepted, total] from the run's heatmap CSV (empty for baselines)."""
    import csv
    path = osp.join(exp_dir, 'adl_accept_rates.csv')
    out: Dict[str, List[int]] = {}
    if not osp.isfile(path):
        return out
    with open(path) as fh:
        for row in csv.DictReader(fh):
            acc = out.setdefault(row['source'], [0, 0])
            acc[0] += int(row['accepted'])
            acc[1] += int(row['total'])
    return out


def labelled_strip(path: str, rgb_images, labels, zoom: int = 2) -> str:
    """Write HxWx3 RGB float images side by side, each enlarged ``zoom`` times and labelled; returns ``path``."""
    import cv2
    import numpy as np
    tiles = []
    for label, rgb in zip(labels, rgb_images):
        tile = (np.clip(np.asarray(rgb), 0, 1) * 255 + 0.5).astype(np.uint8)
        tile = cv2.resize(tile, (tile.shape[1] * zoom, tile.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
        tile = np.ascontiguousarray(tile[:, :, ::-1])
        cv2.putText(tile, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    cv2.imwrite(path, np.concatenate(tiles, 1))
    return path


class Timer:
    def __enter__(self):
        self.start = time.time()
        return self

    def __exit__(self, *exc):
        self.seconds = time.time() - self.start


def run_suite(runs: Dict[str, Any], out_dir: str, workdir: str = '.', tag: str = '',
              dataset=None) -> Dict[str, Dict[str, Any]]:
    """Train and score every run (``key -> (group, label, options)``), in order; results accumulate in
    ``<out_dir>/results.json`` (a re-run replaces its own keys) and are returned. ``tag`` marks runs that
    belong together (e.g. the iteration budget) so tables never mix budgets."""
    os.makedirs(out_dir, exist_ok=True)
    results_path = osp.join(out_dir, 'results.json')
    results = {}
    if osp.isfile(results_path):
        with open(results_path) as fh:
            results = json.load(fh)
    for n, (key, (group, label, opt)) in enumerate(runs.items(), 1):
        iters = opt['train']['total_iter']
        print(f'[{n}/{len(runs)} {key}] {label}: training {iters} iterations ...', flush=True)
        with Timer() as t:
            exp = run_training(opt, workdir)
        dataset = dataset if dataset is not None else test_dataset(opt)
        r = evaluate_run(opt, exp, dataset)
        counts = accept_counts(exp)
        acc = sum(a for a, _ in counts.values())
        tot = sum(n_ for _, n_ in counts.values())
        results[key] = {'group': group, 'label': label, 'psnr': r['psnr'], 'ssim': r['ssim'],
                        'psnr_per_image': r['psnr_per_image'], 'seconds': t.seconds, 'accepted': acc,
                        'decisions': tot, 'per_source': counts, 'tag': tag, 'experiment': exp}
        print(f'[{n}/{len(runs)} {key}] PSNR {r["psnr"]:.2f} dB, SSIM {r["ssim"]:.4f}, accepted {acc}/{tot}, '
              f'{t.seconds:.0f} s', flush=True)
        with open(results_path, 'w') as fh:
            json.dump(results, fh, indent=1)
    return results


def results_table(results: Dict[str, Dict[str, Any]], groups: Sequence[str], tag: str = '',
                  noisy: Optional[Dict[str, float]] = None, width: int = 52) -> str:
    """Rows ``label  PSNR  SSIM  accepted`` for the runs of ``groups`` (in that order) carrying ``tag``."""
    lines = []
    if noisy:
        lines.append(f'{"noisy input":<{width}}{noisy["psnr"]:>8.2f}{noisy["ssim"]:>8.4f}')
    lines.append(f'{"run":<{width}}{"PSNR":>8}{"SSIM":>8}{"accepted":>12}')
    for group in groups:
        for r in results.values():
            if r['group'] == group and r.get('tag', '') == tag:
                acc = f'{r["accepted"]}/{r["decisions"]}' if r['decisions'] else '-'
                lines.append(f'{r["label"]:<{width}}{r["psnr"]:>8.2f}{r["ssim"]:>8.4f}{acc:>12}')
    return '\n'.join(lines)


def write_table(out_dir: str, text: str) -> str:
    """Print ``text`` and write it to ``<out_dir>/table.txt``; returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = osp.abspath(osp.join(out_dir, 'table.txt'))
    print('\n' + text)
    with open(path, 'w') as fh:
        fh.write(text + '\n')
    print(f'\ntable: {path}')
    return path
