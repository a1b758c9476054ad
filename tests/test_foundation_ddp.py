"""``torchrun --nproc_per_node=2 ... --launcher pytorch`` on CPU: gloo, sharded validation, identical replicas."""
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, REPO, run_cli, sr_train_options, write_yaml

TORCHRUN = [PYTHON, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']


def _psnrs(log: str):
    return [float(v) for v in re.findall(r'# psnr: (\d+\.\d+)', log)]


@pytest.mark.skipif(sys.platform == 'win32', reason='gloo/torchrun test is for POSIX CI')
def test_torchrun_two_cpu_ranks_train_validate_and_agree(tmp_path, tiny_pairs):
    # 3 validation images over 2 ranks: uneven shards, so a rank-0-only or unreduced validation would show.
    opt = sr_train_options('ddp_sr', tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                           tiny_pairs['val_gt'], total_iter=4, val_freq=2, num_worker=1)
    write_yaml(tmp_path / 'train.yml', opt)
    proc = run_cli(TORCHRUN + [str(REPO / 'tests' / 'ddp_harness.py'), '-opt', 'train.yml', '--launcher', 'pytorch'],
                   cwd=tmp_path, timeout=400)
    exp = tmp_path / 'experiments' / 'ddp_sr'
    log = next(exp.glob('train_ddp_sr_*.log')).read_text()
    assert 'World size (gpu number): 2' in log
    w0 = torch.load(tmp_path / 'rank0_weights.pth')
    w1 = torch.load(tmp_path / 'rank1_weights.pth')
    assert w0.keys() == w1.keys()
    for key in w0:
        assert torch.equal(w0[key], w1[key]), f'{key} differs between ranks'
    saved = torch.load(exp / 'models' / 'net_g_latest.pth', map_location='cpu')['params']
    assert all(torch.equal(saved[k], w0[k]) for k in saved)

    # The final (all-reduced) validation equals a single-process test of the same weights on all 3 images.
    ddp_psnr = _psnrs(log)[-1]
    test_opt = {'name': 'ddp_check', 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0,
                'datasets': {'test_1': dict(opt['datasets']['val'])},
                'network_g': opt['network_g'],
                'path': {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'strict_load_g': True},
                'val': {'save_img': False, 'metrics': opt['val']['metrics']}}
    run_cli([PYTHON, str(REPO / 'basicsr_adl' / 'test.py'), '-opt', str(write_yaml(tmp_path / 't.yml', test_opt))],
            cwd=tmp_path)
    single = _psnrs(next((tmp_path / 'results' / 'ddp_check').glob('test_*.log')).read_text())[-1]
    assert abs(ddp_psnr - single) < 1e-3, (ddp_psnr, single)
    assert proc.returncode == 0
