"""A generator rebuilt for drawing: the same pictures for a half to a third of the work.

A trained ``upsample`` or ``palette`` generator (nodes/ml/models.py) repeats one block:
nearest-neighbour upsampling to twice the size, a 3x3 convolution, batch norm, ReLU.
For drawing, with the weights fixed, the block is rebuilt once, when the model loads:

- Batch norm with its running statistics is a scale and a shift per channel: folded
  into the convolution's weights and a bias.
- A 3x3 convolution over a picture upsampled by repeating each pixel 2x2 sees, at each
  of the four output pixels of a 2x2 cell, only a 2x2 patch of the small picture: rows
  ``i-1, i`` (weights ``w0``, ``w1+w2``) for an even output row, ``i, i+1`` (``w0+w1``,
  ``w2``) for an odd one, and the same across columns.  So the block is one 2x2
  convolution over the small picture with four times the output channels (a phase
  each), then the phases interleaved: 16 multiplies per output where the upsampled 3x3
  took 36, and no upsampled copy of the input is made at all (sub-pixel convolution).
- The first layer, a transposed convolution of a 1x1 latent to 4x4, is a matrix
  product with batch norm folded in.

The sums are the same, in another order: pictures agree with the trained module's to
float rounding (about 1e-5; a test checks every shipped size).  DCGAN generators
(transposed convolutions) and modules of any other shape are left as they are.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from .models import Generator

#: Pictures are kept channels-last (each pixel's channels together) from the first block
#: to the last convolution: oneDNN's convolutions take and give that layout without
#: reordering (one-off measure, docs/benchmarks.md: the 128 px step 9.11 -> 7.92 ms at
#: batch 1 on one thread; python -m tests.benchmarks gan prints the rebuilt step against eager torch).
LAST = torch.channels_last

#: For an output pixel's phase (0: even row or column, 1: odd), which of the 3x3 taps
#: fall on each of the two small-picture rows (or columns) it sees.
TAPS = {0: ((0,), (1, 2)), 1: ((0, 1), (2,))}
PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))


def _fold(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch norm (running statistics) folded into the convolution (out, in, kh, kw)
    before it: (weight, bias)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return weight * scale.view(-1, 1, 1, 1), bn.bias - bn.running_mean * scale


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """A 3x3 kernel (out, in, 3, 3) applied after 2x nearest upsampling, as four 2x2
    kernels over the small picture, one per output phase: (4 * out, in, 2, 2)."""
    kernels = []
    for py, px in PHASES:
        k = weight.new_zeros(weight.shape[0], weight.shape[1], 2, 2)
        for a, rows in enumerate(TAPS[py]):
            for b, cols in enumerate(TAPS[px]):
                k[:, :, a, b] = weight[:, :, list(rows)][:, :, :, list(cols)].sum(dim=(2, 3))
        kernels.append(k)
    return torch.cat(kernels)


class UpBlock(nn.Module):
    """Upsample 2x, 3x3 convolution, batch norm, ReLU: as a sub-pixel convolution."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        weight, bias = _fold(conv.weight.detach(), bn)
        self.out_channels = weight.shape[0]
        self.register_buffer("kernel", phase_kernels(weight).contiguous(memory_format=LAST))
        self.register_buffer("bias", bias.detach().repeat(4).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        c = self.out_channels
        y = F.conv2d(x.contiguous(memory_format=LAST), self.kernel, self.bias, padding=1).relu_()
        out = torch.empty(n, c, 2 * h, 2 * w, dtype=y.dtype, device=y.device, memory_format=LAST)
        for i, (py, px) in enumerate(PHASES):                          # interleaved in one pass
            out[:, :, py::2, px::2] = y[:, i * c:(i + 1) * c, py:py + h, px:px + w]
        return out


class FastGenerator(nn.Module):
    """A ``Generator``'s drawing, rebuilt (see the module docstring); ``forward`` takes
    what the generator's does."""

    def __init__(self, gen: nn.Module, first: tuple, blocks: list[UpBlock], rest: nn.Module) -> None:
        super().__init__()
        weight, bias, self.channels = first
        self.register_buffer("w0", weight)
        self.register_buffer("b0", bias)
        self.blocks = nn.ModuleList(blocks)
        self.rest = rest
        self.palette = gen.palette
        self.temperature = gen.temperature
        self.latent = gen.latent
        self.COLOURS = gen.COLOURS

    def features(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.addmm(self.b0, z, self.w0).relu_().view(len(z), self.channels, 4, 4)
        for block in self.blocks:
            x = block(x)
        return self.rest(x)

    paint = Generator.paint

    def forward(self, z: torch.Tensor, temperature=None) -> torch.Tensor:
        out = self.features(z)
        return out if self.palette is None else self.paint(out, z, temperature)


def rebuild(gen: nn.Module) -> nn.Module:
    """``gen`` rebuilt for drawing, or ``gen`` itself when it is not of the shape this
    knows (a DCGAN, or anything else).  Folded without autograd: the new weights hold
    no graph back to the module's parameters."""
    with torch.no_grad():
        return _rebuilt(gen)


def _rebuilt(gen: nn.Module) -> nn.Module:
    layers = list(getattr(gen, "net", ()))
    if len(layers) < 7 or not isinstance(layers[0], nn.ConvTranspose2d) or layers[0].kernel_size != (4, 4):
        return gen
    if not (isinstance(layers[1], nn.BatchNorm2d) and isinstance(layers[2], nn.ReLU)):
        return gen
    t, bn = layers[0], layers[1]
    weight, bias = _fold(t.weight.detach().transpose(0, 1), bn)      # (in, out, 4, 4): out first
    weight, bias = weight.transpose(0, 1).reshape(t.in_channels, -1), bias.detach().repeat_interleave(16)
    blocks, i = [], 3
    while i + 3 < len(layers) and isinstance(layers[i], nn.Upsample):
        up, conv, norm, act = layers[i:i + 4]
        if not (up.mode == "nearest" and up.scale_factor == 2.0 and isinstance(conv, nn.Conv2d)
                and conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)
                and conv.bias is None and isinstance(norm, nn.BatchNorm2d) and isinstance(act, nn.ReLU)):
            return gen
        blocks.append(UpBlock(conv, norm))
        i += 4
    if not blocks:
        return gen
    rest = copy.deepcopy(nn.Sequential(*layers[i:]))                   # gen's own stay as they are
    for m in rest.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=LAST)
    fast = FastGenerator(gen, (weight.contiguous(), bias.contiguous(), t.out_channels), blocks, rest)
    return fast.eval()
