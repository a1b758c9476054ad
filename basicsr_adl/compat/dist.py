"""Distributed training that works on CPU (gloo) as well as GPU (nccl).

basicsr 1.4.2 hard-codes nccl and CUDA in ``init_dist`` and ``model_to_device`` and validates on rank 0
only, leaving the other ranks to wait in the next collective. Here:

* ``init_dist('pytorch')`` picks nccl when CUDA is usable, gloo otherwise (``BASICSR_ADL_DIST_BACKEND``
  overrides), and binds each process to GPU ``LOCAL_RANK``;
* DDP gets ``device_ids`` only for CUDA modules;
* ``SRModel.dist_validation`` shards the validation set over ranks, runs the model's own
  ``nondist_validation`` on each shard with the unwrapped net, and all-reduces the metric sums, so every
  rank does the same amount of work and ends with the same numbers;
* collectives wait at most ``dist_params.timeout`` seconds (default in ``basicsr_adl.options_schema``, 300)
  instead of 30 minutes. BasicSR's ``parse_options`` starts the group without ``dist_params`` for
  ``--launcher pytorch``, so the entry point hands the options file to :func:`use_options` first. When a
  collective times out, :func:`exit_if_rank_timeout` prints one line naming the rank that did not answer and
  ends the process (``os._exit``: tearing down a gloo group whose peer is stopped can hang).
"""
import logging
import os
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, Dict, Iterator, Optional

import torch
import torch.distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel
from torch.utils.data import DataLoader, Subset

import basicsr.utils.options as basicsr_options
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel

BACKEND_ENV = 'BASICSR_ADL_DIST_BACKEND'
EXIT_RANK_TIMEOUT = 3  # exit status of a rank that gave up waiting for another one
_timeout_s: Optional[float] = None  # dist_params.timeout of the run being started (use_options)


def default_backend() -> str:
    if os.environ.get(BACKEND_ENV):
        return os.environ[BACKEND_ENV]
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher: str, backend: Optional[str] = None, **kwargs) -> None:
    """Start the process group for ``--launcher pytorch`` (torchrun sets RANK, WORLD_SIZE, LOCAL_RANK)."""
    if launcher != 'pytorch':
        raise ValueError(f"--launcher {launcher} is not supported by basicsr_adl; use 'pytorch' with torchrun")
    if dist.is_initialized():
        return
    backend = backend or default_backend()
    if backend == 'nccl':
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    kwargs.setdefault('timeout', timedelta(seconds=collective_timeout()))
    _install_excepthook()
    dist.init_process_group(backend=backend, **kwargs)


def use_options(opt: Dict[str, Any]) -> None:
    """Take ``dist_params.timeout`` from the options file (checked and defaulted by the options schema)."""
    global _timeout_s
    from basicsr_adl.options_schema import dist_params_options
    _timeout_s = float(dist_params_options(opt)['timeout'])


def collective_timeout() -> float:
    """Seconds a collective waits: the options' ``dist_params.timeout``, else the schema's default."""
    if _timeout_s is not None:
        return _timeout_s
    from basicsr_adl.options_schema import dist_params_options
    return float(dist_params_options({})['timeout'])


def _caller(err: BaseException) -> str:
    """The innermost frame outside torch in ``err``'s traceback: where the collective was called."""
    where, tb = 'a collective', err.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if 'torch' not in code.co_filename.split(os.sep):
            name = getattr(code, 'co_qualname', code.co_name)
            where = f'{name} ({os.path.basename(code.co_filename)}:{tb.tb_lineno})'
        tb = tb.tb_next
    return where


def rank_timeout_message(err: BaseException) -> Optional[str]:
    """The one-line report for a collective that timed out or lost its peer, or None for other errors."""
    if not isinstance(err, RuntimeError) or not dist.is_available():
        return None
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    elif 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:  # the rendezvous itself timed out
        rank, world = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    else:
        return None
    text = str(err).lower()
    from_dist = isinstance(err, getattr(dist, 'DistError', ())) or 'gloo' in text or 'nccl' in text
    timed_out = 'timed out' in text
    lost = 'connection closed by peer' in text or 'connection reset by peer' in text
    if not from_dist or not (timed_out or lost) or world < 2:
        return None
    others = [r for r in range(world) if r != rank]
    who = f'rank {others[0]}' if len(others) == 1 else f"one of ranks {', '.join(map(str, others))}"
    if timed_out:
        return (f'rank {rank} waited more than dist_params.timeout = {collective_timeout():g} s for another rank in '
                f'{_caller(err)}; {who} is hung or dead')
    return f'rank {rank} lost its connection to another rank in {_caller(err)}; {who} is dead'


def exit_if_rank_timeout(err: BaseException) -> None:
    """For a collective timeout: one line on stderr (and in the run's log file), then end the process now."""
    message = rank_timeout_message(err)
    if message is None:
        return
    line = f'basicsr_adl: error: {message}'
    record = logging.LogRecord('basicsr', logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger('basicsr').handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
            handler.flush()
    print(line, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_RANK_TIMEOUT)


def _install_excepthook() -> None:
    """BasicSR's own scripts (``python -m basicsr.train``) have no handler of ours: report timeouts here."""
    previous = sys.excepthook
    if getattr(previous, 'basicsr_adl', False):
        return

    def hook(kind, err, tb):
        exit_if_rank_timeout(err)
        previous(kind, err, tb)

    hook.basicsr_adl = True
    sys.excepthook = hook


def _model_to_device(self, net):
    net = net.to(self.device)
    if self.opt['dist']:
        find_unused = self.opt.get('find_unused_parameters', False)
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused)
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


@contextmanager
def unwrapped_nets(model) -> Iterator[None]:
    """Swap DDP/DP-wrapped ``net_*`` attributes for their modules, so forward passes need no collective."""
    swapped = {}
    for name, value in list(vars(model).items()):
        if name.startswith('net_') and isinstance(value, (DataParallel, DistributedDataParallel)):
            swapped[name] = value
            setattr(model, name, value.module)
    try:
        yield
    finally:
        for name, value in swapped.items():
            setattr(model, name, value)


def collective_device(device: torch.device) -> torch.device:
    """Where a tensor for a collective must live: the model's device under nccl (no CPU support), else CPU."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == 'nccl':
        return device
    return torch.device('cpu')


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_ranks_true(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on every rank (an all-reduce MIN; the flag itself without DDP)."""
    value = torch.tensor([1.0 if flag else 0.0], device=collective_device(device))
    if _distributed():
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() >= 1)


def rank0_decides(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (a broadcast), so replicas never diverge on a decision."""
    value = torch.tensor([1.0 if flag else 0.0], device=collective_device(device))
    if _distributed():
        dist.broadcast(value, 0)
    return bool(value.item() > 0.5)


def _reduce_sums(values: Dict[str, float], count: int, device: torch.device) -> (Dict[str, float], int):
    keys = sorted(values)
    if not dist.is_available() or not dist.is_initialized():
        return values, count
    buf = torch.tensor([values[k] for k in keys] + [float(count)], dtype=torch.float64,
                       device=collective_device(device))
    dist.all_reduce(buf)
    buf = buf.cpu().tolist()
    return dict(zip(keys, buf[:-1])), int(round(buf[-1]))


def sharded_dist_validation(self, dataloader, current_iter, tb_logger, save_img):
    """Validate a 1/world_size shard on every rank, then all-reduce metric sums and counts."""
    rank, world_size = self.opt.get('rank', 0), self.opt.get('world_size', 1)
    dataset = dataloader.dataset
    dataset_name = dataset.opt['name']
    indices = list(range(rank, len(dataset), world_size))
    shard = Subset(dataset, indices)
    shard.opt = dataset.opt  # nondist_validation reads ``dataloader.dataset.opt['name']``
    shard_loader = DataLoader(shard, batch_size=1, shuffle=False, num_workers=0)

    metric_names = list((self.opt.get('val') or {}).get('metrics') or {})
    recorded = {}
    # Silence per-shard best-metric bookkeeping and logging; done once below with global means.
    self._update_best_metric_result = lambda *a, **k: None
    self._log_validation_metric_values = lambda *a, **k: None
    try:
        with unwrapped_nets(self):
            if indices:
                self.nondist_validation(shard_loader, current_iter, tb_logger, save_img)
                recorded = dict(getattr(self, 'metric_results', {}))
    finally:
        del self._update_best_metric_result
        del self._log_validation_metric_values
    if not metric_names:
        return
    sums = {m: recorded.get(m, 0.0) * len(indices) for m in metric_names}
    sums, count = _reduce_sums(sums, len(indices), self.device)
    self._initialize_best_metric_results(dataset_name)
    self.metric_results = {m: sums[m] / max(count, 1) for m in metric_names}
    for metric, value in self.metric_results.items():
        self._update_best_metric_result(dataset_name, metric, value, current_iter)
    self._log_validation_metric_values(current_iter, dataset_name, tb_logger)


def install() -> None:
    basicsr_options.init_dist = init_dist
    BaseModel.model_to_device = _model_to_device
    SRModel.dist_validation = sharded_dist_validation
