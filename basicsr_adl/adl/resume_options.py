"""Which ADL options a training state can carry across a resume, and which it cannot.

An ADL training state holds the gate's state (a queue for the queue gates), the current gate chunk (V',
T_train and recorded target steps, as indices into the target pairs), the fixed V' and the shared generator.
Options that only steer what happens next may change on resume (a warning names them, as for stage
lengths). Options that give the saved values their meaning may not: the gate criterion decides what the gate
state holds, ``adl.mode`` what the stages do, and the target pairs what the saved indices point at. Such a
change is one line naming the option with its saved and its new value.

Values are compared as the model uses them (defaults filled in), keyed by their option path; ``None`` means
"not used in this run" and is never compared.
"""
from typing import Any, Dict, List, Sequence

#: options a state cannot carry: the saved values mean something else under a new value
NOT_CARRIED = ('adl.mode', 'adl.gate.criterion', 'datasets.train.target_pairs')
#: options that only steer the next steps: a change is applied from the resumed iteration on
CARRIED = ('adl.gate.queue_size', 'adl.gate.tolerance', 'adl.gate.every', 'adl.gate.refresh_every',
           'adl.gate.check_every', 'adl.gate.on_reject',
           'adl.gate.revert_optimizer', 'adl.target_batch', 'adl.validation.dynamic',
           'adl.validation.start_fraction', 'adl.validation.end_fraction', 'adl.validation.iso_diverse_below')


class ResumeMismatch(ValueError):
    """The options changed in a way the training state cannot carry; the message names the option."""


def compare_options(saved: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    """Warnings for carried options that changed; raises :class:`ResumeMismatch` for one that cannot be."""
    for key in NOT_CARRIED:
        old, new = saved.get(key), now.get(key)
        if old is not None and new is not None and old != new:
            hint = 'the same target pairs' if key == 'datasets.train.target_pairs' else repr(old)
            raise ResumeMismatch(f"option '{key}' changed since the training state was saved ({old!r} -> {new!r}); "
                                 f'the state cannot carry this change: resume with {hint}, or start a new run '
                                 'under another name')
    return [f'resuming with {key} = {now[key]!r}; the saved run had {saved[key]!r}'
            for key in CARRIED if saved.get(key) is not None and now.get(key) is not None and saved[key] != now[key]]


def compare_left_out(saved: Sequence[int], now: Sequence[int], in_use: Sequence[int]) -> List[str]:
    """Target pairs left out as non-finite then and now. A pair the saved chunk or fixed V' still uses that is
    left out now cannot be carried (it would be scored or trained on); any other change is a warning."""
    saved, now = sorted(int(i) for i in saved), sorted(int(i) for i in now)
    if saved == now:
        return []
    blocked = sorted(set(now) & set(int(i) for i in in_use))
    if blocked:
        raise ResumeMismatch(f'target pair(s) {blocked} hold NaN/Inf values now but the training state (saved '
                             f'when {saved or "no pair"} were left out) still uses them in its V\' or T_train; '
                             'fix the data back or start a new run under another name')
    return [f'resuming with target pair(s) {now or "none"} left out as non-finite; the saved run left out '
            f'{saved or "none"}']
