"""Which per-image metadata (sensor index, ISO) a net takes: the one place the plugin asks a net about it.

ADL's and LAN's nets may be modulated (``ModulatedUNet(sensor=..., iso=...)``) or plain BasicSR nets; the models
pass ``sensor``/``iso`` only to a ``forward`` that names them. Plain Python + ``inspect``, no BasicSR import.
"""
import inspect
from typing import Any, Tuple

METADATA_ARGS = ('sensor', 'iso')


def forward_args(net: Any, accept_var_keyword: bool = False) -> Tuple[str, ...]:
    """The names among ``METADATA_ARGS`` that ``net.forward`` takes; with ``accept_var_keyword`` a forward with
    ``**kwargs`` takes both (LANModel's rule; ADLModel passes only named parameters)."""
    params = inspect.signature(net.forward).parameters
    if accept_var_keyword and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return METADATA_ARGS
    return tuple(name for name in METADATA_ARGS if name in params)


def used_args(net: Any) -> Tuple[str, ...]:
    """``forward_args`` less what a modulated net was built without (``use_sensor: false``/``use_iso: false``)."""
    return tuple(name for name in forward_args(net) if getattr(net, f'use_{name}', True))
