"""Check an options dict before BasicSR acts on it, so a wrong option is one clear line, not a traceback.

The schema itself (known keys, types, ranges, defaults) is plain Python in :mod:`basicsr_adl.options_schema`;
this module gives it BasicSR's registries (models, datasets, archs, losses, metrics), the torch optimizers
and BasicSR's schedulers, so sections chosen by ``type`` are checked against the registered class.
``OptionError`` is defined there and re-exported here (many modules import it from here).
"""
from typing import Any, Dict, List, Optional

from basicsr.models import lr_scheduler
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

import torch

from basicsr_adl.compat.optim import optimizer_choices
from basicsr_adl.options_schema import OptionError, check_tree

__all__ = ['OptionError', 'check_options', 'SCHEDULERS', 'BasicSRRegistries']

# what BaseModel.setup_schedulers builds for each scheduler type
SCHEDULERS = {'MultiStepLR': lr_scheduler.MultiStepRestartLR, 'MultiStepRestartLR': lr_scheduler.MultiStepRestartLR,
              'CosineAnnealingRestartLR': lr_scheduler.CosineAnnealingRestartLR}


class BasicSRRegistries:
    """``lookup(kind, name)`` / ``choices(kind)`` over BasicSR's registries for the schema's typed sections."""

    _registries = {'model': MODEL_REGISTRY, 'dataset': DATASET_REGISTRY, 'arch': ARCH_REGISTRY,
                   'loss': LOSS_REGISTRY, 'metric': METRIC_REGISTRY}

    def lookup(self, kind: str, name: str) -> Optional[Any]:
        if kind == 'optimizer':
            return getattr(torch.optim, name) if name in optimizer_choices() else None
        if kind == 'scheduler':
            return SCHEDULERS.get(name)
        registry = self._registries[kind]
        return registry.get(name) if name in registry else None

    def choices(self, kind: str) -> List[str]:
        if kind == 'optimizer':
            return optimizer_choices()
        if kind == 'scheduler':
            return list(SCHEDULERS)
        return list(self._registries[kind].keys())


REGISTRIES = BasicSRRegistries()


def check_options(opt: Dict[str, Any], is_train: bool) -> None:
    """Raise ``OptionError`` for the first unknown key, wrong type, out-of-range value or missing key found;
    numbers that YAML read as text (``lr: 1e-3``) are converted in place."""
    check_tree(opt, is_train=is_train, registries=REGISTRIES)
