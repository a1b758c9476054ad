"""The plugin drives BasicSR's own train/test pipelines on CPU: SRModel + RRDBNet + LMDB, AdamW, resume."""
import re
from pathlib import Path

import torch

from conftest import PYTHON, REPO, run_cli, sr_train_options, write_yaml

TRAIN = str(REPO / 'basicsr_adl' / 'train.py')
TEST = str(REPO / 'basicsr_adl' / 'test.py')


def _weights(path: Path) -> dict:
    return torch.load(path, map_location='cpu')['params']


def test_train_pipeline_runs_on_cpu_with_lmdb_and_adamw(tmp_path, tiny_pairs):
    opt = sr_train_options('tiny_sr', tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                           tiny_pairs['val_gt'], total_iter=4)
    yml = write_yaml(tmp_path / 'train.yml', opt)
    proc = run_cli([PYTHON, TRAIN, '-opt', str(yml), '--local-rank=0'], cwd=tmp_path)
    exp = tmp_path / 'experiments' / 'tiny_sr'
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    assert (exp / 'training_states' / '4.state').is_file()
    log = next(exp.glob('train_tiny_sr_*.log')).read_text()
    assert 'AdamW' in log and 'Dataset [PairedImageDataset]' in log
    assert re.search(r'# psnr: \d+\.\d+', log), log[-2000:]
    # the optimiser really is AdamW with the configured weight decay
    state = torch.load(exp / 'training_states' / '4.state', map_location='cpu')
    assert state['optimizers'][0]['param_groups'][0]['weight_decay'] == 1e-4
    assert 'Disable distributed' in proc.stdout

    # BasicSR's test pipeline reads the trained weights back on CPU.
    test_opt = {'name': 'tiny_sr_test', 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0,
                'datasets': {'test_1': {'name': 'tiny_val', 'type': 'PairedImageDataset',
                                        'dataroot_gt': tiny_pairs['val_gt'], 'dataroot_lq': tiny_pairs['val_lq'],
                                        'io_backend': {'type': 'disk'}}},
                'network_g': opt['network_g'],
                'path': {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'strict_load_g': True},
                'val': {'save_img': True, 'suffix': None,
                        'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}}
    run_cli([PYTHON, TEST, '-opt', str(write_yaml(tmp_path / 'test.yml', test_opt))], cwd=tmp_path)
    results = tmp_path / 'results' / 'tiny_sr_test'
    assert len(list((results / 'visualization' / 'tiny_val').glob('*.png'))) == 3


def test_auto_resume_mid_epoch_matches_uninterrupted_run(tmp_path, tiny_pairs):
    # 6 pairs, batch 2: 3 iterations per epoch; stopping at 4 interrupts epoch 1 after one batch.
    opt = sr_train_options('resume_sr', tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                           tiny_pairs['val_gt'], total_iter=8, val_freq=100)
    straight, split = tmp_path / 'straight', tmp_path / 'split'
    for d in (straight, split):
        d.mkdir()
        write_yaml(d / 'train.yml', opt)
    run_cli([PYTHON, TRAIN, '-opt', 'train.yml'], cwd=straight)
    run_cli([PYTHON, TRAIN, '-opt', 'train.yml', '--force_yml', 'train:total_iter=4'], cwd=split)
    first_half = _weights(split / 'experiments' / 'resume_sr' / 'models' / 'net_g_latest.pth')
    proc = run_cli([PYTHON, TRAIN, '-opt', 'train.yml', '--auto_resume'], cwd=split)
    log = sorted((split / 'experiments' / 'resume_sr').glob('train_resume_sr_*.log'))[-1].read_text()
    assert 'Resuming training from epoch: 1, iter: 4' in log, proc.stdout[-3000:]
    assert 'replaying 1 consumed batch' in log
    a = _weights(straight / 'experiments' / 'resume_sr' / 'models' / 'net_g_latest.pth')
    b = _weights(split / 'experiments' / 'resume_sr' / 'models' / 'net_g_latest.pth')
    assert any(not torch.equal(first_half[k], b[k]) for k in b), 'resumed run did not train'
    for key in a:
        assert torch.equal(a[key], b[key]), f'{key} differs after resume'


def test_resume_state_path_option_loads_on_cpu(tmp_path, tiny_pairs):
    opt = sr_train_options('resume_path', tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                           tiny_pairs['val_gt'], total_iter=2, val_freq=100)
    write_yaml(tmp_path / 'a.yml', opt)
    run_cli([PYTHON, TRAIN, '-opt', 'a.yml'], cwd=tmp_path)
    state = tmp_path / 'experiments' / 'resume_path' / 'training_states' / '2.state'
    opt['train']['total_iter'] = 3
    opt['path']['resume_state'] = str(state)
    write_yaml(tmp_path / 'b.yml', opt)
    run_cli([PYTHON, TRAIN, '-opt', 'b.yml'], cwd=tmp_path)
    log = sorted((tmp_path / 'experiments' / 'resume_path').glob('train_*.log'))[-1].read_text()
    assert 'Resuming training from epoch: 0, iter: 2' in log
