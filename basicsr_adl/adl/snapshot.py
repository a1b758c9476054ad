"""Exact, cheap snapshot/restore of a module's weights and its optimizer's state.

ADL reverts a rejected source step. Restoring only the weights would keep Adam's moments (and step count)
from the discarded step, so the next step would differ from a run that never took it. The snapshot keeps
preallocated copies of every parameter, buffer and optimizer-state tensor: a capture copies in place, a revert
swaps the saved tensors in (no data moved), so both are bit-exact and allocate nothing in the steady state.
"""
import copy
from typing import Any, Dict, List

import torch


def _copy_all(dst: List[torch.Tensor], src: List[torch.Tensor]) -> None:
    if not dst:
        return
    if hasattr(torch, '_foreach_copy_'):
        torch._foreach_copy_(dst, src)
    else:
        for d, s in zip(dst, src):
            d.copy_(s)


class TrainingSnapshot:
    """Holds one copy of (module parameters + buffers, optimizer state, param-group settings)."""

    def __init__(self, module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.module = module
        self.optimizer = optimizer
        self._live_tensors = list(module.parameters()) + list(module.buffers())
        self._saved_tensors = [t.detach().clone() for t in self._live_tensors]
        self._opt_tensors: Dict[int, Dict[str, torch.Tensor]] = {}  # id(param) -> key -> saved tensor
        self._opt_values: Dict[int, Dict[str, Any]] = {}  # id(param) -> key -> saved non-tensor value
        self._groups: List[Dict[str, Any]] = []
        self.captured = False

    @torch.no_grad()
    def capture(self) -> None:
        """Copy the current state into the buffers (reallocating only when the optimizer state changed shape)."""
        _copy_all(self._saved_tensors, [t.detach() for t in self._live_tensors])
        dst, src = [], []
        seen = set()
        for param, pstate in self.optimizer.state.items():
            pid = id(param)
            seen.add(pid)
            saved = self._opt_tensors.setdefault(pid, {})
            values = {}
            for key, value in pstate.items():
                if torch.is_tensor(value):
                    buf = saved.get(key)
                    if buf is None or buf.shape != value.shape or buf.dtype != value.dtype or buf.device != value.device:
                        saved[key] = value.detach().clone()
                    else:
                        dst.append(buf)
                        src.append(value.detach())
                else:
                    values[key] = copy.deepcopy(value)
            for key in [k for k in saved if k not in pstate or not torch.is_tensor(pstate[k])]:
                del saved[key]
            self._opt_values[pid] = values
        for pid in [p for p in self._opt_tensors if p not in seen]:
            del self._opt_tensors[pid]
            self._opt_values.pop(pid, None)
        _copy_all(dst, src)
        self._groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != 'params'} for g in self.optimizer.param_groups]
        self.captured = True

    @torch.no_grad()
    def restore(self) -> None:
        """Put the captured weights and optimizer state back, bit for bit.

        Tensors are swapped with their saved copies rather than copied back, so a revert moves no data; the
        swapped-out buffers hold the discarded values and are overwritten by the next :meth:`capture`. A
        restore therefore consumes the capture: restoring twice needs a capture in between."""
        if not self.captured:
            raise RuntimeError('TrainingSnapshot.restore called without a capture() since the last restore')
        for i, (live, saved) in enumerate(zip(self._live_tensors, self._saved_tensors)):
            discarded = live.data
            live.data = saved
            self._saved_tensors[i] = discarded
        params = {id(p): p for g in self.optimizer.param_groups for p in g['params']}
        for param in [p for p in self.optimizer.state if id(p) not in self._opt_tensors]:
            del self.optimizer.state[param]  # state created by the discarded step (e.g. Adam's first step)
        for pid, saved in self._opt_tensors.items():
            param = params[pid]
            pstate = self.optimizer.state[param]
            values = self._opt_values.get(pid, {})
            for key in [k for k in pstate if k not in saved and k not in values]:
                del pstate[key]
            for key, buf in list(saved.items()):
                live = pstate.get(key)
                pstate[key] = buf
                if torch.is_tensor(live) and live.shape == buf.shape and live.dtype == buf.dtype:
                    saved[key] = live  # reuse the discarded tensor as the next capture's buffer
                else:
                    saved[key] = buf.clone()
            for key, value in values.items():
                pstate[key] = copy.deepcopy(value)
        for group, saved_group in zip(self.optimizer.param_groups, self._groups):
            # the learning rate belongs to the scheduler, which a revert does not rewind: keep the live one
            group.update({k: copy.deepcopy(v) for k, v in saved_group.items() if k != 'lr'})
        self.captured = False

    @torch.no_grad()
    def exchange(self) -> bool:
        """Swap the live state with the captured one, so the snapshot then holds what was live and a second
        exchange undoes the first (both bit-exact, no data moved). Returns False, changing nothing, when the
        optimizer state does not pair up tensor for tensor with the capture (state created since the capture,
        or non-tensor values); the caller then needs a second snapshot. Param-group settings are left alone
        (a step does not change them)."""
        if not self.captured or any(self._opt_values.values()):
            return False
        params = {id(p): p for g in self.optimizer.param_groups for p in g['params']}
        if {id(p) for p in self.optimizer.state} != set(self._opt_tensors):
            return False
        for pid, saved in self._opt_tensors.items():
            live = self.optimizer.state[params[pid]]
            if set(live) != set(saved) or any(not torch.is_tensor(live[k]) or live[k].shape != v.shape
                                              or live[k].dtype != v.dtype for k, v in saved.items()):
                return False
        for i, (live, saved) in enumerate(zip(self._live_tensors, self._saved_tensors)):
            current = live.data
            live.data = saved
            self._saved_tensors[i] = current
        for pid, saved in self._opt_tensors.items():
            pstate = self.optimizer.state[params[pid]]
            for key in saved:
                pstate[key], saved[key] = saved[key], pstate[key]
        return True

    @torch.no_grad()
    def restore_weights(self) -> None:
        """Revert only the module's tensors and keep the optimizer state (ADL's revert_optimizer: false)."""
        if not self.captured:
            raise RuntimeError('TrainingSnapshot.restore_weights called without a capture()')
        _copy_all(self._live_tensors, self._saved_tensors)

    def state_dict(self) -> Dict[str, Any]:
        """The captured state in save-able form (used when a checkpoint falls inside a gated chunk)."""
        params = [p for g in self.optimizer.param_groups for p in g['params']]
        index = {id(p): i for i, p in enumerate(params)}
        return {
            'tensors': [t.clone() for t in self._saved_tensors],
            'opt_tensors': {index[pid]: {k: v.clone() for k, v in d.items()} for pid, d in self._opt_tensors.items()},
            'opt_values': {index[pid]: copy.deepcopy(d) for pid, d in self._opt_values.items()},
            'groups': copy.deepcopy(self._groups),
            'captured': self.captured,
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        params = [p for g in self.optimizer.param_groups for p in g['params']]
        with torch.no_grad():
            for buf, saved in zip(self._saved_tensors, state['tensors']):
                buf.copy_(saved)
        self._opt_tensors = {id(params[i]): {k: v.clone() for k, v in d.items()} for i, d in state['opt_tensors'].items()}
        self._opt_values = {id(params[i]): copy.deepcopy(d) for i, d in state['opt_values'].items()}
        self._groups = copy.deepcopy(state['groups'])
        self.captured = bool(state['captured'])
