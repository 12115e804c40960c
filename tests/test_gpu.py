"""The GPU path.  On a machine with an NVIDIA GPU these run the torch nodes on CUDA and
compare them with the CPU; elsewhere they check that asking for CUDA is one clear
line, and that `make bench-gpu` both refuses to invent figures and, with --smoke, runs
every one of its steps."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from .conftest import ROOT, tonegraph


def test_gan_on_cuda_draws_what_the_cpu_draws_or_says_there_is_no_gpu(tmp_path):
    from tonegraph.nodes.ml import models
    from tonegraph.nodes.ml.base import MODELS_DIR

    cpu_runner = models.shared("gan", MODELS_DIR / "gan.pt", "cpu")
    z = np.random.default_rng(0).standard_normal((4, cpu_runner.latent)).astype(np.float32)
    cpu = cpu_runner.forward(z)
    if torch.cuda.is_available():
        gpu = models.shared("gan", MODELS_DIR / "gan.pt", "cuda").forward(z)
        assert gpu.shape == cpu.shape and np.abs(gpu - cpu).max() < 0.02
    patch = tmp_path / "p.yaml"
    patch.write_text(f"nodes:\n  z: {{type: ml.latent, params: {{dim: {cpu_runner.latent}}}}}\n"
                     "  g: {type: ml.gan, params: {device: cuda}, in: {value: z}}\n")
    res = tonegraph("run", str(patch), "--offline", "--duration", "0.2")
    if torch.cuda.is_available():
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode == 1 and "torch sees no CUDA GPU here" in res.stderr
        assert "Traceback" not in res.stderr


def test_bench_gpu_measures_only_on_a_gpu_and_its_steps_all_run():
    res = subprocess.run([sys.executable, "-m", "tests.benchmarks.gpu"], cwd=ROOT, capture_output=True,
                         text=True, timeout=900)
    if torch.cuda.is_available():
        assert res.returncode == 0, res.stderr
        assert "tonegraph GPU benchmarks on" in res.stdout and "One GAN and a render" in res.stdout
    else:
        assert res.returncode == 1 and "nothing is measured" in res.stderr
    smoke = subprocess.run([sys.executable, "-m", "tests.benchmarks.gpu", "--smoke"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
    assert smoke.returncode == 0, smoke.stderr
    for figure in ("GAN 3.8M params", "autoencoder", "ml.gan at 64x64 through the engine",
                   "render of graphs/tunnel.yaml at 320x180"):
        assert figure in smoke.stdout, smoke.stdout
