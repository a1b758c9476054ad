"""Adaptive Domain Learning cores in plain PyTorch (no BasicSR import), so they can be tested alone.

* :mod:`.gate` - accept/revert criteria for stage-2 source steps (the paper's queue and the paired test);
* :mod:`.snapshot` - exact in-place snapshot/restore of weights and optimizer state;
* :mod:`.validation_sampler` - the dynamic validation subset V' (growing size, ISO-diverse draws);
* :mod:`.schedule` - the three-stage iteration schedule;
* :mod:`.accept_log` - per-source accept counts and the source x epoch heatmap.
"""
from basicsr_adl.adl.accept_log import AcceptLog
from basicsr_adl.adl.gate import GATE_CRITERIA, PairedGate, PaperQueueGate, PairedGainQueueGate, AlwaysAcceptGate, build_gate
from basicsr_adl.adl.schedule import StageSchedule
from basicsr_adl.adl.snapshot import TrainingSnapshot
from basicsr_adl.adl.validation_sampler import DynamicValidationSampler

__all__ = ['AcceptLog', 'GATE_CRITERIA', 'PairedGate', 'PaperQueueGate', 'PairedGainQueueGate', 'AlwaysAcceptGate',
           'build_gate', 'StageSchedule', 'TrainingSnapshot', 'DynamicValidationSampler']
