"""ADL's stage 2 as one plain-PyTorch unit: gated chunks of source steps, kept or reverted exactly.

The paper (Qian et al., NeurIPS 2024, Alg. 1): every stage-2 iteration picks a source domain, redraws the
validation subset V' from the small target set, takes a step on a source batch, scores the new weights on V'
and keeps them only if the gate accepts; otherwise the step is undone.

Our choices (DESIGN.md section 2):

* a **chunk** of ``every`` steps (default 1) shares one domain, one V' and one decision;
* each step trains on the source batch *joined with* target patches from outside V' (T_train);
* a revert restores weights **and** optimizer state bit for bit (:class:`~.snapshot.TrainingSnapshot`);
* ``on_reject: target_step`` keeps what the target patches alone would have done: every step of the chunk is
  run as two backward passes (target part first) and the target part's gradient is recorded, so a rejected
  chunk is reverted and then replays those gradients with the steps' own learning rates;
* the ``paired_target`` gate (:attr:`~.gate.Gate.against_target_step`) scores that target-only path before
  deciding and keeps whichever of the two scored better.

One chunk, read top to bottom::

    chunk = adaptation.begin_chunk(progress, score)       # domain, V'/T_train, baseline score, snapshot
    for each step:  adaptation.step(losses, all_finite)   # one optimizer step (target gradient recorded)
    decision = adaptation.finish(score, agree)            # candidate score, gate, keep / revert / replay

The caller owns the data and the net's forward: it passes loss closures and a scoring function
(mean PSNR on given target pairs). DDP enters only through ``all_finite`` (every rank's loss finite?) and
``agree`` (one decision for all ranks); both default to single-process identity.
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from basicsr_adl.adl.config import ADLConfig
from basicsr_adl.adl.gate import Gate, build_gate
from basicsr_adl.adl.snapshot import TrainingSnapshot
from basicsr_adl.adl.validation_sampler import DynamicValidationSampler
from basicsr_adl.options_schema import ON_REJECT, OptionError

LossFn = Callable[[], torch.Tensor]
Scorer = Callable[[List[int]], float]  # mean score (PSNR) of the live weights on these target pairs
# (mean score, its gradient for each of the module's parameters) of the live weights on these target pairs
ScoreGradient = Callable[[List[int]], Tuple[float, List[Optional[torch.Tensor]]]]
Vote = Callable[[bool], bool]  # a flag made identical on every replica (all-reduce or broadcast)


def single_process(flag: bool) -> bool:
    """The ``all_finite`` / ``agree`` of a run without DDP: the flag as it is."""
    return flag


@dataclass(frozen=True)
class StepResult:
    """What one guarded optimizer step did: the summed (detached) loss, and whether the step was taken."""
    loss: torch.Tensor
    taken: bool


def guarded_step(optimizer: torch.optim.Optimizer, losses: Sequence[LossFn], all_finite: Vote = single_process,
                 after_first: Optional[Callable[[], None]] = None) -> StepResult:
    """zero_grad, backward each loss closure in turn (gradients add up), then step unless the summed loss is
    non-finite on any replica, in which case the gradients are dropped and the weights stay as they were.

    ``after_first`` runs right after the first closure's backward (used to record the target part's gradient)."""
    optimizer.zero_grad()
    total: Any = 0.0
    for i, loss_fn in enumerate(losses):
        loss = loss_fn()
        loss.backward()
        total = total + loss.detach()
        if i == 0 and after_first is not None:
            after_first()
    if not all_finite(bool(torch.isfinite(torch.as_tensor(total)))):
        optimizer.zero_grad()
        return StepResult(torch.as_tensor(total), False)
    optimizer.step()
    return StepResult(torch.as_tensor(total), True)


@dataclass
class TargetStep:
    """The target part of one taken step: its gradient (scaled to a target-only mean loss) and learning rates."""
    grads: List[Optional[torch.Tensor]]
    lrs: List[float]


@dataclass
class ChunkRecord:
    """The chunk in flight (``domain`` None: none; the next step begins one); ``pos``: steps taken in it."""
    pos: int = 0
    domain: Optional[str] = None
    val: List[int] = field(default_factory=list)  # V': scored, never trained on
    train: List[int] = field(default_factory=list)  # T_train: the target patches joined to source batches
    baseline: Optional[float] = None  # what the candidate is compared with (previous weights / target-only step)
    target_steps: List[TargetStep] = field(default_factory=list)

    def state_dict(self) -> Dict[str, Any]:
        """Plain containers (the keys of the training states written before this class existed)."""
        if self.domain is None:
            return {'pos': 0}
        return {'pos': self.pos, 'domain': self.domain, 'val': list(self.val), 'train': list(self.train),
                'prev': self.baseline,
                'target_steps': [{'grads': s.grads, 'lr': list(s.lrs)} for s in self.target_steps]}

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> 'ChunkRecord':
        if state.get('domain') is None:
            return cls()
        return cls(int(state['pos']), state['domain'], list(state['val']), list(state['train']), state.get('prev'),
                   [TargetStep(list(s['grads']), list(s['lr'])) for s in state.get('target_steps') or []])


@dataclass(frozen=True)
class Decision:
    """The outcome of a chunk."""
    domain: str
    accepted: bool
    candidate: float  # the chunk's weights on V'
    baseline: Optional[float]  # what they were compared with (None: the gate needs no comparison)
    moved: bool  # the live weights are a new step past the chunk start (an EMA should follow them)
    exact_agrees: Optional[bool] = None  # linearised gate, checked decisions: the exact scores decide the same


class LinearScore:
    """A first-order model of the V' score around ``reference`` weights: ``value + g . (theta - reference)``.

    The weight differences are taken in the weights' own precision (two nearby floats subtract exactly) and the
    per-tensor products summed in float64; one prediction is a few fused element-wise passes over the weights."""

    def __init__(self, value: float, grads: Sequence[Optional[torch.Tensor]], params: Sequence[torch.Tensor],
                 val: Sequence[int] = (), train: Sequence[int] = ()) -> None:
        self.value = float(value)
        self.val, self.train = list(val), list(train)  # the V' / T_train split the model was taken on
        kept = [(g, p) for g, p in zip(grads, params) if g is not None]
        self.grads = [g.detach().to(p.dtype) for g, p in kept]
        self.reference = [p.detach().clone() for _, p in kept]
        self.used = [g is not None for g in grads]  # which of the module's parameters the model covers

    def predict(self, params: Sequence[torch.Tensor]) -> float:
        live = [p.detach() for p, used in zip(params, self.used) if used]
        if not live:
            return self.value
        products = torch._foreach_mul(torch._foreach_sub(live, self.reference), self.grads)
        return self.value + float(sum(t.sum(dtype=torch.float64) for t in products))

    def state_dict(self) -> Dict[str, Any]:
        return {'value': self.value, 'grads': self.grads, 'reference': self.reference, 'used': self.used,
                'val': self.val, 'train': self.train}

    @classmethod
    def from_state_dict(cls, state: Dict[str, Any]) -> 'LinearScore':
        model = cls(state['value'], [], [], state['val'], state['train'])
        model.grads, model.reference, model.used = list(state['grads']), list(state['reference']), list(state['used'])
        return model


class GateStateMismatch(ValueError):
    """A saved gate state that this run's gate cannot load (another criterion wrote it)."""


class GatedAdaptation:
    """Stage 2's state machine: owns the gate, the V' sampler, the revert snapshots and the chunk in flight.

    ``generator`` is the shared generator (identical on every rank) for the domain and V' draws; callers may
    draw from it too (the fine-tuning baseline's domain choice), it is saved here. ``sampler`` may be None
    when no chunk will run (the baselines): only the state is then kept."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer, gate: Gate,
                 sampler: Optional[DynamicValidationSampler], domains: Sequence[str], generator: torch.Generator,
                 every: int = 1, on_reject: str = 'revert', revert_optimizer: bool = True,
                 dynamic_val: bool = True) -> None:
        if every < 1:
            raise ValueError(f'every must be >= 1, got {every}')
        if on_reject not in ON_REJECT:
            raise ValueError(f"on_reject must be one of {', '.join(ON_REJECT)}, got '{on_reject}'")
        self.module, self.optimizer, self.gate, self.sampler = module, optimizer, gate, sampler
        self.domains = list(domains)
        self.generator = generator
        self.every, self.on_reject, self.revert_optimizer, self.dynamic_val = every, on_reject, revert_optimizer, \
            dynamic_val
        self.snapshot = TrainingSnapshot(module, optimizer)  # the chunk start
        self._rival: Optional[TrainingSnapshot] = None  # the joint path, parked while its target-only rival is scored
        self._parked_in_snapshot = False  # ... or parked in the chunk-start snapshot itself (exchanged)
        self.chunk = ChunkRecord()
        self.fixed_val: Optional[Tuple[List[int], List[int]]] = None  # validation.dynamic: false
        # linearised gate: the score model, chunks since it was refreshed, decisions taken, (checked, agreed)
        self.linear: Optional[LinearScore] = None
        self.chunks_since_refresh, self.linear_decisions, self.agreement = 0, 0, [0, 0]

    @classmethod
    def from_config(cls, config: ADLConfig, module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    domains: Sequence[str], seed: int, target_isos: Optional[Sequence[float]] = None,
                    excluded: Sequence[int] = ()) -> 'GatedAdaptation':
        """From the typed ``adl:`` options. ``target_isos`` (one per target pair; None: no chunk will run, as in
        the baselines) sizes the V' sampler; ``excluded`` pairs are never drawn. Errors name the option."""
        gate_cfg, val_cfg = config.gate, config.validation
        try:
            gate = build_gate(gate_cfg.criterion, gate_cfg.queue_size, float(gate_cfg.tolerance),
                              gate_cfg.refresh_every, gate_cfg.check_every)
        except ValueError as err:
            raise OptionError(f"option 'adl.gate': {err}") from err
        sampler = None
        if target_isos is not None:
            try:
                sampler = DynamicValidationSampler(len(target_isos), target_isos, float(val_cfg.start_fraction),
                                                   float(val_cfg.end_fraction), val_cfg.iso_diverse_below,
                                                   excluded=excluded)
            except ValueError as err:
                raise OptionError(f"option 'adl.validation': {err}") from err
        return cls(module, optimizer, gate, sampler, domains, torch.Generator().manual_seed(int(seed)),
                   gate_cfg.every, gate_cfg.on_reject, gate_cfg.revert_optimizer, val_cfg.dynamic)

    @property
    def replays_target(self) -> bool:
        """Whether steps must come as [target part, source part] closures (their target gradient is recorded)."""
        return self.on_reject == 'target_step'

    @property
    def in_chunk(self) -> bool:
        return self.chunk.domain is not None

    def chunk_full(self) -> bool:
        return self.chunk.pos >= self.every

    # ------------------------------------------------------------------------------------------ a chunk
    def begin_chunk(self, progress: float, score: Scorer, gradient: Optional[ScoreGradient] = None) -> ChunkRecord:
        """The chunk in flight, or a new one: a source domain and V' from the shared generator, the score the
        gate compares with (if it needs one before the step), and the revert point. A linearised gate refreshes
        its score model here (``gradient`` on this chunk's V') every ``refresh_every`` chunks."""
        if self.in_chunk:
            return self.chunk
        if self.sampler is None or not self.domains:
            raise RuntimeError('GatedAdaptation.begin_chunk needs a V\' sampler and at least one source domain')
        domain = self.domains[int(torch.randint(len(self.domains), (1,), generator=self.generator))]
        refresh = self.gate.linearised and (self.linear is None or self.chunks_since_refresh >= self.gate.refresh_every)
        if self.gate.linearised and not refresh:  # the score model's V' stays V' (never trained on) until refreshed
            val, train = self.linear.val, self.linear.train
        elif self.dynamic_val:
            val, train = self.sampler.sample(progress, self.generator)
        else:
            if self.fixed_val is None:
                self.fixed_val = self.sampler.sample(0.0, self.generator)
            val, train = self.fixed_val
        baseline = None
        if self.gate.needs_previous or (self.gate.needs_seed and not self.gate.started):
            baseline = score(val)
            if not self.gate.started:
                self.gate.start(baseline)
        elif not self.gate.started:
            self.gate.start(float('nan'))
        if refresh:
            if gradient is None:
                raise ValueError(f'the {self.gate.name} gate needs a score gradient function')
            value, grads = gradient(val)
            self.linear = LinearScore(value, grads, list(self.module.parameters()), val, train)
            self.chunks_since_refresh = 0
        if self.gate.linearised:
            self.chunks_since_refresh += 1
        self.snapshot.capture()
        self.chunk = ChunkRecord(0, domain, list(val), list(train), baseline)
        return self.chunk

    def step(self, losses: Sequence[LossFn], all_finite: Vote = single_process,
             target_grad_scale: float = 1.0) -> StepResult:
        """One step of the chunk. ``losses``: one closure for the joint batch, or (when :attr:`replays_target`)
        the target part then the source part, weighted so that they add up to the joint loss;
        ``target_grad_scale`` turns the target part's gradient into that of a target-only loss."""
        if not self.in_chunk:
            raise RuntimeError('GatedAdaptation.step called before begin_chunk')
        if self.replays_target and len(losses) != 2:
            raise ValueError(f"on_reject 'target_step' needs [target part, source part] losses, got {len(losses)}")
        grads: List[Optional[torch.Tensor]] = []

        def keep_target_grad() -> None:
            live = [q.grad for q in self.module.parameters()]
            scaled = iter(torch._foreach_mul([g.detach() for g in live if g is not None], target_grad_scale))
            grads[:] = [None if g is None else next(scaled) for g in live]

        result = guarded_step(self.optimizer, losses, all_finite, keep_target_grad if self.replays_target else None)
        if result.taken and self.replays_target:  # only steps actually taken are replayed
            self.chunk.target_steps.append(TargetStep(grads, [g['lr'] for g in self.optimizer.param_groups]))
        self.chunk.pos += 1
        return result

    def finish(self, score: Scorer, agree: Vote = single_process) -> Decision:
        """Score the chunk's weights on V', let the gate decide (one decision for all replicas through
        ``agree``), and leave the live weights as decided: the chunk's, the chunk start's, or the chunk start's
        followed by the target-only replay. Clears the chunk."""
        chunk = self.chunk
        predict, exact = score, None
        if self.gate.linearised:
            self.linear_decisions += 1
            predict = lambda _val: self.linear.predict(list(self.module.parameters()))  # noqa: E731
            if self.gate.check_every and self.linear_decisions % self.gate.check_every == 0:
                exact = [score(chunk.val)]
        candidate = predict(chunk.val)
        replayable = bool(chunk.target_steps)
        if self.gate.against_target_step and replayable:
            chunk.baseline = self._score_target_only(chunk.val, predict)  # the target-only path is now live
            if exact is not None:
                exact.append(score(chunk.val))
        elif exact is not None:
            exact = None  # nothing to compare with: the check is not counted
        accepted = agree(self.gate.decide(candidate, chunk.baseline if chunk.baseline is not None else candidate))
        agrees = None
        if exact is not None and len(exact) == 2:  # the same gate rule on the exact scores (a stateless gate)
            agrees = self.gate.decide(exact[0], exact[1]) == accepted
            self.agreement[0] += 1
            self.agreement[1] += int(agrees)
        moved = accepted
        if self.gate.against_target_step:
            if accepted and replayable:  # back to the joint path
                if not self._parked_in_snapshot:
                    self._rival.restore()
                elif not self.snapshot.exchange():
                    raise RuntimeError('GatedAdaptation: the joint step parked in the snapshot could not be swapped '
                                       'back (the optimizer state changed shape during the target-only replay)')
            moved = True
        elif not accepted:
            self.snapshot.restore() if self.revert_optimizer else self.snapshot.restore_weights()
            if self.replays_target and replayable:
                self._replay_target_steps()
                moved = True
        decision = Decision(chunk.domain, accepted, candidate, chunk.baseline, moved, agrees)
        self.chunk = ChunkRecord()
        return decision

    def _score_target_only(self, val: List[int], score: Scorer) -> float:
        """Park the joint path, go back to the chunk start, replay the target-only steps; their score on V'."""
        self._parked_in_snapshot = self.snapshot.exchange()  # chunk start live, the joint path in the snapshot
        if not self._parked_in_snapshot:  # e.g. the optimizer's first step created its state: copy it aside
            if self._rival is None:
                self._rival = TrainingSnapshot(self.module, self.optimizer)
            self._rival.capture()
            self.snapshot.restore()
        self._replay_target_steps()
        return score(val)

    def _replay_target_steps(self) -> None:
        """The chunk's steps again, each from its recorded target gradient and learning rates (exact for a chunk
        of one step; for longer chunks the gradients were taken along the joint path). The live learning rate
        is put back afterwards: it is the scheduler's, not the chunk start's."""
        live_lr = [g['lr'] for g in self.optimizer.param_groups]
        for record in self.chunk.target_steps:
            self.optimizer.zero_grad()
            for group, lr in zip(self.optimizer.param_groups, record.lrs):
                group['lr'] = lr
            for q, g in zip(self.module.parameters(), record.grads):
                q.grad = None if g is None else g.to(q.device)
            self.optimizer.step()
        for group, lr in zip(self.optimizer.param_groups, live_lr):
            group['lr'] = lr
        self.optimizer.zero_grad()
        self.chunk.target_steps = []

    # ------------------------------------------------------------------------------------------ state
    def settings(self) -> Dict[str, Any]:
        """The settings a saved state depends on, by option name under ``adl.`` (None: not used here)."""
        sampler = self.sampler
        return {
            'gate.criterion': self.gate.name,
            'gate.queue_size': getattr(self.gate, 'queue_size', None),
            'gate.tolerance': getattr(self.gate, 'tolerance', None),
            'gate.every': self.every,
            'gate.refresh_every': getattr(self.gate, 'refresh_every', None),
            'gate.check_every': getattr(self.gate, 'check_every', None),
            'gate.on_reject': self.on_reject,
            'gate.revert_optimizer': self.revert_optimizer,
            'validation.dynamic': self.dynamic_val,
            'validation.start_fraction': sampler.start_fraction if sampler else None,
            'validation.end_fraction': sampler.end_fraction if sampler else None,
            'validation.iso_diverse_below': sampler.diverse_below if sampler else None,
        }

    def state_dict(self) -> Dict[str, Any]:
        """Gate, shared generator, fixed V', the chunk in flight and (inside a chunk) its revert point."""
        state = {'gate': self.gate.state_dict(), 'shared_gen': self.generator.get_state(),
                 'chunk': self.chunk.state_dict(), 'fixed_val': self.fixed_val}
        if self.in_chunk:
            state['snapshot'] = self.snapshot.state_dict()
        if self.gate.linearised:
            state['linear'] = {'model': self.linear.state_dict() if self.linear else None,
                               'since_refresh': self.chunks_since_refresh, 'decisions': self.linear_decisions,
                               'agreement': list(self.agreement)}
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        try:
            self.gate.load_state_dict(state['gate'])
        except KeyError as err:
            raise GateStateMismatch(f"the training state's gate state has no {err} and was not written by the "
                                    f"'{self.gate.name}' gate") from err
        self.generator.set_state(state['shared_gen'])
        self.chunk = ChunkRecord.from_state_dict(state['chunk'])
        fixed = state.get('fixed_val')
        self.fixed_val = (list(fixed[0]), list(fixed[1])) if fixed is not None else None
        if 'snapshot' in state:
            self.snapshot.load_state_dict(state['snapshot'])
        linear = state.get('linear')
        if self.gate.linearised and linear is not None:
            self.linear = LinearScore.from_state_dict(linear['model']) if linear['model'] else None
            self.chunks_since_refresh, self.linear_decisions = int(linear['since_refresh']), int(linear['decisions'])
            self.agreement = [int(v) for v in linear['agreement']]

