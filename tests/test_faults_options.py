"""Issue 15, case 6: one options schema names every mistake before anything is written (fault injection).

Each case breaks one option of a valid tree and checks the exact one-line error; a few go through
``basicsr_adl/train.py`` (exit 2, one stderr line, no traceback, no ``experiments/``).
"""
import copy
import re
from pathlib import Path

import pytest
import yaml

from conftest import PYTHON, REPO, run_cli, sr_train_options, write_yaml
from adl_testdata import make_options, write_pairs

from basicsr.utils.options import ordered_yaml
from basicsr_adl.compat.entrypoints import load_options_file
from basicsr_adl.compat.options_check import OptionError, check_options
from basicsr_adl import options_schema as schema

TRAIN = str(REPO / 'basicsr_adl' / 'train.py')


@pytest.fixture()
def sr_opt():
    """SRModel + RRDBNet + PairedImageDataset options; paths need not exist (nothing is read)."""
    return sr_train_options('faults', 'no/train_lq', 'no/train_gt', 'no/val_lq', 'no/val_gt')


@pytest.fixture()
def adl_opt(tmp_path):
    data = {k: {'dataroot_lq': f'no/{k}/lq', 'dataroot_gt': f'no/{k}/gt'} for k in ('tgt', 'tgt_test', 'srcA', 'srcB')}
    return yaml.safe_load(Path(make_options(str(tmp_path), data)).read_text())


def edit(opt, path, value):
    """A copy of ``opt`` with the dotted ``path`` set to ``value`` (``del`` removes it)."""
    opt = copy.deepcopy(opt)
    *parents, last = path.split('.')
    node = opt
    for key in parents:
        node = node.setdefault(key, {})
    if value == 'del':
        del node[last]
    else:
        node[last] = value
    return opt


def error_of(opt, is_train=True) -> str:
    with pytest.raises(OptionError) as err:
        check_options(opt, is_train=is_train)
    message = str(err.value)
    assert '\n' not in message
    return message


# ------------------------------------------------------------------------------------------ the cases
def test_misspelt_top_level_key(sr_opt):
    opt = edit(sr_opt, 'manual_sed', 3)
    assert error_of(opt) == "unknown option 'manual_sed'; did you mean 'manual_seed'?"


def test_misspelt_adl_gate_key(adl_opt):
    opt = edit(adl_opt, 'adl.gate', {'criterian': 'paper'})
    assert error_of(opt) == "unknown option 'adl.gate.criterian'; did you mean 'adl.gate.criterion'?"


def test_misspelt_dataset_key(sr_opt):
    opt = edit(sr_opt, 'datasets.train.gt_sise', 16)
    assert error_of(opt) == "unknown option 'datasets.train.gt_sise'; did you mean 'datasets.train.gt_size'?"


def test_misspelt_key_in_a_domain_sub_dataset(adl_opt):
    opt = edit(adl_opt, 'datasets.train.domains.srcA.use_hflp', True)
    assert error_of(opt) == ("unknown option 'datasets.train.domains.srcA.use_hflp'; "
                             "did you mean 'datasets.train.domains.srcA.use_hflip'?")


def test_misspelt_network_parameter_is_checked_against_the_arch_constructor(sr_opt):
    opt = edit(sr_opt, 'network_g.num_feats', 8)
    assert error_of(opt) == "unknown option 'network_g.num_feats'; did you mean 'network_g.num_feat'?"
    opt = edit(sr_opt, 'network_g.num_in_ch', 'del')
    assert error_of(opt) == "missing required option 'network_g.num_in_ch'"


def test_duplicate_yaml_key_names_key_and_line(tmp_path, sr_opt):
    text = yaml.safe_dump(sr_opt, sort_keys=False)
    text += 'train:\n  total_iter: 3\n'  # a second train block: plain YAML would silently drop the first
    first = 1 + text.splitlines().index('train:')
    path = tmp_path / 'dup.yml'
    path.write_text(text)
    with pytest.raises(OptionError) as err:
        load_options_file(str(path))
    last = len(text.splitlines()) - 1
    assert str(err.value) == (f"options file '{path}': duplicate key 'train' at line {last} (first given at line "
                              f'{first}); the first block would be ignored')
    assert yaml.load(text, Loader=ordered_yaml()[0])['train'] == {'total_iter': 3}  # what BasicSR alone would do


def test_learning_rate_as_text_is_named(sr_opt):
    opt = edit(sr_opt, 'train.optim_g.lr', 'abc')
    assert error_of(opt) == "option 'train.optim_g.lr': expected a number, got 'abc'"


def test_number_yaml_reads_as_text_is_accepted_as_float(tmp_path, sr_opt):
    path = write_yaml(tmp_path / 'ok.yml', sr_opt)
    path.write_text(path.read_text().replace('lr: 0.002', 'lr: 1e-3').replace('weight_decay: 0.0001',
                                                                              'weight_decay: 1e-4'))
    opt = load_options_file(str(path))
    assert opt['train']['optim_g']['lr'] == '1e-3'  # PyYAML (YAML 1.1) needs a dot for a float
    check_options(opt, is_train=True)
    assert opt['train']['optim_g']['lr'] == 1e-3 and isinstance(opt['train']['optim_g']['lr'], float)
    assert opt['train']['optim_g']['weight_decay'] == 1e-4  # a signature parameter with a numeric default


def test_missing_network_g(sr_opt):
    assert error_of(edit(sr_opt, 'network_g', 'del')) == "missing required option 'network_g'"


def test_missing_scheduler(sr_opt):
    assert error_of(edit(sr_opt, 'train.scheduler', 'del')) == \
        "missing required option 'train.scheduler' (BaseModel.setup_schedulers reads it)"


def test_negative_total_iter(sr_opt):
    assert error_of(edit(sr_opt, 'train.total_iter', -5)) == "option 'train.total_iter' must be >= 1, got -5"


def test_zero_batch(sr_opt):
    assert error_of(edit(sr_opt, 'datasets.train.batch_size_per_gpu', 0)) == \
        "option 'datasets.train.batch_size_per_gpu' must be >= 1, got 0"


# ------------------------------------------------------------------------------------------ more of the tree
@pytest.mark.parametrize('path,value,message', [
    ('train.optim_g.lr', 0, "option 'train.optim_g.lr' must be > 0, got 0"),
    ('train.optim_g.betaz', [0.9, 0.99], "unknown option 'train.optim_g.betaz'; did you mean 'train.optim_g.betas'?"),
    ('train.optim_g.lr', 'del', "missing required option 'train.optim_g.lr'"),
    ('train.scheduler.milestone', [4], "unknown option 'train.scheduler.milestone'; "
                                       "did you mean 'train.scheduler.milestones'?"),
    ('train.pixel_opt.loss_weigth', 1.0, "unknown option 'train.pixel_opt.loss_weigth'; "
                                         "did you mean 'train.pixel_opt.loss_weight'?"),
    ('train.pixel_otp', {'type': 'L1Loss'}, "unknown option 'train.pixel_otp'; did you mean 'train.pixel_opt'?"),
    ('val.metrics.psnr.crop_boder', 0, "unknown option 'val.metrics.psnr.crop_boder'; "
                                       "did you mean 'val.metrics.psnr.crop_border'?"),
    ('val.metrics.psnr.crop_border', 'del', "missing required option 'val.metrics.psnr.crop_border'"),
    ('val.val_frq', 2, "unknown option 'val.val_frq'; did you mean 'val.val_freq'?"),
    ('logger.print_frq', 1, "unknown option 'logger.print_frq'; did you mean 'logger.print_freq'?"),
    ('logger.print_freq', 0, "option 'logger.print_freq' must be >= 1, got 0"),
    ('path.pretrain_network', None, "unknown option 'path.pretrain_network'; "
                                    "did you mean 'path.pretrain_network_g'?"),
    ('dist_params.timeout', 0, "option 'dist_params.timeout' must be > 0, got 0"),
    ('dist_params.prot', 1, "unknown option 'dist_params.prot'; did you mean 'dist_params.port'?"),
    ('num_gpu', 'many', "option 'num_gpu': expected auto or an integer, got 'many'"),
    ('datasets.train.use_hflip', 'del', "missing required option 'datasets.train.use_hflip' "
                                        '(BasicSR reads it for training augmentation)'),
    ('datasets.train.io_backend.type', 'disc', "option 'datasets.train.io_backend.type': unknown io backend 'disc'; "
                                               'choices: disk, lmdb, memcached'),
    ('datasets.valid', {}, "option 'datasets.valid': training phases are 'train' and 'val*'"),
    ('train.pixel_opt', 'del', "missing required option 'train.pixel_opt' (or train.perceptual_opt): SRModel "
                               'needs at least one of the two losses'),
    ('val.save_img', 'del', "missing required option 'val.save_img' (BasicSR reads it at every validation)"),
    ('logger.use_tb_logger', 'del', "missing required option 'logger.use_tb_logger' (BasicSR's MessageLogger reads "
                                    'it when training)'),
])
def test_more_of_the_tree(sr_opt, path, value, message):
    assert error_of(edit(sr_opt, path, value)) == message


@pytest.mark.parametrize('path,value,message', [
    ('adl.mode', 'joint', "option 'adl.mode': unknown mode 'joint'; choices: adl, finetune, target_only"),
    ('adl.gate.every', 0, "option 'adl.gate.every' must be >= 1, got 0"),
    ('adl.validation.end_fractoin', 0.4, "unknown option 'adl.validation.end_fractoin'; "
                                         "did you mean 'adl.validation.end_fraction'?"),
    ('adl.validation.start_fraction', 0.7, "option 'adl.validation.start_fraction' (0.7) must be <= "
                                           'adl.validation.end_fraction (0.5)'),
    ('adl.use_metadata', 'yes', "option 'adl.use_metadata': expected auto or true or false, got 'yes'"),
    ('adl.adapt_iters', 'del', "option 'adl.adapt_iters' is missing: give all three stage lengths or none "
                               '(default 10 % / 80 % / 10 % of train.total_iter)'),
    ('datasets.train.target_pair', 2, "unknown option 'datasets.train.target_pair'; "
                                      "did you mean 'datasets.train.target_pairs'?"),
    ('datasets.train.type', 'PairedImageDataset', "option 'datasets.train.type': ADLModel needs MultiDomainDataset, "
                                                  "got 'PairedImageDataset'"),
    ('lan', {'mode': 'offset'}, "unknown option 'lan' (ADLModel (top level) reads: adl, auto_resume, datasets, dist, "
                                'dist_params, find_unused_parameters, is_train, logger, manual_seed, model_type, '
                                'name, network_g, num_gpu, path, rank, root_path, scale, sensors, train, val, '
                                'world_size)'),
])
def test_adl_tree(adl_opt, path, value, message):
    assert error_of(edit(adl_opt, path, value)) == message


def test_domain_sub_dataset_of_unknown_type_lists_the_choices(adl_opt):
    message = error_of(edit(adl_opt, 'datasets.train.domains.srcB.type', 'PairedImageDatset'))
    assert message.startswith("option 'datasets.train.domains.srcB.type': 'PairedImageDatset' is not a registered "
                              "dataset (did you mean 'PairedImageDataset'?); choices: ")


def test_valid_trees_pass_unchanged(sr_opt, adl_opt):
    for opt in (sr_opt, adl_opt):
        before = copy.deepcopy(opt)
        check_options(opt, is_train=True)
        assert opt == before  # checking fills nothing into BasicSR's options


def test_every_shipped_option_file_passes():
    files = sorted((REPO / 'options').glob('**/*.yml'))
    assert len(files) >= 40
    for path in files:
        opt = load_options_file(str(path))
        check_options(opt, is_train='train' in path.relative_to(REPO / 'options').parts[:1])


# ------------------------------------------------------------------------------------------ the plugin's defaults
def test_adl_options_fill_the_schema_defaults(adl_opt):
    opt = edit(adl_opt, 'adl', {'gate': {'criterion': 'paper'}})
    adl = schema.adl_options(opt)
    assert adl['gate'] == {'criterion': 'paper', 'tolerance': 0.0, 'queue_size': 10, 'every': 1, 'refresh_every': 10,
                           'check_every': 25, 'revert_optimizer': True, 'on_reject': 'revert'}
    assert adl['target_batch'] == 2  # datasets.train.batch_size_per_gpu
    assert schema.adl_options(edit(adl_opt, 'adl', {}))['gate']['on_reject'] == 'target_step'  # paired_target
    assert opt['adl'] == {'gate': {'criterion': 'paper'}}  # the caller's tree is left as written


def test_lan_and_dist_params_defaults():
    lan = schema.lan_options({'lan': {'mode': 'full', 'iters': 7}, 'manual_seed': 4, 'is_train': False})
    assert (lan['lr'], lan['report_iters'], lan['seed']) == (5e-6, [0, 5], 4)
    assert schema.dist_params_options({})['timeout'] == 300
    assert schema.dist_params_options({'dist_params': {'timeout': '1e2'}})['timeout'] == 100.0


def test_schema_choices_match_the_cores():
    from dataclasses import fields
    from basicsr_adl.adl.gate import GATE_CRITERIA
    from basicsr_adl.lan import MODES
    from basicsr_adl.lan.losses import LOSS_NAMES
    from basicsr_adl.lan.synthetic_noise import NoiseConfig
    assert set(schema.GATE_CRITERIA) == set(GATE_CRITERIA)
    assert set(schema.TARGET_STEP_CRITERIA) == {n for n, c in GATE_CRITERIA.items() if c.against_target_step}
    assert tuple(schema.LAN_MODES) == tuple(MODES) and tuple(schema.LAN_LOSSES) == tuple(LOSS_NAMES)
    assert set(schema.NOISE_KEYS) == {f.name for f in fields(NoiseConfig)}


def test_docs_option_tables_are_the_schema():
    for name, (doc, section) in schema.DOC_TABLES.items():
        text = (REPO / doc).read_text()
        begin = schema.TABLE_BEGIN.format(name)
        table = text[text.index(begin) + len(begin):text.index(schema.TABLE_END, text.index(begin))].strip()
        assert table == schema.option_table(section), f'{doc}: run scripts/make_option_docs.py'
        rows = [re.match(r'\| `([^`]+)` \| (.*?) \|', line) for line in table.splitlines()[2:]]
        assert [r.group(1) for r in rows] == [n for n, _, _ in schema.option_rows(section)]


# ------------------------------------------------------------------------------------------ a type nobody describes
class _Registries:
    def __init__(self, **objects):
        self.objects = objects

    def lookup(self, kind, name):
        return self.objects.get(f'{kind}:{name}')

    def choices(self, kind):
        return [k.split(':', 1)[1] for k in self.objects if k.startswith(kind + ':')]


def test_another_plugins_types_are_checked_only_for_what_they_declare(sr_opt):
    from basicsr.models.sr_model import SRModel
    from basicsr.archs.rrdbnet_arch import RRDBNet

    class OtherDataset:  # declares nothing: only its type is checked
        pass

    class DeclaredDataset:
        option_schema = {'root': schema.Field('str', required=True)}

    class OtherModel(SRModel):  # an unknown subclass: the top level is open, SRModel's keys still checked
        pass

    from basicsr.models.lr_scheduler import MultiStepRestartLR
    import torch
    from basicsr.losses.basic_loss import L1Loss
    reg = _Registries(**{'model:OtherModel': OtherModel, 'dataset:OtherDataset': OtherDataset,
                         'dataset:DeclaredDataset': DeclaredDataset, 'arch:RRDBNet': RRDBNet,
                         'optimizer:AdamW': torch.optim.AdamW, 'scheduler:MultiStepLR': MultiStepRestartLR,
                         'loss:L1Loss': L1Loss})
    opt = edit(sr_opt, 'model_type', 'OtherModel')
    opt['val'].pop('metrics')
    opt['datasets'] = {'train': {'name': 't', 'type': 'OtherDataset', 'anything': 1, 'batch_size_per_gpu': 2,
                                 'num_worker_per_gpu': 0},
                       'val': {'name': 'v', 'type': 'DeclaredDataset', 'root': 'x'}}
    opt['its_own_key'] = 1
    schema.check_tree(copy.deepcopy(opt), True, reg)
    with pytest.raises(OptionError, match=r"unknown option 'datasets.val.rot'; did you mean 'datasets.val.root'\?"):
        schema.check_tree(edit(opt, 'datasets.val.rot', 'y'), True, reg)
    with pytest.raises(OptionError, match=r"option 'train.total_iter' must be >= 1, got 0"):
        schema.check_tree(edit(opt, 'train.total_iter', 0), True, reg)


# ------------------------------------------------------------------------------------------ through the CLI
def one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize('text_edit,expected', [
    (('manual_seed: 7', 'manual_sed: 7'), "unknown option 'manual_sed'; did you mean 'manual_seed'?"),
    (('lr: 0.002', 'lr: abc'), "option 'train.optim_g.lr': expected a number, got 'abc'"),
    (('total_iter: 6', 'total_iter: -5'), "option 'train.total_iter' must be >= 1, got -5"),
    (('val:\n  val_freq', 'manual_seed: 3\nval:\n  val_freq'), "duplicate key 'manual_seed' at line"),
])
def test_cli_one_line_exit_2_and_nothing_written(tmp_path, sr_opt, text_edit, expected):
    path = write_yaml(tmp_path / 'bad.yml', sr_opt)
    old, new = text_edit
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    line = one_line_error(run_cli([PYTHON, TRAIN, '-opt', 'bad.yml'], cwd=tmp_path, check=False))
    assert expected in line and line.startswith('basicsr_adl: error: ')
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'tb_logger').exists()


def test_cli_error_found_in_the_model_removes_the_new_folder_and_restores_the_archived_one(tmp_path):
    """An error only the model can find (the target has one pair; V' needs two) comes after BasicSR made
    experiments/<name>: that folder goes, and the one BasicSR archived to make room comes back."""
    data = {'tgt': write_pairs(str(tmp_path / 'tgt'), 1, 32, 20, 1),
            'tgt_test': write_pairs(str(tmp_path / 'tgt_test'), 1, 32, 20, 2),
            'srcA': write_pairs(str(tmp_path / 'srcA'), 2, 32, 20, 3),
            'srcB': write_pairs(str(tmp_path / 'srcB'), 2, 32, 20, 4)}
    opt_path = make_options(str(tmp_path), data, name='one_pair')
    old = tmp_path / 'experiments' / 'one_pair'
    old.mkdir(parents=True)
    (old / 'keep.txt').write_text('an earlier run')
    proc = run_cli([PYTHON, TRAIN, '-opt', opt_path], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr  # BasicSR's log lines come first here
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("basicsr_adl: error: option 'datasets.train.target_pairs'") and 'at least 2' in line
    assert sorted(p.name for p in (tmp_path / 'experiments').iterdir()) == ['one_pair']
    assert (old / 'keep.txt').read_text() == 'an earlier run'


def test_only_folders_of_a_run_that_never_built_its_model_are_discarded(tmp_path):
    from basicsr_adl.compat import entrypoints
    target = tmp_path / 'experiments' / 'run'
    target.mkdir(parents=True)
    (target / 'old.txt').write_text('kept')
    entrypoints._created.clear()
    entrypoints._model_built[0] = False
    entrypoints.recording_mkdir_and_rename(str(target))  # BasicSR archives the old folder, makes a new one
    assert len(list((tmp_path / 'experiments').iterdir())) == 2 and not (target / 'old.txt').exists()
    entrypoints._model_built[0] = True  # training had started: nothing is removed
    assert entrypoints.discard_startup_dirs() == [] and target.is_dir()
    entrypoints._model_built[0] = False
    assert entrypoints.discard_startup_dirs() == [str(target)]
    assert [p.name for p in (tmp_path / 'experiments').iterdir()] == ['run'] and (target / 'old.txt').exists()


def test_mixed_noise_folder_entries_are_checked_key_by_key(sr_opt):
    from basicsr_adl.data import mixed_noise_pairs_dataset as mixed
    assert schema.PAIR_NAMINGS == mixed.PAIR_NAMINGS and ('folder',) + schema.PAIR_NAMINGS == mixed.CLEAN_NAMINGS
    entry = {'dataroot': 'no/pairs', 'naming': 'subfolders', 'filename_tmpl': '{}_n'}
    opt = edit(sr_opt, 'datasets.train', {'name': 'mix', 'type': 'MixedNoisePairsDataset', 'real_pairs': [entry],
                                          'clean_images': [{'dataroot': 'no/clean', 'naming': 'folder'}],
                                          'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0})
    check_options(copy.deepcopy(opt), is_train=True)  # filename_tmpl belongs to each entry
    assert error_of(edit(opt, 'datasets.train.filename_tmpl', '{}_n')).startswith(
        "unknown option 'datasets.train.filename_tmpl' (MixedNoisePairsDataset reads: ")
    opt['datasets']['train']['real_pairs'][0] = {'datarot': 'no/pairs'}
    assert error_of(opt) == ("unknown option 'datasets.train.real_pairs[0].datarot'; "
                             "did you mean 'datasets.train.real_pairs[0].dataroot'?")
    opt['datasets']['train']['real_pairs'][0] = {'dataroot': 'no/pairs', 'naming': 'folder'}
    assert error_of(opt) == ("option 'datasets.train.real_pairs[0].naming': unknown naming 'folder'; "
                             'choices: subfolders, polyu')
