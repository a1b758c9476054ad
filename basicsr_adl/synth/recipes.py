"""Option dicts for ADL on deblurring and dehazing (plain Python; used by the evidence script and the YAMLs).

Domains are ``LayoutPairedDataset`` sub-datasets of a ``MultiDomainDataset``: synthetic sources and a small
target read in its real layout (GoPro for blur, I-HAZE for haze). No sensor metadata: the net is the plugin's
UNet with modulation off (``ModulatedUNet`` with ``use_sensor``/``use_iso`` false is a plain UNet) or any
BasicSR arch (``net='rrdb'``: a small RRDBNet at scale 1).
"""
from typing import Any, Dict, List, Optional

from basicsr_adl.adl.recipes import default_gate, default_validation

TASK_LAYOUTS = {'deblur': ('folder', 'gopro'), 'dehaze': ('reside', 'ihaze')}


def restoration_network(kind: str = 'unet', base_ch: int = 16) -> Dict[str, Any]:
    if kind == 'unet':
        return {'type': 'ModulatedUNet', 'in_ch': 3, 'out_ch': 3, 'base_ch': base_ch, 'convs_per_block': 2,
                'dense': False, 'num_sensors': 1, 'use_sensor': False, 'use_iso': False, 'residual': True}
    if kind == 'rrdb':
        return {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 1, 'num_feat': base_ch,
                'num_block': 2, 'num_grow_ch': base_ch // 2}
    raise ValueError(f"net must be 'unet' or 'rrdb', got {kind!r}")


def _domain(layout: str, root: str, gt_size: int, train: bool, max_pairs: Optional[int] = None) -> Dict[str, Any]:
    opt = {'type': 'LayoutPairedDataset', 'layout': layout, 'dataroot': root}
    if train:
        opt.update({'gt_size': gt_size, 'use_hflip': True, 'use_rot': True})
    if max_pairs:
        opt['max_pairs'] = max_pairs
    return opt


def restoration_options(name: str, task: str, mode: str, sources: Dict[str, str], target_train: str,
                        target_test: str, total_iter: int, stages: List[int], network: Dict[str, Any],
                        gt_size: int = 48, batch: int = 4, target_batch: int = 2, lr: float = 1e-3,
                        val_crop: int = 64, target_pairs: Optional[int] = None, num_gpu: Any = 0,
                        seed: int = 10, print_freq: int = 50, ckpt_freq: int = 10 ** 9,
                        val_freq: int = 10 ** 9) -> Dict[str, Any]:
    """ADLModel options for ``task`` (deblur | dehaze); ``sources`` maps domain names to their folders."""
    if task not in TASK_LAYOUTS:
        raise ValueError(f"task must be one of {sorted(TASK_LAYOUTS)}, got {task!r}")
    source_layout, target_layout = TASK_LAYOUTS[task]
    domains = {'target': _domain(target_layout, target_train, gt_size, True)}
    for dname, root in sources.items():
        domains[dname] = _domain(source_layout, root, gt_size, True)
    train = {'name': f'{task}_domains', 'type': 'MultiDomainDataset', 'target': 'target', 'sources': list(sources),
             'domains': domains, 'ticks_per_epoch': 1000, 'batch_size_per_gpu': batch, 'num_worker_per_gpu': 0}
    if target_pairs:
        train['target_pairs'] = target_pairs
    active = [n for n in stages if n > 0]
    return {
        'name': name, 'model_type': 'ADLModel', 'scale': 1, 'num_gpu': num_gpu, 'manual_seed': seed,
        'datasets': {'train': train,
                     'val': {'name': f'{task}_target_test', **_domain(target_layout, target_test, gt_size, False),
                             'phase': 'val'}},
        'network_g': network,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'AdamW', 'lr': lr, 'weight_decay': 0.0, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': active,
                                'restart_weights': [1] * len(active), 'eta_min': lr * 0.01},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'adl': {'mode': mode, 'pretrain_iters': stages[0], 'adapt_iters': stages[1], 'finetune_iters': stages[2],
                'target_batch': target_batch, 'val_crop': val_crop, 'heatmap_epochs': 6,
                'gate': default_gate(),
                'validation': {**default_validation(), 'iso_diverse_below': 0}},
        'val': {'val_freq': val_freq, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                            'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}},
        'logger': {'print_freq': print_freq, 'save_checkpoint_freq': ckpt_freq, 'use_tb_logger': False},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def embedded_restoration_options(name: str, task: str, mode: str, manifest: Dict[str, Any], data_root: str,
                                 total_iter: int = 400, stage_fractions=(0.2, 0.6, 0.2), net: str = 'unet',
                                 base_ch: int = 16, seed: int = 10) -> Dict[str, Any]:
    """CPU-sized options on ``build_embedded_restoration``'s data in ``data_root`` (= ``<out>/<task>``)."""
    doms = manifest['domains']
    sources = {n: f"{data_root}/{d['dataroot']}" for n, d in doms.items() if d['role'] == 'source'}
    p = int(round(stage_fractions[0] * total_iter))
    f = int(round(stage_fractions[2] * total_iter))
    return restoration_options(name, task, mode, sources, f"{data_root}/{doms['target_train']['dataroot']}",
                               f"{data_root}/{doms['target_test']['dataroot']}", total_iter,
                               [p, total_iter - p - f, f], restoration_network(net, base_ch), seed=seed,
                               print_freq=max(total_iter // 10, 1))
