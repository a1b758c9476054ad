"""MultiDomainDataset metadata rules and CorruptedPairsDataset corruptions (BasicSR PairedImageDataset domains)."""
import numpy as np
import pytest
import torch

import basicsr_adl.plugin  # noqa: F401
from basicsr.data import build_dataset

from basicsr_adl.compat.options_check import OptionError
from adl_testdata import domain_opt, make_data


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp('adl_ds')))


def multi(data, **kw):
    opt = {'name': 'd', 'type': 'MultiDomainDataset', 'phase': 'train', 'target': 'tgt', 'batch_size_per_gpu': 2,
           'ticks_per_epoch': 3,
           'domains': {'tgt': domain_opt(data['tgt'], 0, 100), 'srcA': domain_opt(data['srcA'], 1, 400),
                       'srcB': {**domain_opt(data['srcB'], 2, 1600)}}}
    opt.update(kw)
    return build_dataset(opt)


def test_ticks_metadata_and_target_subset(data):
    ds = multi(data, target_pairs=4, target_seed=3)
    assert len(ds) == 3 * 2 and ds[5] == {'tick': 5}
    assert ds.sources == ['srcA', 'srcB'] and ds.domain_size('tgt') == 4 and ds.domain_size('srcA') == 8
    item = ds.train_item('srcB', 0)
    assert item['lq'].shape == (3, 16, 16) and int(item['sensor']) == 2 and float(item['iso']) == 1600
    full = ds.target_eval_item(0)
    assert full['lq'].shape == (3, 32, 32)  # whole image, no crop
    again = multi(data, target_pairs=4, target_seed=3)
    assert again.target_indices == ds.target_indices and len(set(ds.target_indices)) == 4


def test_the_model_takes_the_instance_the_loader_built(data):
    """BasicSR's loader builds the dataset (from a deep copy of the options); ADLModel's from_options finds that
    instance instead of opening every sub-dataset a second time; other options give a new one."""
    from basicsr_adl.data.multi_domain_dataset import MultiDomainDataset
    opt = {'name': 'd', 'type': 'MultiDomainDataset', 'phase': 'train', 'target': 'tgt', 'batch_size_per_gpu': 2,
           'domains': {'tgt': domain_opt(data['tgt'], 0, 100), 'srcA': domain_opt(data['srcA'], 1, 400)}}
    loader_copy = build_dataset(opt)
    assert MultiDomainDataset.from_options(opt) is loader_copy
    other = MultiDomainDataset.from_options(dict(opt, target_pairs=3))
    assert other is not loader_copy and other.domain_size('tgt') == 3


def test_sensor_index_defaults_to_domain_position_and_missing_iso_is_nan(data):
    ds = multi(data)
    ds._domain_opts['srcA'].pop('sensor_index')
    ds._domain_opts['srcA'].pop('iso')
    item = ds.train_item('srcA', 1)
    assert int(item['sensor']) == 1 and np.isnan(float(item['iso']))


def test_option_errors_name_the_option(data):
    with pytest.raises(OptionError, match="'datasets.train.sources'"):
        multi(data, sources=['srcA', 'nope'])
    with pytest.raises(OptionError, match="'datasets.train.target_pairs'"):
        multi(data, target_pairs=99)
    with pytest.raises(OptionError, match="'datasets.train.domains'"):
        multi(data, domains={})


@pytest.mark.parametrize('corruption', ['noisy_gt', 'misaligned', 'black_gt', 'blurred_gt'])
def test_corrupted_pairs(data, corruption):
    base = {k: v for k, v in domain_opt(data['srcA'], 1, 400).items() if k not in ('sensor_index', 'iso')}
    base.update(phase='val', scale=1)
    clean = build_dataset({'name': 'b', **base})[0]
    ds = build_dataset({'name': 'h', 'type': 'CorruptedPairsDataset', 'phase': 'val', 'corruption': corruption,
                        'base': base, 'sigma': 30, 'shift': 2})
    item = ds[0]
    if corruption == 'noisy_gt':
        assert torch.equal(item['lq'], clean['gt'])
        assert 0.08 < float((item['gt'] - clean['gt']).std()) < 0.16  # sigma 30/255
    elif corruption == 'misaligned':
        assert torch.equal(item['gt'], torch.roll(clean['gt'], (2, 2), (-2, -1))) and torch.equal(item['lq'], clean['lq'])
    elif corruption == 'black_gt':
        assert float(item['gt'].abs().sum()) == 0
    else:
        assert item['gt'].shape == clean['gt'].shape and float((item['gt'] - clean['gt']).abs().mean()) > 0.005
    with pytest.raises(OptionError, match='corruption'):
        build_dataset({'name': 'h', 'type': 'CorruptedPairsDataset', 'corruption': 'nope', 'base': base})
