#!/usr/bin/env python
"""ADL on real cross-camera sRGB noise: target-only vs source-pretrain-then-fine-tune vs ADL (two gates).

The target camera's pairs come from a PolyU-named folder and are split **by scene**: the training scenes give
the small target set, the test scenes are never seen in training. Sources are the folder's other cameras plus
any ``noisy/``+``gt/`` folders given with ``--source`` (e.g. Nam crops, SIDD crops). Every run trains through
``basicsr_adl/train.py`` with the same ModulatedUNet, seed and iteration budget and is scored (float PSNR/SSIM,
whole images) on the target's test scenes. ADL runs also report accepted/total source steps per source.

Groups (``--groups``): ``main`` (target-only, fine-tuning, ADL with the paper's gate, ADL with the project's
default gate) and ``harmful`` (the only source is a corrupted copy of the first source: misaligned pairs,
black GT or blurred GT; fine-tuning vs ADL).

    .venv/bin/python scripts/evidence_adl_real.py --polyu /data/polyu_canon_subset --target Canon80D \\
        --test-scenes ball --source Nam=/data/nam_cbdnet_patches@3200 --source SIDD=/data/sidd_samples@1600

``--seeds`` trains every run once per seed; ``--targets`` takes each camera in turn as the target with the
others as sources (the paper's cross-validation protocol). With either, ``table.txt`` becomes the summary: per
target and method the mean, standard deviation and each seed's PSNR, ADL minus the best baseline per seed (a
baseline within 0.05 dB of the noisy input counts as collapsed to the identity: flagged ``!``, not counted),
then the mean over targets; each (target, seed) keeps its own ``table_<target>_s<seed>.txt``. Every run is
scored on its final weights. ``--plain-baselines`` (default on) adds target-only and fine-tuning with a plain
UNet (no sensor/ISO input), as the paper's fine-tuning baseline is.

Data stay where they are: only options, experiments and the table are written (under --out / --workdir).
"""
import argparse
import copy
import os.path as osp
import statistics
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import basicsr_adl.plugin  # noqa: E402,F401  (compat fixes + registration)
from basicsr_adl.adl.experiments import (best_baseline, collapsed, noisy_input_scores, results_table,  # noqa: E402
                                         run_suite, test_dataset, write_table)
from basicsr_adl.adl.recipes import real_adl_options, real_domain  # noqa: E402
from basicsr_adl.real_pairs import RealPairsError, polyu_pairs, split_pairs_by_scene  # noqa: E402

CORRUPTIONS = {'misaligned': {'corruption': 'misaligned', 'shift': 4},
               'black_gt': {'corruption': 'black_gt'},
               'blurred_gt': {'corruption': 'blurred_gt', 'blur': 5}}


def parse_source(spec: str):
    """``NAME=DIR`` or ``NAME=DIR@ISO`` -> (name, folder, iso or None)."""
    if '=' not in spec:
        raise SystemExit(f"--source '{spec}': expected NAME=DIR or NAME=DIR@ISO")
    name, rest = spec.split('=', 1)
    folder, iso = (rest.rsplit('@', 1) + [None])[:2] if '@' in rest else (rest, None)
    if not osp.isdir(folder):
        raise SystemExit(f"--source {name}: folder not found: {folder}")
    try:
        return name, osp.abspath(folder), float(iso) if iso is not None else None
    except ValueError:
        raise SystemExit(f"--source {name}: ISO '{iso}' is not a number") from None


def build_runs(args):
    polyu = osp.abspath(args.polyu)
    try:
        pairs = polyu_pairs(polyu)
    except RealPairsError as err:
        raise SystemExit(f'--polyu: {err}') from None
    cameras = sorted({p.camera for p in pairs})
    if args.target not in cameras:
        raise SystemExit(f"--target '{args.target}': not in {polyu}; cameras: {', '.join(cameras)}")
    target_pairs = [p for p in pairs if p.camera == args.target]
    try:
        scenes = args.test_scenes
        if scenes is not None and getattr(args, 'targets', None):  # one list for several targets: each its own
            scenes = [sc for sc in scenes if any(p.scene == sc for p in target_pairs)] or None
        split_seed = args.seed if args.split_seed is None else args.split_seed
        train, test = split_pairs_by_scene(target_pairs, scenes, 0.5, split_seed)
    except RealPairsError as err:
        raise SystemExit(f'--test-scenes: {err}') from None
    test_scenes = sorted({p.scene for p in test})
    if len(train) < 2 or not test:
        raise SystemExit(f'target {args.target}: {len(train)} training / {len(test)} test pairs after the scene '
                         'split; need at least 2 and 1 (choose --test-scenes)')
    polyu_sources = args.polyu_sources if args.polyu_sources is not None else [c for c in cameras if c != args.target]
    for cam in polyu_sources:
        if cam not in cameras or cam == args.target:
            raise SystemExit(f"--polyu-sources: '{cam}' is not a source camera in {polyu}")
    extra = [parse_source(s) for s in args.source]
    sensors = [args.target] + list(polyu_sources) + [name for name, _, _ in extra]
    if len(set(sensors)) != len(sensors):
        raise SystemExit(f'domain names must be unique: {sensors}')

    domains = {args.target: real_domain(args.target, sensors, 'train', args.patch, polyu_root=polyu,
                                        test_scenes=test_scenes)}
    for cam in polyu_sources:
        domains[cam] = real_domain(cam, sensors, 'train', args.patch, polyu_root=polyu)
    for name, folder, iso in extra:
        domains[name] = real_domain(name, sensors, 'train', args.patch, folder=folder,
                                    iso=iso if iso is not None else args.default_iso)
    test_domain = real_domain(args.target, sensors, 'test', args.patch, polyu_root=polyu, test_scenes=test_scenes)
    network = {'type': 'ModulatedUNet', 'in_ch': 3, 'out_ch': 3, 'base_ch': args.base_ch, 'convs_per_block': 2,
               'dense': False, 'num_sensors': len(sensors), 'use_sensor': True, 'use_iso': not args.no_iso,
               'mlp_hidden': 32,
               'iso_ref': 100, 'residual': True}
    p = int(round(args.stages[0] * args.iters))
    f = int(round(args.stages[2] * args.iters))
    stages = [p, args.iters - p - f, f]
    # runs are tabled together only when everything but the method matches
    tag = '|'.join(str(v) for v in (args.target, ','.join(test_scenes), args.iters, args.seed, ','.join(sensors),
                                    args.patch, args.batch, args.target_batch, args.lr, args.base_ch, args.stages,
                                    'no-iso' if args.no_iso else 'iso'))

    def make(key, mode, gate=None, doms=None, plain=False):
        gate = {'criterion': 'paired_target', 'tolerance': args.tolerance, 'queue_size': 10, 'every': args.gate_every,
                'revert_optimizer': True, **({'on_reject': args.on_reject} if args.on_reject else {}), **(gate or {})}
        net = dict(network, use_sensor=False, use_iso=False) if plain else network
        opt = real_adl_options(f'ADL_real_{args.target}_{key}' + (f'_s{args.seed}' if args.several else ''), mode,
                               args.target, doms or domains, test_domain, net, args.iters, stages, args.batch,
                               args.target_batch, args.lr, args.val_crop, gate=gate,
                               print_freq=max(args.iters // 10, 1))
        opt['manual_seed'] = args.seed
        return opt

    runs = {}
    if 'main' in args.groups:
        runs['target_only'] = ('main', 'target-only', make('target_only', 'target_only'))
        runs['finetune'] = ('main', 'source pretrain -> fine-tune', make('finetune', 'finetune'))
        if args.plain_baselines:
            runs['target_only_plain'] = ('main', 'target-only, plain UNet',
                                         make('target_only_plain', 'target_only', plain=True))
            runs['finetune_plain'] = ('main', 'source pretrain -> fine-tune, plain UNet',
                                      make('finetune_plain', 'finetune', plain=True))
        runs['adl_paper'] = ('main', "ADL, paper's gate (queue mean)",
                             make('adl_paper', 'adl', {'criterion': 'paper', 'on_reject': 'revert'}))
        default = ' (project default)' if args.gate == 'paired_target' else ''
        runs['adl'] = ('main', f'ADL, {args.gate} gate{default}', make('adl', 'adl', {'criterion': args.gate}))
    if 'harmful' in args.groups:
        base_name = (list(polyu_sources) + [n for n, _, _ in extra])[0]
        for kind in args.harmful:
            doms = {args.target: domains[args.target],
                    f'{base_name}_{kind}': {'type': 'CorruptedPairsDataset', 'base': copy.deepcopy(domains[base_name]),
                                            **CORRUPTIONS[kind]}}
            for mode, label in (('finetune', 'fine-tune'), ('adl', 'ADL')):
                key = f'{kind}_{mode}'
                runs[key] = ('harmful', f'{label}, only source: {base_name} {kind}',
                             make(key, mode, {'criterion': args.gate}, doms))
    if args.only is not None:  # '--only' alone: train nothing, print the table of the runs already in --out
        unknown = sorted(set(args.only) - set(runs))
        if unknown:
            raise SystemExit(f"--only: unknown run keys {unknown}; keys: {', '.join(runs)}")
        runs = {k: v for k, v in runs.items() if k in args.only}
    info = (f'target {args.target}: {len(train)} training pairs (scenes '
            f'{", ".join(sorted({p.scene for p in train}))}), {len(test)} test pairs (scenes {", ".join(test_scenes)}); '
            f'sources {", ".join(s for s in sensors if s != args.target)}; {args.iters} iterations per run '
            f'(stages {stages[0]}/{stages[1]}/{stages[2]}), seed {args.seed}'
            f'{", no ISO modulation" if args.no_iso else ""}')
    return runs, tag, info, make('test', 'target_only')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--polyu', required=True, help='PolyU-named folder with the target (and source) cameras')
    p.add_argument('--target', default='Canon80D', help='target camera (PolyU name prefix)')
    p.add_argument('--targets', nargs='+', default=None,
                   help='several target cameras in turn (each with the others as sources); overrides --target')
    p.add_argument('--test-scenes', nargs='+', default=None, help='target scenes held out for testing '
                   '(default: a seeded half of the scenes)')
    p.add_argument('--polyu-sources', nargs='*', default=None, help='source cameras from --polyu (default: all others)')
    p.add_argument('--source', action='append', default=[], help='extra source NAME=DIR[@ISO] (noisy/ + gt/ folders)')
    p.add_argument('--default-iso', type=float, default=3200.0, help='ISO for --source folders without one')
    p.add_argument('--groups', nargs='+', default=['main'], choices=['main', 'harmful'])
    p.add_argument('--harmful', nargs='+', default=list(CORRUPTIONS), choices=list(CORRUPTIONS))
    p.add_argument('--iters', type=int, default=900, help='iterations per run (same for every method)')
    p.add_argument('--stages', type=float, nargs=3, default=[0.2, 0.6, 0.2], help='ADL stage fractions')
    p.add_argument('--gate', default='paired_target', help='the project gate to compare with the paper gate')
    p.add_argument('--gate-every', type=int, default=1)
    p.add_argument('--tolerance', type=float, default=0.0)
    p.add_argument('--on-reject', default=None, choices=['revert', 'target_step'],
                   help="project gate: what a rejected step leaves (default: the gate's own; the paper's reverts)")
    p.add_argument('--patch', type=int, default=64)
    p.add_argument('--batch', type=int, default=8, help='source (or target-only) patches per step')
    p.add_argument('--target-batch', type=int, default=8, help='target patches joined to each ADL source batch')
    p.add_argument('--base-ch', type=int, default=16)
    p.add_argument('--no-iso', action='store_true', help='ModulatedUNet without ISO modulation (sensor only): '
                   'in PolyU every scene has its own ISO, so a scene split leaves the test ISO unseen in training')
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--val-crop', type=int, default=128)
    p.add_argument('--seed', type=int, default=10)
    p.add_argument('--seeds', type=int, nargs='+', default=None, help='several training seeds; overrides --seed')
    p.add_argument('--split-seed', type=int, default=None,
                   help='seed of the scene split when --test-scenes is not given (default: the training seed)')
    p.add_argument('--plain-baselines', action=argparse.BooleanOptionalAction, default=True,
                   help='also run target-only and fine-tuning with a plain UNet (default on)')
    p.add_argument('--only', nargs='*', default=None,
                   help='train only these run keys (none: just print the table of the runs in --out)')
    p.add_argument('--out', default=osp.join('results', 'adl_real'))
    p.add_argument('--workdir', default='.')
    args = p.parse_args(argv)
    targets, seeds = args.targets or [args.target], args.seeds or [args.seed]
    args.several = len(targets) > 1 or len(seeds) > 1
    collected = {}  # target -> (noisy PSNR, {run key: (label, {seed: PSNR})})
    for target in targets:
        per_key = {}
        for seed in seeds:
            one = copy.copy(args)
            one.target, one.seed = target, seed
            noisy_psnr = run_one(one, per_key)
        collected[target] = (noisy_psnr, per_key)
    if args.several:
        write_table(args.out, summary_text(collected, seeds, args))
    return 0


def run_one(args, per_key) -> float:
    """Train and table one (target, seed); adds each run's PSNR to ``per_key``; returns the noisy-input PSNR."""
    runs, tag, info, test_options = build_runs(args)
    if args.several:
        runs = {f'{args.target}_s{args.seed}_{k}': v for k, v in runs.items()}
    print(info, flush=True)
    dataset = test_dataset(test_options)
    results = run_suite(runs, args.out, args.workdir, tag=tag, dataset=dataset)
    noisy = noisy_input_scores(dataset)
    table = results_table(results, ('main', 'harmful'), tag, noisy)
    rates = []
    for key, r in results.items():
        if r.get('tag') == tag and r['decisions']:
            parts = ', '.join(f'{s} {a}/{n}' for s, (a, n) in r['per_source'].items())
            rates.append(f'  {r["label"]}: {parts}')
    text = info + '\n' + table + ('\naccepted source steps per source:\n' + '\n'.join(rates) if rates else '')
    if args.several:
        path = osp.join(args.out, f'table_{args.target}_s{args.seed}.txt')
        with open(path, 'w') as fh:
            fh.write(text + '\n')
        print(text + f'\ntable: {osp.abspath(path)}', flush=True)
    else:
        write_table(args.out, text)
    prefix = f'{args.target}_s{args.seed}_' if args.several else ''
    for key in runs:
        method = key[len(prefix):]
        label, scores = per_key.setdefault(method, (runs[key][1], {}))
        scores[args.seed] = results[key]['psnr']
    return noisy['psnr']


BASELINE_KEYS = ('target_only', 'target_only_plain', 'finetune', 'finetune_plain')


def summary_text(collected, seeds, args) -> str:
    """Per target: mean, spread and each seed's PSNR per run; ADL (the project gate) minus the best baseline
    that did not collapse, per seed; then each run's mean over targets."""
    lines = [f'ADL on real data: {len(collected)} target(s), seeds {", ".join(map(str, seeds))}; {args.iters} '
             'iterations per run; scored: final weights. ! = within 0.05 dB of the noisy input (collapsed to the '
             'identity; not counted as a best baseline).', '']
    over_targets = {}
    for target, (noisy, per_key) in collected.items():
        lines.append(f'target {target} (noisy input {noisy:.2f} dB)')
        lines.append(f'  {"run":<44}{"mean":>8}{"std":>7}   per seed ({", ".join(map(str, seeds))})')
        for key, (label, scores) in per_key.items():
            vals = [scores[s] for s in seeds if s in scores]
            per = ', '.join(f'{scores[s]:.2f}' + ('!' if collapsed(scores[s], noisy) else '') for s in seeds
                            if s in scores)
            std = statistics.stdev(vals) if len(vals) > 1 else 0.0
            lines.append(f'  {label:<44}{statistics.fmean(vals):>8.2f}{std:>7.2f}   {per}')
            over_targets.setdefault(label, []).append(statistics.fmean(vals))
        gaps = []
        for s in seeds:
            best = best_baseline({k: per_key[k][1][s] for k in BASELINE_KEYS if k in per_key and s in per_key[k][1]},
                                 noisy)
            if 'adl' in per_key and s in per_key['adl'][1] and best is not None:
                gaps.append(per_key['adl'][1][s] - best)
        if gaps:
            lines.append(f'  ADL - best baseline: {statistics.fmean(gaps):+.2f} dB (per seed '
                         + ', '.join(f'{g:+.2f}' for g in gaps) + ')')
        lines.append('')
    if len(collected) > 1:
        lines.append('mean over targets')
        for label, means in over_targets.items():
            lines.append(f'  {label:<44}{statistics.fmean(means):>8.2f}')
    return '\n'.join(lines).rstrip()


if __name__ == '__main__':
    sys.exit(main())
