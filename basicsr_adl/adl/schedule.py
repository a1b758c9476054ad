"""ADL's three stages as iteration ranges (BasicSR iterations count from 1)."""
from dataclasses import dataclass

TARGET_PRETRAIN, SOURCE_ADAPT, TARGET_FINETUNE = 1, 2, 3
STAGE_NAMES = {TARGET_PRETRAIN: 'target_pretrain', SOURCE_ADAPT: 'source_adapt', TARGET_FINETUNE: 'target_finetune'}


@dataclass(frozen=True)
class StageSchedule:
    """Stage 1 = iterations 1..P, stage 2 = P+1..P+A, stage 3 = everything after (F is the planned length)."""

    pretrain_iters: int
    adapt_iters: int
    finetune_iters: int

    def __post_init__(self) -> None:
        for name in ('pretrain_iters', 'adapt_iters', 'finetune_iters'):
            if int(getattr(self, name)) < 0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')

    @property
    def total(self) -> int:
        return self.pretrain_iters + self.adapt_iters + self.finetune_iters

    def stage_at(self, current_iter: int) -> int:
        if current_iter <= self.pretrain_iters:
            return TARGET_PRETRAIN
        if current_iter <= self.pretrain_iters + self.adapt_iters:
            return SOURCE_ADAPT
        return TARGET_FINETUNE

    def adapt_step(self, current_iter: int) -> int:
        """0-based index of a stage-2 iteration."""
        return current_iter - self.pretrain_iters - 1

    def adapt_progress(self, current_iter: int) -> float:
        """0 at the first stage-2 iteration, 1 at the last."""
        if self.adapt_iters <= 1:
            return 0.0
        return min(max(self.adapt_step(current_iter) / (self.adapt_iters - 1), 0.0), 1.0)
