"""Apply a trained BasicSR net (``network_g`` of an options file) to camera RAW files: DNG and sRGB out.

Used by ``scripts/denoise_raw.py`` and by ``ADLModel`` when a test set holds camera files
(:class:`~basicsr_adl.data.camera_raw_dataset.CameraRawDataset`). The RAW steps themselves are the plain units
in ``basicsr_adl.raw`` (``camera_denoise``, ``tiling``, ``dng``); this module adds what needs BasicSR: building
the net from the options, loading its weights, and the sensor names of the one-hot.

Where the sensor names come from (the first that exists):
1. a top-level ``sensors: [...]`` list in the options file;
2. the ``sensors:`` lists of the datasets (RawPairedLMDBDataset, RealNoisyPairsDataset, CameraRawDataset, and
   the domains of a MultiDomainDataset); all of them must agree;
3. the domain names of a ``MultiDomainDataset`` in one-hot order (``sensor_index``, else their position).
"""
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.errors import DataError
from basicsr_adl.metadata import used_args
from basicsr_adl.raw.camera_denoise import net_input, write_outputs
from basicsr_adl.raw.io import RawCapture
from basicsr_adl.raw.tiling import count_tiles, run_tiled

PACKED_CHANNELS = 4


def _dataset_sections(opt: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    for phase, dopt in (opt.get('datasets') or {}).items():
        if not isinstance(dopt, dict):
            continue
        yield f'datasets.{phase}', dopt
        for name, sub in (dopt.get('domains') or {}).items():
            if isinstance(sub, dict):
                yield f'datasets.{phase}.domains.{name}', sub


def sensor_names(opt: Dict[str, Any]) -> Tuple[List[str], str]:
    """(names in one-hot order, the option they come from); ([], '') when the file names no sensor."""
    if opt.get('sensors') is not None:
        return [str(s) for s in opt['sensors']], 'sensors'
    found: Optional[Tuple[List[str], str]] = None
    for where, dopt in _dataset_sections(opt):
        if dopt.get('sensors') is None:
            continue
        names = [str(s) for s in dopt['sensors']]
        if found is not None and names != found[0]:
            raise OptionError(f"option '{where}.sensors' {names} differs from '{found[1]}' {found[0]}; give the "
                              "one-hot order once as a top-level 'sensors:' list")
        found = found or (names, f'{where}.sensors')
    if found is not None:
        return found
    train = (opt.get('datasets') or {}).get('train') or {}
    if train.get('type') == 'MultiDomainDataset' and isinstance(train.get('domains'), dict):
        domains = list(train['domains'])
        by_index = {}
        for position, name in enumerate(domains):
            index = train['domains'][name].get('sensor_index', position)
            by_index[int(index)] = str(name)
        names = [by_index.get(i, f'<sensor {i}>') for i in range(max(by_index) + 1)]
        return names, 'datasets.train.domains'
    return [], ''


def build_net(opt: Dict[str, Any], weights: str, device: torch.device) -> torch.nn.Module:
    """``network_g`` of ``opt`` with ``weights`` loaded (BasicSR's ``params``/``params_ema`` layout or a bare
    state dict), in eval mode on ``device``."""
    from basicsr.archs import build_network
    if not isinstance(opt.get('network_g'), dict) or 'type' not in opt['network_g']:
        raise OptionError("missing required option 'network_g.type'")
    try:
        net = build_network(dict(opt['network_g']))
    except (TypeError, ValueError, KeyError) as err:
        raise OptionError(f"option 'network_g': building {opt['network_g']['type']} failed: {err}") from err
    try:
        state = torch.load(weights, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise OptionError(f"weights file not found: '{weights}'") from None
    except Exception as err:
        raise OptionError(f"weights file '{weights}' is not a readable torch checkpoint ({err})") from err
    key = (opt.get('path') or {}).get('param_key_g') or 'params'
    if isinstance(state, dict) and key not in state and 'params' in state:
        key = 'params'
    if isinstance(state, dict) and key in state:
        state = state[key]
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0:3]
        raise OptionError(f"weights file '{weights}' does not fit network_g ({opt['network_g']['type']}): "
                          f"{' '.join(s.strip() for s in first)}") from None
    return net.to(device).eval()


@dataclass
class NetInputs:
    """The net with what a RAW file needs besides its pixels: the sensor index and how ISO is found."""
    net: torch.nn.Module
    args: Tuple[str, ...]
    sensor: Optional[int] = None
    sensor_name: str = ''

    def check_channels(self, where: str) -> None:
        """Probe the net on a small packed input: it must take and give 4 channels."""
        probe = torch.zeros(1, PACKED_CHANNELS, 32, 32, device=next(self.net.parameters()).device)
        try:
            with torch.no_grad():
                out = self.forward(probe, 100.0)
        except RuntimeError as err:
            raise OptionError(f"option '{where}': the net does not take packed RAW (4 channels: R, G1, G2, B): "
                              f"{str(err).splitlines()[0]}") from None
        if out.shape[1] != PACKED_CHANNELS:
            raise OptionError(f"option '{where}': the net gives {out.shape[1]} channels; a RAW denoiser must give "
                              f'{PACKED_CHANNELS} (packed R, G1, G2, B)')

    def forward(self, x: torch.Tensor, iso: Optional[float]) -> torch.Tensor:
        kwargs = {}
        if 'sensor' in self.args:
            kwargs['sensor'] = torch.full((x.shape[0], ), int(self.sensor), dtype=torch.long, device=x.device)
        if 'iso' in self.args:
            kwargs['iso'] = torch.full((x.shape[0], ), float(iso), dtype=torch.float32, device=x.device)
        return self.net(x, **kwargs)


def pick_sensor(opt: Dict[str, Any], net: torch.nn.Module, name: Optional[str], where: str = '--sensor') -> NetInputs:
    """The net's metadata needs resolved against the options' sensor names; one error naming ``where``."""
    args = used_args(net)
    inputs = NetInputs(net=net, args=args)
    if 'sensor' not in args:
        return inputs
    names, source = sensor_names(opt)
    if not names:
        raise OptionError("the net takes a sensor (one-hot) but the options file names no sensors; add a top-level "
                          "'sensors: [...]' list in the net's one-hot order")
    if name is None:
        raise OptionError(f"{where} is required: the net takes a sensor; one of {', '.join(names)} "
                          f'(from {source})')
    if name not in names:
        raise OptionError(f"{where} '{name}': not a sensor the net knows; choices: {', '.join(names)} "
                          f'(from {source})')
    count = getattr(net, 'num_sensors', None)
    if count is not None and len(names) != int(count):
        raise OptionError(f"option '{source}' lists {len(names)} sensors but network_g.num_sensors is {count}")
    inputs.sensor, inputs.sensor_name = names.index(name), name
    return inputs


def capture_iso(capture: RawCapture, iso: Optional[float], inputs: NetInputs) -> Tuple[Optional[float], str]:
    """(ISO for the net, where it came from): the file's (LibRaw/EXIF), else ``iso``, else an error when the net
    takes ISO."""
    if capture.iso:
        return float(capture.iso), 'file'
    if iso is not None:
        return float(iso), '--iso'
    if 'iso' in inputs.args:
        raise DataError(f'{capture.path}: the file carries no ISO (EXIF) and the net takes ISO; give --iso N')
    return None, 'none'


def denoise_capture(capture: RawCapture, inputs: NetInputs, iso: Optional[float], tile: int, overlap: int,
                    device: torch.device, on_tile: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """The net's normalised packed (4, h, w) output for ``capture`` (tiled; see ``basicsr_adl.raw.tiling``)."""
    image = torch.from_numpy(net_input(capture))[None]
    with torch.inference_mode():
        out = run_tiled(lambda t: inputs.forward(t, iso), image, tile, overlap, device=device, on_tile=on_tile)
    return out[0].numpy()


def denoise_file(capture: RawCapture, inputs: NetInputs, iso: Optional[float], out_dir: str, stem: str, tile: int,
                 overlap: int, device: torch.device,
                 on_tile: Optional[Callable[[int, int], None]] = None) -> Dict[str, Any]:
    """Denoise one capture and write ``<stem>.dng`` + ``<stem>.png``; returns paths, tiles, seconds, megapixels."""
    start = time.perf_counter()
    packed = denoise_capture(capture, inputs, iso, tile, overlap, device, on_tile)
    seconds_net = time.perf_counter() - start
    dng, png = write_outputs(capture, packed, out_dir, stem)
    height, width = capture.mosaic.shape
    return {'dng': dng, 'png': png, 'seconds_net': seconds_net, 'seconds': time.perf_counter() - start,
            'megapixels': height * width / 1e6,
            'tiles': count_tiles(packed.shape[-2], packed.shape[-1], tile, overlap)}
