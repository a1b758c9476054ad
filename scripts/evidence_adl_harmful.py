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
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import basicsr_adl.plugin  # noqa: E402,F401
from basicsr_adl.adl.experiments import (embedded_options, ensure_embedded_data, noisy_input_scores,  # noqa: E402
                                         results_table, run_suite, test_dataset, write_table)

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
    dataset = test_dataset(runs['target_only'][2])  # the target's held-out pairs (the same for every run)
    if args.only:
        runs = {k: v for k, v in runs.items() if k in args.only}
    tag = f'{args.target or manifest["target"]}|{args.iters}|{args.seed}'
    results = run_suite(runs, args.out, args.workdir, tag=tag, dataset=dataset)
    table = results_table(results, ('reference', 'harmful', 'ablation', 'gates'), tag, noisy_input_scores(dataset))
    write_table(args.out, f'target {args.target or manifest["target"]}, {args.iters} iterations per run, '
                          f'seed {args.seed}\n' + table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
