"""Wrong options stop with one line naming the option and the choices; no traceback, exit status 2."""
import copy

import pytest

from conftest import PYTHON, REPO, run_cli, sr_train_options, write_yaml

from basicsr_adl.cli import normalise_argv
from basicsr_adl.compat.options_check import OptionError, check_options

TRAIN = str(REPO / 'basicsr_adl' / 'train.py')


@pytest.fixture()
def base_opt(tiny_pairs):
    return sr_train_options('bad', tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                            tiny_pairs['val_gt'])


def _break(opt, path, value):
    opt = copy.deepcopy(opt)
    *parents, last = path.split('.')
    node = opt
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return opt


@pytest.mark.parametrize('path,value,expected', [
    ('model_type', 'NoSuchModel', ["'model_type'", "'NoSuchModel'", 'SRModel']),
    ('network_g.type', 'NoSuchNet', ["'network_g.type'", 'RRDBNet']),
    ('datasets.train.type', 'NoSuchSet', ["'datasets.train.type'", 'PairedImageDataset']),
    ('train.optim_g.type', 'Adamm', ["'train.optim_g.type'", 'AdamW']),
    ('train.pixel_opt.type', 'L7Loss', ["'train.pixel_opt.type'", 'L1Loss']),
    ('val.metrics.psnr.type', 'psnr', ["'val.metrics.psnr.type'", 'calculate_psnr']),
    ('train.total_iter', KeyError, ["'train.total_iter'"]),
    ('datasets.train.batch_size_per_gpu', KeyError, ["'datasets.train.batch_size_per_gpu'"]),
    ('num_gpu', 'many', ["'num_gpu'"]),
])
def test_check_options_names_the_option_and_choices(base_opt, path, value, expected):
    with pytest.raises(OptionError) as err:
        check_options(_break(base_opt, path, value), is_train=True)
    for text in expected:
        assert text in str(err.value)


def test_valid_options_pass(base_opt):
    check_options(base_opt, is_train=True)


def test_cli_prints_one_line_without_traceback(tmp_path, base_opt):
    write_yaml(tmp_path / 'bad.yml', _break(base_opt, 'network_g.type', 'NoSuchNet'))
    proc = run_cli([PYTHON, TRAIN, '-opt', 'bad.yml'], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'network_g.type' in lines[0] and 'RRDBNet' in lines[0], proc.stderr
    assert not (tmp_path / 'experiments').exists(), 'nothing should be created for a bad options file'


def test_force_yml_override_is_checked_too(tmp_path, base_opt):
    write_yaml(tmp_path / 'ok.yml', base_opt)
    proc = run_cli([PYTHON, TRAIN, '-opt', 'ok.yml', '--force_yml', 'model_type=Nope'], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "'model_type'" in proc.stderr and 'Traceback' not in proc.stderr


def test_missing_options_file_names_the_path(tmp_path):
    proc = run_cli([PYTHON, TRAIN, '-opt', 'nowhere/missing.yml'], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "nowhere/missing.yml" in proc.stderr and 'Traceback' not in proc.stderr


def test_local_rank_spellings_are_accepted():
    assert normalise_argv(['-opt', 'x', '--local-rank=1']) == ['-opt', 'x', '--local_rank=1']
    assert normalise_argv(['--local-rank', '0']) == ['--local_rank', '0']
    assert normalise_argv(['--local_rank', '0']) == ['--local_rank', '0']
