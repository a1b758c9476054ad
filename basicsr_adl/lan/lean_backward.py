"""A lean backward path for frozen networks: input gradients only, nothing kept that only weight gradients need.

LAN needs d(loss)/d(phi) through a frozen net. Plain autograd still saves every convolution's input (it is
only needed for the weight gradient) and every activation's output in float32. ``make_lean`` returns a
copy of a network in which

* eval-mode BatchNorm2d directly after a Conv2d inside an ``nn.Sequential`` is folded into that conv, and
  any other eval-mode BatchNorm2d becomes a per-channel affine that saves only its scale;
* Conv2d / ConvTranspose2d use an autograd function whose forward saves no input and whose backward
  computes only the input gradient (the adjoint convolution, run as a forward convolution);
* ReLU / LeakyReLU save a boolean mask (1 byte per element) instead of a float tensor (in place where the
  original module was in place).

Outputs and input gradients match plain autograd up to float rounding (the folded BatchNorm reorders a few
multiplications). Layers it does not know (attention, normalisation with batch statistics, functional
activations called inside ``forward``) are left to plain autograd, so any network still works.
"""
import copy
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def adjoint_weight(weight: Tensor, groups: int) -> Tensor:
    """The weight of the adjoint (input-gradient) convolution: in/out channels swapped per group, kernel flipped."""
    out_ch, in_per_group, kh, kw = weight.shape
    w = weight.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
    return w.reshape(groups * in_per_group, out_ch // groups, kh, kw).flip(-2, -1).contiguous()


class _InputGradConv2d(torch.autograd.Function):
    """Conv2d saving only its weight; backward = the adjoint convolution, nothing for the weight.

    For stride 1 the adjoint is an ordinary convolution with the flipped, channel-swapped kernel (on CPU the
    forward kernel measured faster than the generic backward-data kernel; GPU not measured); otherwise a
    transposed convolution. A bias is added in place after the convolution (cheaper on CPU than fused).
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias, stride, padding, dilation, groups):
        ctx.input_shape = x.shape
        ctx.conf = (stride, padding, dilation, groups)
        ctx.save_for_backward(weight)
        out = F.conv2d(x, weight, None, stride, padding, dilation, groups)
        if bias is not None:  # a separate in-place add is cheaper on CPU than oneDNN's fused bias
            out.add_(bias.view(1, -1, 1, 1))
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (weight,) = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        kernel = weight.shape[-2:]
        adjoint_pad = [dilation[i] * (kernel[i] - 1) - padding[i] for i in range(2)]
        if tuple(stride) == (1, 1) and min(adjoint_pad) >= 0:
            grad_in = F.conv2d(grad_out, adjoint_weight(weight, groups), None, 1, adjoint_pad, dilation, groups)
        else:
            out_size = grad_out.shape[-2:]
            output_padding = [ctx.input_shape[2 + i] - ((out_size[i] - 1) * stride[i] - 2 * padding[i]
                                                        + dilation[i] * (kernel[i] - 1) + 1) for i in range(2)]
            grad_in = F.conv_transpose2d(grad_out, weight, None, stride, padding, output_padding, groups, dilation)
        return grad_in, None, None, None, None, None, None


class _InputGradConvTranspose2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias, stride, padding, output_padding, groups, dilation):
        ctx.conf = (stride, padding, dilation, groups)
        ctx.save_for_backward(weight)
        return F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (weight,) = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conf
        # a transposed convolution's adjoint is the ordinary convolution with the same weight
        grad_in = F.conv2d(grad_out, weight, None, stride, padding, dilation, groups)
        return grad_in, None, None, None, None, None, None, None


class _MaskedLeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, negative_slope: float, inplace: bool):
        ctx.negative_slope = negative_slope
        positive = x > 0
        ctx.save_for_backward(positive)
        if inplace:  # only where the original module was in-place too: x is not read by anything else
            ctx.mark_dirty(x)
            return F.leaky_relu_(x, negative_slope)
        return F.leaky_relu(x, negative_slope)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (positive,) = ctx.saved_tensors
        # bool -> float casts and bool operands are slow on CPU; a uint8 view of the mask casts fast
        factor = positive.view(torch.uint8).to(grad_out.dtype)
        if ctx.negative_slope != 0.0:
            factor.mul_(1.0 - ctx.negative_slope).add_(ctx.negative_slope)
        return grad_out * factor, None, None


class _ChannelAffine(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor, shift: Tensor):
        ctx.save_for_backward(scale)
        return x * scale + shift

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (scale,) = ctx.saved_tensors
        return grad_out * scale, None, None


class LeanConv2d(nn.Conv2d):
    """Conv2d whose backward (when its weights are frozen) computes only the input gradient and saved no input."""

    def forward(self, x: Tensor) -> Tensor:
        if self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad):
            return super().forward(x)
        padding = self.padding
        if self.padding_mode != 'zeros' or isinstance(padding, str):
            mode = 'constant' if self.padding_mode == 'zeros' else self.padding_mode
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=mode)
            padding = (0, 0)
        if not x.requires_grad:
            return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return _InputGradConv2d.apply(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class LeanConvTranspose2d(nn.ConvTranspose2d):
    """ConvTranspose2d with an input-gradient-only backward when its weights are frozen."""

    def forward(self, x: Tensor, output_size=None) -> Tensor:
        if self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad) or not x.requires_grad:
            return super().forward(x, output_size)
        output_padding = self._output_padding(x, output_size, self.stride, self.padding, self.kernel_size,
                                              2, self.dilation)
        return _InputGradConvTranspose2d.apply(x, self.weight, self.bias, self.stride, self.padding,
                                               output_padding, self.groups, self.dilation)


class LeanLeakyReLU(nn.Module):
    """ReLU (slope 0) or LeakyReLU that keeps a boolean mask for backward."""

    def __init__(self, negative_slope: float = 0.0, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        if not x.requires_grad:
            return F.leaky_relu(x, self.negative_slope, inplace=self.inplace)
        return _MaskedLeakyReLU.apply(x, self.negative_slope, self.inplace and not x.is_leaf)

    def extra_repr(self) -> str:
        return f'negative_slope={self.negative_slope}, inplace={self.inplace}'


class FrozenChannelAffine(nn.Module):
    """An eval-mode BatchNorm2d as y = x * scale + shift whose backward keeps only the scale."""

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        scale, shift = batchnorm_scale_shift(bn)
        self.register_buffer('scale', scale.view(1, -1, 1, 1))
        self.register_buffer('shift', shift.view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if not x.requires_grad:
            return x * self.scale + self.shift
        return _ChannelAffine.apply(x, self.scale, self.shift)


def batchnorm_scale_shift(bn: nn.BatchNorm2d) -> Tuple[Tensor, Tensor]:
    """Per-channel (scale, shift) of an eval-mode BatchNorm2d with running statistics."""
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
    return scale.detach().clone(), shift.detach().clone()


def _foldable_bn(module: nn.Module) -> bool:
    return isinstance(module, nn.BatchNorm2d) and module.track_running_stats and module.running_mean is not None


def _lean_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d = None) -> LeanConv2d:
    lean = LeanConv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=conv.bias is not None or bn is not None,
                      padding_mode=conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        weight = conv.weight.detach().clone()
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        if bn is not None:
            scale, shift = batchnorm_scale_shift(bn)
            weight = weight * scale.view(-1, 1, 1, 1)
            bias = shift if bias is None else bias * scale + shift
        lean.weight.copy_(weight)
        if bias is not None:
            lean.bias.copy_(bias)
    return lean


def _lean_conv_transpose(conv: nn.ConvTranspose2d) -> LeanConvTranspose2d:
    lean = LeanConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                               conv.output_padding, conv.groups, conv.bias is not None, conv.dilation,
                               conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
    lean.load_state_dict(conv.state_dict())
    return lean


def _convert(module: nn.Module) -> nn.Module:
    """Replacement for one leaf module, or the module itself when it has no lean form."""
    if type(module) is nn.Conv2d:
        return _lean_conv(module)
    if type(module) is nn.ConvTranspose2d and module.padding_mode == 'zeros':
        return _lean_conv_transpose(module)
    if type(module) is nn.ReLU:
        return LeanLeakyReLU(0.0, module.inplace)
    if type(module) is nn.LeakyReLU:
        return LeanLeakyReLU(module.negative_slope, module.inplace)
    if type(module) is nn.BatchNorm2d and _foldable_bn(module):
        return FrozenChannelAffine(module)
    return module


def _leanify_children(parent: nn.Module) -> int:
    """Replace children in place (recursively); return how many BatchNorms were folded into convs."""
    folded = 0
    names = [name for name, _ in parent.named_children()]
    if isinstance(parent, nn.Sequential):
        for first, second in zip(names, names[1:]):
            conv, bn = getattr(parent, first), getattr(parent, second)
            if type(conv) is nn.Conv2d and _foldable_bn(bn) and bn.num_features == conv.out_channels:
                setattr(parent, first, _lean_conv(conv, bn))
                setattr(parent, second, nn.Identity())
                folded += 1
    for name in names:
        child = getattr(parent, name)
        if list(child.children()):
            folded += _leanify_children(child)
        else:
            setattr(parent, name, _convert(child))
    return folded


def make_lean(net: nn.Module) -> nn.Module:
    """A frozen, eval-mode copy of ``net`` with the lean layers swapped in; ``net`` itself is not touched."""
    lean = copy.deepcopy(net).eval()
    for p in lean.parameters():
        p.requires_grad_(False)
    if list(lean.children()):
        lean.lean_folded_batchnorms = _leanify_children(lean)
    else:
        lean = _convert(lean)
    for p in lean.parameters():
        p.requires_grad_(False)
    return lean.eval()
