"""Shared helpers for the test suite: tiny image folders, BasicSR LMDBs, YAML options, CLI runs."""
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

import basicsr_adl.plugin  # noqa: F401  (basicsr 1.4.2 needs the plugin's torchvision shim before import)

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def load_script(name: str):
    """Import ``scripts/<name>`` as a module (in-process: a subprocess would re-import torch/basicsr, ~5 s each)."""
    import importlib.util
    path = REPO / 'scripts' / name
    spec = importlib.util.spec_from_file_location('script_' + path.stem, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cli_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('MKL_NUM_THREADS', '1')
    env.update(extra or {})
    return env


def run_cli(args: List[str], cwd: Path, timeout: int = 300, env: Optional[Dict[str, str]] = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (list) with the repo importable; on failure show its output."""
    proc = subprocess.run(args, cwd=str(cwd), env=cli_env(env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'command failed ({proc.returncode}): {args}\n--- stdout\n{proc.stdout[-4000:]}'
                             f'\n--- stderr\n{proc.stderr[-6000:]}')
    return proc


def write_yaml(path: Path, opt: dict) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def make_noisy_pairs(folder: Path, count: int, size: int = 32, seed: int = 0) -> Path:
    """Write ``count`` smooth clean PNGs to ``folder/gt`` and noisy versions to ``folder/lq``."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(seed)
    (folder / 'gt').mkdir(parents=True, exist_ok=True)
    (folder / 'lq').mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        f = rng.uniform(1, 4, size=3)
        clean = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (f[c] * xx + (c + i) * yy)) for c in range(3)], -1)
        noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)
        cv2.imwrite(str(folder / 'gt' / f'{i:03d}.png'), (clean * 255).round().astype('uint8'))
        cv2.imwrite(str(folder / 'lq' / f'{i:03d}.png'), (noisy * 255).round().astype('uint8'))
    return folder


def make_basicsr_lmdbs(folder: Path) -> Dict[str, str]:
    """Pack ``folder/{lq,gt}`` PNGs into LMDBs with BasicSR's own tool; returns their paths."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    out = {}
    for part in ('lq', 'gt'):
        names = sorted(os.listdir(folder / part))
        lmdb_path = folder / f'{part}.lmdb'
        make_lmdb_from_imgs(str(folder / part), str(lmdb_path), names, [os.path.splitext(n)[0] for n in names],
                            n_thread=1)
        out[part] = str(lmdb_path)
    return out


def sr_train_options(name: str, train_lq: str, train_gt: str, val_lq: str, val_gt: str, *, total_iter: int = 6,
                     lmdb: bool = True, val_freq: int = 2, save_freq: int = 2, seed: int = 7,
                     num_worker: int = 0) -> dict:
    """Options for BasicSR's SRModel + RRDBNet (scale 1, tiny) + PairedImageDataset, AdamW, on CPU."""
    backend = {'type': 'lmdb'} if lmdb else {'type': 'disk'}
    return {
        'name': name, 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': seed,
        'datasets': {
            'train': {'name': 'tiny_train', 'type': 'PairedImageDataset', 'dataroot_gt': train_gt,
                      'dataroot_lq': train_lq, 'io_backend': backend, 'gt_size': 16, 'use_hflip': True,
                      'use_rot': True, 'num_worker_per_gpu': num_worker, 'batch_size_per_gpu': 2,
                      'dataset_enlarge_ratio': 1, 'prefetch_mode': None},
            'val': {'name': 'tiny_val', 'type': 'PairedImageDataset', 'dataroot_gt': val_gt, 'dataroot_lq': val_lq,
                    'io_backend': {'type': 'disk'}},
        },
        'network_g': {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 1, 'num_feat': 8,
                      'num_block': 1, 'num_grow_ch': 4},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0, 'optim_g': {'type': 'AdamW', 'lr': 2e-3, 'weight_decay': 1e-4,
                                              'betas': [0.9, 0.99]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [4], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': val_freq, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


@pytest.fixture(scope='session')
def tiny_pairs(tmp_path_factory) -> Dict[str, str]:
    """Six noisy/clean 32x32 training pairs as BasicSR LMDBs and three validation pairs as PNG folders."""
    root = tmp_path_factory.mktemp('tiny_pairs')
    train = make_noisy_pairs(root / 'train', 6, seed=1)
    lmdbs = make_basicsr_lmdbs(train)
    val = make_noisy_pairs(root / 'val', 3, seed=2)
    return {'train_lq': lmdbs['lq'], 'train_gt': lmdbs['gt'], 'val_lq': str(val / 'lq'), 'val_gt': str(val / 'gt'),
            'train_lq_dir': str(train / 'lq'), 'train_gt_dir': str(train / 'gt')}
