"""Tiny on-disk data and options for the ADL tests: PNG pair folders read by BasicSR's PairedImageDataset."""
import os
import os.path as osp
from typing import Any, Dict, Optional

import cv2
import numpy as np
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PYTHON = osp.join(REPO, '.venv', 'bin', 'python')
if not osp.exists(PYTHON):
    import sys
    PYTHON = sys.executable
TRAIN = osp.join(REPO, 'basicsr_adl', 'train.py')


def write_pairs(root: str, count: int, size: int, sigma: float, seed: int, shift: int = 0) -> Dict[str, str]:
    """Smooth clean images + Gaussian noise (sigma in 8-bit levels); ``shift`` misaligns GT (a harmful source)."""
    rng = np.random.default_rng(seed)
    lq_dir, gt_dir = osp.join(root, 'lq'), osp.join(root, 'gt')
    os.makedirs(lq_dir, exist_ok=True)
    os.makedirs(gt_dir, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        f = rng.uniform(1, 4, size=(3, 2))
        ph = rng.uniform(0, 6.28, size=3)
        clean = np.stack([0.5 + 0.4 * np.sin(6.28 * (f[c, 0] * xx + f[c, 1] * yy) + ph[c]) for c in range(3)], -1)
        noisy = clean + rng.normal(0, sigma / 255.0, clean.shape)
        gt = np.roll(clean, shift, axis=(0, 1)) if shift else clean
        cv2.imwrite(osp.join(lq_dir, f'{i:03d}.png'), np.clip(noisy * 255 + 0.5, 0, 255).astype(np.uint8))
        cv2.imwrite(osp.join(gt_dir, f'{i:03d}.png'), np.clip(gt * 255 + 0.5, 0, 255).astype(np.uint8))
    return {'dataroot_lq': lq_dir, 'dataroot_gt': gt_dir}


def make_data(root: str) -> Dict[str, Dict[str, str]]:
    return {
        'tgt': write_pairs(osp.join(root, 'tgt'), 6, 32, 20, 1),
        'tgt_test': write_pairs(osp.join(root, 'tgt_test'), 2, 32, 20, 2),
        'srcA': write_pairs(osp.join(root, 'srcA'), 8, 32, 20, 3),
        'srcB': write_pairs(osp.join(root, 'srcB'), 8, 32, 40, 4, shift=3),
    }


def domain_opt(paths: Dict[str, str], sensor: int, iso: float, gt_size: int = 16) -> Dict[str, Any]:
    return {'type': 'PairedImageDataset', **paths, 'io_backend': {'type': 'disk'}, 'filename_tmpl': '{}',
            'gt_size': gt_size, 'use_hflip': True, 'use_rot': True, 'sensor_index': sensor, 'iso': iso}


def make_options(root: str, data: Dict[str, Dict[str, str]], name: str = 'adl_test', total_iter: int = 12,
                 stages=(3, 6, 3), adl: Optional[Dict[str, Any]] = None, network: Optional[Dict[str, Any]] = None,
                 checkpoint_freq: int = 1000, val_freq: int = 1000) -> str:
    """Write an options YAML into ``root`` and return its path."""
    opt = {
        'name': name, 'model_type': 'ADLModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 7,
        'datasets': {
            'train': {'name': 'adl_domains', 'type': 'MultiDomainDataset', 'target': 'tgt',
                      'domains': {'tgt': domain_opt(data['tgt'], 0, 100),
                                  'srcA': domain_opt(data['srcA'], 1, 400),
                                  'srcB': domain_opt(data['srcB'], 2, 1600)},
                      'ticks_per_epoch': 5, 'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0},
            'val': {'name': 'tgt_test', 'type': 'PairedImageDataset', **data['tgt_test'],
                    'io_backend': {'type': 'disk'}, 'filename_tmpl': '{}'},
        },
        'network_g': network or {'type': 'ModulatedUNet', 'in_ch': 3, 'out_ch': 3, 'base_ch': 4, 'num_sensors': 3,
                                 'mlp_hidden': 8},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10 ** 6],
                                                                      'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'adl': {'pretrain_iters': stages[0], 'adapt_iters': stages[1], 'finetune_iters': stages[2],
                'val_crop': 32, 'target_batch': 1, **(adl or {})},
        'val': {'val_freq': val_freq, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                            'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': checkpoint_freq, 'use_tb_logger': False},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }
    path = osp.join(root, f'{name}.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path
