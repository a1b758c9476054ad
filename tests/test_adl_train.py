"""ADLModel through BasicSR's train_pipeline (subprocess, cwd=tmp_path): stages, modes, BasicSR archs, DDP, resume."""
import csv
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch

from adl_testdata import PYTHON, REPO, TRAIN, make_data, make_options


def run_train(cwd, opt_path, *extra, nproc=None, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    if nproc:
        cmd = [PYTHON, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', TRAIN,
               '-opt', opt_path, '--launcher', 'pytorch', *extra]
    else:
        cmd = [PYTHON, TRAIN, '-opt', opt_path, *extra]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_log(exp_dir):
    logs = [f for f in os.listdir(exp_dir) if f.startswith('train_') and f.endswith('.log')]
    return ''.join(open(osp.join(exp_dir, f)).read() for f in sorted(logs))


def load_weights(path):
    return torch.load(path, map_location='cpu')['params']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('adl_data')
    return make_data(str(root))


def test_three_stages_gate_log_heatmap_and_val(tmp_path, data):
    opt = make_options(str(tmp_path), data, name='adl_stages', total_iter=12, stages=(3, 6, 3),
                       adl={'gate': {'criterion': 'paired'}})
    run_train(str(tmp_path), opt)
    exp = tmp_path / 'experiments' / 'adl_stages'
    log = read_log(str(exp))
    stages = [float(line.split('adl_stage: ')[1].split()[0]) for line in log.splitlines() if 'adl_stage: ' in line]
    assert stages == [1.0] * 3 + [2.0] * 6 + [3.0] * 3
    assert 'adl_accept/srcA' in log and 'adl_reject/srcB' in log
    assert 'metadata to net: [\'sensor\', \'iso\']' in log
    rows = list(csv.DictReader(open(exp / 'adl_accept_rates.csv')))
    assert sum(int(r['total']) for r in rows) == 6  # one decision per stage-2 iteration
    assert {r['source'] for r in rows} == {'srcA', 'srcB'}
    assert (exp / 'adl_accept_heatmap.png').read_bytes()[:4] == b'\x89PNG'
    assert '# psnr:' in log and '# ssim:' in log
    assert (exp / 'models' / 'net_g_latest.pth').exists()


@pytest.mark.parametrize('mode', ['target_only', 'finetune'])
def test_baseline_modes_run_without_gating(tmp_path, data, mode):
    opt = make_options(str(tmp_path), data, name=f'adl_{mode}', total_iter=4, stages=(1, 2, 1),
                       adl={'mode': mode})
    run_train(str(tmp_path), opt)
    exp = tmp_path / 'experiments' / f'adl_{mode}'
    log = read_log(str(exp))
    assert 'adl_accept/' not in log and not (exp / 'adl_accept_rates.csv').exists()
    assert log.count('l_pix: ') == 4


def test_basicsr_arch_without_metadata_trains_in_adl_mode(tmp_path, data):
    """RRDBNet (BasicSR's own arch, scale 1) takes no sensor/iso: the model must not pass them."""
    net = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 1, 'num_feat': 8, 'num_block': 1,
           'num_grow_ch': 4}
    opt = make_options(str(tmp_path), data, name='adl_rrdb', total_iter=4, stages=(1, 2, 1), network=net)
    run_train(str(tmp_path), opt)
    log = read_log(str(tmp_path / 'experiments' / 'adl_rrdb'))
    assert 'metadata to net: none' in log and 'adl_accept/srcA' in log


@pytest.mark.parametrize('gate', [{}, {'criterion': 'paired_target_linear', 'refresh_every': 2, 'check_every': 2}],
                         ids=['default', 'paired_target_linear'])
def test_ddp_two_gloo_ranks_take_identical_decisions_and_weights(tmp_path, data, gate):
    opt = make_options(str(tmp_path), data, name='adl_ddp', total_iter=8, stages=(2, 5, 1),
                       adl={'write_rank_decisions': True, 'gate': gate})
    run_train(str(tmp_path), opt, nproc=2, timeout=300)
    exp = tmp_path / 'experiments' / 'adl_ddp'
    r0 = json.load(open(exp / 'adl_decisions_rank0.json'))
    r1 = json.load(open(exp / 'adl_decisions_rank1.json'))
    assert len(r0['decisions']) == 5
    assert r0['decisions'] == r1['decisions']  # same iteration, domain, decision and all-reduced V' scores
    assert r0['weights_sha256'] == r1['weights_sha256']
    assert len({d[1] for d in r0['decisions']}) >= 1


@pytest.mark.parametrize('gate,decisions', [({'criterion': 'paper', 'queue_size': 3}, 6),
                                            ({'criterion': 'paired_target', 'every': 2}, 3),
                                            ({'criterion': 'paired_target_linear', 'every': 2, 'refresh_every': 2,
                                              'check_every': 2}, 3)],
                         ids=['paper', 'paired_target_every2', 'paired_target_linear_every2'])
def test_kill_and_auto_resume_mid_stage2_matches_uninterrupted_run(tmp_path, data, gate, decisions):
    """Killed at iteration 6 (stage 2 runs 4..9): with chunks of 2 that is inside a chunk, so the revert
    point and the chunk's recorded target gradients must come back from the training state."""
    full_dir, cut_dir = tmp_path / 'full', tmp_path / 'cut'
    full_dir.mkdir()
    cut_dir.mkdir()
    kw = dict(name='adl_resume', total_iter=12, stages=(3, 6, 3), checkpoint_freq=3,
              adl={'gate': gate, 'write_rank_decisions': True})
    full = make_options(str(full_dir), data, **kw)
    cut = make_options(str(cut_dir), data, **kw)
    run_train(str(full_dir), full)
    run_train(str(cut_dir), cut, '--force_yml', 'train:total_iter=6')  # "killed" at iteration 6 (stage 2)
    assert (cut_dir / 'experiments' / 'adl_resume' / 'training_states' / '6.state').exists()
    run_train(str(cut_dir), cut, '--auto_resume')
    a = load_weights(full_dir / 'experiments' / 'adl_resume' / 'models' / 'net_g_latest.pth')
    b = load_weights(cut_dir / 'experiments' / 'adl_resume' / 'models' / 'net_g_latest.pth')
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ca = list(csv.DictReader(open(full_dir / 'experiments' / 'adl_resume' / 'adl_accept_rates.csv')))
    cb = list(csv.DictReader(open(cut_dir / 'experiments' / 'adl_resume' / 'adl_accept_rates.csv')))
    assert ca == cb and sum(int(r['total']) for r in ca) == decisions
    da = json.load(open(full_dir / 'experiments' / 'adl_resume' / 'adl_decisions_rank0.json'))
    db = json.load(open(cut_dir / 'experiments' / 'adl_resume' / 'adl_decisions_rank0.json'))
    assert len(da['decisions']) == decisions and da == db  # same domains, V' scores and gate decisions


def test_adl_on_embedded_raw_lmdbs_with_recipe_and_evaluation(tmp_path):
    """The RAW datasets as domains (sensor/ISO from the LMDB metadata), the options recipe, and scoring."""
    from basicsr_adl.adl.experiments import accept_counts, embedded_options, evaluate_run, run_training
    from basicsr_adl.raw.embedded import build_embedded_raw
    data = str(tmp_path / 'raw')
    manifest = build_embedded_raw(data, patch_size=32, target='IMX686',
                                  sensors=['SonyA7S2', 'NikonD850', 'IMX686'], target_train=4, target_test=2,
                                  source_train=3, source_test=1, seed=0)
    opt = embedded_options('adl_raw', 'adl', manifest, data, total_iter=6, stage_fractions=(0.34, 0.33, 0.33),
                           base_ch=4, gt_size=16, batch=2, target_batch=1, val_crop=32)
    exp = run_training(opt, str(tmp_path))
    counts = accept_counts(exp)
    assert set(counts) == {'SonyA7S2', 'NikonD850'} and sum(n for _, n in counts.values()) == 2
    log = read_log(exp)
    assert "metadata to net: ['sensor', 'iso']" in log and '# psnr:' in log
    result = evaluate_run(opt, exp, keep_outputs=1)
    assert len(result['psnr_per_image']) == 2 and 20 < result['psnr'] < 80
    assert result['outputs'][0][1].shape == result['outputs'][0][2].shape
