"""The GAN step on the CPU: the generator as drawing runs it (nodes/ml/fastgen.py,
batch norm folded, each upsample-and-3x3 block a sub-pixel convolution) against the
same trained module in plain eager torch, at batch 1, 2 and 8 and 64, 128 and 256 px,
both in inference mode on the same threads, interleaved round by round (medians); and,
on a CPU with bfloat16 instructions, the rebuilt generator in bfloat16 (``precision:
bfloat16``, a few edge pixels differ).

Generators of the shipped kind (palette, ngf 32, latent 64) with batch-norm statistics
like a trained one's; the pictures agree to 1e-5 (tests/nodes/test_fastgen.py).  The
figure that matters for a show is the ratio, and the images per second it buys.

Then the whole of graphs/learned.yaml (two 128 px GANs and the autoencoder on the shipped
models) offline at 30 fps, as speed against real time: eager generators, rebuilt ones,
rebuilt in bfloat16 where the CPU has it, and rebuilt ones run for every other frame
with the frames between fading (``every: 2``, both nodes in one batch beside the
drawing), in one process, alternating, best of two;
and graphs/gan-glow.yaml rendered to H.264 at 640x360 the same three ways.

Last, gan-glow live at 60 fps, drawn headless at 640x360 (Mesa's llvmpipe): frames drawn
and dropped with the generator run on each frame, and on every other frame with the
frames between fading (``every: 2``)."""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import torch
from torch import nn

from tonegraph.engine.graph import load_graph
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime
from tonegraph.nodes.ml import fastgen, models
from tonegraph.nodes.ml.fastgen import rebuild
from tonegraph.tools.render_command import PRESET

from .bench_batch import interleaved, torch_threads
from .common import cpu_name, quick, table

BF16 = models.cpu_has_bf16()


def generator(size: int) -> nn.Module:
    torch.manual_seed(size)
    gen = models.Generator(64, size, 32, "palette", temperature=0.25)
    for m in gen.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.2, 2.0)
    return gen.eval()


def run() -> None:
    run_steps()
    if BF16:
        run_change()
    run_patch()
    run_render()
    run_live()


def run_change() -> None:
    """What bfloat16 changes in the shipped generator's pictures, against float32."""
    import numpy as np

    shipped = Path(__file__).resolve().parents[2] / "nodes" / "ml" / "models" / "gan.pt"
    z = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    exact = models.shared("gan", shipped, "cpu", "float32").forward(z)
    diff = abs(models.shared("gan", shipped, "cpu", "bfloat16").forward(z) - exact)
    table("The shipped generator in bfloat16 against float32, 32 latents (RGB in 0..1)",
          ["mean change", "pixels off by more than 0.05", "largest change"],
          [[f"{diff.mean() * 100:.2f} % of full scale", f"{(diff.max(axis=-1) > 0.05).mean() * 100:.2f} %",
            f"{diff.max():.2f}"]])


def run_steps() -> None:
    device = torch.device("cpu")
    rounds = 3 if quick() else 15
    rows = []
    for size in (64, 128) if quick() else (64, 128, 256):
        gen = generator(size)
        fast = rebuild(gen)
        half = rebuild(generator(size)).to(torch.bfloat16) if BF16 else None
        for batch in (1, 2, 8):
            z = torch.randn(batch, 64)

            def eager(z=z):
                with torch.inference_mode():
                    gen(z)

            def rebuilt(z=z):
                with torch.inference_mode():
                    fast(z)

            def bf16(z=z.to(torch.bfloat16)):
                with torch.inference_mode():
                    half(z)
            t = interleaved({"eager": eager, "rebuilt": rebuilt, **({"bf16": bf16} if BF16 else {})},
                            rounds, device)
            rows.append([f"{size} px", batch, f"{t['eager'] * 1000:.1f}", f"{t['rebuilt'] * 1000:.1f}",
                         f"{t['eager'] / t['rebuilt']:.2f}x", f"{batch / t['rebuilt']:.0f}"]
                        + ([f"{t['bf16'] * 1000:.1f}", f"{t['eager'] / t['bf16']:.2f}x"] if BF16 else []))
    table(f"GAN step on the CPU ({cpu_name()}, "
          f"{torch.get_num_threads()} torch threads): eager torch vs rebuilt for drawing",
          ["size", "batch", "eager [ms]", "rebuilt [ms]", "speed-up", "images/s rebuilt"]
          + (["bfloat16 [ms]", "speed-up"] if BF16 else []), rows)


def _ways(threads: bool = False, every: int = 1) -> dict:
    """Ways of drawing: (precision, how generators are built, torch threads or None for
    ``share_cores``' choice, the nodes' ``every``); ``threads`` adds the rebuilt generator
    on every core, ``every`` above 1 the rebuilt one run for every that many frames."""
    ways = {"eager": ("float32", lambda g: g, None, 1), "rebuilt": ("float32", rebuild, None, 1)}
    if BF16:
        ways["rebuilt, bfloat16"] = ("bfloat16", rebuild, None, 1)
    if threads:
        ways[f"rebuilt, torch on all {os.cpu_count()} cores"] = ("float32", rebuild, os.cpu_count(), 1)
    if every > 1:
        ways[f"rebuilt, every: {every}"] = ("float32", rebuild, None, every)
    return ways


def _best_of_two(run_one, threads: bool = False, every: int = 1) -> dict[str, float]:
    """Each way of drawing run by ``run_one(precision, every)`` (its speed against real
    time), alternating, best of two rounds."""
    best: dict[str, float] = {}
    for _ in range(2):
        for name, (precision, how, count, each) in _ways(threads, every).items():
            saved, fastgen.rebuild = fastgen.rebuild, how
            try:
                models._shared.clear()
                with torch_threads(count):
                    best[name] = max(best.get(name, 0.0), run_one(precision, each))
            finally:
                fastgen.rebuild = saved
    return best


def patch_speed(seconds: float) -> dict[str, float]:
    """Real-time speed of graphs/learned.yaml offline at 30 fps, per way of drawing."""
    registry = default_registry(plugins=False)
    path = Path(__file__).resolve().parents[2] / "graphs" / "learned.yaml"

    def run_one(precision: str, every: int) -> float:
        graph, errors = load_graph(path, registry, [f"{node}.{key}={value}" for node in ("walker", "coded")
                                                    for key, value in (("precision", precision),
                                                                       ("every", every))])
        assert not errors, errors
        rt = Runtime(graph, registry, offline=True, headless=True, duration=seconds, fps=30)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):      # the patch's printed lines
            rt.run()
        return seconds / (time.perf_counter() - t0)

    return _best_of_two(run_one, every=2)


def render_speed(seconds: float) -> dict[str, float]:
    """Real-time speed of ``tonegraph render graphs/gan-glow.yaml --size 640x360`` (30
    fps, H.264 at render's default preset, the analysers' 8 s preroll included), per way of drawing,
    and with torch on every core rather than the one ``share_cores`` leaves it beside the
    encoder (whether that choice wins, measured)."""
    import tempfile

    from tonegraph.tools.render import render

    registry = default_registry(plugins=False)
    path = Path(__file__).resolve().parents[2] / "graphs" / "gan-glow.yaml"
    with tempfile.TemporaryDirectory() as d:
        def run_one(precision: str, every: int) -> float:
            t0 = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):         # "rendering over the patch's own sound"
                rep = render(path, registry, None, Path(d) / "g.mp4", (640, 360), 30.0, 0.0, seconds,
                             quiet=True, sets=[f"gan.precision={precision}", f"gan.every={every}"])
            return rep.seconds / (time.perf_counter() - t0)

        return _best_of_two(run_one, threads=True)


def run_patch() -> None:
    seconds = 3.0 if quick() else 15.0
    speed = patch_speed(seconds)
    base = speed["eager"]
    table(f"graphs/learned.yaml offline at 30 fps, {seconds:g} s ({cpu_name()}): "
          "speed against real time (aim: 3x)", ["generators", "x real time", "against eager"],
          [[name, f"{s:.2f}", f"{s / base:.2f}x"] for name, s in speed.items()])


def run_render() -> None:
    seconds = 3.0 if quick() else 20.0
    speed = render_speed(seconds)
    base = speed["eager"]
    table(f"tonegraph render graphs/gan-glow.yaml --size 640x360, 30 fps, {seconds:g} s of the song "
          f"(x264 {PRESET}; {cpu_name()}): speed against real time "
          "(aim: 1.5x)", ["generator", "x real time", "against eager"],
          [[name, f"{s:.2f}", f"{s / base:.2f}x"] for name, s in speed.items()])


def live_drops(seconds: float, sets: list[str]) -> tuple[int, int, int, int, int]:
    """gan-glow live at 60 fps, headless at 640x360, with ``sets``: (frames drawn,
    dropped in the first second of drawing (the GL context, shaders and torch's first
    passes are made on the first frames), dropped after it, control ticks skipped,
    audio hops lost)."""
    import threading

    registry = default_registry(plugins=False)
    path = Path(__file__).resolve().parents[2] / "graphs" / "gan-glow.yaml"
    graph, errors = load_graph(path, registry, ["out.size=[640,360]", *sets])
    assert not errors, errors
    rt = Runtime(graph, registry, duration=seconds, watch=False, headless=True, fps=60)
    first: list[int] = []
    done = threading.Event()

    def sample() -> None:               # the drops when a second of drawing has passed
        while not done.wait(0.01) and rt.renders == 0:
            pass
        if not done.wait(1.0) and rt.render_clock is not None:
            first.append(rt.render_clock.skipped)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            report = rt.run()
    finally:
        done.set()
        watcher.join()
    start = first[0] if first else report.skipped_renders
    lost = rt.driver.skipped_hops + rt.driver.reanchors if rt.driver else 0
    return report.renders, start, report.skipped_renders - start, report.skipped_frames, lost


def run_live() -> None:
    seconds = 5.0 if quick() else 20.0
    cores = os.cpu_count() or 1
    ways = {"every frame (every: 1)": (["gan.every=1"], None),
            "every other frame (every: 2)": (["gan.every=2"], None),
            f"every frame, torch on all {cores} cores": (["gan.every=1"], cores),
            f"every other frame, torch on all {cores} cores": (["gan.every=2"], cores)}
    if BF16:
        ways["every frame, bfloat16"] = (["gan.every=1", "gan.precision=bfloat16"], None)
    live_drops(2.0, [])                 # the process's first GL context and passes: not counted
    rows = []
    for name, (sets, count) in ways.items():
        models._shared.clear()
        with torch_threads(count):
            drawn, start, after, ticks, hops = live_drops(seconds, sets)
        rows.append([name, drawn, start, after, f"{drawn / seconds:.1f}", ticks, hops])
    table(f"graphs/gan-glow.yaml live at 60 fps, drawn headless at 640x360 on llvmpipe, {seconds:g} s "
          f"({cpu_name()}; aim: 0 dropped)",
          ["generator", "frames drawn", "dropped in the first second", "dropped after it", "frames/s",
           "control ticks skipped", "audio hops lost"], rows)
