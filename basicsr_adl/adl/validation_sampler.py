"""The dynamic validation set V' of ADL's stage 2.

V' is redrawn from the small target set every iteration (the rest, T_train, is trained on). Its size grows
linearly with stage-2 progress from ``start_fraction`` to ``end_fraction`` of the target set (paper: 20 % ->
50 %; linear growth is our choice). When the target set has fewer than ``diverse_below`` pairs (paper: 10),
V' is drawn to span the target's ISO levels ("div ISO"): the pairs are sorted by ISO, cut into |V'|
contiguous groups of near-equal size, and one pair is drawn from each group.

All draws use a caller-supplied ``torch.Generator``; seeding it identically on every DDP rank gives every
rank the same V'. Pairs given in ``excluded`` (e.g. ones holding NaN/Inf) are in neither V' nor T_train; the
fractions then count the usable pairs only. With nothing excluded the draws are those of the full set.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch


class DynamicValidationSampler:
    """Draws (V' indices, T_train indices) from a target set of ``num_items`` pairs, minus ``excluded``."""

    def __init__(self, num_items: int, isos: Optional[Sequence[float]] = None, start_fraction: float = 0.2,
                 end_fraction: float = 0.5, diverse_below: int = 10, excluded: Sequence[int] = ()) -> None:
        if not 0 < start_fraction <= end_fraction < 1:
            raise ValueError(f'need 0 < start_fraction <= end_fraction < 1, got {start_fraction}, {end_fraction}')
        if isos is not None and len(isos) != num_items:
            raise ValueError(f'{len(isos)} ISO values for {num_items} target pairs')
        left_out = set(int(i) for i in excluded)
        #: the indices V' and T_train are drawn from (ascending)
        self.population: List[int] = [i for i in range(int(num_items)) if i not in left_out]
        if len(self.population) < 2:
            raise ValueError(f'the target set has {len(self.population)} usable pair(s); V\' and T_train need '
                             'at least 2')
        self.num_usable = len(self.population)
        self.isos = [float(isos[i]) for i in self.population] if isos is not None else None
        self.start_fraction = float(start_fraction)
        self.end_fraction = float(end_fraction)
        self.diverse_below = int(diverse_below)

    @property
    def iso_diverse(self) -> bool:
        return (self.num_usable < self.diverse_below and self.isos is not None
                and len(set(self.isos)) > 1)

    def size_at(self, progress: float) -> int:
        """|V'| at stage-2 progress in [0, 1]: at least 1, and leaves at least 1 pair to train on."""
        progress = min(max(float(progress), 0.0), 1.0)
        fraction = self.start_fraction + (self.end_fraction - self.start_fraction) * progress
        return min(max(1, int(round(fraction * self.num_usable))), self.num_usable - 1)

    def sample(self, progress: float, generator: torch.Generator) -> Tuple[List[int], List[int]]:
        """Return sorted V' indices and sorted T_train indices for this iteration."""
        size = self.size_at(progress)
        if self.iso_diverse:  # positions in the population, sorted by ISO
            order = sorted(range(self.num_usable), key=lambda i: (self.isos[i], i))
            bounds = [int(math.floor(k * self.num_usable / size)) for k in range(size + 1)]
            picks = []
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                j = int(torch.randint(lo, hi, (1,), generator=generator))
                picks.append(order[j])
        else:
            picks = torch.randperm(self.num_usable, generator=generator)[:size].tolist()
        val = sorted(self.population[j] for j in picks)
        chosen = set(val)
        return val, [i for i in self.population if i not in chosen]
