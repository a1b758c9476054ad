"""Any ``torch.optim`` optimizer by name in ``train.optim_*.type`` (basicsr 1.4.2 only knows Adam)."""
import torch

from basicsr.models.base_model import BaseModel


def optimizer_choices() -> list:
    return sorted(name for name, obj in vars(torch.optim).items()
                  if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer)


def build_optimizer(optim_type: str, params, lr: float, **kwargs) -> torch.optim.Optimizer:
    if optim_type not in optimizer_choices():
        raise ValueError(f"optimizer type '{optim_type}' is not a torch.optim optimizer; "
                         f"choices: {', '.join(optimizer_choices())}")
    return getattr(torch.optim, optim_type)(params, lr, **kwargs)


def _get_optimizer(self, optim_type, params, lr, **kwargs):
    return build_optimizer(optim_type, params, lr, **kwargs)


def install() -> None:
    BaseModel.get_optimizer = _get_optimizer
