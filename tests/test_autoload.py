"""BasicSR's own entry points find the plugin once it is installed (``basicsr_adl_autoload.pth``)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, run_cli, sr_train_options, write_yaml

BASICSR_DIR = Path(subprocess.run([PYTHON, '-c', 'import importlib.util as u; '
                                   'print(u.find_spec("basicsr").submodule_search_locations[0])'],
                                  capture_output=True, text=True, check=True).stdout.strip())
SITE = BASICSR_DIR.parent


def _bare_env(**extra):
    """An environment without our PYTHONPATH: only what is installed in the venv is importable."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(OMP_NUM_THREADS='1', **extra)
    return env


def _run(args, cwd, **extra):
    return subprocess.run(args, cwd=str(cwd), env=_bare_env(**extra), capture_output=True, text=True, timeout=300)


def _run_plain_basicsr(args, cwd, folder: str, name: str):
    """Run BasicSR with the hook off; plain BasicSR makes ``<site-packages>/<folder>/<name>`` before it fails
    (its root is site-packages when run with -m), so remove that afterwards."""
    existed = (SITE / folder).exists()
    try:
        return _run([PYTHON, *args], cwd, BASICSR_ADL_AUTOLOAD='0')
    finally:
        for leftover in (SITE / folder).glob(f'{name}*'):
            shutil.rmtree(leftover)
        if not existed and (SITE / folder).is_dir() and not any((SITE / folder).iterdir()):
            (SITE / folder).rmdir()


def test_pth_is_installed_and_startup_stays_light(tmp_path):
    assert (SITE / 'basicsr_adl_autoload.pth').is_file(), 'install the package first (scripts/install.sh)'
    proc = _run([PYTHON, '-c', 'import sys; print(sorted(m for m in ("torch", "basicsr", "basicsr_adl", '
                 '"basicsr_adl_autoload") if m in sys.modules), '
                 '[type(f).__name__ for f in sys.meta_path].count("_BasicsrFinder"))'], tmp_path)
    assert proc.stdout.strip() == '[] 1', proc.stdout + proc.stderr
    assert not proc.stderr


def _dncnn_options(tiny_pairs, name):
    opt = sr_train_options(name, tiny_pairs['train_lq'], tiny_pairs['train_gt'], tiny_pairs['val_lq'],
                           tiny_pairs['val_gt'], total_iter=2, val_freq=2)
    opt['network_g'] = {'type': 'DnCNN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_layers': 3}
    return opt


@pytest.mark.parametrize('how', ['module', 'file'])
def test_basicsr_train_entry_trains_a_plugin_arch(tmp_path, tiny_pairs, how):
    write_yaml(tmp_path / 'o.yml', _dncnn_options(tiny_pairs, f'auto_{how}'))
    entry = ['-m', 'basicsr.train'] if how == 'module' else [str(BASICSR_DIR / 'train.py')]
    proc = _run([PYTHON, *entry, '-opt', 'o.yml'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # experiments land under the working directory, not inside site-packages
    assert (tmp_path / 'experiments' / f'auto_{how}' / 'models' / 'net_g_latest.pth').is_file()
    assert not (SITE / 'experiments' / f'auto_{how}').exists()


def test_hook_off_gives_basicsrs_registry_error(tmp_path, tiny_pairs):
    write_yaml(tmp_path / 'o.yml', _dncnn_options(tiny_pairs, 'auto_off'))
    proc = _run_plain_basicsr(['-m', 'basicsr.train', '-opt', 'o.yml'], tmp_path, 'experiments', 'auto_off')
    assert proc.returncode != 0
    assert "No object named 'DnCNN' found in 'arch' registry!" in proc.stderr


def test_basicsr_own_script_reports_bad_options_in_one_line(tmp_path, tiny_pairs):
    opt = _dncnn_options(tiny_pairs, 'auto_bad')
    opt['network_g']['type'] = 'NoSuchNet'
    write_yaml(tmp_path / 'o.yml', opt)
    proc = _run([PYTHON, '-m', 'basicsr.train', '-opt', 'o.yml'], tmp_path)
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr and "'network_g.type'" in proc.stderr


@pytest.mark.parametrize('editable', [False, True])
def test_install_and_uninstall_add_and_remove_the_hook(tmp_path, editable):
    """In a throwaway venv that borrows this venv's packages: install, the hook works; uninstall, it is gone."""
    from conftest import REPO
    venv = tmp_path / 'venv'
    subprocess.run([PYTHON, '-m', 'venv', '--without-pip', str(venv)], check=True, capture_output=True)
    py = str(venv / 'bin' / 'python')
    site = Path(subprocess.run([py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / '_borrowed.pth').write_text(str(SITE) + '\n')  # pip, setuptools, torch, basicsr from our venv
    target = ['-e', str(REPO)] if editable else [str(REPO)]
    pip = [py, '-m', 'pip', '--disable-pip-version-check', '-q']
    proc = _run(pip + ['install', '--no-deps', '--no-build-isolation', *target], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (site / 'basicsr_adl_autoload.pth').is_file()
    probe = ('import sys, basicsr; from basicsr.utils.registry import ARCH_REGISTRY; '
             'print("DnCNN" in ARCH_REGISTRY, "basicsr_adl" in sys.modules)')
    assert _run([py, '-c', probe], tmp_path).stdout.split() == ['True', 'True']
    proc = _run(pip + ['uninstall', '-y', 'basicsr-adl'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (site / 'basicsr_adl_autoload.pth').exists()
    left = _run([py, '-c', 'import sys; print([type(f).__name__ for f in sys.meta_path].count("_BasicsrFinder"))'],
                tmp_path)
    assert left.stdout.strip() == '0' and not left.stderr


def test_torchrun_workers_of_basicsr_train_load_the_plugin(tmp_path, tiny_pairs):
    write_yaml(tmp_path / 'o.yml', _dncnn_options(tiny_pairs, 'auto_ddp'))
    proc = _run([PYTHON, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', '-m', 'basicsr.train',
                 '-opt', 'o.yml', '--launcher', 'pytorch'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next((tmp_path / 'experiments' / 'auto_ddp').glob('train_*.log')).read_text()
    assert 'World size (gpu number): 2' in log and 'Network [DnCNN] is created.' in log


def test_spawned_dataloader_workers_can_unpickle_basicsr_datasets(tmp_path, tiny_pairs):
    """A spawn worker imports ``basicsr`` afresh to unpickle BasicSR's dataset; the hook must make that import work."""
    script = tmp_path / 'spawn_probe.py'
    script.write_text(f'''
import torch
import basicsr
from basicsr.data.paired_image_dataset import PairedImageDataset
if __name__ == "__main__":
    ds = PairedImageDataset({{"dataroot_gt": {tiny_pairs["val_gt"]!r}, "dataroot_lq": {tiny_pairs["val_lq"]!r},
                             "io_backend": {{"type": "disk"}}, "phase": "val", "scale": 1}})
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1, multiprocessing_context="spawn")
    print(sum(1 for _ in loader))
''')
    proc = _run([PYTHON, str(script)], tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == '3', proc.stderr[-3000:]


def test_basicsr_own_train_script_trains_an_adl_model(tmp_path):
    """BasicSR's train.py, as a module and as a file from the installed package, runs ADLModel + ModulatedUNet."""
    from adl_testdata import make_data, make_options
    data = make_data(str(tmp_path / 'data'))
    for how, entry in (('module', ['-m', 'basicsr.train']), ('file', [str(BASICSR_DIR / 'train.py')])):
        yml = make_options(str(tmp_path), data, name=f'adl_via_basicsr_{how}', total_iter=6, stages=(2, 3, 1))
        proc = _run([PYTHON, *entry, '-opt', yml], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        exp = tmp_path / 'experiments' / f'adl_via_basicsr_{how}'
        log = next(exp.glob('train_*.log')).read_text()
        assert 'Model [ADLModel] is created.' in log and 'Network [ModulatedUNet] is created.' in log
        assert (exp / 'adl_accept_rates.csv').is_file() and (exp / 'models' / 'net_g_latest.pth').is_file()


def test_basicsr_own_test_script_runs_a_lan_model(tmp_path):
    from conftest import make_noisy_pairs
    from test_lan_model import checkpoint, lan_options
    data = make_noisy_pairs(tmp_path / 'data', 2, size=16, seed=5)
    dataset = {'name': 'toy', 'type': 'PairedImageDataset', 'dataroot_gt': str(data / 'gt'),
               'dataroot_lq': str(data / 'lq'), 'io_backend': {'type': 'disk'}}
    opt = lan_options('lan_via_basicsr', dataset, checkpoint(tmp_path / 'net.pth'))
    write_yaml(tmp_path / 'lan.yml', opt)
    proc = _run([PYTHON, '-m', 'basicsr.test', '-opt', 'lan.yml'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = next((tmp_path / 'results' / 'lan_via_basicsr').glob('test_*.log')).read_text()
    assert 'Model [LANModel] is created.' in log and '# psnr@iter4:' in log
    off = _run_plain_basicsr(['-m', 'basicsr.test', '-opt', 'lan.yml'], tmp_path, 'results', 'lan_via_basicsr')
    assert off.returncode != 0
    assert "found in 'arch' registry!" in off.stderr or "found in 'model' registry!" in off.stderr
