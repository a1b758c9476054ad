"""The shipped LAN / DnCNN option files are valid for the plugin's checks and LANModel's parser."""
from pathlib import Path

import pytest
import yaml

from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY
from basicsr_adl.compat.options_check import check_options
from basicsr_adl.models.lan_model import parse_lan_options

from conftest import REPO

FILES = sorted((REPO / 'options' / 'test' / 'LAN').glob('*.yml')) + sorted((REPO / 'options' / 'train' / 'DnCNN').glob('*.yml'))


def test_option_files_exist():
    names = {p.name for p in FILES}
    assert {'test_LAN_DnCNN_PolyU.yml', 'test_LAN_DnCNN_noGT.yml', 'train_DnCNN_SIDD_sRGB.yml'} <= names


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_option_file_is_valid(path: Path):
    opt = yaml.load(path.read_text(), Loader=ordered_yaml()[0])
    missing = [t for t, reg in [(opt['network_g']['type'], ARCH_REGISTRY)]
               + [(d['type'], DATASET_REGISTRY) for d in opt['datasets'].values()] if t not in reg]
    if missing:  # the RAW example uses the RAW data and ADL work's classes
        pytest.skip(f'not registered (yet): {missing}')
    is_train = 'train' in path.parts[-3:-1]
    check_options(opt, is_train=is_train)
    if opt['model_type'] == 'LANModel':
        mode, config, _ = parse_lan_options(opt.get('lan'))
        assert mode in ('offset', 'full', 'first_layer', 'last_layer') and config.iters > 0
    else:
        assert opt['scale'] == 1 and opt['network_g']['type'] == 'DnCNN'
