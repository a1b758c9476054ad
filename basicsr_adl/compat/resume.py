"""Exact ``--auto_resume`` / ``path.resume_state`` on any device.

basicsr 1.4.2 loads training states onto CUDA, looks for them relative to the working directory, restarts
an interrupted epoch from its first batch and does not save random-number states, so a resumed run differs
from an uninterrupted one. Here the training state also records how many batches of the current epoch were
consumed and every rank's RNG states (plus anything a model adds through ``extra_training_state``); on
resume the prefetcher replays the consumed batches of that epoch (so data workers' random crops line up)
and then restores the RNG states, so the resumed run continues exactly where the saved one stood.

``--auto_resume`` takes the newest state that loads: a truncated or otherwise unloadable one (or one whose
network file is missing) is skipped with one warning naming it, and everything (iteration, replayed batches,
RNG states) then comes from the state actually loaded. An unloadable ``path.resume_state`` is one error
naming the file.
"""
import os
import os.path as osp
import random
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist

import basicsr.train as basicsr_train
from basicsr.data.prefetch_dataloader import CPUPrefetcher
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from basicsr.utils.misc import check_resume

from basicsr_adl.compat.options_check import OptionError

STATE_KEY = 'basicsr_adl'
_pending_resume: Dict[str, Any] = {}
_active_prefetcher: List['ResumableCPUPrefetcher'] = []


def capture_rng() -> Dict[str, Any]:
    """RNG states of python, numpy and torch (CPU and CUDA), in types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos), 'has_gauss': int(has_gauss),
                  'cached': float(cached)},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Dict[str, Any]) -> None:
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    npst = state['numpy']
    np.random.set_state(('MT19937', npst['keys'].numpy().astype(np.uint32), npst['pos'], npst['has_gauss'],
                         npst['cached']))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def gather_from_ranks(obj: Any) -> List[Any]:
    """Every rank's ``obj`` (a one-element list when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def atomic_torch_save(obj: Any, path: str) -> None:
    """Write to a temporary file and rename, so a crash never leaves a truncated state behind."""
    tmp = f'{path}.tmp{os.getpid()}'
    torch.save(obj, tmp)
    os.replace(tmp, path)


class ResumableCPUPrefetcher(CPUPrefetcher):
    """BasicSR's CPU prefetcher that counts batches per epoch and replays them once after a resume."""

    def __init__(self, loader):
        super().__init__(loader)
        self.batches_in_epoch = 0
        _active_prefetcher[:] = [self]

    def reset(self):
        super().reset()
        self.batches_in_epoch = 0
        pending = _pending_resume.pop('state', None)
        if pending is None:
            return
        skip = pending['batches_in_epoch']
        if skip:
            get_root_logger().info(f'Resume: replaying {skip} consumed batch(es) of the interrupted epoch.')
        for _ in range(skip):
            if self.next() is None:
                break
        if pending.get('rng') is not None:
            restore_rng(pending['rng'])

    def next(self):
        batch = super().next()
        if batch is not None:
            self.batches_in_epoch += 1
        return batch


def _save_training_state(self, epoch: int, current_iter: int) -> None:
    if current_iter == -1:
        return
    # Collectives first, on every rank; only rank 0 writes.
    rngs = gather_from_ranks(capture_rng())
    extra = self.extra_training_state() if hasattr(self, 'extra_training_state') else None
    if self.opt.get('rank', 0) != 0:
        return
    state = {
        'epoch': epoch,
        'iter': current_iter,
        'optimizers': [o.state_dict() for o in self.optimizers],
        'schedulers': [s.state_dict() for s in self.schedulers],
        STATE_KEY: {
            'batches_in_epoch': _active_prefetcher[0].batches_in_epoch if _active_prefetcher else 0,
            'rng_per_rank': rngs,
            'extra': extra,
        },
    }
    os.makedirs(self.opt['path']['training_states'], exist_ok=True)
    atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))


_basicsr_resume_training = BaseModel.resume_training


def _resume_training(self, resume_state: Dict[str, Any]) -> None:
    for note in _pending_resume.pop('warnings', []):  # found before BasicSR's logger had its log file
        get_root_logger().warning(note)
    _basicsr_resume_training(self, resume_state)
    ours = resume_state.get(STATE_KEY)
    if ours is None:  # a state written by plain BasicSR: resume as BasicSR would
        return
    rngs = ours.get('rng_per_rank') or []
    rank = self.opt.get('rank', 0)
    _pending_resume['state'] = {
        'batches_in_epoch': ours.get('batches_in_epoch', 0),
        'rng': rngs[rank] if rank < len(rngs) else None,
    }
    if ours.get('extra') is not None and hasattr(self, 'load_extra_training_state'):
        self.load_extra_training_state(ours['extra'])


def state_paths(states_dir: str) -> List[str]:
    """The ``<iter>.state`` files of ``states_dir``, newest (highest iteration) first."""
    if not osp.isdir(states_dir):
        return []
    iters = [int(f[:-len('.state')]) for f in os.listdir(states_dir) if f.endswith('.state') and f[:-6].isdigit()]
    return [osp.join(states_dir, f'{i}.state') for i in sorted(iters, reverse=True)]


def latest_state_path(states_dir: str) -> Optional[str]:
    paths = state_paths(states_dir)
    return paths[0] if paths else None


def _map_location(opt: Dict[str, Any]) -> torch.device:
    if opt.get('num_gpu', 0) and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _read_state(path: str, map_location: torch.device) -> Tuple[Optional[Dict[str, Any]], str]:
    """The training state at ``path``, or None and why it cannot be used."""
    try:
        state = torch.load(path, map_location=map_location)
    except Exception as err:  # noqa: BLE001  (a damaged file raises RuntimeError, EOFError, pickle or zip errors)
        reason = (str(err).strip().splitlines() or [''])[0]
        return None, f'truncated or corrupt: {type(err).__name__}: {reason}'[:300]
    if not isinstance(state, dict) or 'iter' not in state:
        return None, 'not a training state (no iteration in it)'
    return state, ''


def _missing_networks(opt: Dict[str, Any], resume_iter: int) -> List[str]:
    """Network files ``check_resume`` will point the nets at for ``resume_iter`` that do not exist."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    files = [osp.join(opt['path']['models'], f"net_{key.replace('network_', '')}_{resume_iter}.pth")
             for key in opt if key.startswith('network_') and key not in ignored]
    return [f for f in files if not osp.isfile(f)]


def _newest_good_state(states_dir: str, opt: Dict[str, Any]) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """--auto_resume: the newest state that loads and has its network files; skipped ones become warnings."""
    paths, skipped = state_paths(states_dir), []
    for path in paths:
        state, why = _read_state(path, _map_location(opt))
        if state is not None:
            missing = _missing_networks(opt, state['iter'])
            if not missing:
                _pending_resume['warnings'] = [f"Resume: skipped training state '{p}' ({w}); resuming from "
                                               f"'{path}'." for p, w in skipped]
                return path, state
            why = f"its network file '{missing[0]}' is missing"
        skipped.append((path, why))
    if skipped:
        raise OptionError(f"--auto_resume: none of the {len(paths)} training states under '{states_dir}' can be "
                          f"used; the newest, '{skipped[0][0]}': {skipped[0][1]}")
    return None, None


def load_resume_state(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Find (``--auto_resume``: under ``<root>/experiments/<name>``) and load a training state on this device."""
    from basicsr_adl.compat.entrypoints import usable_root
    opt['root_path'] = usable_root(opt['root_path'])  # before BasicSR derives tb_logger/ from it
    if opt['auto_resume']:
        path, state = _newest_good_state(osp.join(opt['root_path'], 'experiments', opt['name'], 'training_states'),
                                         opt)
        if path is None:
            return None
        opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
        if not path:
            return None
        if not osp.isfile(path):
            raise OptionError(f"option 'path.resume_state': no training state at '{path}'")
        state, why = _read_state(path, _map_location(opt))
        if state is None:
            raise OptionError(f"option 'path.resume_state': '{path}' cannot be loaded ({why})")
    for rng in (state.get(STATE_KEY) or {}).get('rng_per_rank') or []:
        rng['torch'] = rng['torch'].cpu()  # RNG states must stay CPU byte tensors
        if 'cuda' in rng:
            rng['cuda'] = [s.cpu() for s in rng['cuda']]
    check_resume(opt, state['iter'])
    return state


def install() -> None:
    basicsr_train.load_resume_state = load_resume_state
    basicsr_train.CPUPrefetcher = ResumableCPUPrefetcher
    BaseModel.save_training_state = _save_training_state
    BaseModel.resume_training = _resume_training
