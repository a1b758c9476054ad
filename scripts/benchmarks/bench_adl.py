#!/usr/bin/env python
"""ADL costs, all ratios from one run (CPU by default; --device cuda on a GPU).

1. a stage-2 ADL iteration (ADLModel._adapt_step over GatedAdaptation: snapshot, source+target step, V'
   scoring, gate, revert) vs a plain fine-tuning iteration (guarded_step) on the same batch and net - target <= 1.3x;
   for each gate criterion / chunk length given;
2. the revert (TrainingSnapshot.restore) and the per-iteration capture as a share of a plain step - target
   <= 3 %;
3. modulation overhead: ModulatedUNet with sensor+ISO modulation vs the same UNet without it, inference -
   target <= 5 %.

Timings interleave the variants; ratios use the minimum over repeats (the least disturbed run: the machine
this was written on is shared), medians are printed beside them. The model is built
from the embedded-data options (``options/train/ADL/embedded``), data built if missing.

    .venv/bin/python scripts/benchmarks/bench_adl.py [--repeats 15] [--val-crop 64]
"""
import argparse
import copy
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import basicsr_adl.plugin  # noqa: E402,F401

from basicsr_adl.adl.experiments import build_model_in_process, embedded_options, ensure_embedded_data  # noqa: E402
from basicsr_adl.adl.config import ADLConfig  # noqa: E402
from basicsr_adl.adl.gated_adaptation import guarded_step  # noqa: E402

DEFAULT_GATE = ADLConfig.defaults().gate.criterion
from basicsr_adl.archs.modulated_unet_arch import ModulatedUNet  # noqa: E402


def plain_step(model, batch):
    """One ungated optimizer step on ``batch`` (what the baselines and stages 1/3 take)."""
    return guarded_step(model.optimizer_g, [model._loss(batch)], model._all_finite)


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', default=osp.join('datasets', 'embedded', 'raw'))
    p.add_argument('--repeats', type=int, default=15)
    p.add_argument('--val-crop', type=int, default=64, help='V\' centre-crop size (packed pixels)')
    p.add_argument('--gates', nargs='+', default=['paired_target:1', 'paired_target_linear:1',
                                                  'paired_target_linear:1:20', 'paired_target:4', 'paired:1',
                                                  'paired:4', 'paper:1'],
                   help='criterion:every[:refresh_every] to time (refresh_every: paired_target_linear)')
    p.add_argument('--mod-size', type=int, default=256, help='packed input size for the modulation benchmark')
    p.add_argument('--mod-base-ch', type=int, default=32)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    sync = (lambda: None)
    manifest = ensure_embedded_data(args.data)
    work = tempfile.mkdtemp(prefix='bench_adl_')
    iters = 1000
    results = {}
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats}')

    models = {}
    for spec in args.gates:
        criterion, every, *refresh = spec.split(':')
        gate = {'criterion': criterion, 'every': int(every), 'tolerance': 0.0, 'queue_size': 10,
                'revert_optimizer': True}
        if refresh:
            gate['refresh_every'] = int(refresh[0])
        gate['check_every'] = 0  # timed without the occasional exact check (2 V' passes per checked decision)
        opt = embedded_options(f'bench_{criterion}_{every}_{"_".join(refresh)}', 'adl', manifest, args.data,
                               total_iter=iters, stage_fractions=(0.0, 1.0, 0.0), val_crop=args.val_crop, gate=gate)
        opt['logger']['print_freq'] = 10 ** 9
        model = build_model_in_process(opt, work)
        first = model._draw_batch([(model.domains.sources[0], list(range(model.batch_size))),
                                   (model.domains.target, list(range(model.target_batch)))])
        fixed = {k: v.clone() for k, v in first.items()}
        model._draw_batch = lambda parts, fixed=fixed: fixed  # same batch for every variant, no data loading
        models[spec] = model
    ref = models[args.gates[0]]
    batch = ref._draw_batch(None)
    mid = iters // 2  # |V'| at mid stage 2 (35 % of the target pairs)

    # warm-up
    for spec, model in models.items():
        while model.adaptation.in_chunk:
            model._adapt_step(mid)
        for it in range(mid - 2 * model.adaptation.every, mid):
            model._adapt_step(it)
        plain_step(model, batch)

    plain, capture, restore = [], [], []
    adapt = {spec: [] for spec in models}
    for r in range(args.repeats):
        plain.append(timed(lambda: plain_step(ref, batch), sync))
        for spec, model in models.items():
            # one sample = one whole gated chunk, per iteration; for the linearised gate, refresh_every chunks, so
            # that each sample holds one refresh of the V' gradient (its cost amortised as in a real run)
            k = model.adaptation.every * getattr(model.adaptation.gate, 'refresh_every', 1)
            start = mid + 2 + r * k
            adapt[spec].append(timed(lambda: [model._adapt_step(start + j) for j in range(k)], sync) / k)
        capture.append(timed(ref.adaptation.snapshot.capture, sync))
        plain_step(ref, batch)  # something to revert
        restore.append(timed(ref.adaptation.snapshot.restore, sync))
    t_plain = min(plain)
    print(f'\nplain fine-tuning step (batch {tuple(batch["lq"].shape)}): {t_plain * 1e3:.1f} ms '
          f'(median {statistics.median(plain) * 1e3:.1f})')
    print(f'V\' at mid stage 2: {ref.adaptation.sampler.size_at(0.5)} of {len(ref.targets)} target pairs, '
          f'centre crop {args.val_crop}')
    for spec, times in adapt.items():
        ratio = min(times) / t_plain
        results[f'adl_{spec}'] = ratio
        mark = ' (default)' if spec == f'{DEFAULT_GATE}:1' else ''
        print(f'ADL stage-2 iteration, gate {spec:<25}: {min(times) * 1e3:7.1f} ms = {ratio:.2f}x plain '
              f'(median ratio {statistics.median(times) / statistics.median(plain):.2f}x; target <= 1.3x){mark}')
    cap, rev = min(capture) / t_plain, min(restore) / t_plain
    print(f'snapshot capture (once per gated chunk): {min(capture) * 1e3:.2f} ms = {100 * cap:.2f} % of a plain step')
    print(f'revert (restore weights + optimizer state): {min(restore) * 1e3:.3f} ms = {100 * rev:.2f} % of a plain '
          'step (target <= 3 %)')

    # modulation overhead, inference
    kw = dict(in_ch=4, out_ch=4, base_ch=args.mod_base_ch, num_sensors=len(manifest['sensors']))
    torch.manual_seed(0)
    mod = ModulatedUNet(**kw).eval()
    plain_net = ModulatedUNet(use_sensor=False, use_iso=False, **kw).eval()
    plain_net.load_state_dict(mod.state_dict(), strict=False)
    x = torch.rand(1, 4, args.mod_size, args.mod_size)
    s, iso = torch.tensor([1]), torch.tensor([1600.0])
    t_mod, t_plain_net = [], []
    with torch.no_grad():
        for _ in range(2):
            mod(x, sensor=s, iso=iso)
            plain_net(x)
        for _ in range(args.repeats):
            t_plain_net.append(timed(lambda: plain_net(x), sync))
            t_mod.append(timed(lambda: mod(x, sensor=s, iso=iso), sync))
    overhead = min(t_mod) / min(t_plain_net) - 1
    print(f'\nmodulation overhead, inference 1x4x{args.mod_size}x{args.mod_size}, base_ch {args.mod_base_ch}: '
          f'{min(t_plain_net) * 1e3:.1f} ms plain vs {min(t_mod) * 1e3:.1f} ms modulated = {100 * overhead:+.2f} % '
          f'(median {100 * (statistics.median(t_mod) / statistics.median(t_plain_net) - 1):+.2f} %; target <= 5 %)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
