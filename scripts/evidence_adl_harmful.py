#!/usr/bin/env python
"""Evidence for ADL on the embedded RAW data: harmful sources, ablations, gate criteria side by side.

Every run trains through ``basicsr_adl/train.py`` with the same ModulatedUNet, data, seed and iteration
budget, then is scored (float PSNR/SSIM) on the target sensor's held-out test pairs.

Groups (``--groups``):
* ``harmful`` - the paper's harmful-data experiment: the only source is a corrupted copy of another sensor's
  pairs (``CorruptedPairsDataset``): Harmful1 = clean input with GT + Gaussian noise sigma 30,
  Harmful2 = misaligned pairs (GT shifted 4 packed pixels), and black GT; source-pretrain-then-fine-tune vs
  ADL for each, with target-only as the reference;
* ``ablation`` - ADL without ISO modulation, without sensor modulation, without target pretraining, and
  with a fixed validation set, against full ADL;
* ``gates`` - ADL with each gate criterion (paper, paired, paired in chunks of 4, paired_queue, always), and
  with a revert of the weights only (Adam's moments kept).

    .venv/bin/python scripts/evidence_adl_harmful.py [--iters 600] [--groups harmful ablation gates]
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import basicsr_adl  # noqa: E402,F401
from basicsr_adl.adl.experiments import (Timer, accept_counts, embedded_options, ensure_embedded_data,  # noqa: E402
                                         evaluate_run, noisy_input_scores, run_training, test_dataset)

HARMFUL = {'Harmful1': {'corruption': 'noisy_gt', 'sigma': 30},
           'Harmful2': {'corruption': 'misaligned', 'shift': 4},
           'BlackGT': {'corruption': 'black_gt'}}


def with_harmful_source(opt, kind, base_sensor):
    """Replace the sources by one corrupted copy of ``base_sensor``'s training pairs."""
    opt = copy.deepcopy(opt)
    train = opt['datasets']['train']
    base = copy.deepcopy(train['domains'][base_sensor])
    train['domains'] = {train['target']: train['domains'][train['target']],
                        kind: {'type': 'CorruptedPairsDataset', 'base': base, **HARMFUL[kind]}}
    train['sources'] = [kind]
    return opt


def build_runs(manifest, args):
    target = args.target or manifest['target']
    gate = {'criterion': args.gate, 'every': args.gate_every, 'tolerance': args.tolerance, 'queue_size': 10,
            'revert_optimizer': True}

    def make(name, mode, gate_opt=None, **kw):
        return embedded_options(f'ADL_ev_{target}_{name}', mode, manifest, args.data, target=target,
                                total_iter=args.iters, gate=gate_opt or gate, seed=args.seed, **kw)

    runs = {'target_only': ('reference', 'target-only', make('target_only', 'target_only')),
            'finetune': ('reference', 'fine-tuning (clean sources)', make('finetune', 'finetune')),
            'adl': ('reference', f'ADL ({args.gate} gate, clean sources)', make('adl', 'adl'))}
    groups = set(args.groups)
    base_sensor = args.harmful_base or [s for s in manifest['sensors'] if s != target][-1]
    if 'harmful' in groups:
        for kind in HARMFUL:
            for mode, label in (('finetune', 'fine-tuning'), ('adl', 'ADL')):
                opt = with_harmful_source(make(f'{kind}_{mode}', mode), kind, base_sensor)
                runs[f'{kind}_{mode}'] = ('harmful', f'{label}, source = {kind} ({base_sensor})', opt)
    if 'ablation' in groups:
        o = make('no_iso', 'adl')
        o['network_g']['use_iso'] = False
        runs['no_iso'] = ('ablation', 'ADL without ISO modulation', o)
        o = make('no_sensor', 'adl')
        o['network_g']['use_sensor'] = False
        runs['no_sensor'] = ('ablation', 'ADL without sensor modulation', o)
        o = make('no_pretrain', 'adl', stage_fractions=(0.0, 0.8, 0.2))
        runs['no_pretrain'] = ('ablation', 'ADL without target pretraining', o)
        o = make('fixed_val', 'adl')
        o['adl']['validation']['dynamic'] = False
        runs['fixed_val'] = ('ablation', 'ADL with a fixed validation set', o)
    if 'gates' in groups:
        for crit, every in (('paper', 1), ('paired_target', 1), ('paired', 1), ('paired', 4), ('paired_queue', 1),
                             ('always', 1)):
            key = f'gate_{crit}_{every}'
            if crit == args.gate and every == args.gate_every:
                continue  # the reference ADL run
            g = dict(gate, criterion=crit, every=every)
            runs[key] = ('gates', f'ADL, gate {crit} every {every}', make(key, 'adl', gate_opt=g))
        g = dict(gate, criterion='paired', on_reject='revert', revert_optimizer=False)
        runs['gate_keep_moments'] = ('gates', 'ADL, paired gate, revert weights only (Adam moments kept)',
                                     make('gate_keep_moments', 'adl', gate_opt=g))
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default=osp.join('datasets', 'embedded', 'raw'))
    p.add_argument('--target', default=None)
    p.add_argument('--harmful-base', default=None, help='sensor whose pairs are corrupted (default: last source)')
    p.add_argument('--iters', type=int, default=600)
    p.add_argument('--groups', nargs='+', default=['harmful', 'ablation', 'gates'],
                   choices=['harmful', 'ablation', 'gates'])
    p.add_argument('--gate', default='paired_target')
    p.add_argument('--gate-every', type=int, default=1)
    p.add_argument('--tolerance', type=float, default=0.0)
    p.add_argument('--seed', type=int, default=10)
    p.add_argument('--only', nargs='*', default=None, help='run only these run keys (plus nothing else)')
    p.add_argument('--out', default=osp.join('results', 'adl_evidence'))
    p.add_argument('--workdir', default='.')
    args = p.parse_args(argv)
    manifest = ensure_embedded_data(args.data)
    runs = build_runs(manifest, args)
    if args.only:
        runs = {k: v for k, v in runs.items() if k in args.only}
    os.makedirs(args.out, exist_ok=True)
    results_path = osp.join(args.out, 'results.json')
    results = json.load(open(results_path)) if osp.isfile(results_path) else {}
    dataset = None
    for key, (group, label, opt) in runs.items():
        print(f'[{key}] {label}: training {args.iters} iterations ...', flush=True)
        with Timer() as t:
            exp = run_training(opt, args.workdir)
        dataset = dataset or test_dataset(opt)
        r = evaluate_run(opt, exp, dataset)
        counts = accept_counts(exp)
        acc = sum(a for a, _ in counts.values())
        tot = sum(n for _, n in counts.values())
        results[key] = {'group': group, 'label': label, 'psnr': r['psnr'], 'ssim': r['ssim'], 'seconds': t.seconds,
                        'accepted': acc, 'decisions': tot, 'iters': args.iters}
        print(f'[{key}] PSNR {r["psnr"]:.2f} dB, SSIM {r["ssim"]:.4f}, accepted {acc}/{tot}, {t.seconds:.0f} s',
              flush=True)
        with open(results_path, 'w') as fh:
            json.dump(results, fh, indent=1)
    noisy = noisy_input_scores(dataset) if dataset is not None else None
    lines = [f'target {args.target or manifest["target"]}, {args.iters} iterations per run, seed {args.seed}']
    if noisy:
        lines.append(f'{"noisy input":<52}{noisy["psnr"]:>8.2f}{noisy["ssim"]:>8.4f}')
    lines.append(f'{"run":<52}{"PSNR":>8}{"SSIM":>8}{"accepted":>12}')
    for group in ('reference', 'harmful', 'ablation', 'gates'):
        for key, r in results.items():
            if r['group'] == group and r.get('iters') == args.iters:
                acc = f'{r["accepted"]}/{r["decisions"]}' if r['decisions'] else '-'
                lines.append(f'{r["label"]:<52}{r["psnr"]:>8.2f}{r["ssim"]:>8.4f}{acc:>12}')
    table = '\n'.join(lines)
    print('\n' + table)
    with open(osp.join(args.out, 'table.txt'), 'w') as fh:
        fh.write(table + '\n')
    print(f'\ntable: {osp.abspath(osp.join(args.out, "table.txt"))}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
