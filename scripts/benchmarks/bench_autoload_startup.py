#!/usr/bin/env python
"""Interpreter start-up cost of the installed autoload hook (``basicsr_adl_autoload.pth``).

Two throwaway virtual environments share this venv's packages through a plain path line (path lines do not
process other ``.pth`` files); they differ only in the installed ``basicsr_adl_autoload.pth``. Runs of
``python -c pass`` are interleaved and the median wall times compared: the ratio is the hook's start-up cost.
Usage: .venv/bin/python scripts/benchmarks/bench_autoload_startup.py [--runs 40]
"""
import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import sysconfig
import shutil
import tempfile
import time


def make_env(root: str, name: str, paths, with_hook: bool) -> str:
    env_dir = os.path.join(root, name)
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', env_dir], check=True)
    py = os.path.join(env_dir, 'bin', 'python')
    site = subprocess.run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, '_shared_packages.pth'), 'w') as f:
        f.write('\n'.join(paths) + '\n')
    if with_hook:
        shutil.copy(installed_pth(), os.path.join(site, 'basicsr_adl_autoload.pth'))
    return py


def installed_pth() -> str:
    path = os.path.join(sysconfig.get_paths()['purelib'], 'basicsr_adl_autoload.pth')
    if not os.path.isfile(path):
        sys.exit(f'{path} not found: install basicsr-adl first (scripts/install.sh)')
    return path


def time_once(py: str) -> float:
    start = time.perf_counter()
    subprocess.run([py, '-c', 'pass'], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--runs', type=int, default=40)
    args = parser.parse_args()
    hook_dir = os.path.dirname(importlib.util.find_spec('basicsr_adl_autoload').origin)
    paths = [sysconfig.get_paths()['purelib'], hook_dir]
    with tempfile.TemporaryDirectory() as root:
        plain = make_env(root, 'plain', paths, with_hook=False)
        hooked = make_env(root, 'hooked', paths, with_hook=True)
        check = subprocess.run([hooked, '-c', 'import sys; print(any(type(f).__name__ == "_BasicsrFinder" '
                                'for f in sys.meta_path), "torch" in sys.modules)'],
                               capture_output=True, text=True, check=True)
        assert check.stdout.split() == ['True', 'False'] and not check.stderr, check.stdout + check.stderr
        for py in (plain, hooked):  # warm the file cache
            time_once(py)
        t_plain, t_hooked = [], []
        for _ in range(args.runs):
            t_plain.append(time_once(plain))
            t_hooked.append(time_once(hooked))
    mp, mh = statistics.median(t_plain), statistics.median(t_hooked)
    spread = statistics.pstdev(t_plain) / mp
    print(f'python -c pass, {args.runs} interleaved runs each')
    print(f'  without hook: median {mp * 1e3:7.2f} ms (relative spread {spread:.1%})')
    print(f'  with hook   : median {mh * 1e3:7.2f} ms')
    print(f'  ratio with/without: {mh / mp:.3f}  (torch imported at start-up: no)')


if __name__ == '__main__':
    main()
