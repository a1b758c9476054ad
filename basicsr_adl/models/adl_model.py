"""ADLModel: Adaptive Domain Learning (Qian et al., NeurIPS 2024) as a BasicSR model - a thin adapter.

Stage 2's state machine is :class:`~basicsr_adl.adl.gated_adaptation.GatedAdaptation`, the options
:class:`~basicsr_adl.adl.config.ADLConfig`, the V' crops :class:`~basicsr_adl.adl.target_crops.TargetCrops`;
test-time metadata, float metrics and camera RAW outputs come from
:class:`~basicsr_adl.models.sensor_aware.SensorAwareSRModel`. This class draws the batches from
:class:`~basicsr_adl.data.multi_domain_dataset.MultiDomainDataset` (BasicSR's loader only paces the loop; shared
choices from the core's generator, per-rank samples from the global RNG), builds the loss closures, scores on
the crops, and keeps EMA, logs, heatmap and training state. ``adl.mode``: ``adl``; ``finetune`` (ungated source
batches for stages 1+2, then target); ``target_only``.
"""
from collections import OrderedDict
from os import path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from basicsr_adl.adl.accept_log import AcceptLog, write_rank_decisions
from basicsr_adl.adl.config import ADLConfig
from basicsr_adl.adl.gated_adaptation import GatedAdaptation, GateStateMismatch, StepResult, guarded_step
from basicsr_adl.adl.resume_options import ResumeMismatch, compare_left_out, compare_options
from basicsr_adl.adl.schedule import SOURCE_ADAPT, TARGET_FINETUNE, StageSchedule
from basicsr_adl.adl.target_crops import TargetCrops
from basicsr_adl.compat.dist import all_ranks_true, collective_device, rank0_decides
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.data.multi_domain_dataset import MultiDomainDataset
from basicsr_adl.metadata import METADATA_ARGS, check_domain_metadata, clamp_iso_input, net_metadata
from basicsr_adl.metrics import psnr_per_image
from basicsr_adl.models.sensor_aware import SensorAwareSRModel


@MODEL_REGISTRY.register()
class ADLModel(SensorAwareSRModel):
    """SRModel with ADL's three-stage training and gated source steps (see module docstring)."""

    def __init__(self, opt: Dict[str, Any]) -> None:
        self.config = ADLConfig.from_options(opt)  # adl:, checked, with every default filled
        super().__init__(opt)
        self._setup_metadata()

    def _setup_metadata(self) -> None:
        self.net_meta = net_metadata(self.get_bare_model(self.net_g), self.config.use_metadata,
                                     self.opt['network_g']['type'])

    # ------------------------------------------------------------------------------------------------ setup
    def init_training_settings(self) -> None:
        super().init_training_settings()
        self._setup_metadata()
        cfg, bare = self.config, self.get_bare_model(self.net_g)
        self.logger, self.mode = get_root_logger(), cfg.mode
        total = int(self.opt['train']['total_iter'])
        try:
            self.schedule = StageSchedule(*cfg.stage_lengths(total))
        except ValueError as err:
            raise OptionError(f"option 'adl.*_iters': {err}") from err
        if self.schedule.total != total:
            self.logger.warning(f'ADL stage lengths sum to {self.schedule.total} but train.total_iter is {total}; '
                                'stage 3 runs until total_iter.')
        dopt = self.opt['datasets']['train']  # a MultiDomainDataset (checked by the options schema)
        self.domains = MultiDomainDataset.from_options(dopt)  # the loader's, built once
        target, sources = self.domains.target, self.domains.sources
        if self.mode != 'target_only' and not sources:
            raise OptionError(f"option 'datasets.train.sources': adl.mode '{self.mode}' needs at least one source "
                              'domain besides the target')
        self.batch_size, self.target_batch = int(dopt['batch_size_per_gpu']), int(cfg.target_batch)
        n_target = self.domains.domain_size(target)
        self.targets = TargetCrops((self.domains.target_eval_item(i) for i in range(n_target)), cfg.val_crop,
                                   lambda item, part: self.domains.source_of(target, item, part),
                                   lambda msg: self.logger.warning(f"ADL ('{target}'): {msg}"))
        gated = self.mode == 'adl' and self.schedule.adapt_iters > 0  # the baselines never gate
        self.targets.require(2 if gated else 1, f"datasets.train.domains.{target}", f"adl.mode '{self.mode}'")
        self.metadata_fallbacks[0] = {k: self.targets.crops[0][k] for k in METADATA_ARGS}
        check_domain_metadata(bare, self.net_meta, {target: self.domains.target_eval_item(0),
                                                    **{s: self.domains.train_item(s, 0) for s in sources}})
        self._set_iso_range(bare)
        self.adaptation = self._build_adaptation(bare, gated, n_target)
        self.accept_log = AcceptLog(sources or ['-'], max(self.schedule.adapt_iters, 1), cfg.heatmap_epochs)
        self.log_dict, self.nan_skips = OrderedDict(), 0
        self.decisions: List[Tuple] = []  # (iter, domain, accepted, candidate, baseline): adl.write_rank_decisions
        self.logger.info(f'ADL: mode={self.mode}, stages {self.schedule}, target={target} ({n_target} pairs), '
                         f'sources={sources}, gate={cfg.gate.criterion} (every {cfg.gate.every}), '
                         f'metadata to net: {list(self.net_meta) or "none"}')

    def _build_adaptation(self, bare: torch.nn.Module, gated: bool, n_target: int) -> GatedAdaptation:
        if gated and self.config.gate.on_reject == 'target_step' and any(
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.net_g.modules()):
            self.logger.warning('ADL: the net has BatchNorm layers; with adl.gate.on_reject: target_step (and the '
                                'paired_target gate) each stage-2 step runs the target and source patches as two '
                                'passes, so batch statistics are per part, not per joint batch')
        if gated and n_target < 2:
            raise OptionError(f"option 'datasets.train.target_pairs': the target '{self.domains.target}' has "
                              f'{n_target} pair(s); ADL needs at least 2 (one for V\', one to train on)')
        seed = int(self.opt.get('manual_seed') or 0) + self.config.seed_offset
        return GatedAdaptation.from_config(self.config, bare, self.optimizer_g, self.domains.sources, seed,
                                           self.targets.isos() if gated else None, self.targets.left_out)

    def _set_iso_range(self, bare: torch.nn.Module) -> None:
        """Clamp the net's ISO input to the ISO range of the pairs this mode trains on (see modulated_unet_arch)."""
        if self.config.clamp_iso and 'iso' in self.net_meta and hasattr(bare, 'set_iso_range'):
            isos = self.targets.isos(self.targets.usable)
            if self.mode != 'target_only':
                isos += [iso for name in self.domains.sources for iso in self.domains.domain_isos(name)]
            span = clamp_iso_input(bare, isos)
            if span is not None:
                self.logger.info(f"ADL: the net's ISO input is clamped to the training ISO range "
                                 f'{span[0]:g}-{span[1]:g}')

    # ------------------------------------------------------------------------------------------------ data
    def feed_data(self, data: Dict[str, Any]) -> None:
        if 'tick' in data and 'lq' not in data:
            return  # training batches are drawn by the model itself
        super().feed_data(data)

    def _draw_batch(self, parts: List[Tuple[str, List[int]]]) -> Dict[str, torch.Tensor]:
        return {k: v.to(self.device) for k, v in self.domains.train_batch(parts).items()}

    @staticmethod
    def _draws(population: Sequence[int], count: int) -> List[int]:
        """Uniform draws with replacement from the per-rank global RNG (saved per rank for resume)."""
        return [population[int(i)] for i in torch.randint(len(population), (count,))] if count > 0 else []

    # ------------------------------------------------------------------------------------------------ training
    def optimize_parameters(self, current_iter: int) -> None:
        stage = self.schedule.stage_at(current_iter)
        self.log_dict = OrderedDict()
        if self.mode == 'adl' and stage == SOURCE_ADAPT:
            self._adapt_step(current_iter)
        else:
            if self.mode == 'finetune' and stage != TARGET_FINETUNE:  # the baseline: ungated source batches
                domain = self.domains.sources[int(torch.randint(len(self.domains.sources), (1,),
                                                                generator=self.adaptation.generator))]
                batch = self._draw_batch([(domain, self._draws(range(self.domains.domain_size(domain)),
                                                               self.batch_size))])
            else:
                batch = self._draw_batch([(self.domains.target, self._draws(self.targets.usable, self.batch_size))])
            self._logged(guarded_step(self.optimizer_g, [self._loss(batch)], self._all_finite))
            self._update_ema()
        self.log_dict['adl_stage'] = float(stage)

    def _adapt_step(self, current_iter: int) -> None:
        """One stage-2 step; the chunk's last step also scores it, lets the gate decide and logs the decision."""
        core = self.adaptation
        chunk = core.begin_chunk(self.schedule.adapt_progress(current_iter), self.score, self.score_gradient)
        source = self._draws(range(self.domains.domain_size(chunk.domain)), self.batch_size)
        batch = self._draw_batch([(chunk.domain, source), (self.domains.target, self._draws(chunk.train,
                                                                                            self.target_batch))])
        losses, scale = self._loss_parts(batch, len(source)) if core.replays_target else ([self._loss(batch)], 1.0)
        self._logged(core.step(losses, self._all_finite, scale))
        if core.chunk_full() or current_iter == self.schedule.pretrain_iters + self.schedule.adapt_iters:
            decision = core.finish(self.score, self._agree)
            if decision.moved:
                self._update_ema()
            self.accept_log.record(decision.domain, decision.accepted, self.schedule.adapt_step(current_iter))
            if self.config.write_rank_decisions:
                self.decisions.append((current_iter, decision.domain, decision.accepted, decision.candidate,
                                       decision.baseline))
            self.log_dict['adl_val_psnr'] = decision.candidate
            self.log_dict['adl_accepted'] = float(decision.accepted)
            if core.agreement[0]:  # paired_target_linear: share of checked decisions the exact scores agree with
                self.log_dict['adl_linear_agreement'] = core.agreement[1] / core.agreement[0]
        for name, (acc, rej) in self.accept_log.counts().items():
            self.log_dict[f'adl_accept/{name}'] = float(acc)
            self.log_dict[f'adl_reject/{name}'] = float(rej)

    def _loss(self, batch: Dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
        return lambda: self.cri_pix(self._forward(self.net_g, batch['lq'], batch), batch['gt'])

    def _loss_parts(self, batch: Dict[str, torch.Tensor], target_from: int) -> Tuple[List[Callable], float]:
        """[target part, source part] closures weighted by their sizes (a mean loss then has the gradient of one
        pass; a summed loss adds up as it is), and the factor that makes the target part a target-only loss."""
        n = batch['lq'].shape[0]
        summed = getattr(self.cri_pix, 'reduction', 'mean') == 'sum'

        def part(rows: slice) -> Callable[[], torch.Tensor]:
            sub = {k: v[rows] for k, v in batch.items()}
            loss, weight = self._loss(sub), sub['lq'].shape[0] / n
            return loss if summed else (lambda: loss() * weight)
        return [part(slice(target_from, n)), part(slice(0, target_from))], 1.0 if summed else n / (n - target_from)

    def _logged(self, step: StepResult) -> None:
        if not step.taken:
            self.nan_skips += 1
            self.logger.warning(f'ADL: non-finite loss ({step.loss.item()}) - step skipped, weights unchanged '
                                f'({self.nan_skips} skipped so far)')
            self.log_dict.update(self.reduce_loss_dict(OrderedDict(l_pix=torch.zeros((), device=self.device))))
            self.log_dict['adl_nan_skips'] = float(self.nan_skips)
            return
        self.log_dict.update(self.reduce_loss_dict(OrderedDict(l_pix=step.loss)))

    def _all_finite(self, finite: bool) -> bool:
        return all_ranks_true(finite, self.device)

    def _agree(self, accept: bool) -> bool:
        return rank0_decides(accept, self.device)

    def _update_ema(self) -> None:
        if getattr(self, 'ema_decay', 0) > 0:
            self.model_ema(decay=self.ema_decay)

    def score(self, indices: List[int]) -> float:
        """Mean PSNR of the current weights over the target crops ``indices`` (sharded over ranks, all-reduced)."""
        return self._scored(indices, gradient=False)[0]

    def score_gradient(self, indices: List[int]) -> Tuple[float, List[torch.Tensor]]:
        """:meth:`score` and its gradient for each parameter of the bare net (paired_target_linear)."""
        return self._scored(indices, gradient=True)

    def _scored(self, indices: List[int], gradient: bool) -> Tuple[float, List[torch.Tensor]]:
        net = self.get_bare_model(self.net_g)
        params = list(net.parameters()) if gradient else []
        distributed = dist.is_available() and dist.is_initialized()
        mine = indices[self.opt.get('rank', 0)::self.opt.get('world_size', 1)] if distributed else indices
        total = torch.zeros(2, dtype=torch.float64, device=collective_device(self.device))
        grads = [torch.zeros_like(p) for p in params]
        was_training = net.training
        net.eval()
        with torch.set_grad_enabled(gradient):
            for lq, gt, meta, count in self.targets.batches(mine, self.device):
                psnr = psnr_per_image(self._forward(net, lq, meta), gt).sum()
                for acc, g in zip(grads, torch.autograd.grad(psnr, params, allow_unused=True) if gradient else []):
                    if g is not None:
                        acc += g
                total[0] += psnr.detach().double().to(total.device)
                total[1] += count
        net.train(was_training)
        flat = torch.cat([total] + [g.reshape(-1).double().to(total.device) for g in grads])
        if distributed:
            dist.all_reduce(flat)
        sizes = [p.numel() for p in params]
        parts = flat[2:].split(sizes) if params else []
        return float(flat[0] / flat[1]), [(t / flat[1]).reshape(p.shape).to(p.device) for t, p in zip(parts, params)]

    # ------------------------------------------------------------------------------------------------ state
    def write_accept_heatmap(self) -> Optional[Tuple[str, str]]:
        if not self.is_train or self.mode != 'adl' or self.opt.get('rank', 0) != 0:
            return None
        png, csv = self.accept_log.write(self.opt['path']['experiments_root'], f'ADL accept rate '
                                         f'({self.adaptation.gate.name} gate), target {self.domains.target}')
        self.logger.info(f'ADL source steps: {self.accept_log.summary()}. Heatmap: {png}, CSV: {csv}')
        return png, csv

    def dump_rank_decisions(self) -> str:
        """Write this rank's decisions and a weight checksum (option adl.write_rank_decisions; DDP checks)."""
        rank = self.opt.get('rank', 0)
        return write_rank_decisions(osp.join(self.opt['path']['experiments_root'], f'adl_decisions_rank{rank}.json'),
                                    rank, self.decisions, self.get_bare_model(self.net_g).parameters())

    def save(self, epoch: int, current_iter: int) -> None:
        super().save(epoch, current_iter)
        if self.is_train:
            self.write_accept_heatmap()
            if self.config.write_rank_decisions:
                self.dump_rank_decisions()

    def _resume_options(self) -> Dict[str, Any]:
        """The options a training state depends on, as this run uses them (None: not used here)."""
        return {'adl.mode': self.mode, 'adl.target_batch': self.target_batch,
                **{f'adl.{k}': v for k, v in self.adaptation.settings().items()},
                'datasets.train.target_pairs': list(self.domains.target_indices)}

    def extra_training_state(self) -> Dict[str, Any]:
        return {'schedule': [self.schedule.pretrain_iters, self.schedule.adapt_iters, self.schedule.finetune_iters],
                'mode': self.mode, 'accept_log': self.accept_log.state_dict(), 'nan_skips': self.nan_skips,
                'decisions': list(self.decisions), 'options': self._resume_options(),  # checked on resume
                'target_left_out': list(self.targets.left_out), **self.adaptation.state_dict()}

    def load_extra_training_state(self, state: Dict[str, Any]) -> None:
        saved = StageSchedule(*state['schedule'])
        if saved != self.schedule:
            if self.config.explicit_stages:
                self.logger.warning(f'ADL: resuming with stages {self.schedule}, the saved run had {saved}')
            else:
                self.schedule = saved
        in_use = list(state['chunk'].get('val') or []) + list(state['chunk'].get('train') or []) + \
            [i for part in (state.get('fixed_val') or []) for i in part]
        try:
            notes = compare_options(state.get('options') or {'adl.mode': state['mode']}, self._resume_options())
            notes += compare_left_out(state.get('target_left_out') or [], self.targets.left_out, in_use)
            self.adaptation.load_state_dict(state)
        except ResumeMismatch as err:
            raise OptionError(str(err)) from err
        except GateStateMismatch as err:  # a state saved before the options were recorded, another criterion
            raise OptionError(f"option 'adl.gate.criterion': {err}; resume with the saved criterion, or start a "
                              'new run under another name') from err
        for note in notes:
            self.logger.warning(f'ADL: {note}')
        self.accept_log.load_state_dict(state['accept_log'])
        self.nan_skips = int(state.get('nan_skips', 0))
        self.decisions = [tuple(d) for d in state.get('decisions', [])]
