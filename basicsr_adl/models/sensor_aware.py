"""SensorAwareSRModel: BasicSR's SRModel that gives a net the sensor/ISO it takes and validates in float (a base
class, not registered: it has no training step of its own).

The test-time half of ADLModel, kept apart so the ADL model reads as training only:

* ``feed_data``: per-image ``sensor``/``iso`` from the items, else from :attr:`metadata_fallbacks` (training:
  the target's; evaluation: the eval set's ``sensor``/``iso`` options) - :mod:`basicsr_adl.metadata`;
* ``nondist_validation``: float PSNR/SSIM with data range 1 (:mod:`basicsr_adl.metrics`), RAW-safe, with
  the best-metric bookkeeping of BasicSR;
* camera RAW test sets (:class:`~basicsr_adl.data.camera_raw_dataset.CameraRawDataset`): the whole file is
  denoised in tiles (option ``val.raw_output``) and written as ``<stem>.dng`` + ``<stem>.png``.
"""
from os import path as osp
from typing import Any, Dict, List

import torch

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img

from basicsr_adl.inference import sensor_names
from basicsr_adl.metadata import batch_metadata, eval_set_metadata
from basicsr_adl.metrics import check_float_metric, float_scores, preview_image
from basicsr_adl.options_schema import RAW_OUTPUT, section_options
from basicsr_adl.raw.camera_denoise import colour_source, write_outputs
from basicsr_adl.raw.io import read_raw_with_sidecar
from basicsr_adl.raw.tiling import run_tiled


class SensorAwareSRModel(SRModel):
    """Subclasses set :attr:`net_meta` (the metadata names passed to the net) before data are fed."""

    net_meta: tuple = ()

    def __init__(self, opt: Dict[str, Any]) -> None:
        self.metadata_fallbacks: List[Dict[str, Any]] = [{}, {}]  # [training target's, eval set's]
        super().__init__(opt)

    def feed_data(self, data: Dict[str, Any]) -> None:
        super().feed_data(data)
        self.camera_raw = 'camera_raw' in data  # a CameraRawDataset item
        self.meta = batch_metadata(data, self.lq.shape[0], self.metadata_fallbacks, self.net_meta, self.device)

    def _forward(self, net: torch.nn.Module, lq: torch.Tensor, meta: Dict[str, torch.Tensor]) -> torch.Tensor:
        return net(lq, **{k: meta[k] for k in self.net_meta if k in meta})

    def test(self) -> None:
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        meta = getattr(self, 'meta', {})
        with torch.no_grad():
            if getattr(self, 'camera_raw', False):  # a whole camera file: tiles, memory set by the tile
                tiling = section_options(self.opt['val'] or {}, 'raw_output', RAW_OUTPUT, is_train=False)
                self.output = run_tiled(lambda t: self._forward(net, t, meta), self.lq.cpu(), tiling['tile'],
                                        tiling['overlap'], device=self.device)  # stays on the CPU
            else:
                self.output = self._forward(net, self.lq, meta)
        net.train(was_training)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Float metrics (no 8-bit rounding; RAW-safe): PSNR/SSIM with data range 1 on [0, 1]-clamped output."""
        dataset_name = dataloader.dataset.opt['name']
        metrics = self.opt['val'].get('metrics') or {}
        kinds = {name: check_float_metric(name, mopt, type(self).__name__) for name, mopt in metrics.items()}
        if metrics:
            self._initialize_best_metric_results(dataset_name)
        sums = {name: 0.0 for name in metrics}
        count = 0
        self.metadata_fallbacks[1] = eval_set_metadata(dataloader.dataset.opt, self.net_meta,
                                                       lambda: sensor_names(self.opt))
        for val_data in dataloader:
            self.feed_data(val_data)
            self.test()
            if self.camera_raw:  # camera files (no GT): <stem>.dng + <stem>.png, like scripts/denoise_raw.py
                self._write_camera_outputs(val_data, dataset_name, current_iter)
            gt = getattr(self, 'gt', None)
            for name, mopt in metrics.items():
                if gt is not None:
                    border = int(mopt.get('crop_border', 0))
                    sums[name] += float(float_scores(self.output, gt, kinds[name], border).sum())
            if save_img and not self.camera_raw:
                self._save_preview(val_data, dataset_name, current_iter, count)
            count += self.lq.shape[0]
            del self.lq, self.output
            if hasattr(self, 'gt'):
                del self.gt
        self.metric_results = {name: sums[name] / max(count, 1) for name in metrics}
        for name, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, name, value, current_iter)
        if metrics:
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def _save_preview(self, val_data: Dict[str, Any], dataset_name: str, current_iter: int, count: int) -> None:
        name = osp.splitext(osp.basename(str(val_data.get('lq_path', [f'img{count}'])[0])))[0]
        folder = self.opt['path']['visualization']
        path = osp.join(folder, name, f'{name}_{current_iter}.png') if self.opt['is_train'] else \
            osp.join(folder, dataset_name, f'{name}_{self.opt["name"]}.png')
        imwrite(tensor2img([preview_image(self.output[0])]), path)

    def _write_camera_outputs(self, val_data: Dict[str, Any], dataset_name: str, current_iter: int) -> None:
        folder = osp.join(self.opt['path']['visualization'], dataset_name)
        if self.opt['is_train']:
            folder = osp.join(folder, str(current_iter))
        for i, path in enumerate(val_data['lq_path']):
            capture = read_raw_with_sidecar(path)
            stem = osp.splitext(osp.basename(path))[0]
            dng, _ = write_outputs(capture, self.output[i].detach().cpu().numpy(), folder, stem)
            get_root_logger().info(f'{path} -> {dng} (+ .png)')
            if not colour_source(capture):
                get_root_logger().warning(f'{path} gives no colour matrix; the DNG takes camera RGB as linear sRGB, '
                                          'so its colours are only approximate')
