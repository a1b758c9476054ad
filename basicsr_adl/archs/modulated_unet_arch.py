"""ModulatedUNet: a 4-downsampling UNet whose feature maps are modulated by sensor type and ISO (ADL, Sec. 3.2).

Modulation (Qian et al., NeurIPS 2024): the metadata vector m = concat(one-hot sensor p in R^n, s repeated n
times) feeds two four-layer MLPs; gamma = 1 + tanh(MLP_gamma(m)) and beta = MLP_beta(m) are per-channel, and
every conv block's output F becomes F' = gamma * F + beta. Both MLPs compute the values for all modulated
blocks at once (one small matmul chain per forward). Their last layers start at zero, so an untrained
modulation is the identity and the net starts as the plain UNet.

ISO encoding (our choice; the paper does not give one): s = log2(ISO / iso_ref), iso_ref = 100 by default,
so ISO 100 -> 0, ISO 800 -> 3, ISO 6400 -> 6; doublings of gain are equal steps.

ISO range (our choice, against the identity collapse seen on real data): the MLPs are only trained at the ISOs
of the training data, and a LeakyReLU MLP extrapolates linearly, so at an unseen ISO gamma = 1 + tanh(.) can
saturate at 0 and switch whole blocks off: the net then returns its input. The training ISO range is kept in
the buffer ``iso_range`` (log2 encoded; set by ADLModel from the training data with :meth:`set_iso_range`) and
the encoded ISO is clamped to it, so an ISO outside it is treated as the nearest one trained on. Until it is
set (a plain BasicSR model, old checkpoints) nothing is clamped.

``use_sensor`` / ``use_iso`` switch either input off (ablation); with both off there is no modulation at all
and the module is a plain UNet (same parameter names as the backbone).
"""
import math
from typing import List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from basicsr.utils.registry import ARCH_REGISTRY

DOWNSAMPLINGS = 4


def encode_iso(iso: torch.Tensor, iso_ref: float = 100.0) -> torch.Tensor:
    """log2(ISO / iso_ref), ISO clamped to >= 1."""
    return torch.log2(iso.clamp(min=1.0) / iso_ref)


class ConvBlock(nn.Module):
    """``num_convs`` 3x3 convs with LeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, num_convs: int = 2, slope: float = 0.2) -> None:
        super().__init__()
        layers = []
        for i in range(num_convs):
            layers += [nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, 1, 1), nn.LeakyReLU(slope, inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class DenseBlock(nn.Module):
    """Dense block (paper's Dense-UNet): ``num_layers`` convs each seeing all earlier maps, then a 1x1 fuse."""

    def __init__(self, in_ch: int, out_ch: int, num_layers: int = 5, growth: Optional[int] = None,
                 slope: float = 0.2) -> None:
        super().__init__()
        growth = growth or max(out_ch // 2, 8)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_ch + i * growth, growth, 3, 1, 1), nn.LeakyReLU(slope, inplace=True))
            for i in range(num_layers))
        self.fuse = nn.Sequential(nn.Conv2d(in_ch + num_layers * growth, out_ch, 1), nn.LeakyReLU(slope, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return self.fuse(torch.cat(feats, 1))


def four_layer_mlp(in_dim: int, hidden: int, out_dim: int, slope: float = 0.2) -> nn.Sequential:
    mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(slope, inplace=True),
                        nn.Linear(hidden, hidden), nn.LeakyReLU(slope, inplace=True),
                        nn.Linear(hidden, hidden), nn.LeakyReLU(slope, inplace=True),
                        nn.Linear(hidden, out_dim))
    nn.init.zeros_(mlp[-1].weight)
    nn.init.zeros_(mlp[-1].bias)
    return mlp


@ARCH_REGISTRY.register()
class ModulatedUNet(nn.Module):
    """UNet (4 downsamplings) with optional sensor/ISO channel modulation.

    Args:
        in_ch, out_ch: image channels (4 for packed RAW, 3 for sRGB).
        base_ch: channels at full resolution; level i has ``base_ch * 2**i`` (paper: 64 -> 1024).
        convs_per_block: 3x3 convs per plain block.
        dense: use dense blocks (``dense_layers`` convs each, paper: 5) instead of plain blocks.
        num_sensors: n, the one-hot size (number of sensor types known to the model).
        use_sensor, use_iso: feed the one-hot sensor / the encoded ISO to the modulation MLPs.
        mlp_hidden: hidden width of the four-layer MLPs.
        iso_ref: ISO that encodes to 0.
        residual: predict a residual added to the input (needs in_ch == out_ch).
        head_init_scale: with ``residual``, the 1x1 head starts at PyTorch's default init times this (bias 0),
            so the untrained net is close to the identity. 0 makes it exactly the identity, but that is a trap
            (measured: a plain UNet fine-tuned on the embedded set ended at its input): with a zero head no
            gradient reaches the body, and the head's own gradient is only the weak correlation of random
            features with the residual, so the net can stay at the identity for a whole run. [choice] 0.1.
    """

    def __init__(self, in_ch: int = 4, out_ch: int = 4, base_ch: int = 32, convs_per_block: int = 2,
                 dense: bool = False, dense_layers: int = 5, num_sensors: int = 1, use_sensor: bool = True,
                 use_iso: bool = True, mlp_hidden: int = 64, iso_ref: float = 100.0, residual: bool = True,
                 head_init_scale: float = 0.1,
                 slope: float = 0.2) -> None:
        super().__init__()
        if residual and in_ch != out_ch:
            raise ValueError(f'network_g.residual needs in_ch == out_ch, got {in_ch} and {out_ch}')
        if num_sensors < 1:
            raise ValueError(f'network_g.num_sensors must be >= 1, got {num_sensors}')
        self.num_sensors, self.use_sensor, self.use_iso = int(num_sensors), bool(use_sensor), bool(use_iso)
        self.iso_ref, self.residual = float(iso_ref), bool(residual)
        widths = [base_ch * 2 ** i for i in range(DOWNSAMPLINGS + 1)]

        def block(cin: int, cout: int) -> nn.Module:
            return DenseBlock(cin, cout, dense_layers, slope=slope) if dense else ConvBlock(cin, cout, convs_per_block, slope)

        self.encoders = nn.ModuleList(block(in_ch if i == 0 else widths[i - 1], widths[i]) for i in range(DOWNSAMPLINGS + 1))
        self.ups = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, 2) for i in reversed(range(DOWNSAMPLINGS)))
        self.decoders = nn.ModuleList(block(2 * widths[i], widths[i]) for i in reversed(range(DOWNSAMPLINGS)))
        self.head = nn.Conv2d(widths[0], out_ch, 1)
        if self.residual:  # start near the identity (see head_init_scale)
            with torch.no_grad():
                self.head.weight.mul_(float(head_init_scale))
                self.head.bias.zero_()

        # channels modulated, in forward order: encoder levels 0..4, then decoder levels 3..0
        self.modulated_channels: List[int] = widths + [widths[i] for i in reversed(range(DOWNSAMPLINGS))]
        meta_dim = (self.num_sensors if self.use_sensor else 0) + (self.num_sensors if self.use_iso else 0)
        self.meta_dim = meta_dim
        if meta_dim:
            total = sum(self.modulated_channels)
            self.mlp_gamma = four_layer_mlp(meta_dim, mlp_hidden, total, slope)
            self.mlp_beta = four_layer_mlp(meta_dim, mlp_hidden, total, slope)
        if self.use_iso:  # encoded [low, high]; [-inf, inf] until set: the clamp is then a no-op
            self.register_buffer('iso_range', torch.tensor([-math.inf, math.inf]))

    def set_iso_range(self, low_iso: float, high_iso: float) -> None:
        """Clamp the ISO input to [low_iso, high_iso] (the training data's ISO range) from now on."""
        if not self.use_iso:
            return
        if not 0 < low_iso <= high_iso:
            raise ValueError(f'ISO range must satisfy 0 < low <= high, got {low_iso}, {high_iso}')
        encoded = encode_iso(torch.tensor([float(low_iso), float(high_iso)]), self.iso_ref)
        self.iso_range.copy_(encoded.to(self.iso_range))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + 'iso_range'
        if self.use_iso and key not in state_dict:  # a checkpoint from before the clamp: leave it unset
            state_dict = dict(state_dict)
            state_dict[key] = torch.tensor([-math.inf, math.inf])
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    @property
    def modulated(self) -> bool:
        return self.meta_dim > 0

    def metadata_vector(self, batch: int, device: torch.device, sensor: Optional[Union[int, torch.Tensor]],
                        iso: Optional[Union[float, torch.Tensor]]) -> torch.Tensor:
        parts = []
        if self.use_sensor:
            if sensor is None:
                raise ValueError('ModulatedUNet(use_sensor=True) needs `sensor` (sensor index per image)')
            sensor = torch.as_tensor(sensor, device=device).long().reshape(-1).expand(batch) \
                if torch.as_tensor(sensor).numel() == 1 else torch.as_tensor(sensor, device=device).long().reshape(-1)
            if int(sensor.min()) < 0 or int(sensor.max()) >= self.num_sensors:
                raise ValueError(f'sensor index out of range 0..{self.num_sensors - 1} (network_g.num_sensors): '
                                 f'{sensor.tolist()}')
            parts.append(F.one_hot(sensor, self.num_sensors).float())
        if self.use_iso:
            if iso is None:
                raise ValueError('ModulatedUNet(use_iso=True) needs `iso` (ISO per image)')
            iso = torch.as_tensor(iso, device=device, dtype=torch.float32).reshape(-1)
            iso = iso.expand(batch) if iso.numel() == 1 else iso
            low, high = self.iso_range.to(iso.device)  # [-inf, inf] until set: a no-op, and no host sync
            encoded = encode_iso(iso, self.iso_ref).clamp(low, high)
            parts.append(encoded.unsqueeze(1).expand(batch, self.num_sensors))
        return torch.cat(parts, 1)

    def forward(self, x: torch.Tensor, sensor: Optional[Union[int, torch.Tensor]] = None,
                iso: Optional[Union[float, torch.Tensor]] = None) -> torch.Tensor:
        b, _, h, w = x.shape
        mult = 2 ** DOWNSAMPLINGS
        pad_h, pad_w = (mult - h % mult) % mult, (mult - w % mult) % mult
        inp = F.pad(x, (0, pad_w, 0, pad_h), mode='reflect' if min(h, w) > max(pad_h, pad_w) else 'replicate') \
            if pad_h or pad_w else x

        gammas = betas = None
        if self.modulated:
            meta = self.metadata_vector(b, x.device, sensor, iso).to(x.dtype)
            gammas = torch.split(1 + torch.tanh(self.mlp_gamma(meta)), self.modulated_channels, dim=1)
            betas = torch.split(self.mlp_beta(meta), self.modulated_channels, dim=1)
        k = 0

        def modulate(feat: torch.Tensor) -> torch.Tensor:
            nonlocal k
            if gammas is not None:
                gamma, beta = gammas[k][:, :, None, None], betas[k][:, :, None, None]
                if torch.is_grad_enabled():
                    feat = torch.addcmul(beta, feat, gamma)
                else:  # inference: in place, no extra feature map
                    feat = feat.mul_(gamma).add_(beta)
            k += 1
            return feat

        skips = []
        feat = inp
        for i, enc in enumerate(self.encoders):
            feat = modulate(enc(feat if i == 0 else F.max_pool2d(feat, 2)))
            skips.append(feat)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips[:-1])):
            feat = modulate(dec(torch.cat([up(feat), skip], 1)))
        out = self.head(feat)
        if self.residual:
            out = out + inp
        return out[:, :, :h, :w]
