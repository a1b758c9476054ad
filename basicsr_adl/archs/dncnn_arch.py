"""DnCNN (Zhang et al., TIP 2017), the smallest backbone in the LAN paper; BasicSR 1.4.2 ships none."""
from torch import Tensor, nn

from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class DnCNN(nn.Module):
    """conv+ReLU, (num_layers - 2) x conv(+BN)+ReLU, conv; with ``residual`` the body predicts the noise.

    Args:
        num_in_ch / num_out_ch: image channels (3 for sRGB, 4 for packed RAW). Residual learning needs them equal.
        num_feat: feature width (paper: 64). num_layers: number of convolutions (paper: 17 for known noise).
        use_bn: BatchNorm after the middle convs (their bias is then dropped). residual: output = x - body(x).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_layers: int = 17,
                 use_bn: bool = True, residual: bool = True) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f'DnCNN: num_layers must be >= 2, got {num_layers}')
        if residual and num_in_ch != num_out_ch:
            raise ValueError(f'DnCNN: residual learning needs num_in_ch == num_out_ch, got {num_in_ch} and {num_out_ch}')
        self.residual = residual
        layers = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=not use_bn))
            if use_bn:
                layers.append(nn.BatchNorm2d(num_feat))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(num_feat, num_out_ch, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x - out if self.residual else out
