"""Option dicts for ADL runs on RAW data (used by scripts/make_adl_options.py, the demo and the evidence script).

Plain Python: builds BasicSR-shaped option dicts for ADLModel + MultiDomainDataset over per-sensor RAW
LMDBs laid out as ``<root>/<sensor>/{train,test}_{lq,gt}.lmdb`` (the embedded set's layout).
"""
from typing import Any, Dict, List

from dataclasses import asdict

from basicsr_adl.adl.config import ADLConfig

_ADL = ADLConfig.defaults()  # the schema holds the defaults; the files spell out the gate and V' settings
GATE_KEYS = ('criterion', 'tolerance', 'queue_size', 'every', 'revert_optimizer')


def default_gate() -> Dict[str, Any]:
    """The schema's default gate settings (on_reject is left to its criterion-dependent default)."""
    return {k: getattr(_ADL.gate, k) for k in GATE_KEYS}


def default_validation() -> Dict[str, Any]:
    """The schema's default dynamic-validation settings."""
    return asdict(_ADL.validation)

EMBEDDED_SENSORS = ['SonyA7S2', 'NikonD850', 'CanonEOS5D4', 'IMX686', 'HuaweiPhone']
EMBEDDED_TARGET = 'IMX686'
EMBEDDED_ROOT = 'datasets/embedded/raw'

# (file tag, sensor name stored by the converters, dataset family)
PAPER_DOMAINS = [('SIDD_G4', 'G4', 'SIDD'), ('SIDD_GP', 'GP', 'SIDD'), ('SIDD_IP', 'IP', 'SIDD'),
                 ('SIDD_N6', 'N6', 'SIDD'), ('SIDD_S6', 'S6', 'SIDD'), ('SID_Sony', 'SonyA7S2', 'SID'),
                 ('SID_Fuji', 'FujiXT2', 'SID'), ('ELD_Nikon', 'NikonD850', 'ELD'), ('ELD_Canon', 'CanonEOS70D', 'ELD')]


def raw_domain(root: str, sensor: str, sensors: List[str], split: str, gt_size: int, augment: bool = True,
               **extra) -> Dict[str, Any]:
    opt = {'type': 'RawPairedLMDBDataset', 'dataroot_lq': f'{root}/{sensor}/{split}_lq.lmdb',
           'dataroot_gt': f'{root}/{sensor}/{split}_gt.lmdb', 'sensors': sensors}
    if split == 'train':
        opt.update({'gt_size': gt_size, 'use_hflip': augment, 'use_rot': augment})
    opt.update(extra)
    return opt


def adl_options(name: str, mode: str, target: str, sources: List[str], sensors: List[str], root: str,
                gt_size: int, batch: int, target_batch: int, network: Dict[str, Any], total_iter: int,
                stages: List[int], lr: float, val_crop: int, num_gpu: int, print_freq: int, ckpt_freq: int,
                val_freq: int, target_pairs: int = None, heatmap_epochs: int = _ADL.heatmap_epochs,
                gate: Dict[str, Any] = None, augment: bool = True) -> Dict[str, Any]:
    domains = {target: raw_domain(root, target, sensors, 'train', gt_size, augment)}
    for s in sources:
        domains[s] = raw_domain(root, s, sensors, 'train', gt_size, augment)
    train = {'name': f'{target}_adl_domains', 'type': 'MultiDomainDataset', 'target': target, 'sources': sources}
    if target_pairs:
        train['target_pairs'] = target_pairs
    train.update({'domains': domains, 'ticks_per_epoch': 1000, 'batch_size_per_gpu': batch, 'num_worker_per_gpu': 0})
    return {
        'name': name, 'model_type': 'ADLModel', 'scale': 1, 'num_gpu': num_gpu, 'manual_seed': 10,
        'datasets': {
            'train': train,
            'val': {'name': f'{target}_test', **raw_domain(root, target, sensors, 'test', gt_size),
                    'phase': 'val'},
        },
        'network_g': network,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'optim_g': {'type': 'AdamW', 'lr': lr, 'weight_decay': 0.0, 'betas': [0.9, 0.999]},
            # one cosine cycle per stage, so stage 3 (fine-tuning) starts again at the full rate
            'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [n for n in stages if n > 0],
                          'restart_weights': [1] * len([n for n in stages if n > 0]), 'eta_min': lr * 0.01},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'adl': {
            'mode': mode, 'pretrain_iters': stages[0], 'adapt_iters': stages[1], 'finetune_iters': stages[2],
            'target_batch': target_batch, 'val_crop': val_crop, 'heatmap_epochs': heatmap_epochs,
            'gate': gate or default_gate(),
            'validation': default_validation(),
        },
        'val': {'val_freq': val_freq, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0},
                            'ssim': {'type': 'calculate_ssim', 'crop_border': 0}}},
        'logger': {'print_freq': print_freq, 'save_checkpoint_freq': ckpt_freq, 'use_tb_logger': True,
                   'wandb': {'project': None, 'resume_id': None}},
        'dist_params': {'backend': 'nccl', 'port': 29500},
    }


def embedded_network(sensors: List[str]) -> Dict[str, Any]:
    return {'type': 'ModulatedUNet', 'in_ch': 4, 'out_ch': 4, 'base_ch': 16, 'convs_per_block': 2,
            'dense': False, 'num_sensors': len(sensors), 'use_sensor': True, 'use_iso': True, 'mlp_hidden': 32,
            'iso_ref': 100, 'residual': True}




def real_domain(camera: str, sensors: List[str], split: str, gt_size: int, polyu_root: str = None,
                folder: str = None, iso: float = None, test_scenes: List[str] = None,
                augment: bool = True) -> Dict[str, Any]:
    """RealNoisyPairsDataset options for one camera: from a PolyU-named folder (``polyu_root``, filtered to
    ``camera`` and split by scene) or from a ``noisy/``+``gt/`` folder (``folder``, labelled ``camera``/``iso``)."""
    if (polyu_root is None) == (folder is None):
        raise ValueError('give exactly one of polyu_root and folder')
    if polyu_root is not None:
        opt = {'type': 'RealNoisyPairsDataset', 'dataroot': polyu_root, 'naming': 'polyu', 'cameras': [camera]}
        if test_scenes is not None:
            opt.update({'split': split, 'test_scenes': list(test_scenes)})
    else:
        opt = {'type': 'RealNoisyPairsDataset', 'dataroot': folder, 'naming': 'subfolders', 'camera': camera}
        if iso is not None:
            opt['iso'] = float(iso)
    opt.update({'sensors': list(sensors), 'cache': True})
    if split == 'train':
        opt.update({'gt_size': gt_size, 'use_hflip': augment, 'use_rot': augment})
    return opt


def real_adl_options(name: str, mode: str, target: str, domains: Dict[str, Dict[str, Any]],
                     test_domain: Dict[str, Any], network: Dict[str, Any], total_iter: int, stages: List[int],
                     batch: int, target_batch: int, lr: float, val_crop: int, gate: Dict[str, Any] = None,
                     print_freq: int = 100, heatmap_epochs: int = 6) -> Dict[str, Any]:
    """ADL/baseline options over real sRGB domains (``domains``: name -> RealNoisyPairsDataset options; the
    target among them), scored on ``test_domain`` (the target's held-out scenes)."""
    opt = adl_options(name, mode, target, [d for d in domains if d != target], list(domains), '.', gt_size=0,
                      batch=batch, target_batch=target_batch, network=network, total_iter=total_iter,
                      stages=stages, lr=lr, val_crop=val_crop, num_gpu=0, print_freq=print_freq,
                      ckpt_freq=10 ** 9, val_freq=10 ** 9, heatmap_epochs=heatmap_epochs, gate=gate)
    opt['datasets']['train']['domains'] = {k: dict(v) for k, v in domains.items()}
    opt['datasets']['val'] = {'name': f'{target}_test', **test_domain, 'phase': 'val'}
    opt['logger']['use_tb_logger'] = False
    return opt
