"""Check an options dict before BasicSR acts on it, so a wrong option is one clear line, not a traceback.

BasicSR reports an unknown type as a bare ``KeyError`` deep in a builder and a missing key as whatever
``opt['...']`` fails first. ``check_options`` names the option (dotted path), the bad value and the
registered choices.
"""
from typing import Any, Dict, Iterable, List

from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from basicsr_adl.compat.optim import optimizer_choices

SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')


class OptionError(ValueError):
    """A user error in the options file; the CLI prints it as one line and exits with status 2."""


def _choices(names: Iterable[str]) -> str:
    return ', '.join(sorted(names))


def _require(opt: Dict[str, Any], keys: List[str], where: str = '') -> None:
    for key in keys:
        if not isinstance(opt, dict) or key not in opt or opt[key] is None:
            raise OptionError(f"missing required option '{where}{key}'")


def _check_type(value: Any, registry, option: str, what: str) -> None:
    if value not in registry:
        raise OptionError(f"option '{option}': '{value}' is not a registered {what}; "
                          f'choices: {_choices(registry.keys())}')


def check_options(opt: Dict[str, Any], is_train: bool) -> None:
    """Raise ``OptionError`` for the first missing key or unknown type found."""
    if not isinstance(opt, dict):
        raise OptionError('the options file does not hold a YAML mapping')
    _require(opt, ['name', 'model_type', 'num_gpu', 'datasets', 'path'])
    _check_type(opt['model_type'], MODEL_REGISTRY, 'model_type', 'model')
    for key, net in opt.items():
        if key.startswith('network_'):
            _require(net, ['type'], f'{key}.')
            _check_type(net['type'], ARCH_REGISTRY, f'{key}.type', 'arch')
    if not isinstance(opt['datasets'], dict) or not opt['datasets']:
        raise OptionError("option 'datasets' must map phases (train, val*, test*) to dataset options")
    if is_train and 'train' not in opt['datasets']:
        raise OptionError("missing required option 'datasets.train'")
    for phase, ds in opt['datasets'].items():
        if is_train and not (phase == 'train' or phase.split('_')[0] == 'val'):
            raise OptionError(f"option 'datasets.{phase}': training phases are 'train' and 'val*'")
        _require(ds, ['name', 'type'], f'datasets.{phase}.')
        _check_type(ds['type'], DATASET_REGISTRY, f'datasets.{phase}.type', 'dataset')
        if phase == 'train':
            _require(ds, ['batch_size_per_gpu', 'num_worker_per_gpu'], 'datasets.train.')
    if opt['num_gpu'] not in ('auto',) and not isinstance(opt['num_gpu'], int):
        raise OptionError(f"option 'num_gpu': expected an integer or 'auto', got {opt['num_gpu']!r}")
    if is_train:
        _require(opt, ['train', 'logger'])
        _require(opt['train'], ['total_iter'], 'train.')
        _require(opt['logger'], ['print_freq', 'save_checkpoint_freq'], 'logger.')
        for key, sub in opt['train'].items():
            if not isinstance(sub, dict):
                continue
            if key.startswith('optim_'):
                _require(sub, ['type', 'lr'], f'train.{key}.')
                if sub['type'] not in optimizer_choices():
                    raise OptionError(f"option 'train.{key}.type': '{sub['type']}' is not a torch.optim optimizer; "
                                      f'choices: {_choices(optimizer_choices())}')
            elif key == 'scheduler':
                _require(sub, ['type'], 'train.scheduler.')
                if sub['type'] not in SCHEDULERS:
                    raise OptionError(f"option 'train.scheduler.type': '{sub['type']}' is not supported; "
                                      f'choices: {_choices(SCHEDULERS)}')
            elif key.endswith('_opt') and 'type' in sub:
                _check_type(sub['type'], LOSS_REGISTRY, f'train.{key}.type', 'loss')
    elif opt.get('val') is None:
        raise OptionError("missing required option 'val' (test runs read val.save_img and val.metrics)")
    val = opt.get('val')
    if isinstance(val, dict):
        for name, metric in (val.get('metrics') or {}).items():
            _require(metric, ['type'], f'val.metrics.{name}.')
            _check_type(metric['type'], METRIC_REGISTRY, f'val.metrics.{name}.type', 'metric')
        if is_train:
            _require(val, ['val_freq'], 'val.')
