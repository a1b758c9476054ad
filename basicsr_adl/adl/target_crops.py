"""The small target set as ADL's gate scores it: centre crops cached once, pairs with NaN/Inf left out.

V' is redrawn every chunk, so its pairs are scored many times: each target pair is cropped once (``val_crop``,
our choice; null keeps whole images) and kept in memory. A pair holding NaN/Inf anywhere in its whole noisy or
clean image would turn every V' that holds it into a rejection and poison the steps that draw it, so it is
named once and left out of V' and of the target training draws. Plain PyTorch.
"""
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import torch

from basicsr_adl.metadata import METADATA_ARGS
from basicsr_adl.options_schema import OptionError


def centre_crop(t: torch.Tensor, size: Optional[int]) -> torch.Tensor:
    """Centre crop of the last two dims to ``size`` (no-op when None or already smaller)."""
    if not size:
        return t
    h, w = t.shape[-2:]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return t[..., top:top + min(size, h), left:left + min(size, w)]


class TargetCrops:
    """``items``: the whole target pairs (dicts with lq, gt, sensor, iso), in target-index order.

    ``items`` may be a generator (one whole pair in memory at a time). ``describe(item, part)`` names a pair's
    file for the warning (part: 'lq' or 'gt'); ``warn`` receives it."""

    def __init__(self, items: Iterable[Dict[str, Any]], crop: Optional[int],
                 describe: Callable[[Dict[str, Any], str], str], warn: Callable[[str], None]) -> None:
        self.crops: List[Dict[str, Any]] = []
        self.left_out: List[int] = []
        for i, item in enumerate(items):
            bad = [f'{label} image {describe(item, part)}' for part, label in (('lq', 'noisy'), ('gt', 'clean'))
                   if not bool(torch.isfinite(torch.as_tensor(item[part])).all())]
            if bad:
                warn(f"target pair {i} holds NaN/Inf values in its {' and '.join(bad)}; it is left out of V' and "
                     'of the target training draws')
                self.left_out.append(i)
            self.crops.append({'lq': centre_crop(torch.as_tensor(item['lq']), crop).contiguous(),
                               'gt': centre_crop(torch.as_tensor(item['gt']), crop).contiguous(),
                               'sensor': item['sensor'], 'iso': item['iso']})
        #: the pairs that may be scored and trained on
        self.usable: List[int] = [i for i in range(len(self.crops)) if i not in self.left_out]

    def require(self, need: int, option: str, who: str) -> None:
        """Enough finite pairs for ``who`` (2 when ADL gates: V' and T_train, else 1); a set that is simply too
        small is left to the caller's own error."""
        usable = len(self.usable)
        if self.left_out and usable < need:
            raise OptionError(f"option '{option}': {len(self.left_out)} of the target's {len(self)} pairs hold "
                              f'NaN/Inf values (named in the warnings), {usable} usable pair(s) left; {who} needs '
                              f'at least {need}')

    def __len__(self) -> int:
        return len(self.crops)

    def isos(self, indices: Optional[Sequence[int]] = None) -> List[float]:
        return [float(self.crops[i]['iso']) for i in (range(len(self)) if indices is None else indices)]

    def batches(self, indices: Sequence[int], device: torch.device
                ) -> Iterator[Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor], int]]:
        """(lq, gt, metadata, count) per group of same-sized crops among ``indices``, on ``device``."""
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for i in indices:
            groups.setdefault(tuple(self.crops[i]['lq'].shape), []).append(i)
        for members in groups.values():
            lq = torch.stack([self.crops[i]['lq'] for i in members]).to(device)
            gt = torch.stack([self.crops[i]['gt'] for i in members]).to(device)
            meta = {k: torch.stack([torch.as_tensor(self.crops[i][k]) for i in members]).to(device)
                    for k in METADATA_ARGS}
            yield lq, gt, meta, len(members)
