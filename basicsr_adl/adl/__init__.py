"""Adaptive Domain Learning cores in plain PyTorch (no BasicSR import), so they can be tested alone.

Reading order for stage 2:

* :mod:`.gated_adaptation` - one gated chunk: draw a source domain and V', take the steps, score, keep or
  revert (and replay the target-only steps); its typed chunk record and ``state_dict``;
* :mod:`.gate` - accept/revert criteria (the paper's queue, the paired tests, paired_target);
* :mod:`.snapshot` - exact in-place snapshot/restore of weights and optimizer state;
* :mod:`.validation_sampler` - the dynamic validation subset V' (growing size, ISO-diverse draws);
* :mod:`.target_crops` - the target pairs' cached centre crops V' is scored on (NaN/Inf pairs left out);
* :mod:`.schedule` - the three-stage iteration schedule;
* :mod:`.config` - the typed ``adl:`` options (defaults and checks: ``basicsr_adl.options_schema``);
* :mod:`.accept_log` - per-source accept counts and the source x epoch heatmap.
"""
from basicsr_adl.adl.accept_log import AcceptLog
from basicsr_adl.adl.config import ADLConfig
from basicsr_adl.adl.gate import (GATE_CRITERIA, AlwaysAcceptGate, PairedGainQueueGate, PairedGate, PaperQueueGate,
                                  build_gate)
from basicsr_adl.adl.gated_adaptation import ChunkRecord, Decision, GatedAdaptation, guarded_step
from basicsr_adl.adl.schedule import StageSchedule
from basicsr_adl.adl.snapshot import TrainingSnapshot
from basicsr_adl.adl.target_crops import TargetCrops
from basicsr_adl.adl.validation_sampler import DynamicValidationSampler

__all__ = ['AcceptLog', 'ADLConfig', 'GATE_CRITERIA', 'PairedGate', 'PaperQueueGate', 'PairedGainQueueGate',
           'AlwaysAcceptGate', 'build_gate', 'ChunkRecord', 'Decision', 'GatedAdaptation', 'guarded_step',
           'StageSchedule', 'TrainingSnapshot', 'TargetCrops', 'DynamicValidationSampler']
