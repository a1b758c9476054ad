#!/usr/bin/env python
"""ADL against its baselines as the target set shrinks: the shape of the paper's Fig. 3, over several seeds.

For every target-set size (``--sizes``, default 2 4 8 16 32 pairs) and seed (``--seeds``), trains with the same
net, data and iteration budget:

* ``target_only`` / ``target_only_plain``: the target pairs alone, with and without sensor/ISO modulation;
* ``finetune`` / ``finetune_plain``: source pretraining, then the target pairs (the paper's baseline is plain);
* ``adl``: ADL with the project's default gate (``--gate``).

Each seed draws its own subset of target pairs (``datasets.train.target_pairs`` with ``target_seed`` = the seed)
and its own training randomness. Every method is scored the same way: its **final weights** on the target's
held-out test pairs (embedded set: photos no sensor trains on, spanning the target's whole ISO range).

Output (``--out``): ``results.json`` (every run; a rerun skips runs already there, so an interrupted sweep
resumes), ``table.txt`` (per size: mean, standard deviation and each seed's PSNR per method, ADL minus the best
baseline per seed; a run within 0.05 dB of the noisy input is flagged ``!`` as collapsed to the identity and
not counted as a best baseline) and ``scarcity.png`` (PSNR against the number of target pairs, one line per
method, error bars = standard deviation over seeds).

    .venv/bin/python scripts/evidence_adl_scarcity.py --sizes 2 4 8 16 32 --seeds 10 11 12 --jobs 2

Runs go through ``basicsr_adl/train.py`` as a user's would; ``--jobs`` trains that many at once (each with one
thread: two torch processes with two threads each on two cores run far slower than one).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
from typing import Any, Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import basicsr_adl.plugin  # noqa: E402,F401  (compat fixes + registration)
from basicsr_adl.adl.experiments import (COLLAPSE_DB, SCARCITY_METHODS as METHODS, best_baseline,  # noqa: E402
                                         collapsed, embedded_data_root, embedded_options, ensure_embedded_data,
                                         noisy_input_scores, run_parallel, test_dataset, train_and_score)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default=None, help='embedded RAW folder (default: datasets/embedded/raw[_<target>])')
    p.add_argument('--target', default=None, help='target sensor (default: the embedded set\'s, IMX686)')
    p.add_argument('--sizes', type=int, nargs='+', default=[2, 4, 8, 16, 32], help='target-set sizes (pairs)')
    p.add_argument('--seeds', type=int, nargs='+', default=[10, 11, 12], help='training seeds (and target subsets)')
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=list(METHODS))
    p.add_argument('--iters', type=int, default=400, help='iterations per run (same budget for all)')
    p.add_argument('--gate', default='paired_target', help='ADL gate criterion')
    p.add_argument('--base-ch', type=int, default=16, help='ModulatedUNet width')
    p.add_argument('--jobs', type=int, default=1, help='runs trained at once (one thread each)')
    p.add_argument('--out', default=osp.join('results', 'adl_scarcity'), help='folder for results, table, plot')
    p.add_argument('--workdir', default='.', help='where experiments/ of the runs go')
    args = p.parse_args(argv)
    if min(args.sizes) < 1 or ('adl' in args.methods and min(args.sizes) < 2):
        p.error('--sizes: ADL needs at least 2 target pairs (one for V\', one to train on)')
    return args


def run_key(method: str, size: int, seed: int, iters: int) -> str:
    return f'{method}_n{size}_s{seed}_i{iters}'


def build_runs(args, manifest, data_root) -> Dict[str, Dict[str, Any]]:
    target = args.target or manifest['target']
    available = manifest['domains'][target]['train_pairs']
    too_big = [n for n in args.sizes if n > available]
    if too_big:
        raise SystemExit(f'--sizes {too_big}: the embedded set holds {available} target pairs; rebuild it with '
                         f'scripts/make_embedded_raw.py --target-pairs {max(too_big)} --overwrite --out {data_root}')
    gate = {'criterion': args.gate, 'tolerance': 0.0, 'queue_size': 10, 'every': 1, 'revert_optimizer': True}
    runs = {}
    for size in args.sizes:
        for seed in args.seeds:
            for method in args.methods:
                _, mode, modulated = METHODS[method]
                key = run_key(method, size, seed, args.iters)
                runs[key] = {'method': method, 'size': size, 'seed': seed,
                             'opt': embedded_options(f'scarcity_{key}', mode, manifest, data_root, target=target,
                                                     total_iter=args.iters, gate=gate, base_ch=args.base_ch,
                                                     seed=seed, target_pairs=size, modulation=modulated)}
    return runs


def summarise(results: Sequence[Dict[str, Any]], methods: Sequence[str], sizes: Sequence[int], seeds: Sequence[int],
              noisy_psnr: float) -> Dict[int, Dict[str, Any]]:
    """Per size: each method's PSNR per seed, mean and standard deviation; ADL minus the best non-collapsed
    baseline per seed."""
    by = {(r['method'], r['size'], r['seed']): r for r in results}
    out = {}
    for size in sizes:
        row: Dict[str, Any] = {'methods': {}, 'gaps': {}}
        for method in methods:
            values = {seed: by[method, size, seed]['psnr'] for seed in seeds if (method, size, seed) in by}
            if values:
                vals = list(values.values())
                row['methods'][method] = {'per_seed': values, 'mean': statistics.fmean(vals),
                                          'std': statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                          'collapsed': [s for s, v in values.items() if collapsed(v, noisy_psnr)]}
        for seed in seeds:
            if ('adl', size, seed) not in by:
                continue
            best = best_baseline({m: by[m, size, seed]['psnr'] for m in methods if (m, size, seed) in by},
                                 noisy_psnr)
            if best is not None:
                row['gaps'][seed] = by['adl', size, seed]['psnr'] - best
        out[size] = row
    return out


def table_text(summary: Dict[int, Dict[str, Any]], methods: Sequence[str], seeds: Sequence[int], noisy: Dict[str, float],
               header: str) -> str:
    lines = [header, f'noisy input: {noisy["psnr"]:.2f} dB. Scored: final weights of every run. '
                     f'! = within {COLLAPSE_DB} dB of the noisy input (collapsed to the identity; not counted as a best '
                     'baseline).', '']
    seed_head = ', '.join(str(s) for s in seeds)
    for size, row in summary.items():
        lines.append(f'{size} target pairs')
        lines.append(f'  {"method":<26}{"mean":>8}{"std":>7}   per seed ({seed_head})')
        for method in methods:
            m = row['methods'].get(method)
            if m is None:
                continue
            per = ', '.join(f'{v:.2f}' + ('!' if s in m['collapsed'] else '') for s, v in m['per_seed'].items())
            lines.append(f'  {METHODS[method][0]:<26}{m["mean"]:>8.2f}{m["std"]:>7.2f}   {per}')
        if row['gaps']:
            gaps = list(row['gaps'].values())
            lines.append(f'  ADL - best baseline: {statistics.fmean(gaps):+.2f} dB (per seed '
                         + ', '.join(f'{g:+.2f}' for g in gaps) + ')')
        elif 'adl' in row['methods']:
            lines.append('  ADL - best baseline: n/a (every baseline collapsed)')
        lines.append('')
    return '\n'.join(lines).rstrip() + '\n'


def plot(summary: Dict[int, Dict[str, Any]], methods: Sequence[str], noisy_psnr: float, path: str, title: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    sizes = sorted(summary)
    for method in methods:
        xs = [n for n in sizes if method in summary[n]['methods']]
        if not xs:
            continue
        means = [summary[n]['methods'][method]['mean'] for n in xs]
        stds = [summary[n]['methods'][method]['std'] for n in xs]
        style = {'linewidth': 2.4} if method == 'adl' else {'linewidth': 1.3, 'linestyle': '--' if 'plain' in method
                                                            else '-'}
        ax.errorbar(xs, means, yerr=stds, capsize=3, marker='o', label=METHODS[method][0], **style)
    ax.axhline(noisy_psnr, color='grey', linestyle=':', label='noisy input')
    ax.set_xscale('log', base=2)
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(n) for n in sizes])
    ax.set_xlabel('target training pairs')
    ax.set_ylabel('PSNR on held-out target pairs (dB)')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    args = parse_args(argv)
    data_root = args.data or embedded_data_root(args.target)
    manifest = ensure_embedded_data(data_root, args.target)
    target = args.target or manifest['target']
    runs = build_runs(args, manifest, data_root)
    os.makedirs(args.out, exist_ok=True)
    results_path = osp.join(args.out, 'results.json')
    done: Dict[str, Any] = {}
    if osp.isfile(results_path):
        with open(results_path) as fh:
            done = json.load(fh)
    todo = [k for k in runs if k not in done]
    dataset = test_dataset(next(iter(runs.values()))['opt'])
    noisy = noisy_input_scores(dataset)
    print(f'{len(runs)} runs ({len(runs) - len(todo)} already in {results_path}); target {target}, '
          f'{len(dataset)} test pairs, noisy input {noisy["psnr"]:.2f} dB', flush=True)
    def one(key: str) -> None:
        run = runs[key]
        scores = train_and_score(run['opt'], args.workdir, dataset)
        result = {'method': run['method'], 'size': run['size'], 'seed': run['seed'],
                  **{k: scores[k] for k in ('psnr', 'ssim', 'seconds', 'accepted', 'decisions', 'experiment')}}
        done[key] = result
        with open(results_path + '.tmp', 'w') as fh:  # written whole, then renamed: never half a file
            json.dump(done, fh, indent=1)
        os.replace(results_path + '.tmp', results_path)
        flag = ' (collapsed to the identity)' if collapsed(result['psnr'], noisy['psnr']) else ''
        print(f'[{len(done)}/{len(runs)}] {key}: PSNR {result["psnr"]:.2f} dB{flag}, {result["seconds"]:.0f} s',
              flush=True)

    run_parallel(args.jobs, todo, one)

    results = [done[k] for k in runs]
    summary = summarise(results, args.methods, args.sizes, args.seeds, noisy['psnr'])
    header = (f'ADL scarcity sweep, target {target} (embedded set, {len(dataset)} held-out test pairs); '
              f'{args.iters} iterations per run, gate {args.gate}, {len(args.seeds)} seed(s)')
    text = table_text(summary, args.methods, args.seeds, noisy, header)
    with open(osp.join(args.out, 'table.txt'), 'w') as fh:
        fh.write(text)
    png = plot(summary, args.methods, noisy['psnr'], osp.join(args.out, 'scarcity.png'),
               f'{target}: mean ± std over seeds {", ".join(map(str, args.seeds))}, {args.iters} iterations')
    print('\n' + text)
    print(f'table: {osp.abspath(osp.join(args.out, "table.txt"))}\nplot:  {osp.abspath(png)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
