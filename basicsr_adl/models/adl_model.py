"""ADLModel: Adaptive Domain Learning (Qian et al., NeurIPS 2024) as a BasicSR model.

Three stages (``adl.pretrain_iters`` / ``adapt_iters`` / ``finetune_iters``): target pretraining, gated
source-domain learning, target fine-tuning. In stage 2 each gate chunk (``adl.gate.every`` steps, default 1)
picks one source domain and a dynamic validation subset V' of the target pairs, takes its steps on source
batches joined with target patches from outside V', scores the candidate weights on V' and keeps them or
reverts weights *and* optimizer state exactly (:class:`~basicsr_adl.adl.snapshot.TrainingSnapshot`).

The data come from :class:`~basicsr_adl.data.multi_domain_dataset.MultiDomainDataset`, configured as the
``train`` phase; BasicSR's loader only paces the loop, and the model draws domains and samples itself:
shared choices (domain, V', decision) from a seeded generator identical on every rank, per-rank samples from
the global RNG (saved per rank by the compat resume layer). ``adl.mode`` selects the baselines:
``adl``; ``finetune`` (source batches, ungated, for stages 1+2, then target); ``target_only``.
"""
import hashlib
import inspect
import json
import math
from collections import OrderedDict
from os import path as osp
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from basicsr.metrics.psnr_ssim import calculate_psnr_pt, calculate_ssim_pt
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY

from basicsr_adl.adl.accept_log import AcceptLog
from basicsr_adl.adl.gate import build_gate
from basicsr_adl.adl.resume_options import ResumeMismatch, compare_left_out, compare_options
from basicsr_adl.adl.schedule import SOURCE_ADAPT, STAGE_NAMES, TARGET_FINETUNE, TARGET_PRETRAIN, StageSchedule
from basicsr_adl.adl.snapshot import TrainingSnapshot
from basicsr_adl.adl.validation_sampler import DynamicValidationSampler
from basicsr_adl.compat.dist import collective_device
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.data.multi_domain_dataset import MultiDomainDataset, centre_crop, collate_items
from basicsr_adl.inference import sensor_names
from basicsr_adl.metadata import METADATA_ARGS, forward_args
from basicsr_adl.options_schema import (ADL_MODES, ON_REJECT, RAW_OUTPUT, adl_options, adl_stage_lengths,  # noqa: F401
                                        section_options)
from basicsr_adl.raw.camera_denoise import colour_source, write_outputs
from basicsr_adl.raw.io import read_raw_with_sidecar
from basicsr_adl.raw.tiling import run_tiled

MODES = ADL_MODES  # the options, their defaults and checks: basicsr_adl.options_schema.ADL_SECTION
HEATMAP_PNG, HEATMAP_CSV = 'adl_accept_heatmap.png', 'adl_accept_rates.csv'


def metadata_args(net: torch.nn.Module) -> Tuple[str, ...]:
    """Names among ('sensor', 'iso') that ``net.forward`` takes as parameters."""
    return forward_args(net)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _comm(values, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    """A tensor for a collective (see :func:`~basicsr_adl.compat.dist.collective_device`)."""
    return torch.tensor(values, dtype=dtype, device=collective_device(device))


def psnr_per_image(output: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image, data range 1, output clamped to [0, 1] (float, no 8-bit rounding)."""
    return calculate_psnr_pt(output.clamp(0, 1), gt, crop_border=0)


def preview_image(t: torch.Tensor) -> torch.Tensor:
    """3-channel [0,1] view of an image tensor (C,H,W): RGB as is, packed RAW as (R, mean G, B) with gamma 1/2.2."""
    t = t.detach().float().clamp(0, 1)
    if t.shape[0] == 4:
        t = torch.stack([t[0], 0.5 * (t[1] + t[2]), t[3]]).pow(1 / 2.2)
    elif t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t[:3]


@MODEL_REGISTRY.register()
class ADLModel(SRModel):
    """SRModel with ADL's three-stage training and gated source steps (see module docstring)."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        self._adl_opt = adl_options(opt)  # adl:, checked, with every default filled
        self.val_defaults: Dict[str, Any] = {}
        self.eval_meta: Dict[str, Any] = {}
        super().__init__(opt)
        self._setup_metadata()

    def _setup_metadata(self) -> None:
        """Which of sensor/iso go to the net: those its forward() takes, unless adl.use_metadata says otherwise."""
        if hasattr(self, 'net_meta'):
            return
        net_meta = metadata_args(self.get_bare_model(self.net_g))
        use_meta = self._adl_opt['use_metadata']
        if use_meta is True and not net_meta:
            raise OptionError(f"option 'adl.use_metadata' is true but network_g ({self.opt['network_g']['type']}) "
                              'takes no sensor/iso argument in forward(); use a modulated net or set it to auto')
        self.net_meta = () if use_meta is False else net_meta

    # ------------------------------------------------------------------------------------------------ setup
    def init_training_settings(self) -> None:
        super().init_training_settings()
        self._setup_metadata()
        a, opt = self._adl_opt, self.opt
        self.logger = get_root_logger()
        self.mode = a['mode']
        total = int(opt['train']['total_iter'])
        try:
            self.schedule = StageSchedule(*adl_stage_lengths(a, total))
        except ValueError as err:
            raise OptionError(f"option 'adl.*_iters': {err}") from err
        self._schedule_explicit = a['pretrain_iters'] is not None
        if self.schedule.total != total:
            self.logger.warning(f'ADL stage lengths sum to {self.schedule.total} but train.total_iter is {total}; '
                                'stage 3 runs until total_iter.')

        dopt = opt['datasets']['train']  # a MultiDomainDataset (checked by adl_options)
        self.domains: MultiDomainDataset = MultiDomainDataset.from_options(dopt)  # the loader's, built once
        if self.mode != 'target_only' and not self.domains.sources:
            raise OptionError(f"option 'datasets.train.sources': adl.mode '{self.mode}' needs at least one source "
                              'domain besides the target')
        self.batch_size = int(dopt['batch_size_per_gpu'])
        self.target_batch = int(a['target_batch'])
        self.val_crop = a['val_crop']
        n_target = self.domains.domain_size(self.domains.target)

        # V' is scored on cached centre crops of the whole target pairs. A pair holding NaN/Inf anywhere would
        # turn every V' that holds it into a rejection and poison the steps that draw it: it is named once and
        # left out of V' and of the target draws.
        self.val_cache, self.target_left_out = [], []
        for i in range(n_target):
            item = self.domains.target_eval_item(i)
            if not self._pair_is_finite(i, item):
                self.target_left_out.append(i)
            self.val_cache.append(self._cache_item(item))
        self.target_usable = [i for i in range(n_target) if i not in self.target_left_out]
        self._check_usable_targets(n_target)
        self.val_defaults = {'sensor': self.val_cache[0]['sensor'], 'iso': self.val_cache[0]['iso']}
        self._check_metadata()
        self._set_iso_range()

        gate_opt = a['gate']  # criterion, on_reject, revert_optimizer and target_batch agree (adl_options)
        criterion = gate_opt['criterion']
        try:
            self.gate = build_gate(criterion, gate_opt['queue_size'], float(gate_opt['tolerance']))
        except ValueError as err:
            raise OptionError(f"option 'adl.gate': {err}") from err
        self.gate_every = gate_opt['every']
        self.revert_optimizer = gate_opt['revert_optimizer']
        self.on_reject = gate_opt['on_reject']
        gated = self.mode == 'adl' and self.schedule.adapt_iters > 0  # the baselines never gate
        if gated and self.on_reject == 'target_step' and any(
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.net_g.modules()):
            self.logger.warning('ADL: the net has BatchNorm layers; with adl.gate.on_reject: target_step (and the '
                                'paired_target gate) each stage-2 step runs the target and source patches as two '
                                'passes, so batch statistics are per part, not per joint batch')
        self._joint_snapshot: Optional[TrainingSnapshot] = None  # the joint step while its rival is scored

        val_opt = a['validation']
        self.dynamic_val = val_opt['dynamic']
        if self.mode == 'adl' and self.schedule.adapt_iters > 0:
            if n_target < 2:
                raise OptionError(f"option 'datasets.train.target_pairs': the target '{self.domains.target}' has "
                                  f'{n_target} pair(s); ADL needs at least 2 (one for V\', one to train on)')
            try:
                self.sampler = DynamicValidationSampler(
                    n_target, [float(c['iso']) for c in self.val_cache], float(val_opt['start_fraction']),
                    float(val_opt['end_fraction']), val_opt['iso_diverse_below'],
                    excluded=self.target_left_out)
            except ValueError as err:
                raise OptionError(f"option 'adl.validation': {err}") from err

        self.seed = int(opt.get('manual_seed') or 0) + a['seed_offset']
        self.shared_gen = torch.Generator().manual_seed(self.seed)  # identical on every rank
        self.snapshot = TrainingSnapshot(self.get_bare_model(self.net_g), self.optimizer_g)
        self.accept_log = AcceptLog(self.domains.sources or ['-'], max(self.schedule.adapt_iters, 1),
                                    a['heatmap_epochs'])
        self.chunk: Dict[str, Any] = {'pos': 0}
        self.log_dict = OrderedDict()
        self.fixed_val: Optional[Tuple[List[int], List[int]]] = None
        self.nan_skips = 0
        # (iter, domain, accepted, candidate PSNR, previous PSNR) per decision, kept only when dumped per rank
        self.write_rank_decisions = a['write_rank_decisions']
        self.decisions: List[Tuple[int, str, bool, float, Optional[float]]] = []
        self.logger.info(f'ADL: mode={self.mode}, stages {self.schedule}, target={self.domains.target} '
                         f'({n_target} pairs), sources={self.domains.sources}, gate={criterion} '
                         f'(every {self.gate_every}), metadata to net: {list(self.net_meta) or "none"}')

    def _pair_is_finite(self, index: int, item: Dict[str, Any]) -> bool:
        """Whether the whole noisy and clean images of target pair ``index`` are finite; else one warning."""
        bad = [f"{label} image {self.domains.source_of(self.domains.target, item, part)}"
               for part, label in (('lq', 'noisy'), ('gt', 'clean'))
               if not bool(torch.isfinite(torch.as_tensor(item[part])).all())]
        if bad:
            self.logger.warning(f"ADL: target pair {index} of '{self.domains.target}' holds NaN/Inf values in its "
                                f"{' and '.join(bad)}; it is left out of V' and of the target training draws")
        return not bad

    def _check_usable_targets(self, n_target: int) -> None:
        """Enough finite target pairs for the mode: 2 when ADL gates (V' and T_train), else 1."""
        if not self.target_left_out:
            return  # a target set that is too small is reported below, naming datasets.train.target_pairs
        need = 2 if self.mode == 'adl' and self.schedule.adapt_iters > 0 else 1
        usable = len(self.target_usable)
        if usable < need:
            raise OptionError(f"option 'datasets.train.domains.{self.domains.target}': {len(self.target_left_out)} "
                              f"of the target's {n_target} pairs hold NaN/Inf values (named in the warnings), "
                              f"{usable} usable pair(s) left; adl.mode '{self.mode}' needs at least {need}")

    def _cache_item(self, item: Dict[str, Any]) -> Dict[str, Any]:
        return {'lq': centre_crop(torch.as_tensor(item['lq']), self.val_crop).contiguous(),
                'gt': centre_crop(torch.as_tensor(item['gt']), self.val_crop).contiguous(),
                'sensor': item['sensor'], 'iso': item['iso']}

    def _check_metadata(self) -> None:
        """Fail before training when the net needs metadata the data do not give."""
        bare = self.get_bare_model(self.net_g)
        needs_iso = 'iso' in self.net_meta and getattr(bare, 'use_iso', True)
        num_sensors = getattr(bare, 'num_sensors', None) if getattr(bare, 'use_sensor', False) else None
        for name in [self.domains.target] + self.domains.sources:
            item = self.domains.target_eval_item(0) if name == self.domains.target else self.domains.train_item(name, 0)
            if needs_iso and not math.isfinite(float(item['iso'])):
                raise OptionError(f"option 'datasets.train.domains.{name}.iso': the domain's samples carry no ISO "
                                  'and the net uses ISO modulation; set it, or network_g.use_iso: false')
            if 'sensor' in self.net_meta and num_sensors is not None and int(item['sensor']) >= num_sensors:
                raise OptionError(f"option 'network_g.num_sensors': domain '{name}' has sensor index "
                                  f"{int(item['sensor'])} but the net knows {num_sensors} sensors")

    def _set_iso_range(self) -> None:
        """Tell a net with ``set_iso_range`` the ISO range of the pairs this mode trains on (widened by a range a
        loaded net already holds), so it never extrapolates its ISO modulation (see modulated_unet_arch)."""
        bare = self.get_bare_model(self.net_g)
        if not (self._adl_opt['clamp_iso'] and 'iso' in self.net_meta and hasattr(bare, 'set_iso_range')):
            return
        isos = [float(self.val_cache[i]['iso']) for i in self.target_usable]
        if self.mode != 'target_only':
            for name in self.domains.sources:
                isos += self.domains.domain_isos(name)
        isos = [v for v in isos if math.isfinite(v) and v > 0]
        if not isos:
            return
        low, high = min(isos), max(isos)
        held = getattr(bare, 'iso_range', None)
        if held is not None and bool(torch.isfinite(held).all()):  # a pretrained net's range: keep what it knows
            low, high = min(low, 2 ** float(held[0]) * bare.iso_ref), max(high, 2 ** float(held[1]) * bare.iso_ref)
        bare.set_iso_range(low, high)
        self.logger.info(f'ADL: the net\'s ISO input is clamped to the training ISO range {low:g}-{high:g}')

    # ------------------------------------------------------------------------------------------------ data
    def feed_data(self, data: Dict[str, Any]) -> None:
        if 'tick' in data and 'lq' not in data:
            return  # training batches are drawn by the model itself
        super().feed_data(data)
        b = self.lq.shape[0]
        self.meta = {}
        self.camera_raw = 'camera_raw' in data  # a CameraRawDataset item
        for key in METADATA_ARGS:
            value = data.get(key)  # the item's own, else the target's (training), else the eval set's option
            if value is None or (key == 'iso' and bool(torch.isnan(torch.as_tensor(value, dtype=torch.float)).any())):
                value = self.val_defaults.get(key, self.eval_meta.get(key))
            if value is None and key in self.net_meta:
                where = str(data.get('lq_path', ['?'])[0])
                raise OptionError(f"'{where}': the net takes {key} but the item carries none; set option "
                                  f"'datasets.<test set>.{key}'" + (" (a name in the top-level 'sensors' list)"
                                                                    if key == 'sensor' else ''))
            if value is not None:
                self.meta[key] = torch.as_tensor(value).reshape(-1).expand(b).to(self.device) \
                    if torch.as_tensor(value).numel() == 1 else torch.as_tensor(value).to(self.device)

    def _eval_set_metadata(self, dataset) -> Dict[str, Any]:
        """``sensor`` (as an index) and ``iso`` from an eval dataset's options, for items that carry none."""
        dopt, meta = dataset.opt, {}
        if dopt.get('iso') is not None:
            meta['iso'] = float(dopt['iso'])
        if dopt.get('sensor') is not None and 'sensor' in self.net_meta:
            names, source = sensor_names(self.opt)
            if dopt['sensor'] not in names:
                raise OptionError(f"option 'sensor' of dataset '{dopt.get('name')}': '{dopt['sensor']}' is not a "
                                  f"sensor the net knows; choices: {', '.join(names) or '(none listed)'}"
                                  f"{' (from ' + source + ')' if source else ''}")
            meta['sensor'] = names.index(dopt['sensor'])
        return meta

    def _forward(self, net: torch.nn.Module, lq: torch.Tensor, meta: Dict[str, torch.Tensor]) -> torch.Tensor:
        kwargs = {k: meta[k] for k in self.net_meta if k in meta}
        return net(lq, **kwargs)

    def _draw_batch(self, parts: List[Tuple[str, List[int]]]) -> Dict[str, torch.Tensor]:
        items = []
        for name, indices in parts:
            items += [self.domains.train_item(name, i) for i in indices]
        try:
            batch = collate_items(items)
        except RuntimeError as err:
            raise OptionError('option datasets.train.domains.*.gt_size: source and target patches must have the '
                              f'same size to form one batch ({err})') from err
        return {k: v.to(self.device) for k, v in batch.items()}

    def _per_rank_indices(self, population: List[int], count: int) -> List[int]:
        """Uniform draws with replacement from the per-rank global RNG (saved per rank for resume)."""
        if count <= 0:
            return []
        picks = torch.randint(len(population), (count,))
        return [population[int(i)] for i in picks]

    def _shared_randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.shared_gen))

    # ------------------------------------------------------------------------------------------------ training
    def stage_at(self, current_iter: int) -> int:
        return self.schedule.stage_at(current_iter)

    def optimize_parameters(self, current_iter: int) -> None:
        stage = self.stage_at(current_iter)
        all_target = self.target_usable  # the target pairs without NaN/Inf
        self.log_dict = OrderedDict()
        if self.mode == 'target_only' or (self.mode == 'finetune' and stage == TARGET_FINETUNE) or \
                (self.mode == 'adl' and stage != SOURCE_ADAPT):
            batch = self._draw_batch([(self.domains.target, self._per_rank_indices(all_target, self.batch_size))])
            self._train_step(batch)
            self._update_ema()
        elif self.mode == 'finetune':
            domain = self.domains.sources[self._shared_randint(len(self.domains.sources))]
            size = self.domains.domain_size(domain)
            batch = self._draw_batch([(domain, self._per_rank_indices(list(range(size)), self.batch_size))])
            self._train_step(batch)
            self._update_ema()
        else:
            self._adapt_step(current_iter)
        self.log_dict['adl_stage'] = float(stage)

    def _train_step(self, batch: Dict[str, torch.Tensor], target_from: Optional[int] = None) -> bool:
        """One optimizer step; a non-finite loss (on any rank) skips it on every rank. Returns whether it stepped.

        With ``target_from`` (the index where the batch's target patches start) the batch is run as two parts
        whose losses are weighted by their sizes (the same gradient as one pass for a mean loss), and the
        target part's gradient and the step's learning rates are appended to the chunk's ``target_steps`` for
        :meth:`_target_replay`."""
        self.optimizer_g.zero_grad()
        target_grads = None
        if target_from is None:
            output = self._forward(self.net_g, batch['lq'], batch)
            l_pix = self.cri_pix(output, batch['gt'])
        else:
            n = batch['lq'].shape[0]
            parts = [slice(target_from, n), slice(0, target_from)]
            summed = getattr(self.cri_pix, 'reduction', 'mean') == 'sum'  # a summed loss adds up as it is
            l_pix = 0.0
            for i, part in enumerate(parts):
                sub = {k: v[part] for k, v in batch.items()}
                loss = self.cri_pix(self._forward(self.net_g, sub['lq'], sub), sub['gt'])
                if not summed:
                    loss = loss * (sub['lq'].shape[0] / n)
                loss.backward()
                l_pix = l_pix + loss.detach()
                if i == 0:  # the target part's gradient, scaled back to a target-only mean loss
                    scale = 1.0 if summed else n / (n - target_from)
                    target_grads = [None if q.grad is None else q.grad.detach() * scale
                                    for q in self.net_g.parameters()]
        finite = _comm([1.0 if bool(torch.isfinite(l_pix)) else 0.0], self.device)
        if _distributed():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() < 1:
            self.nan_skips += 1
            self.logger.warning(f'ADL: non-finite loss ({l_pix.item()}) - step skipped, weights unchanged '
                                f'({self.nan_skips} skipped so far)')
            self.optimizer_g.zero_grad()
            self.log_dict.update(self.reduce_loss_dict(OrderedDict(l_pix=torch.zeros((), device=self.device))))
            self.log_dict['adl_nan_skips'] = float(self.nan_skips)
            return False
        if target_from is None:
            l_pix.backward()
        else:  # only steps actually taken are replayed
            self.chunk.setdefault('target_steps', []).append(
                {'grads': target_grads, 'lr': [g['lr'] for g in self.optimizer_g.param_groups]})
        self.optimizer_g.step()
        self.log_dict.update(self.reduce_loss_dict(OrderedDict(l_pix=l_pix)))
        return True

    def _score_target_step(self, val: List[int]) -> float:
        """Park the joint step, revert to the chunk start and take the target-only step; its score on ``val``."""
        if self._joint_snapshot is None:
            self._joint_snapshot = TrainingSnapshot(self.get_bare_model(self.net_g), self.optimizer_g)
        self._joint_snapshot.capture()
        self.snapshot.restore()
        self._target_replay()
        return self.score(val)

    def _target_replay(self) -> None:
        """After a revert: replay the chunk's steps on their target patches alone (adl.gate.on_reject:
        target_step), so a harmful source batch does not also cost the target its steps. Each step reuses the
        target gradient recorded during the joint step (exact for a chunk of one step; for longer chunks the
        gradients were taken along the joint path) and that step's learning rates."""
        steps = self.chunk.get('target_steps') or []
        live_lr = [g['lr'] for g in self.optimizer_g.param_groups]
        for record in steps:
            self.optimizer_g.zero_grad()
            for group, lr in zip(self.optimizer_g.param_groups, record['lr']):
                group['lr'] = lr
            for q, g in zip(self.net_g.parameters(), record['grads']):
                q.grad = None if g is None else g.to(q.device)
            self.optimizer_g.step()
        for group, lr in zip(self.optimizer_g.param_groups, live_lr):
            group['lr'] = lr  # the scheduler's rate for this iteration, not the chunk start's
        self.optimizer_g.zero_grad()
        self.chunk['target_steps'] = []

    def _update_ema(self) -> None:
        if getattr(self, 'ema_decay', 0) > 0:
            self.model_ema(decay=self.ema_decay)

    @torch.no_grad()
    def score(self, indices: List[int]) -> float:
        """Mean PSNR of the current weights over the target crops ``indices`` (sharded over ranks, all-reduced)."""
        net = self.get_bare_model(self.net_g)
        rank, world = self.opt.get('rank', 0), self.opt.get('world_size', 1)
        mine = indices[rank::world] if _distributed() else indices
        total = _comm([0.0, 0.0], self.device, torch.float64)
        was_training = net.training
        net.eval()
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for i in mine:
            groups.setdefault(tuple(self.val_cache[i]['lq'].shape), []).append(i)
        for members in groups.values():
            lq = torch.stack([self.val_cache[i]['lq'] for i in members]).to(self.device)
            gt = torch.stack([self.val_cache[i]['gt'] for i in members]).to(self.device)
            meta = {k: torch.stack([torch.as_tensor(self.val_cache[i][k]) for i in members]).to(self.device)
                    for k in METADATA_ARGS}
            psnr = psnr_per_image(self._forward(net, lq, meta), gt)
            total[0] += psnr.sum().double().to(total.device)
            total[1] += len(members)
        net.train(was_training)
        if _distributed():
            dist.all_reduce(total)
        return float(total[0] / total[1])

    def _adapt_step(self, current_iter: int) -> None:
        step = self.schedule.adapt_step(current_iter)
        chunk = self.chunk
        if chunk['pos'] == 0:
            chunk['domain'] = self.domains.sources[self._shared_randint(len(self.domains.sources))]
            if self.dynamic_val:
                chunk['val'], chunk['train'] = self.sampler.sample(self.schedule.adapt_progress(current_iter),
                                                                   self.shared_gen)
            else:
                if self.fixed_val is None:
                    self.fixed_val = self.sampler.sample(0.0, self.shared_gen)
                chunk['val'], chunk['train'] = self.fixed_val
            chunk['prev'] = None
            if self.gate.needs_previous or (self.gate.needs_seed and not self.gate.started):
                chunk['prev'] = self.score(chunk['val'])
                if not self.gate.started:
                    self.gate.start(chunk['prev'])
            elif not self.gate.started:
                self.gate.start(float('nan'))
            self.snapshot.capture()
        domain = chunk['domain']
        source_idx = self._per_rank_indices(list(range(self.domains.domain_size(domain))), self.batch_size)
        target_idx = self._per_rank_indices(chunk['train'], self.target_batch)
        batch = self._draw_batch([(domain, source_idx), (self.domains.target, target_idx)])
        self._train_step(batch, len(source_idx) if self.on_reject == 'target_step' else None)
        chunk['pos'] += 1
        last_adapt = current_iter == self.schedule.pretrain_iters + self.schedule.adapt_iters
        if chunk['pos'] >= self.gate_every or last_adapt:
            candidate = self.score(chunk['val'])
            replayable = bool(chunk.get('target_steps'))  # steps taken whose target part can be replayed
            if self.gate.against_target_step and replayable:
                chunk['prev'] = self._score_target_step(chunk['val'])
            accept = self.gate.decide(candidate, chunk['prev'] if chunk['prev'] is not None else candidate)
            flag = _comm([1.0 if accept else 0.0], self.device)
            if _distributed():
                dist.broadcast(flag, 0)  # one decision for all replicas, whatever rounding did
            accept = bool(flag.item() > 0.5)
            stepped_on = accept  # whether the live weights are a new step (EMA follows them)
            if self.gate.against_target_step:
                if accept and replayable:
                    self._joint_snapshot.restore()  # back to the joint step (the target-only one is live)
                stepped_on = True
            elif not accept:
                self.snapshot.restore() if self.revert_optimizer else self.snapshot.restore_weights()
                if self.on_reject == 'target_step' and replayable:
                    self._target_replay()
                    stepped_on = True
            if stepped_on:
                self._update_ema()
            self.accept_log.record(domain, accept, step)
            if self.write_rank_decisions:
                self.decisions.append((current_iter, domain, accept, candidate, chunk['prev']))
            self.chunk = {'pos': 0}
            self.log_dict['adl_val_psnr'] = candidate
            self.log_dict['adl_accepted'] = float(accept)
        for name, (acc, rej) in self.accept_log.counts().items():
            self.log_dict[f'adl_accept/{name}'] = float(acc)
            self.log_dict[f'adl_reject/{name}'] = float(rej)

    # ------------------------------------------------------------------------------------------------ eval
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
        if metrics:
            self._initialize_best_metric_results(dataset_name)
        sums = {name: 0.0 for name in metrics}
        count = 0
        self.eval_meta = self._eval_set_metadata(dataloader.dataset)
        for val_data in dataloader:
            self.feed_data(val_data)
            self.test()
            if self.camera_raw:  # camera files (no GT): <stem>.dng + <stem>.png, like scripts/denoise_raw.py
                self._write_camera_outputs(val_data, dataset_name, current_iter)
            out, gt = self.output.clamp(0, 1), getattr(self, 'gt', None)
            for name, mopt in metrics.items():
                if gt is None:
                    continue
                border = int(mopt.get('crop_border', 0))
                kind = mopt['type']
                if kind in ('calculate_psnr', 'calculate_psnr_pt'):
                    sums[name] += float(calculate_psnr_pt(out, gt, border).sum())
                elif kind in ('calculate_ssim', 'calculate_ssim_pt'):
                    sums[name] += float(calculate_ssim_pt(out, gt, border).sum())
                else:
                    raise OptionError(f"option 'val.metrics.{name}.type': ADLModel computes calculate_psnr and "
                                      f"calculate_ssim in float; '{kind}' is not supported")
            if save_img and not self.camera_raw:
                name = osp.splitext(osp.basename(str(val_data.get('lq_path', [f'img{count}'])[0])))[0]
                folder = self.opt['path']['visualization']
                path = osp.join(folder, name, f'{name}_{current_iter}.png') if self.opt['is_train'] else \
                    osp.join(folder, dataset_name, f'{name}_{self.opt["name"]}.png')
                imwrite(tensor2img([preview_image(self.output[0])]), path)
            count += self.lq.shape[0]
            del self.lq, self.output
            if hasattr(self, 'gt'):
                del self.gt
        self.metric_results = {name: sums[name] / max(count, 1) for name in metrics}
        for name, value in self.metric_results.items():
            self._update_best_metric_result(dataset_name, name, value, current_iter)
        if metrics:
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

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

    # ------------------------------------------------------------------------------------------------ state
    def write_accept_heatmap(self) -> Optional[Tuple[str, str]]:
        if not self.is_train or self.mode != 'adl' or self.opt.get('rank', 0) != 0:
            return None
        root = self.opt['path']['experiments_root']
        png, csv = osp.join(root, HEATMAP_PNG), osp.join(root, HEATMAP_CSV)
        self.accept_log.write_csv(csv)
        self.accept_log.write_png(png, title=f'ADL accept rate ({self.gate.name} gate), target {self.domains.target}')
        counts = ', '.join(f'{d}: {a} accepted / {r} rejected' for d, (a, r) in self.accept_log.counts().items())
        self.logger.info(f'ADL source steps: {counts}. Heatmap: {png}, CSV: {csv}')
        return png, csv

    def dump_rank_decisions(self) -> str:
        """Write this rank's decisions and a weight checksum (option adl.write_rank_decisions; DDP checks)."""
        rank = self.opt.get('rank', 0)
        path = osp.join(self.opt['path']['experiments_root'], f'adl_decisions_rank{rank}.json')
        weights = torch.cat([p.detach().reshape(-1).double() for p in self.get_bare_model(self.net_g).parameters()])
        record = {'rank': rank, 'decisions': self.decisions,
                  'weights_sha256': hashlib.sha256(weights.numpy().tobytes()).hexdigest()}
        with open(path, 'w') as f:
            json.dump(record, f)
        return path

    def save(self, epoch: int, current_iter: int) -> None:
        super().save(epoch, current_iter)
        if self.is_train:
            self.write_accept_heatmap()
            if self.write_rank_decisions:
                self.dump_rank_decisions()

    def _resume_options(self) -> Dict[str, Any]:
        """The options a training state depends on, as this run uses them (None: not used here)."""
        sampler = getattr(self, 'sampler', None)
        return {
            'adl.mode': self.mode,
            'adl.gate.criterion': self.gate.name,
            'adl.gate.queue_size': getattr(self.gate, 'queue_size', None),
            'adl.gate.tolerance': getattr(self.gate, 'tolerance', None),
            'adl.gate.every': self.gate_every,
            'adl.gate.on_reject': self.on_reject,
            'adl.gate.revert_optimizer': self.revert_optimizer,
            'adl.target_batch': self.target_batch,
            'adl.validation.dynamic': self.dynamic_val,
            'adl.validation.start_fraction': sampler.start_fraction if sampler else None,
            'adl.validation.end_fraction': sampler.end_fraction if sampler else None,
            'adl.validation.iso_diverse_below': sampler.diverse_below if sampler else None,
            'datasets.train.target_pairs': list(self.domains.target_indices),
        }

    def extra_training_state(self) -> Dict[str, Any]:
        chunk = dict(self.chunk)
        state = {
            'schedule': [self.schedule.pretrain_iters, self.schedule.adapt_iters, self.schedule.finetune_iters],
            'mode': self.mode,
            'gate': self.gate.state_dict(),
            'shared_gen': self.shared_gen.get_state(),
            'accept_log': self.accept_log.state_dict(),
            'chunk': chunk,
            'fixed_val': self.fixed_val,
            'nan_skips': self.nan_skips,
            'decisions': list(self.decisions),
            'options': self._resume_options(),  # checked on resume (adl/resume_options.py)
            'target_left_out': list(self.target_left_out),
        }
        if chunk['pos'] > 0:  # checkpoint inside a gated chunk: the revert point must survive
            state['snapshot'] = self.snapshot.state_dict()
        return state

    def load_extra_training_state(self, state: Dict[str, Any]) -> None:
        saved = StageSchedule(*state['schedule'])
        if saved != self.schedule:
            if self._schedule_explicit:
                self.logger.warning(f'ADL: resuming with stages {self.schedule}, the saved run had {saved}')
            else:
                self.schedule = saved
        in_use = list(state['chunk'].get('val') or []) + list(state['chunk'].get('train') or []) + \
            [i for part in (state.get('fixed_val') or []) for i in part]
        try:
            notes = compare_options(state.get('options') or {'adl.mode': state['mode']}, self._resume_options())
            notes += compare_left_out(state.get('target_left_out') or [], self.target_left_out, in_use)
        except ResumeMismatch as err:
            raise OptionError(str(err)) from err
        for note in notes:
            self.logger.warning(f'ADL: {note}')
        try:
            self.gate.load_state_dict(state['gate'])
        except KeyError as err:  # a state saved before the options were recorded, with another criterion
            raise OptionError(f"option 'adl.gate.criterion': the training state's gate state has no {err} and was "
                              f"not written by the '{self.gate.name}' gate; resume with the saved criterion, or "
                              'start a new run under another name') from err
        self.shared_gen.set_state(state['shared_gen'])
        self.accept_log.load_state_dict(state['accept_log'])
        self.chunk = dict(state['chunk'])
        self.fixed_val = state.get('fixed_val')
        self.nan_skips = int(state.get('nan_skips', 0))
        self.decisions = [tuple(d) for d in state.get('decisions', [])]
        if 'snapshot' in state:
            self.snapshot.load_state_dict(state['snapshot'])


@torch.no_grad()
def evaluate_net(net: torch.nn.Module, dataset, device: Optional[torch.device] = None,
                 keep_outputs: int = 0) -> Dict[str, Any]:
    """PSNR/SSIM (float, data range 1) of ``net`` over every item of ``dataset`` (items: lq, gt[, sensor, iso]).

    Metadata go to the net only if its forward takes them. Returns per-image lists, their means, and the
    first ``keep_outputs`` (lq, output, gt) triples for pictures."""
    device = device or torch.device('cpu')
    names = metadata_args(net)
    was_training = net.training
    net.eval()
    psnrs, ssims, kept = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        lq = torch.as_tensor(item['lq'])[None].to(device)
        gt = torch.as_tensor(item['gt'])[None].to(device)
        kwargs = {k: torch.as_tensor(item[k]).reshape(1).to(device) for k in names if item.get(k) is not None}
        out = net(lq, **kwargs).clamp(0, 1)
        psnrs.append(float(calculate_psnr_pt(out, gt, 0)))
        ssims.append(float(calculate_ssim_pt(out, gt, 0)))
        if i < keep_outputs:
            kept.append((lq[0].cpu(), out[0].cpu(), gt[0].cpu()))
    net.train(was_training)
    return {'psnr': sum(psnrs) / len(psnrs), 'ssim': sum(ssims) / len(ssims), 'psnr_per_image': psnrs,
            'ssim_per_image': ssims, 'outputs': kept}
