"""scripts/denoise_raw.py and basicsr_adl/test.py on camera files: outputs, metadata from the options, errors."""
import os
import subprocess
import sys

import numpy as np
import pytest
import rawpy
import torch
import yaml

import basicsr_adl.plugin  # noqa: F401
from basicsr.archs import build_network

from conftest import REPO, cli_env, load_script
from raw_fakes import XTRANS_6X6
from test_raw_denoise_core import source_dng

from basicsr_adl.raw.dng import write_minimal_dng

SENSORS = ['A', 'B', 'C']
NET = {'type': 'ModulatedUNet', 'in_ch': 4, 'out_ch': 4, 'base_ch': 4, 'convs_per_block': 1, 'num_sensors': 3,
       'use_sensor': True, 'use_iso': True, 'mlp_hidden': 8, 'iso_ref': 100, 'residual': True}


@pytest.fixture(scope='module')
def denoise_raw():
    return load_script('denoise_raw.py')


def write_net(folder, net_opt=None, identity=True, top_sensors=True):
    """An options file (test style) and weights; ``identity``: a zero residual head, the exact identity."""
    net_opt = dict(net_opt or NET)
    torch.manual_seed(0)
    net = build_network(dict(net_opt, head_init_scale=0.0) if identity and net_opt['type'] == 'ModulatedUNet'
                        else dict(net_opt))
    weights = os.path.join(folder, 'net.pth')
    torch.save({'params': net.state_dict()}, weights)
    opt = {'name': 'raw_test', 'model_type': 'ADLModel', 'num_gpu': 0, 'scale': 1, 'network_g': net_opt,
           'path': {'pretrain_network_g': weights, 'param_key_g': 'params', 'strict_load_g': True},
           'val': {'save_img': True},
           'datasets': {'test_1': {'name': 'cam', 'type': 'CameraRawDataset', 'dataroot_lq': folder}}}
    if top_sensors:
        opt['sensors'] = SENSORS
    path = os.path.join(folder, 'net.yml')
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f)
    return path, weights


def run_script(module, *args):
    return module.main([str(a) for a in args])


def test_identity_net_gives_the_same_mosaic_back_and_a_preview(tmp_path, denoise_raw, capsys):
    opt, weights = write_net(str(tmp_path))
    mosaics = {p: source_dng(tmp_path / 'in' / f'{p}.dng', p, (67, 81), seed=i) for i, p in
               enumerate(('RGGB', 'BGGR', 'GRBG', 'GBRG'))}
    code = run_script(denoise_raw, '-opt', opt, '--weights', weights, '--input', tmp_path / 'in', '--out',
                      tmp_path / 'out', '--sensor', 'B', '--tile', 16, '--overlap', 4)
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, captured.err
    assert 'ISO 3200 (file)' in out and 'MP/s' in out.splitlines()[-1]
    for pattern, mosaic in mosaics.items():
        with rawpy.imread(str(tmp_path / 'out' / f'{pattern}.dng')) as raw:
            assert np.abs(raw.raw_image_visible.astype(int) - mosaic.astype(int)).max() <= 1
        assert (tmp_path / 'out' / f'{pattern}.png').stat().st_size > 0
    assert len(os.listdir(tmp_path / 'out')) == 8


def test_sensor_and_iso_reach_the_net(tmp_path, denoise_raw, monkeypatch):
    """The one-hot index of --sensor (from the options' sensor list) and the file's ISO (else --iso)."""
    opt, weights = write_net(str(tmp_path), identity=False)
    source_dng(tmp_path / 'with_iso.dng', iso=800)
    source_dng(tmp_path / 'no_iso.dng', iso=None)
    seen = []
    from basicsr_adl.archs.modulated_unet_arch import ModulatedUNet
    original = ModulatedUNet.forward

    def spy(self, x, sensor=None, iso=None):
        seen.append((int(sensor[0]), float(iso[0])))
        return original(self, x, sensor, iso)
    monkeypatch.setattr(ModulatedUNet, 'forward', spy)
    code = run_script(denoise_raw, '-opt', opt, '--weights', weights, '--input', tmp_path / 'with_iso.dng',
                      tmp_path / 'no_iso.dng', '--out', tmp_path / 'out', '--sensor', 'C', '--iso', 1600)
    assert code == 0
    assert seen[1:] == [(2, 800.0), (2, 1600.0)]  # seen[0]: the channel probe


def test_sensor_names_come_from_the_training_domains(tmp_path):
    from basicsr_adl.inference import sensor_names
    opt = {'datasets': {'train': {'type': 'MultiDomainDataset', 'target': 'T',
                                  'domains': {'S1': {'type': 'X'}, 'T': {'type': 'X'},
                                              'S2': {'type': 'X', 'sensor_index': 2}}}}}
    assert sensor_names(opt) == (['S1', 'T', 'S2'], 'datasets.train.domains')
    opt['datasets']['train']['domains']['T']['sensors'] = ['p', 'q', 'r']
    assert sensor_names(opt) == (['p', 'q', 'r'], 'datasets.train.domains.T.sensors')
    opt['sensors'] = ['x', 'y', 'z']
    assert sensor_names(opt)[0] == ['x', 'y', 'z']


BAD_INPUT = {
    'unreadable': (lambda d: (d / 'x.dng').write_text('not a raw file'), [], 1, 'not a readable camera RAW'),
    'xtrans': (lambda d: write_minimal_dng(str(d / 'x.dng'), np.full((48, 48), 900, np.uint16), cfa=XTRANS_6X6),
               [], 1, 'unsupported CFA'),
    'unknown sensor': (None, ['--sensor', 'Foo'], 2, "--sensor 'Foo': not a sensor the net knows; choices: A, B, C"),
    'no sensor': (None, ['--sensor', None], 2, '--sensor is required'),
    'no iso': (lambda d: source_dng(d / 'x.dng', iso=None), [], 1, 'carries no ISO'),
    'missing input': (None, ['--input', 'nowhere.dng'], 1, "no such file or folder"),
}


@pytest.mark.parametrize('case', list(BAD_INPUT))
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, denoise_raw, capsys, case):
    make, extra, code, message = BAD_INPUT[case]
    opt, weights = write_net(str(tmp_path))
    src = tmp_path / 'in'
    src.mkdir()
    (make or (lambda d: source_dng(d / 'x.dng')))(src)
    args = {'-opt': opt, '--weights': weights, '--input': src / 'x.dng', '--out': tmp_path / 'out', '--sensor': 'A'}
    for key, value in zip(extra[::2], extra[1::2]):
        args[key] = value
    argv = [str(a) for k, v in args.items() if v is not None for a in (k, v)]
    assert denoise_raw.main(argv) == code
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith('denoise_raw: error: ')
    assert not (tmp_path / 'out').exists() or os.listdir(tmp_path / 'out') == []


def test_a_net_that_is_not_a_raw_net_and_an_unwritable_folder(tmp_path, denoise_raw, capsys):
    dncnn = {'type': 'DnCNN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_layers': 3}
    opt, weights = write_net(str(tmp_path), dncnn)
    source_dng(tmp_path / 'x.dng')
    assert run_script(denoise_raw, '-opt', opt, '--weights', weights, '--input', tmp_path / 'x.dng', '--out',
                      tmp_path / 'out') == 2
    assert 'does not take packed RAW (4 channels' in capsys.readouterr().err
    opt, weights = write_net(str(tmp_path))
    blocked = tmp_path / 'blocked'
    blocked.write_text('a file, not a folder')
    assert run_script(denoise_raw, '-opt', opt, '--weights', weights, '--input', tmp_path / 'x.dng', '--out',
                      blocked / 'out', '--sensor', 'A') == 1
    assert 'the output folder cannot be written' in capsys.readouterr().err


def test_wrong_weights_are_named(tmp_path, denoise_raw, capsys):
    opt, _ = write_net(str(tmp_path))
    other = str(tmp_path / 'other.pth')
    torch.save({'params': build_network(dict(NET, base_ch=8)).state_dict()}, other)
    source_dng(tmp_path / 'x.dng')
    assert run_script(denoise_raw, '-opt', opt, '--weights', other, '--input', tmp_path / 'x.dng', '--out',
                      tmp_path / 'out', '--sensor', 'A') == 2
    assert f"weights file '{other}' does not fit network_g (ModulatedUNet)" in capsys.readouterr().err


def _test_py(tmp_path, opt_path):
    return subprocess.run([sys.executable, str(REPO / 'basicsr_adl' / 'test.py'), '-opt', opt_path], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=300)


def test_basicsr_test_py_writes_dng_and_png_for_camera_files(tmp_path):
    """The registered CameraRawDataset + ADLModel: the sensor from the dataset options, tiles from val.raw_output."""
    opt_path, _ = write_net(str(tmp_path))
    mosaic = source_dng(tmp_path / 'cam' / 'shot.dng', 'BGGR', (90, 70), iso=None)
    opt = yaml.safe_load(open(opt_path))
    opt['datasets'] = {'test_1': {'name': 'cam', 'type': 'CameraRawDataset', 'dataroot_lq': str(tmp_path / 'cam'),
                                  'sensors': SENSORS, 'sensor': 'C', 'iso': 1600}}
    opt['val']['raw_output'] = {'tile': 16, 'overlap': 4}
    with open(opt_path, 'w') as f:
        yaml.safe_dump(opt, f)
    result = _test_py(tmp_path, opt_path)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / 'results' / 'raw_test' / 'visualization' / 'cam'
    assert sorted(os.listdir(folder)) == ['shot.dng', 'shot.png']
    with rawpy.imread(str(folder / 'shot.dng')) as raw:
        assert np.abs(raw.raw_image_visible.astype(int) - mosaic.astype(int)).max() <= 1


def test_basicsr_test_py_on_an_srgb_folder_takes_sensor_and_iso_from_the_dataset_options(tmp_path):
    import cv2
    rgb_net = dict(NET, in_ch=3, out_ch=3)
    opt_path, _ = write_net(str(tmp_path), rgb_net, identity=False)
    rng = np.random.default_rng(0)
    for sub in ('gt', 'lq'):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'a.png'), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    opt = yaml.safe_load(open(opt_path))
    test_set = {'name': 'rgb', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'gt'),
                'dataroot_lq': str(tmp_path / 'lq'), 'io_backend': {'type': 'disk'}}
    opt['datasets'] = {'test_1': test_set}
    opt['val'] = {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}
    with open(opt_path, 'w') as f:
        yaml.safe_dump(opt, f)
    result = _test_py(tmp_path, opt_path)
    assert result.returncode == 2 and "the net takes sensor but the item carries none" in result.stderr
    test_set.update(sensor='B', iso=400)
    with open(opt_path, 'w') as f:
        yaml.safe_dump(opt, f)
    result = _test_py(tmp_path, opt_path)
    assert result.returncode == 0, result.stderr[-2000:]
    log = next((tmp_path / 'results' / 'raw_test').glob('*.log')).read_text()
    assert '# psnr:' in log


def test_a_bad_file_later_in_the_batch_stops_before_any_output(tmp_path, denoise_raw, capsys):
    opt, weights = write_net(str(tmp_path))
    source_dng(tmp_path / 'in' / 'a_good.dng')
    source_dng(tmp_path / 'in' / 'b_no_iso.dng', iso=None)
    assert run_script(denoise_raw, '-opt', opt, '--weights', weights, '--input', tmp_path / 'in', '--out',
                      tmp_path / 'out', '--sensor', 'A') == 1
    assert 'b_no_iso.dng: the file carries no ISO' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
