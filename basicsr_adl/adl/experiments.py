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


def embedded_data_root(target: Optional[str] = None) -> str:
    """Where the demo and the evidence scripts keep the embedded set built for ``target`` (None: the default)."""
    from basicsr_adl.raw.embedded import DEFAULT_OUT, DEFAULT_TARGET
    return DEFAULT_OUT if target in (None, DEFAULT_TARGET) else f'{DEFAULT_OUT}_{target}'


def ensure_embedded_data(data_root: str, target: Optional[str] = None) -> Dict[str, Any]:
    """The embedded RAW set's manifest, building the set first when it is missing or from an older version
    (the set is generated: rebuilding it loses nothing). A set built for another target is an error: the
    target's scarcity (few photos, narrow ISO band) is baked into the set."""
    from basicsr_adl.raw.embedded import DEFAULT_TARGET, MANIFEST_VERSION, build_embedded_raw
    manifest = osp.join(data_root, 'manifest.json')
    old = None
    if osp.isfile(manifest):
        with open(manifest) as f:
            old = json.load(f)
        if old.get('version') != MANIFEST_VERSION:
            print(f'the embedded RAW data in {data_root} are version {old.get("version")}; rebuilding them as '
                  f'version {MANIFEST_VERSION} ...', flush=True)
            old = None
    if old is None:
        print(f'building the embedded RAW data in {data_root} ...', flush=True)
        return build_embedded_raw(data_root, target=target or DEFAULT_TARGET, overwrite=True, progress=False)
    if target is not None and old['target'] != target:
        raise ValueError(f"--target {target}: the embedded set in {data_root} was built for target {old['target']}; "
                         f'use --data {embedded_data_root(target)} (built on first use) or another folder')
    return old


def embedded_options(name: str, mode: str, manifest: Dict[str, Any], data_root: str, target: Optional[str] = None,
                     sources: Optional[Sequence[str]] = None, total_iter: int = 600,
                     stage_fractions: Sequence[float] = (0.2, 0.6, 0.2), gate: Optional[Dict[str, Any]] = None,
                     base_ch: int = 16, gt_size: int = 48, batch: int = 4, target_batch: int = 4, lr: float = 1e-3,
                     val_crop: int = 64, seed: int = 10, target_pairs: Optional[int] = None,
                     target_seed: Optional[int] = None, modulation: bool = True, **adl_overrides) -> Dict[str, Any]:
    """Options for one CPU-sized run on the embedded data (same net, data and budget for every method).

    ``target_pairs``: train on a subset of that many target pairs, drawn with ``target_seed`` (default: the
    training seed, so every seed also sees other target pairs); ``modulation`` false: the plain UNet (no
    sensor/ISO input), the paper's fine-tuning baseline."""
    sensors = list(manifest['sensors'])
    target = target or manifest['target']
    if target not in sensors:
        raise ValueError(f"--target: '{target}' is not an embedded sensor; choices: {', '.join(sensors)}")
    sources = list(sources) if sources is not None else [s for s in sensors if s != target]
    p = int(round(stage_fractions[0] * total_iter))
    f = int(round(stage_fractions[2] * total_iter))
    gt_size = min(gt_size, int(manifest.get('packed_patch_size', gt_size)))  # a small set: its whole images
    network = embedded_network(sensors)
    network['base_ch'] = base_ch
    if not modulation:
        network.update(use_sensor=False, use_iso=False)
    opt = adl_options(name, mode, target, sources, sensors, osp.abspath(data_root), gt_size=gt_size, batch=batch,
                      target_batch=target_batch, network=network, total_iter=total_iter,
                      stages=[p, total_iter - p - f, f], lr=lr, val_crop=val_crop, num_gpu=0,
                      print_freq=max(total_iter // 10, 1), ckpt_freq=10 ** 9, val_freq=10 ** 9,
                      heatmap_epochs=6, gate=gate, augment=False)
    opt['manual_seed'] = seed
    if target_pairs is not None:
        opt['datasets']['train']['target_pairs'] = int(target_pairs)
        opt['datasets']['train']['target_seed'] = int(seed if target_seed is None else target_seed)
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


def build_model_in_process(opt: Dict[str, Any], workdir: str):
    """The run's BasicSR model built here (as train.py would, without training): for benchmarks and probes."""
    from basicsr.models import build_model
    from basicsr.utils import make_exp_dirs
    from basicsr.utils.options import parse_options
    os.makedirs(osp.join(workdir, 'results', 'run_options'), exist_ok=True)
    path = osp.join(workdir, 'results', 'run_options', f"{opt['name']}.yml")
    with open(path, 'w') as fh:
        yaml.safe_dump(opt, fh, sort_keys=False)
    argv = sys.argv
    sys.argv = ['probe', '-opt', path]
    try:
        parsed, _ = parse_options(workdir, is_train=True)
    finally:
        sys.argv = argv
    parsed['root_path'] = workdir
    make_exp_dirs(parsed)
    return build_model(parsed)


def iteration_seconds(opt: Dict[str, Any], workdir: str, probe: int = 20) -> float:
    """Seconds one training iteration of ``opt`` takes on average over its stage mix, timed in-process with one
    thread (as run_parallel's runs have) on ``probe`` iterations of each stage after two warm-up iterations
    (20: two refreshes of paired_target_linear's V' gradient at its default refresh_every of 10).

    Used for equal-wall-clock comparisons: ADL's stage 2 costs more per iteration than a plain step, so at an
    equal time budget it gets fewer iterations than the baselines."""
    import torch
    probe_opt = copy.deepcopy(opt)
    probe_opt['name'] = f"{opt['name']}_probe"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_model_in_process(probe_opt, workdir)
        s = model.schedule
        starts = [(0, s.pretrain_iters), (s.pretrain_iters, s.adapt_iters),
                  (s.pretrain_iters + s.adapt_iters, s.finetune_iters)]
        weighted = 0.0
        for start, length in starts:
            if length <= 0:
                continue
            iters = list(range(start + 1, start + 1 + min(length, probe + 2)))
            for it in iters[:2]:
                model.optimize_parameters(it)
            begin = time.perf_counter()
            for it in iters[2:] or iters[-1:]:
                model.optimize_parameters(it)
            weighted += length * (time.perf_counter() - begin) / max(len(iters[2:]), 1)
    finally:
        torch.set_num_threads(threads)
        shutil.rmtree(osp.join(workdir, 'experiments', probe_opt['name']), ignore_errors=True)
    return weighted / max(s.total, 1)


def iterations_for_budget(opt: Dict[str, Any], seconds: float, workdir: str) -> int:
    """How many iterations of ``opt`` fit in ``seconds`` of training (at least 10)."""
    return max(10, int(seconds / iteration_seconds(opt, workdir)))


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
    from basicsr_adl.metrics import evaluate_net
    net = build_network(copy.deepcopy(opt['network_g']))
    state = torch.load(osp.join(exp_dir, 'models', 'net_g_latest.pth'), map_location='cpu')
    net.load_state_dict(state['params'])
    return evaluate_net(net, dataset if dataset is not None else test_dataset(opt), keep_outputs=keep_outputs)


def noisy_input_scores(dataset) -> Dict[str, float]:
    """PSNR/SSIM of the noisy inputs themselves (the floor every method must beat)."""
    from basicsr_adl.metrics import noisy_input_scores as scores  # imports BasicSR: only when scoring
    return scores(dataset)


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


#: the scarce-target comparison: method -> (label, adl.mode, sensor/ISO modulation). The plain variants are the
#: paper's fine-tuning baseline (a UNet without metadata) and its target-only counterpart.
SCARCITY_METHODS = {'target_only': ('target-only', 'target_only', True),
                    'target_only_plain': ('target-only, plain UNet', 'target_only', False),
                    'finetune': ('fine-tuning', 'finetune', True),
                    'finetune_plain': ('fine-tuning, plain UNet', 'finetune', False),
                    'adl': ('ADL', 'adl', True)}
COLLAPSE_DB = 0.05  # a run this close to the noisy input's PSNR has learnt (nearly) the identity


def collapsed(psnr: float, noisy_psnr: float) -> bool:
    """Whether a run ended at (or below) the noisy input: it learnt nothing, and must not count as a baseline."""
    return psnr - noisy_psnr < COLLAPSE_DB


def best_baseline(scores: Dict[str, float], noisy_psnr: float) -> Optional[float]:
    """The best PSNR among the non-ADL methods of one seed that did not collapse (None if all did)."""
    kept = [v for m, v in scores.items() if m != 'adl' and not collapsed(v, noisy_psnr)]
    return max(kept) if kept else None


def train_and_score(opt: Dict[str, Any], workdir: str, dataset, keep_outputs: int = 0) -> Dict[str, Any]:
    """Train one run through train.py and score its final weights on ``dataset``."""
    with Timer() as t:
        exp = run_training(opt, workdir)
    result = evaluate_run(opt, exp, dataset, keep_outputs=keep_outputs)
    counts = accept_counts(exp)
    result.update(seconds=t.seconds, experiment=exp, per_source=counts,
                  accepted=sum(a for a, _ in counts.values()), decisions=sum(n for _, n in counts.values()))
    return result


def run_parallel(jobs: int, work: Sequence[Any], fn) -> None:
    """Call ``fn(item)`` for every item, ``jobs`` at a time (threads: each call trains in a subprocess, which
    then gets one thread, as two torch processes with two threads each on two cores run far slower than one)."""
    if jobs <= 1:
        for item in work:
            fn(item)
        return
    from concurrent.futures import ThreadPoolExecutor
    import torch
    os.environ['OMP_NUM_THREADS'] = '1'  # inherited by the training subprocesses
    torch.set_num_threads(1)
    with ThreadPoolExecutor(jobs) as pool:
        for future in [pool.submit(fn, item) for item in work]:
            future.result()


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
        dataset = dataset if dataset is not None else test_dataset(opt)
        r = train_and_score(opt, workdir, dataset)
        results[key] = {'group': group, 'label': label, 'tag': tag,
                        **{k: r[k] for k in ('psnr', 'ssim', 'psnr_per_image', 'seconds', 'accepted', 'decisions',
                                             'per_source', 'experiment')}}
        print(f'[{n}/{len(runs)} {key}] PSNR {r["psnr"]:.2f} dB, SSIM {r["ssim"]:.4f}, accepted '
              f'{r["accepted"]}/{r["decisions"]}, {r["seconds"]:.0f} s', flush=True)
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
