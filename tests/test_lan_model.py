"""LANModel through BasicSR's test pipeline (with and without ground truth) and its bad-input errors."""
import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from basicsr_adl.archs.dncnn_arch import DnCNN
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.models.lan_model import LANModel, accepted_metadata, load_checkpoint_strict, parse_lan_options

from conftest import PYTHON, REPO, make_noisy_pairs, run_cli, write_yaml

TEST = str(REPO / 'basicsr_adl' / 'test.py')
NET = {'type': 'DnCNN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_layers': 4}


def checkpoint(path: Path, **net_kwargs) -> Path:
    torch.manual_seed(0)
    kwargs = {k: v for k, v in NET.items() if k != 'type'}
    kwargs.update(net_kwargs)
    torch.save({'params': DnCNN(**kwargs).state_dict()}, path)
    return path


def lan_options(name: str, dataset: dict, ckpt: Path, **lan) -> dict:
    return {'name': name, 'model_type': 'LANModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
            'datasets': {'test_1': dataset}, 'network_g': dict(NET),
            'path': {'pretrain_network_g': str(ckpt)},
            'lan': {'mode': 'offset', 'loss': 'zsn2n', 'iters': 4, 'lr': 5e-3, 'report_iters': [0, 2, 4], **lan},
            'val': {'save_img': False, 'metrics': {
                'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
                'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}}}}


def odd_sized_pairs(root: Path) -> Path:
    """Three pairs; one of them 15x17 so the odd-size handling runs inside the pipeline."""
    make_noisy_pairs(root, 2, size=16, seed=3)
    rng = np.random.default_rng(4)
    clean = (rng.random((15, 17, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(root / 'gt' / 'odd.png'), clean)
    cv2.imwrite(str(root / 'lq' / 'odd.png'), np.clip(clean + rng.normal(0, 15, clean.shape), 0, 255).astype(np.uint8))
    return root


def test_lan_with_ground_truth_reports_every_iteration(tmp_path):
    mode, loss = 'offset', 'nbr2nbr'
    data = odd_sized_pairs(tmp_path / 'data')
    dataset = {'name': 'toy', 'type': 'PairedImageDataset', 'dataroot_gt': str(data / 'gt'),
               'dataroot_lq': str(data / 'lq'), 'io_backend': {'type': 'disk'}}
    opt = lan_options('lan_gt', dataset, checkpoint(tmp_path / 'net.pth'), mode=mode, loss=loss)
    proc = run_cli([PYTHON, TEST, '-opt', str(write_yaml(tmp_path / 'lan.yml', opt))], cwd=tmp_path)
    results = tmp_path / 'results' / 'lan_gt'
    log = next(results.glob('test_lan_gt_*.log')).read_text()
    for k in (0, 2, 4):
        assert re.search(rf'# psnr@iter{k}: \d+\.\d+', log) and re.search(rf'# ssim@iter{k}: 0\.\d+', log), log[-1500:]
    rows = list(csv.DictReader(open(results / f'lan_toy_{mode}_{loss}.csv')))
    assert [r['iteration'] for r in rows if r['image'] == 'odd'] == ['0', '2', '4']
    assert len(rows) == 3 * 3 + 3  # 3 images x 3 report iterations + 3 mean rows
    means = [float(r['psnr']) for r in rows if r['image'] == 'mean']
    per_image = [float(r['psnr']) for r in rows if r['image'] != 'mean' and r['iteration'] == '4']
    assert means[-1] == pytest.approx(sum(per_image) / 3)
    assert len(set(means)) > 1, 'adaptation must change the result between iterations'
    assert (results / f'lan_toy_{mode}_{loss}_psnr.png').stat().st_size > 1000
    assert 'image' in proc.stderr  # the tqdm progress bar over images


def test_baseline_mode_in_process_with_a_basicsr_dataloader(tmp_path):
    from basicsr.data import build_dataloader, build_dataset
    data = odd_sized_pairs(tmp_path / 'data')
    dataset_opt = {'name': 'toy', 'type': 'PairedImageDataset', 'dataroot_gt': str(data / 'gt'),
                   'dataroot_lq': str(data / 'lq'), 'io_backend': {'type': 'disk'}, 'phase': 'test', 'scale': 1}
    loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False)
    model = _model(tmp_path, mode='last_layer', loss='zsn2n', lr=1e-2)
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    with torch.no_grad():  # as BasicSR may call it: the model must enable gradients itself
        model.nondist_validation(loader, 'inproc', None, save_img=False)
    rows = list(csv.DictReader(open(tmp_path / 'res' / 'lan_toy_last_layer_zsn2n.csv')))
    means = [float(r['psnr']) for r in rows if r['image'] == 'mean']
    assert len(rows) == 12 and len(set(means)) == 3
    assert model.metric_results['psnr'] == pytest.approx(means[-1])
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())


def test_lan_without_ground_truth_writes_adapted_outputs(tmp_path):
    data = odd_sized_pairs(tmp_path / 'data')
    dataset = {'name': 'single', 'type': 'SingleImageDataset', 'dataroot_lq': str(data / 'lq'),
               'io_backend': {'type': 'disk'}}
    opt = lan_options('lan_nogt', dataset, checkpoint(tmp_path / 'net.pth'), odd_size='crop')
    run_cli([PYTHON, TEST, '-opt', str(write_yaml(tmp_path / 'lan.yml', opt))], cwd=tmp_path)
    out = tmp_path / 'results' / 'lan_nogt' / 'visualization' / 'single'
    files = sorted(p.name for p in out.glob('*.png'))
    assert files == ['000_lan_nogt.png', '001_lan_nogt.png', 'odd_lan_nogt.png']
    assert cv2.imread(str(out / 'odd_lan_nogt.png')).shape == (14, 16, 3)  # odd_size: crop drops a row, a column
    noisy = cv2.imread(str(data / 'lq' / '000.png')).astype(np.float64)
    assert np.abs(cv2.imread(str(out / '000_lan_nogt.png')) - noisy).mean() > 0.5  # it did denoise something


def test_missing_checkpoint_is_one_clear_line(tmp_path):
    data = make_noisy_pairs(tmp_path / 'data', 1, size=16)
    dataset = {'name': 'single', 'type': 'SingleImageDataset', 'dataroot_lq': str(data / 'lq'),
               'io_backend': {'type': 'disk'}}
    opt = lan_options('lan_bad', dataset, tmp_path / 'nope.pth')
    proc = run_cli([PYTHON, TEST, '-opt', str(write_yaml(tmp_path / 'lan.yml', opt))], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "option 'path.pretrain_network_g': checkpoint not found" in proc.stderr and 'nope.pth' in proc.stderr
    assert 'Traceback' not in proc.stderr


@pytest.mark.parametrize('lan, message', [
    ({'mode': 'all_layers'}, "option 'lan.mode': unknown mode 'all_layers'; choices: offset, full, first_layer"),
    ({'loss': 'l2'}, "option 'lan.loss': unknown loss 'l2'; choices: zsn2n, nbr2nbr"),
    ({'iters': 5, 'report_iters': [0, 10]}, "option 'lan.report_iters'"),
    ({'odd_size': 'mirror'}, "odd_size 'mirror'"),
    ({'itres': 5}, "unknown option 'lan.itres'; did you mean 'lan.iters'?"),
])
def test_bad_lan_options_name_the_option(lan, message):
    with pytest.raises(OptionError, match=re.escape(message)):
        parse_lan_options(lan)


def test_lan_defaults():
    mode, config, lean = parse_lan_options({'iters': 10})
    assert (mode, config.loss, config.lr, config.report_iters, lean) == ('offset', 'zsn2n', 5e-4, (0, 5, 10), True)
    assert parse_lan_options({'mode': 'full'})[1].lr == 5e-6  # official full-trainable learning rate


def test_mismatched_checkpoint_is_rejected_not_loaded_loosely(tmp_path):
    wide = checkpoint(tmp_path / 'wide.pth', num_feat=16)
    net = DnCNN(num_feat=8, num_layers=4)
    with pytest.raises(OptionError, match=r"wide\.pth' does not match network_g \(DnCNN\): shape mismatches"):
        load_checkpoint_strict(net, str(wide))
    deeper = checkpoint(tmp_path / 'deep.pth', num_layers=5)
    with pytest.raises(OptionError, match='unexpected keys'):
        load_checkpoint_strict(net, str(deeper))
    (tmp_path / 'junk.pth').write_text('not a checkpoint')
    with pytest.raises(OptionError, match="junk.pth' .* could not be read"):
        load_checkpoint_strict(net, str(tmp_path / 'junk.pth'))


def _model(tmp_path, **lan) -> LANModel:
    opt = lan_options('inproc', {}, checkpoint(tmp_path / 'net.pth'), **lan)
    opt.update(is_train=False, dist=False, rank=0, world_size=1)
    opt['path'].update(results_root=str(tmp_path / 'res'), visualization=str(tmp_path / 'res' / 'vis'))
    opt['val']['suffix'] = None
    return LANModel(opt)


def test_channel_mismatch_names_image_and_network(tmp_path):
    model = _model(tmp_path)
    with pytest.raises(OptionError, match=r"image 'x/raw.png' has 4 channels but network_g \(DnCNN\) expects 3"):
        model.feed_data({'lq': torch.rand(1, 4, 8, 8), 'lq_path': ['x/raw.png']})


class MetaNet(nn.Module):
    """A stand-in for a modulated RAW net: 4 packed channels, forward takes sensor and iso."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, 1, 1)
        self.seen = []

    def forward(self, x, sensor=None, iso=None):
        self.seen.append((sensor, iso))
        return x + 0.1 * self.conv(x) * (1 + iso.view(-1, 1, 1, 1) / 1000)


def test_raw_inputs_and_metadata_reach_nets_that_accept_them(tmp_path):
    assert accepted_metadata(DnCNN()) == ()
    assert accepted_metadata(MetaNet()) == ('sensor', 'iso')
    model = _model(tmp_path, iters=2, report_iters=[0, 2], lean_backward=False)
    model.net_g, model.in_channels = MetaNet(), 4
    model.metadata_keys = accepted_metadata(model.net_g)
    sensor, iso = torch.tensor([2]), torch.tensor([3200.0])
    raw = torch.rand(1, 4, 16, 16)

    class Loader(list):
        dataset = type('D', (), {'opt': {'name': 'raw'}})()

    loader = Loader([{'lq': raw, 'gt': raw.clamp(0.1, 0.9), 'lq_path': ['r0.npy'], 'sensor': sensor, 'iso': iso}])
    model.nondist_validation(loader, 'inproc', None, save_img=True)
    assert model.net_g.seen and all(s is not None and torch.equal(s, sensor) and torch.equal(i, iso)
                                    for s, i in model.net_g.seen)
    assert set(model.metric_results) == {'psnr', 'ssim'} and model.metric_results['psnr'] > 10  # float metrics
    assert np.load(tmp_path / 'res' / 'vis' / 'raw' / 'r0_inproc.npy').shape == (4, 16, 16)
