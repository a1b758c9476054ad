#!/usr/bin/env python
"""The project's main demo: target-only vs source-pretrain-then-fine-tune vs ADL on the embedded RAW data.

1. builds the embedded multi-sensor RAW set if missing (``scripts/make_embedded_raw.py``'s builder);
2. trains the three methods through ``basicsr_adl/train.py`` with the same net (a small ModulatedUNet),
   data, seed and iteration budget (ADLModel, ``adl.mode`` = target_only / finetune / adl);
3. prints PSNR/SSIM on the target sensor's held-out test pairs (float metrics on normalised packed RAW,
   data range 1), and writes the ADL accept-rate heatmap and a noisy / target-only / fine-tune / ADL / clean
   image strip, printing their paths.

Run from the repository root:  .venv/bin/python scripts/run_adl_demo.py   (about 10 minutes on 2 CPU cores)
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import basicsr_adl  # noqa: E402,F401  (compat fixes + registration)
from basicsr_adl.adl.experiments import (Timer, accept_counts, embedded_options, ensure_embedded_data,  # noqa: E402
                                         evaluate_run, labelled_strip, noisy_input_scores, run_training,
                                         test_dataset)

METHODS = [('target_only', 'target-only'), ('finetune', 'fine-tuning'), ('adl', 'ADL')]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default=osp.join('datasets', 'embedded', 'raw'), help='embedded RAW folder')
    p.add_argument('--target', default=None, help='target sensor (default: the manifest target)')
    p.add_argument('--iters', type=int, default=400, help='iterations per method (same budget for all)')
    p.add_argument('--gate', default='paired_target',
                   help='ADL gate criterion: paired_target, paired, paper, paired_queue, always')
    p.add_argument('--gate-every', type=int, default=1, help='source steps per gate decision')
    p.add_argument('--tolerance', type=float, default=0.0, help='paired gate tolerance in dB')
    p.add_argument('--base-ch', type=int, default=16, help='ModulatedUNet width')
    p.add_argument('--seed', type=int, default=10)
    p.add_argument('--seeds', type=int, nargs='+', default=None,
                   help='several training seeds: every method is trained once per seed and the table gives the '
                        'mean and each seed (differences between methods smaller than the spread are noise)')
    p.add_argument('--out', default=osp.join('results', 'adl_demo'), help='folder for the table, heatmap and strip')
    p.add_argument('--workdir', default='.', help='where experiments/ and options/ of the runs go')
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
        from basicsr_adl.models.adl_model import preview_image

        def to_rgb(t):
            return preview_image(t).permute(1, 2, 0).numpy()
    return labelled_strip(path, [to_rgb(img) for img in triples], labels)


def results_table_text(per_seed, seeds, noisy, target, n_test, args) -> str:
    """The demo's table: one row per method (mean over seeds, then each seed's PSNR when there are several)."""
    several = len(seeds) > 1
    head = f'{"method":<14}{"PSNR (dB)":>10}{"SSIM":>9}{"train s":>9}'
    if several:
        head += '   PSNR per seed (' + ', '.join(str(s) for s in seeds) + ')'
    lines = [f'Target {target}: {n_test} held-out test pairs; {args.iters} iterations per method, '
             f'gate {args.gate} (every {args.gate_every}, tolerance {args.tolerance} dB)'
             + (f'; mean over {len(seeds)} seeds' if several else ''),
             head, f'{"noisy input":<14}{noisy["psnr"]:>10.2f}{noisy["ssim"]:>9.4f}{"":>9}']

    def mean(mode, key):
        return sum(r[mode][key] for r in per_seed) / len(per_seed)
    for mode, label in METHODS:
        line = f'{label:<14}{mean(mode, "psnr"):>10.2f}{mean(mode, "ssim"):>9.4f}{mean(mode, "seconds"):>9.0f}'
        if several:
            line += '   ' + ', '.join(f'{r[mode]["psnr"]:.2f}' for r in per_seed)
        lines.append(line)
    totals: Dict[str, List[int]] = {}
    for r in per_seed:
        for source, (acc, n) in accept_counts(r['adl']['experiment']).items():
            totals.setdefault(source, [0, 0])
            totals[source][0] += acc
            totals[source][1] += n
    lines.append('ADL accepted source steps: ' + ', '.join(f'{s} {a}/{n}' for s, (a, n) in totals.items()))
    gaps = [r['adl']['psnr'] - max(r['target_only']['psnr'], r['finetune']['psnr']) for r in per_seed]
    line = f'ADL - best baseline: {sum(gaps) / len(gaps):+.2f} dB'
    if several:
        line += ' (per seed ' + ', '.join(f'{g:+.2f}' for g in gaps) + ')'
    lines.append(line)
    return '\n'.join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    manifest = ensure_embedded_data(args.data)
    target = args.target or manifest['target']
    gate = {'criterion': args.gate, 'tolerance': args.tolerance, 'queue_size': 10, 'every': args.gate_every,
            'revert_optimizer': True}
    seeds = args.seeds or [args.seed]
    per_seed = []  # one {mode: result} per seed; the first seed's runs give the heatmap and the strip
    exp_dirs = {}
    dataset = None
    for seed in seeds:
        results = {}
        for mode, label in METHODS:
            name = f'ADL_demo_{target}_{mode}' + (f'_seed{seed}' if len(seeds) > 1 else '')
            opt = embedded_options(name, mode, manifest, args.data, target=target, total_iter=args.iters,
                                   gate=gate, base_ch=args.base_ch, seed=seed)
            tag = f'[{label}' + (f', seed {seed}]' if len(seeds) > 1 else ']')
            print(f'{tag} training {args.iters} iterations ...', flush=True)
            with Timer() as t:
                exp = run_training(opt, args.workdir)
            dataset = dataset or test_dataset(opt)
            results[mode] = evaluate_run(opt, exp, dataset, keep_outputs=1 if not per_seed else 0)
            results[mode]['seconds'] = t.seconds
            results[mode]['experiment'] = exp
            if not per_seed:
                exp_dirs[mode] = exp
            print(f'{tag} done in {t.seconds:.0f} s: PSNR {results[mode]["psnr"]:.2f} dB, '
                  f'SSIM {results[mode]["ssim"]:.4f}', flush=True)
        per_seed.append(results)
    table = results_table_text(per_seed, seeds, noisy_input_scores(dataset), target, len(dataset), args)
    print('\n' + table)

    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'table.txt'), 'w') as fh:
        fh.write(table + '\n')
    first = per_seed[0]
    lq, _, gt = first['adl']['outputs'][0]
    reader, keys = getattr(dataset, 'gt_reader', None), getattr(dataset, 'keys', None)
    meta = reader.meta(keys[0]) if reader is not None and keys else None
    strip = write_strip(osp.join(args.out, 'strip.png'),
                        [lq] + [first[m]['outputs'][0][1] for m, _ in METHODS] + [gt],
                        ['noisy'] + [label for _, label in METHODS] + ['clean'], meta)
    print(f'\ntable:   {osp.abspath(osp.join(args.out, "table.txt"))}')
    print(f'heatmap: {osp.abspath(osp.join(exp_dirs["adl"], "adl_accept_heatmap.png"))}')
    print(f'csv:     {osp.abspath(osp.join(exp_dirs["adl"], "adl_accept_rates.csv"))}')
    print(f'strip:   {osp.abspath(strip)}  (noisy | target-only | fine-tuning | ADL | clean)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
