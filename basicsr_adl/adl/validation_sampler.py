"""The dynamic validation set V' of ADL's stage 2.

V' is redrawn from the small target set every iteration (the rest, T_train, is trained on). Its size grows
linearly with stage-2 progress from ``start_fraction`` to ``end_fraction`` of the target set (paper: 20 % ->
50 %; linear growth is our choice). When the target set has fewer than ``diverse_below`` pairs (paper: 10),
V' is drawn to span the target's ISO levels ("div ISO"): the pairs are sorted by ISO, cut into |V'|
contiguous groups of near-equal size, and one pair is drawn from each group.

All draws use a caller-supplied ``torch.Generator``; seeding it identically on every DDP rank gives every
rank the same V'.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch


class DynamicValidationSampler:
    """Draws (V' indices, T_train indices) from a target set of ``num_items`` pairs."""

    def __init__(self, num_items: int, isos: Optional[Sequence[float]] = None, start_fraction: float = 0.2,
                 end_fraction: float = 0.5, diverse_below: int = 10) -> None:
        if not 0 < start_fraction <= end_fraction < 1:
            raise ValueError(f'need 0 < start_fraction <= end_fraction < 1, got {start_fraction}, {end_fraction}')
        if num_items < 2:
            raise ValueError(f'the target set has {num_items} pair(s); V\' and T_train need at least 2')
        if isos is not None and len(isos) != num_items:
            raise ValueError(f'{len(isos)} ISO values for {num_items} target pairs')
        self.num_items = int(num_items)
        self.isos = [float(v) for v in isos] if isos is not None else None
        self.start_fraction = float(start_fraction)
        self.end_fraction = float(end_fraction)
        self.diverse_below = int(diverse_below)

    @property
    def iso_diverse(self) -> bool:
        return (self.num_items < self.diverse_below and self.isos is not None
                and len(set(self.isos)) > 1)

    def size_at(self, progress: float) -> int:
        """|V'| at stage-2 progress in [0, 1]: at least 1, and leaves at least 1 pair to train on."""
        progress = min(max(float(progress), 0.0), 1.0)
        fraction = self.start_fraction + (self.end_fraction - self.start_fraction) * progress
        return min(max(1, int(round(fraction * self.num_items))), self.num_items - 1)

    def sample(self, progress: float, generator: torch.Generator) -> Tuple[List[int], List[int]]:
        """Return sorted V' indices and sorted T_train indices for this iteration."""
        size = self.size_at(progress)
        if self.iso_diverse:
            order = sorted(range(self.num_items), key=lambda i: (self.isos[i], i))
            bounds = [int(math.floor(k * self.num_items / size)) for k in range(size + 1)]
            picks = []
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                j = int(torch.randint(lo, hi, (1,), generator=generator))
                picks.append(order[j])
            val = sorted(picks)
        else:
            val = sorted(torch.randperm(self.num_items, generator=generator)[:size].tolist())
        chosen = set(val)
        return val, [i for i in range(self.num_items) if i not in chosen]
