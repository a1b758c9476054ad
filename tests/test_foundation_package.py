"""Packaging: plugin classes are registered without clashing with BasicSR; a non-editable install works."""
import inspect
import json
import subprocess

import torch

from conftest import PYTHON, REPO, cli_env, run_cli, sr_train_options, write_yaml

_SNAPSHOT = r'''
import json, sys
import importlib
# The same alias the plugin installs, done by hand so that ``before`` holds BasicSR's registrations only.
sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
    'torchvision.transforms._functional_tensor')
import basicsr
assert 'basicsr_adl' not in sys.modules
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY
regs = dict(arch=ARCH_REGISTRY, dataset=DATASET_REGISTRY, model=MODEL_REGISTRY, loss=LOSS_REGISTRY,
            metric=METRIC_REGISTRY)
before = {k: {n: f'{o.__module__}.{o.__qualname__}' for n, o in r._obj_map.items()} for k, r in regs.items()}
import basicsr_adl
after = {k: {n: f'{o.__module__}.{o.__qualname__}' for n, o in r._obj_map.items()} for k, r in regs.items()}
json.dump({'before': before, 'after': after}, sys.stdout)
'''


def _registries():
    out = subprocess.run([PYTHON, '-c', _SNAPSHOT], capture_output=True, text=True, check=True,
                         env=cli_env({'BASICSR_ADL_AUTOLOAD': '0'}))  # BasicSR alone first
    return json.loads(out.stdout)


def test_plugin_registers_its_classes_and_leaves_basicsr_names_alone():
    snap = _registries()
    added = {}
    for kind in snap['after']:
        before, after = snap['before'][kind], snap['after'][kind]
        assert all(after[name] == target for name, target in before.items()), f'{kind}: a BasicSR entry changed'
        assert all(name.lower() not in {b.lower() for b in before} for name in set(after) - set(before))
        for name in set(after) - set(before):
            assert after[name].startswith('basicsr_adl.'), after[name]
            added[name] = kind
    assert added, 'the plugin registered nothing'

    # Every dataset/model class the plugin defines is registered; every arch module registers an arch.
    import basicsr_adl
    from basicsr.models.base_model import BaseModel
    for package, kind, base in (('data', 'dataset', torch.utils.data.Dataset), ('models', 'model', BaseModel)):
        for module in getattr(basicsr_adl, package)._modules:
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and obj.__module__ == module.__name__ and issubclass(obj, base):
                    assert added.get(name) == kind, f'{module.__name__}.{name} is not registered as a {kind}'
    for module in basicsr_adl.archs._modules:
        assert any(snap['after']['arch'].get(name, '').startswith(module.__name__ + '.') for name in added), \
            f'{module.__name__} registers no arch'


def test_non_editable_install_runs_as_module_and_writes_under_cwd(tmp_path, tiny_pairs):
    target = tmp_path / 'site'
    subprocess.run([PYTHON, '-m', 'pip', 'install', '-q', '--no-deps', '--no-build-isolation', '--target',
                    str(target), str(REPO)], check=True, capture_output=True, text=True, timeout=300)
    assert (target / 'basicsr_adl' / 'train.py').is_file()
    work = tmp_path / 'work'
    work.mkdir()
    opt = sr_train_options('installed', tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                           tiny_pairs['val_gt'], total_iter=2, val_freq=100)
    write_yaml(work / 'o.yml', opt)
    env = cli_env({'PYTHONPATH': str(target)})
    proc = subprocess.run([PYTHON, '-m', 'basicsr_adl.train', '-opt', 'o.yml'], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / 'experiments' / 'installed' / 'models' / 'net_g_latest.pth').is_file()
    import basicsr_adl as here
    assert str(REPO) in here.__file__
    leaked = [p for p in target.rglob('*') if p.name in ('experiments', 'results', 'tb_logger')]
    assert not leaked, leaked
