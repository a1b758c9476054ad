"""The algorithms' cores import without BasicSR; ``import basicsr_adl`` still registers the plugin with BasicSR."""
import pkgutil
import subprocess
import sys

from conftest import REPO, cli_env

import basicsr_adl

CORE_PACKAGES = ('adl', 'lan', 'raw', 'synth')

_BLOCKED = '''
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'basicsr' or name.startswith('basicsr.'):
            raise ImportError('basicsr is blocked in this test')
sys.meta_path.insert(0, Block())
for name in {modules!r}:
    importlib.import_module(name)
assert not any(m == 'basicsr' or m.startswith('basicsr.') for m in sys.modules), sorted(sys.modules)
print('ok', len({modules!r}))
'''


def core_modules():
    names = []
    for package in CORE_PACKAGES:
        path = [str(REPO / 'basicsr_adl' / package)]
        names += [f'basicsr_adl.{package}.{m.name}' for m in pkgutil.iter_modules(path)]
    return names + ['basicsr_adl.options_schema', 'basicsr_adl.errors', 'basicsr_adl.pairing', 'basicsr_adl.metadata']


def test_every_core_module_imports_with_basicsr_blocked():
    modules = core_modules()
    assert len(modules) > 25 and 'basicsr_adl.adl.gate' in modules and 'basicsr_adl.lan.adapter' in modules
    out = subprocess.run([sys.executable, '-c', _BLOCKED.format(modules=modules)], capture_output=True, text=True,
                         env=cli_env({'BASICSR_ADL_AUTOLOAD': '1'}), cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ['ok', str(len(modules))]


def test_import_basicsr_adl_then_basicsr_registers_even_with_the_hook_off():
    code = ('import sys, basicsr_adl; assert "basicsr" not in sys.modules; '
            'from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY, DATASET_REGISTRY; '
            'print("ModulatedUNet" in ARCH_REGISTRY, "ADLModel" in MODEL_REGISTRY, '
            '"CameraRawDataset" in DATASET_REGISTRY)')
    for switch in ('0', '1'):
        out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                             env=cli_env({'BASICSR_ADL_AUTOLOAD': switch}), timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.split() == ['True', 'True', 'True'], (switch, out.stdout)


def test_plugin_module_is_what_registers():
    assert 'basicsr_adl.plugin' in sys.modules  # conftest imports it, as the entry points do
    assert basicsr_adl.__version__
