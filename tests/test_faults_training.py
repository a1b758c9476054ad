"""Fault injection, training (issue #15 cases 7-9): a NaN target pair, a hung DDP rank, a truncated or
incompatible training state. Each fault gives one line naming the pair, rank, file or option."""
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

import basicsr_adl.plugin  # noqa: F401
from basicsr.models import build_model
from basicsr.utils import make_exp_dirs
from basicsr.utils.options import parse_options

from basicsr_adl.adl.validation_sampler import DynamicValidationSampler
from basicsr_adl.cli import main as cli_main
from basicsr_adl.compat import resume
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.raw.lmdb_store import write_raw_lmdb
from adl_testdata import PYTHON, REPO, TRAIN, make_data, make_options
from conftest import sr_train_options, write_yaml
from raw_fakes import truncate_file


# ------------------------------------------------------------------------------------------ helpers
def build(root, opt_path, monkeypatch):
    """An ADLModel set up in-process from an options file (root: where experiments/ goes)."""
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(opt_path)])
    opt, _ = parse_options(str(root), is_train=True)
    opt['root_path'] = str(root)
    make_exp_dirs(opt)
    return build_model(opt)


class Records(logging.Handler):
    """Collects the messages of BasicSR's root logger (it does not propagate to pytest's caplog)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def warnings_logged():
    handler = Records()
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def run_train(cwd, opt_path, *extra, check=True, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=REPO)
    proc = subprocess.run([PYTHON, TRAIN, '-opt', str(opt_path), *extra], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def one_error_line(proc, code=2):
    """The process failed with ``code`` and exactly one 'basicsr_adl: error:' line, no traceback; returns it."""
    assert proc.returncode == code, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith('basicsr_adl: error:')]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


def weights(path):
    return torch.load(path, map_location='cpu')['params']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp('faults_data')))


# ------------------------------------------------------------------------------------------ case 7: NaN target pair
def write_raw_domain(root, name, count, seed, bad=None):
    """``count`` float32 packed RAW pairs (4x32x32) as RAW LMDBs; ``bad`` maps key -> (part, value) to plant one
    non-finite pixel in a corner of that pair's noisy ('lq') or clean ('gt') image, outside any centre crop."""
    rng = np.random.default_rng(seed)
    lq_items, gt_items = [], []
    for i in range(count):
        key = f'{name}{i}'
        gt = rng.uniform(0.2, 0.8, (4, 32, 32)).astype(np.float32)
        lq = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
        part, value = (bad or {}).get(key, (None, None))
        if part is not None:
            (lq if part == 'lq' else gt)[1, 0, 31] = value
        meta = {'sensor': 'IMX686', 'iso': 800}
        lq_items.append((key, lq, meta))
        gt_items.append((key, gt, meta))
    lq_path = write_raw_lmdb(os.path.join(root, f'{name}_lq.lmdb'), lq_items)
    gt_path = write_raw_lmdb(os.path.join(root, f'{name}_gt.lmdb'), gt_items)
    return {'type': 'RawPairedLMDBDataset', 'dataroot_lq': lq_path, 'dataroot_gt': gt_path, 'gt_size': 16,
            'use_hflip': True, 'use_rot': False}


def raw_options(root, name, target, sources, adl=None):
    """ADL options over RAW LMDB domains (the RGB test data cannot hold a NaN: PNGs are 8-bit)."""
    path = make_options(str(root), {'tgt': {}, 'tgt_test': {}, 'srcA': {}, 'srcB': {}}, name=name, total_iter=8,
                        stages=(2, 4, 2), adl=dict({'val_crop': 16}, **(adl or {})),
                        network={'type': 'ModulatedUNet', 'in_ch': 4, 'out_ch': 4, 'base_ch': 4, 'num_sensors': 2,
                                 'mlp_hidden': 8})
    with open(path) as f:
        opt = yaml.safe_load(f)
    opt['datasets'] = {'train': dict(opt['datasets']['train'], domains={
        'tgt': dict(target, sensor_index=0), 'src': dict(sources, sensor_index=1)})}
    opt.pop('val')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def test_nonfinite_target_pair_is_named_once_and_left_out_of_v_and_training(tmp_path, monkeypatch, warnings_logged):
    # NaN in a noisy and in a clean image (the RAW dataset clips an Inf to 1, so it never reaches the net)
    target = write_raw_domain(str(tmp_path), 't', 6, 1, bad={'t2': ('lq', np.nan), 't4': ('gt', np.nan)})
    source = write_raw_domain(str(tmp_path), 's', 4, 2)
    model = build(tmp_path, raw_options(tmp_path, 'nan_target', target, source), monkeypatch)

    named = [ln for ln in warnings_logged if 'NaN/Inf' in ln]
    assert len(named) == 2, warnings_logged
    assert f"noisy image key 't2' in '{target['dataroot_lq']}'" in named[0] and 'target pair 2' in named[0]
    assert f"clean image key 't4' in '{target['dataroot_gt']}'" in named[1] and 'target pair 4' in named[1]
    assert model.targets.left_out == [2, 4] and model.targets.usable == [0, 1, 3, 5]
    assert all(bool(torch.isfinite(model.targets.crops[i]['lq']).all()) for i in range(6))  # the crop hides it

    gen = torch.Generator().manual_seed(0)
    drawn = set()
    for step in range(60):
        val, train = model.adaptation.sampler.sample(step / 59, gen)
        assert not {2, 4} & set(val + train)
        drawn |= set(val)
    assert drawn == {0, 1, 3, 5}
    full = DynamicValidationSampler(6, start_fraction=0.2, end_fraction=0.5)  # without the check they are drawn
    assert {2, 4} <= {i for _ in range(60) for i in full.sample(0.5, gen)[0]}

    seen = []
    original = model.domains.train_item
    monkeypatch.setattr(model.domains, 'train_item', lambda name, i: seen.append((name, i)) or original(name, i))
    for it in range(1, 7):  # stage 1 (target only) and stage 2 (gated)
        model.optimize_parameters(it)
        assert np.isfinite(model.log_dict['l_pix'])
    target_draws = {i for name, i in seen if name == 'tgt'}
    assert target_draws and not target_draws & {2, 4}
    assert np.isfinite(model.log_dict['adl_val_psnr'])
    assert model.nan_skips == 0


def test_sampler_draws_from_the_usable_pairs_only():
    """The core alone: excluded pairs are in neither V' nor T_train, also in the ISO-spanning mode; fractions
    count the usable pairs; with nothing excluded the draws are those of the full set."""
    isos = [100, 100, 400, 400, 1600, 1600, 3200, 3200]
    left_out = DynamicValidationSampler(8, isos, 0.25, 0.5, diverse_below=10, excluded=[3, 6])
    assert left_out.population == [0, 1, 2, 4, 5, 7] and left_out.iso_diverse
    gen = torch.Generator().manual_seed(1)
    for step in range(40):
        val, train = left_out.sample(step / 39, gen)
        assert sorted(val + train) == [0, 1, 2, 4, 5, 7] and len(val) == left_out.size_at(step / 39)
    assert left_out.size_at(1.0) == 3  # half of the 6 usable pairs, not of 8
    a, b = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert DynamicValidationSampler(8, isos, excluded=[]).sample(0.3, a) == DynamicValidationSampler(8, isos).sample(0.3, b)
    with pytest.raises(ValueError, match='1 usable pair'):
        DynamicValidationSampler(3, excluded=[0, 2])


def test_resume_left_out_pairs_change_is_a_warning_unless_the_state_still_uses_them():
    from basicsr_adl.adl.resume_options import ResumeMismatch, compare_left_out
    assert compare_left_out([2], [2], in_use=[0, 1]) == []
    assert compare_left_out([2], [], in_use=[0, 1]) == ["resuming with target pair(s) none left out as non-finite; "
                                                       'the saved run left out [2]']
    with pytest.raises(ResumeMismatch, match=r'target pair\(s\) \[1\] hold NaN/Inf values now'):
        compare_left_out([], [1], in_use=[0, 1])


def test_too_few_finite_target_pairs_is_one_error_naming_the_domain(tmp_path, monkeypatch, capsys):
    target = write_raw_domain(str(tmp_path), 't', 2, 1, bad={'t0': ('gt', np.nan)})
    source = write_raw_domain(str(tmp_path), 's', 2, 2)
    path = raw_options(tmp_path, 'nan_all', target, source)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli_main(is_train=True, argv=['-opt', str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("basicsr_adl: error: option 'datasets.train.domains.tgt': 1 of the "
                                               "target's 2 pairs hold NaN/Inf"), err
    assert "1 usable pair(s) left; adl.mode 'adl' needs at least 2" in err[0]


# ------------------------------------------------------------------------------------------ case 8: hung DDP rank
HANG_AT_ITER_3 = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import basicsr_adl.plugin
from basicsr.models.sr_model import SRModel
from basicsr_adl.cli import main

_optimize = SRModel.optimize_parameters


def optimize(self, current_iter):
    if current_iter == 3 and os.environ['RANK'] == '1':
        with open('rank1.pid', 'w') as f:
            f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGSTOP)  # hung, not dead: its sockets stay open
    return _optimize(self, current_iter)


SRModel.optimize_parameters = optimize
main(is_train=True)
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.skipif(sys.platform == 'win32', reason='SIGSTOP and gloo are POSIX')
def test_hung_rank_ends_the_run_after_dist_params_timeout_naming_the_rank(tmp_path, tiny_pairs):
    opt = sr_train_options('hung', tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                           tiny_pairs['val_gt'], total_iter=6, val_freq=100, save_freq=100)
    opt['dist_params']['timeout'] = 4
    write_yaml(tmp_path / 'train.yml', opt)
    (tmp_path / 'hang.py').write_text(HANG_AT_ITER_3.format(repo=str(REPO)))
    port = str(free_port())
    procs, logs = [], []
    try:
        for rank in (0, 1):
            env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO), RANK=str(rank), LOCAL_RANK=str(rank),
                       WORLD_SIZE='2', LOCAL_WORLD_SIZE='2', MASTER_ADDR='127.0.0.1', MASTER_PORT=port,
                       BASICSR_ADL_DIST_BACKEND='gloo')
            logs.append(open(tmp_path / f'rank{rank}.err', 'w+'))
            procs.append(subprocess.Popen([PYTHON, 'hang.py', '-opt', 'train.yml', '--launcher', 'pytorch'],
                                          cwd=str(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=logs[-1]))
        start = time.time()
        code = procs[0].wait(timeout=100)
        waited = time.time() - start
        assert (tmp_path / 'rank1.pid').exists(), 'rank 1 never reached iteration 3'
        with open(f'/proc/{procs[1].pid}/stat') as f:
            assert f.read().split(') ')[1][0] == 'T'  # rank 1 is still stopped: rank 0 did not wait for it
        logs[0].seek(0)
        err = logs[0].read()
        assert code == 3, err[-3000:]
        assert 'Traceback' not in err, err[-3000:]
        lines = [ln for ln in err.splitlines() if ln.startswith('basicsr_adl: error:')]
        assert len(lines) == 1, err[-3000:]
        assert lines[0].startswith('basicsr_adl: error: rank 0 waited more than dist_params.timeout = 4 s for '
                                   'another rank in '), lines[0]
        assert lines[0].endswith('; rank 1 is hung or dead'), lines[0]
        assert waited < 80
        log = next((tmp_path / 'experiments' / 'hung').glob('train_hung_*.log')).read_text()
        assert 'rank 1 is hung or dead' in log  # the run's own log says why it ended
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                os.kill(proc.pid, signal.SIGCONT)
            proc.wait(timeout=30)
        for f in logs:
            f.close()


# ------------------------------------------------------------------------------------------ case 9: resume
def test_auto_resume_skips_a_truncated_latest_state_and_matches_the_uninterrupted_run(tmp_path, data):
    full_dir, cut_dir = tmp_path / 'full', tmp_path / 'cut'
    full_dir.mkdir()
    cut_dir.mkdir()
    kw = dict(name='adl_trunc', total_iter=12, stages=(3, 6, 3), checkpoint_freq=3,
              adl={'gate': {'criterion': 'paired_target', 'every': 2}})
    run_train(full_dir, make_options(str(full_dir), data, **kw))
    cut = make_options(str(cut_dir), data, **kw)
    run_train(cut_dir, cut, '--force_yml', 'train:total_iter=9')  # states 3, 6 (inside a chunk) and 9
    states = cut_dir / 'experiments' / 'adl_trunc' / 'training_states'
    truncate_file(str(states / '9.state'), keep=300)
    proc = run_train(cut_dir, cut, '--auto_resume')
    exp = cut_dir / 'experiments' / 'adl_trunc'
    log = sorted(exp.glob('train_adl_trunc_*.log'))[-1].read_text()
    skipped = [ln for ln in log.splitlines() if 'skipped training state' in ln]
    assert len(skipped) == 1 and f"'{states / '9.state'}' (truncated or corrupt" in skipped[0], log[-3000:]
    assert f"resuming from '{states / '6.state'}'" in skipped[0]
    assert 'Resuming training from epoch: 1, iter: 6' in log, proc.stderr[-3000:]
    a = weights(full_dir / 'experiments' / 'adl_trunc' / 'models' / 'net_g_latest.pth')
    b = weights(exp / 'models' / 'net_g_latest.pth')
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_unloadable_explicit_state_and_no_usable_state_are_one_line(tmp_path, data):
    opt = make_options(str(tmp_path), data, name='adl_bad_state', total_iter=2, stages=(1, 1, 0), checkpoint_freq=1)
    run_train(tmp_path, opt)
    states = tmp_path / 'experiments' / 'adl_bad_state' / 'training_states'
    truncate_file(str(states / '2.state'))
    with open(opt) as f:
        explicit = yaml.safe_load(f)
    explicit['path']['resume_state'] = str(states / '2.state')
    write_yaml(tmp_path / 'explicit.yml', explicit)
    line = one_error_line(run_train(tmp_path, tmp_path / 'explicit.yml', check=False))
    assert line.startswith(f"basicsr_adl: error: option 'path.resume_state': '{states / '2.state'}' cannot be "
                           'loaded (truncated or corrupt'), line
    (states / '1.state').write_bytes(b'')
    line = one_error_line(run_train(tmp_path, opt, '--auto_resume', check=False))
    assert line.startswith(f"basicsr_adl: error: --auto_resume: none of the 2 training states under '{states}' "
                           f"can be used; the newest, '{states / '2.state'}': truncated or corrupt"), line


@pytest.fixture(scope='module')
def saved_state(tmp_path_factory, data):
    """A training state written mid-stage-2 by the default (paired_target) gate, and its options file."""
    root = tmp_path_factory.mktemp('saved_state')
    opt = make_options(str(root), data, name='adl_saved', total_iter=4, stages=(1, 3, 0), checkpoint_freq=2)
    run_train(root, opt)
    return root, opt, root / 'experiments' / 'adl_saved' / 'training_states' / '2.state'


def _resume_in_process(tmp_path, data, monkeypatch, state_path, edit, strip_options=False):
    """Build the model with edited options (in its own root) and load the saved state into it."""
    opt = make_options(str(tmp_path), data, name='adl_saved', total_iter=4, stages=(1, 3, 0), checkpoint_freq=2)
    with open(opt) as f:
        tree = yaml.safe_load(f)
    edit(tree)
    write_yaml(tmp_path / 'adl_saved.yml', tree)
    model = build(tmp_path, opt, monkeypatch)
    state = torch.load(state_path, map_location='cpu')
    if strip_options:  # as a state written before the options were recorded
        del state['basicsr_adl']['extra']['options']
    try:
        model.resume_training(state)
    finally:
        resume._pending_resume.clear()  # no prefetcher here to consume the replay
    return model


def test_resume_with_a_changed_gate_criterion_is_one_line_naming_the_values(tmp_path, saved_state):
    root, opt, _ = saved_state
    with open(opt) as f:
        tree = yaml.safe_load(f)
    tree['adl']['gate'] = {'criterion': 'paper'}
    write_yaml(root / 'paper.yml', tree)
    line = one_error_line(run_train(root, root / 'paper.yml', '--auto_resume', check=False))
    assert line == ("basicsr_adl: error: option 'adl.gate.criterion' changed since the training state was saved "
                    "('paired_target' -> 'paper'); the state cannot carry this change: resume with "
                    "'paired_target', or start a new run under another name"), line


@pytest.mark.parametrize('case', ['criterion_old_state', 'target_pairs', 'mode'])
def test_resume_options_the_state_cannot_carry(tmp_path, data, monkeypatch, saved_state, case):
    _, _, state = saved_state
    edits = {
        'criterion_old_state': lambda o: o['adl'].update(gate={'criterion': 'paper'}),
        'target_pairs': lambda o: o['datasets']['train'].update(target_pairs=5),
        'mode': lambda o: o['adl'].update(mode='finetune'),
    }
    with pytest.raises(OptionError) as err:
        _resume_in_process(tmp_path, data, monkeypatch, state, edits[case], strip_options=case.endswith('old_state'))
    text = str(err.value)
    if case == 'criterion_old_state':  # no recorded options: the gate state itself does not fit (was KeyError)
        assert text.startswith("option 'adl.gate.criterion': the training state's gate state has no 'queue'"), text
    elif case == 'target_pairs':
        assert text.startswith("option 'datasets.train.target_pairs' changed since the training state was saved "
                               '([0, 1, 2, 3, 4, 5] -> ['), text
    else:
        assert text.startswith("option 'adl.mode' changed since the training state was saved ('adl' -> "
                               "'finetune')"), text


def test_resume_options_the_state_can_carry_are_warnings(tmp_path, data, monkeypatch, saved_state, warnings_logged):
    _, _, state = saved_state

    def edit(o):
        o['adl']['gate'] = {'criterion': 'paired_target', 'tolerance': 0.1, 'every': 2}
        o['adl']['validation'] = {'end_fraction': 0.4}

    model = _resume_in_process(tmp_path, data, monkeypatch, state, edit)
    notes = [ln for ln in warnings_logged if ln.startswith('ADL: resuming with')]
    assert notes == ['ADL: resuming with adl.gate.tolerance = 0.1; the saved run had 0.0',
                     'ADL: resuming with adl.gate.every = 2; the saved run had 1',
                     'ADL: resuming with adl.validation.end_fraction = 0.4; the saved run had 0.5'], warnings_logged
    model.optimize_parameters(3)  # and it trains on from the state
    assert np.isfinite(model.log_dict['l_pix'])
