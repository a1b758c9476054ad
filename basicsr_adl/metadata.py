"""Which per-image metadata (sensor index, ISO) a net takes: the one place the plugin asks a net about it.

ADL's and LAN's nets may be modulated (``ModulatedUNet(sensor=..., iso=...)``) or plain BasicSR nets; the models
pass ``sensor``/``iso`` only to a ``forward`` that names them. Also how items carry them (``batch_metadata``), what an eval set's options give at test time
(``eval_set_metadata``) and the checks before training. Plain PyTorch + ``inspect``, no BasicSR import.
"""
import inspect
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from basicsr_adl.options_schema import OptionError

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


def net_metadata(net: Any, use_metadata: Union[bool, str], net_type: str) -> Tuple[str, ...]:
    """What the model passes to ``net``: the metadata its forward takes, unless option ``adl.use_metadata``
    says never (false); true demands a net that takes some."""
    takes = forward_args(net)
    if use_metadata is True and not takes:
        raise OptionError(f"option 'adl.use_metadata' is true but network_g ({net_type}) takes no sensor/iso "
                          'argument in forward(); use a modulated net or set it to auto')
    return () if use_metadata is False else takes


def check_domain_metadata(net: Any, passed: Sequence[str], samples: Dict[str, Dict[str, Any]]) -> None:
    """Fail before training when the net uses metadata that a domain's samples (name -> one item) do not give:
    no ISO for an ISO-modulated net, or a sensor index beyond the net's ``num_sensors``."""
    needs_iso = 'iso' in passed and getattr(net, 'use_iso', True)
    num_sensors = getattr(net, 'num_sensors', None) if getattr(net, 'use_sensor', False) else None
    for name, item in samples.items():
        if needs_iso and not math.isfinite(float(item['iso'])):
            raise OptionError(f"option 'datasets.train.domains.{name}.iso': the domain's samples carry no ISO "
                              'and the net uses ISO modulation; set it, or network_g.use_iso: false')
        if 'sensor' in passed and num_sensors is not None and int(item['sensor']) >= num_sensors:
            raise OptionError(f"option 'network_g.num_sensors': domain '{name}' has sensor index "
                              f"{int(item['sensor'])} but the net knows {num_sensors} sensors")


def clamp_iso_input(net: Any, isos: Sequence[float]) -> Optional[Tuple[float, float]]:
    """Tell a net with ``set_iso_range`` (ModulatedUNet) the ISO range of the pairs a run trains on
    (non-finite and non-positive values ignored), widened by the range a loaded net already holds, so that it
    never extrapolates its ISO modulation and a clamp never narrows what a pretrained net knows. Returns the
    range set, or None."""
    isos = [float(v) for v in isos if math.isfinite(float(v)) and float(v) > 0]
    if not isos:
        return None
    low, high = min(isos), max(isos)
    held = getattr(net, 'iso_range', None)  # log2(ISO / iso_ref) of a loaded net, NaN when never set
    if held is not None and bool(torch.isfinite(held).all()):
        low, high = min(low, 2 ** float(held[0]) * net.iso_ref), max(high, 2 ** float(held[1]) * net.iso_ref)
    net.set_iso_range(low, high)
    return low, high


def batch_metadata(data: Dict[str, Any], batch: int, fallbacks: Sequence[Dict[str, Any]], passed: Sequence[str],
                   device: Any) -> Dict[str, torch.Tensor]:
    """Per-image ``sensor``/``iso`` tensors for a batch: the items' own, else (a missing or NaN ISO) the first
    fallback that has one (the training target's, then the eval set's options). A value the net takes but
    nobody gives is one error naming the file and the dataset option."""
    meta = {}
    for key in METADATA_ARGS:
        value = data.get(key)
        if value is None or (key == 'iso' and bool(torch.isnan(torch.as_tensor(value, dtype=torch.float)).any())):
            value = next((f[key] for f in fallbacks if f.get(key) is not None), None)
        if value is None and key in passed:
            where = str(data.get('lq_path', ['?'])[0])
            raise OptionError(f"'{where}': the net takes {key} but the item carries none; set option "
                              f"'datasets.<test set>.{key}'" + (" (a name in the top-level 'sensors' list)"
                                                                if key == 'sensor' else ''))
        if value is not None:
            value = torch.as_tensor(value)
            meta[key] = (value.reshape(-1).expand(batch) if value.numel() == 1 else value).to(device)
    return meta


def eval_set_metadata(dataset_opt: Dict[str, Any], passed: Sequence[str],
                      sensor_names: Callable[[], Tuple[List[str], str]]) -> Dict[str, Any]:
    """``sensor`` (as an index into the run's sensor names) and ``iso`` from an eval dataset's options, for items
    that carry none. ``sensor_names()`` gives (names in one-hot order, the option they come from); it is asked
    only when the set names a sensor the net takes."""
    meta: Dict[str, Any] = {}
    if dataset_opt.get('iso') is not None:
        meta['iso'] = float(dataset_opt['iso'])
    if dataset_opt.get('sensor') is not None and 'sensor' in passed:
        names, names_from = sensor_names()
        if dataset_opt['sensor'] not in names:
            raise OptionError(f"option 'sensor' of dataset '{dataset_opt.get('name')}': '{dataset_opt['sensor']}' "
                              f"is not a sensor the net knows; choices: {', '.join(names) or '(none listed)'}"
                              f"{' (from ' + names_from + ')' if names_from else ''}")
        meta['sensor'] = names.index(dataset_opt['sensor'])
    return meta
