"""The generator rebuilt for drawing (nodes/ml/fastgen.py) draws what the trained module
draws, for every arch and size it takes, and leaves the others as they are."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from tonegraph.nodes.ml import models
from tonegraph.nodes.ml.fastgen import FastGenerator, phase_kernels, rebuild

from ..conftest import ROOT


def trained_like(arch: str, size: int, latent: int = 16, ngf: int = 8) -> nn.Module:
    """A generator with the batch norms' statistics and affine parts of a trained one."""
    torch.manual_seed(size)
    gen = models.Generator(latent, size, ngf, arch, temperature=0.25)
    for m in gen.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    return gen.eval()


def test_a_sub_pixel_convolution_is_upsampling_then_a_3x3_convolution():
    torch.manual_seed(0)
    x, w = torch.randn(2, 5, 6, 7), torch.randn(4, 5, 3, 3)
    slow = nn.functional.conv2d(nn.functional.interpolate(x, scale_factor=2, mode="nearest"), w, padding=1)
    y = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1)), phase_kernels(w))
    for i, (py, px) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        assert torch.allclose(y[:, 4 * i:4 * i + 4, py:py + 6, px:px + 7], slow[:, :, py::2, px::2], atol=1e-5)


@pytest.mark.parametrize("arch", ["upsample", "palette"])
@pytest.mark.parametrize("size", [16, 64, 128])
def test_the_rebuilt_generator_draws_the_same_pictures(arch, size):
    gen = trained_like(arch, size)
    fast = rebuild(gen)
    assert isinstance(fast, FastGenerator) and len(fast.blocks) == (size // 4).bit_length() - 1
    z = torch.randn(3, 16)
    with torch.inference_mode():
        assert torch.allclose(fast(z), gen(z), atol=1e-5), (fast(z) - gen(z)).abs().max()
        if arch == "palette":
            t = torch.tensor([0.1, 0.5, 1.0])
            assert torch.allclose(fast(z, t), gen(z, t), atol=1e-5)


def test_a_dcgan_is_left_as_it_is():
    gen = trained_like("dcgan", 32)
    assert rebuild(gen) is gen


def test_the_shipped_generator_runs_rebuilt_and_draws_as_its_weights_say():
    shipped = ROOT / "nodes" / "ml" / "models" / "gan.pt"
    runner = models.shared("gan", Path(shipped), "cpu")
    assert isinstance(runner.module, FastGenerator)
    module, data = models.load(Path(shipped), "gan")
    module.eval()
    z = torch.randn(2, runner.latent)
    with torch.inference_mode():
        want = module(z).permute(0, 2, 3, 1).add(1).mul(0.5)  # tanh's -1..1 as 0..1
    got = runner.forward(z.numpy())
    assert got.shape == (2, runner.size, runner.size, 3)
    assert abs(got - want.numpy()).max() < 1e-4


def test_bfloat16_draws_nearly_the_same_picture_where_the_cpu_has_it():
    """precision bfloat16 on the CPU: a few pixels on a colour's edge may take the
    neighbouring colour, the rest as in float32; a CPU without the instructions, or an
    autoencoder, is refused in one line."""
    shipped = Path(ROOT / "nodes" / "ml" / "models" / "gan.pt")
    if not models.cpu_has_bf16():
        with pytest.raises(models.ModelError, match="bfloat16 instructions"):
            models.shared("gan", shipped, "cpu", "bfloat16")
    else:
        fast = models.shared("gan", shipped, "cpu", "bfloat16")
        exact = models.shared("gan", shipped, "cpu", "float32")
        assert fast.dtype == torch.bfloat16 and fast is not exact
        z = torch.randn(4, fast.latent).numpy()
        a, b = fast.forward(z), exact.forward(z)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert abs(a - b).mean() < 0.005 and (abs(a - b).max(axis=-1) > 0.05).mean() < 0.02
    with pytest.raises(models.ModelError, match="for generators"):
        models.shared("autoencoder", ROOT / "nodes" / "ml" / "models" / "autoencoder.pt", "cpu", "bfloat16")
