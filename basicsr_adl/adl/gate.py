"""Accept/revert criteria for ADL's stage-2 source steps.

Every stage-2 step is taken, then the candidate weights are scored (mean PSNR on the dynamic validation set
V') and a gate decides whether to keep them or revert. Criteria (option ``adl.gate.criterion``):

* ``paper`` - Qian et al. (NeurIPS 2024), as written: accept when the candidate's PSNR on V' is above the
  mean of a priority queue of past accepted PSNRs (at most ``queue_size`` values, seeded with the pretrained
  model's PSNR); an accepted PSNR is pushed and the lowest popped when full. Because V' changes every
  iteration and per-image PSNR differs by several dB, the queue collects easy subsets and the gate stalls
  (DESIGN.md section 2); kept for comparison.
* ``paired`` - the project's default: the previous weights and the candidate are scored on the *same* V' in
  the same iteration, which removes per-image difficulty; accept unless the candidate is worse than the
  previous weights by more than ``tolerance`` dB.
* ``paired_target`` - paired, but against the counterfactual that matters: the candidate (a step on source +
  target patches) is compared on the same V' with the step the target patches alone would take, and a rejected
  step keeps that target-only step. A source batch survives only when it adds to the target data.
* ``paired_queue`` - a queue of paired gains (candidate - previous): accept when the gain is at least the
  mean of the last ``queue_size`` paired gains minus ``tolerance`` (seeded with 0). Adapts the bar to how
  much source steps currently help.
* ``paired_target_linear`` - ``paired_target`` decided on a first-order model of the V' score instead of two
  forward passes over V' per decision (our choice, issue #18): the gradient g of the mean V' PSNR is taken at
  a chunk start every ``refresh_every`` chunks, and each candidate's score is predicted as
  ``PSNR(theta_ref) + g . (theta - theta_ref)``. V' and T_train stay those of the refresh chunk until the next
  refresh, so the pairs the model scores are never trained on. Both candidates are still built exactly (the
  joint step and the target-only replay), so only the comparison is approximate; every ``check_every``-th
  decision is also scored exactly (on that V') and the agreement is logged.
* ``always`` - accept everything (plain joint training with the same data schedule; an ablation).
"""
from typing import Any, Dict, List, Optional


class Gate:
    """Base: a deterministic decision from scores that are identical on every rank."""

    name = 'base'
    #: whether :meth:`decide` needs the previous weights' score on the same V'
    needs_previous = False
    #: whether :meth:`decide` compares with the target-only step's score instead (ADLModel computes it)
    against_target_step = False
    #: whether :meth:`start` needs the pretrained weights' score
    needs_seed = False
    #: whether candidates are scored by a first-order model of the V' score (see LinearPairedTargetGate)
    linearised = False

    def __init__(self) -> None:
        self.started = False

    def start(self, pretrained_score: float) -> None:
        """Called once, at the first stage-2 decision, with the weights' score before any source step."""
        self.started = True

    def decide(self, candidate: float, previous: Optional[float] = None) -> bool:
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        return {'started': self.started}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.started = bool(state['started'])


class PaperQueueGate(Gate):
    """The paper's gate: candidate PSNR > mean of a priority queue of the highest accepted PSNRs."""

    name = 'paper'
    needs_seed = True

    def __init__(self, queue_size: int = 10) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        self.queue_size = int(queue_size)
        self.queue: List[float] = []

    def start(self, pretrained_score: float) -> None:
        super().start(pretrained_score)
        self.queue = [float(pretrained_score)]

    def threshold(self) -> float:
        return sum(self.queue) / len(self.queue)

    def decide(self, candidate: float, previous: Optional[float] = None) -> bool:
        if not self.started:
            raise RuntimeError('PaperQueueGate.decide called before start()')
        accept = float(candidate) > self.threshold()
        if accept:
            self.queue.append(float(candidate))
            if len(self.queue) > self.queue_size:
                self.queue.remove(min(self.queue))
        return accept

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), 'queue': list(self.queue)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.queue = [float(v) for v in state['queue']]
        while len(self.queue) > self.queue_size:  # saved with a longer queue: drop as a push would
            self.queue.remove(min(self.queue))


class PairedGate(Gate):
    """Accept unless the candidate scores worse than the previous weights on the same V' by > tolerance dB."""

    name = 'paired'
    needs_previous = True

    def __init__(self, tolerance: float = 0.0) -> None:
        super().__init__()
        if tolerance < 0:
            raise ValueError(f'tolerance must be >= 0 dB, got {tolerance}')
        self.tolerance = float(tolerance)

    def decide(self, candidate: float, previous: Optional[float] = None) -> bool:
        if previous is None:
            raise ValueError('the paired gate needs the previous weights\' score on the same V\'')
        return float(candidate) >= float(previous) - self.tolerance


class PairedTargetGate(PairedGate):
    """Accept the joint (source + target) step unless it scores worse, on the same V', than the step its target
    patches alone would have taken (``previous`` = that target-only step's score); a rejected step keeps the
    target-only step. So a source batch is kept only when it adds to what the target data do by themselves."""

    name = 'paired_target'
    needs_previous = False
    against_target_step = True

    def decide(self, candidate: float, previous: Optional[float] = None) -> bool:
        # strict: a tie (e.g. both steps leave a saturated net unchanged) is no evidence for the source batch
        if previous is None:
            raise ValueError('the paired_target gate needs the target-only step\'s score on the same V\'')
        return float(candidate) > float(previous) - self.tolerance


class LinearPairedTargetGate(PairedTargetGate):
    """``paired_target`` on predicted scores: the caller scores both candidates with a first-order model of the
    V' PSNR refreshed every ``refresh_every`` chunks, and exactly every ``check_every``-th decision (0: never)."""

    name = 'paired_target_linear'
    linearised = True

    def __init__(self, tolerance: float = 0.0, refresh_every: int = 10, check_every: int = 0) -> None:
        super().__init__(tolerance)
        if refresh_every < 1 or check_every < 0:
            raise ValueError(f'need refresh_every >= 1 and check_every >= 0, got {refresh_every}, {check_every}')
        self.refresh_every = int(refresh_every)
        self.check_every = int(check_every)


class PairedGainQueueGate(Gate):
    """Accept when the paired gain reaches the mean of the last ``queue_size`` gains minus ``tolerance``."""

    name = 'paired_queue'
    needs_previous = True

    def __init__(self, queue_size: int = 10, tolerance: float = 0.0) -> None:
        super().__init__()
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        self.queue_size = int(queue_size)
        self.tolerance = float(tolerance)
        self.gains: List[float] = [0.0]

    def threshold(self) -> float:
        return sum(self.gains) / len(self.gains) - self.tolerance

    def decide(self, candidate: float, previous: Optional[float] = None) -> bool:
        if previous is None:
            raise ValueError('the paired_queue gate needs the previous weights\' score on the same V\'')
        gain = float(candidate) - float(previous)
        accept = gain >= min(self.threshold(), 0.0)
        self.gains.append(gain)  # every measured gain, so the bar follows what source steps currently do
        if len(self.gains) > self.queue_size:
            self.gains.pop(0)
        return accept

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), 'gains': list(self.gains)}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.gains = [float(v) for v in state['gains']][-self.queue_size:]  # a shorter queue keeps the newest


class AlwaysAcceptGate(Gate):
    """No gating: every source step is kept (joint training; an ablation)."""

    name = 'always'

    def decide(self, candidate: float, previous: Optional[float] = None) -> bool:
        return True


GATE_CRITERIA = {cls.name: cls for cls in (PaperQueueGate, PairedGate, PairedTargetGate, LinearPairedTargetGate,
                                            PairedGainQueueGate, AlwaysAcceptGate)}


def build_gate(criterion: str, queue_size: int = 10, tolerance: float = 0.0, refresh_every: int = 10,
               check_every: int = 0) -> Gate:
    """Make a gate by criterion name; raises ``ValueError`` listing the choices for an unknown name."""
    if criterion not in GATE_CRITERIA:
        raise ValueError(f"unknown gate criterion '{criterion}'; choices: {', '.join(sorted(GATE_CRITERIA))}")
    if criterion == 'paper':
        return PaperQueueGate(queue_size)
    if criterion == 'paired':
        return PairedGate(tolerance)
    if criterion == 'paired_target':
        return PairedTargetGate(tolerance)
    if criterion == 'paired_target_linear':
        return LinearPairedTargetGate(tolerance, refresh_every, check_every)
    if criterion == 'paired_queue':
        return PairedGainQueueGate(queue_size, tolerance)
    return AlwaysAcceptGate()
