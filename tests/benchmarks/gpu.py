"""`make bench-gpu`: the GPU path, measured on a machine with an NVIDIA GPU.

* torch nodes on CUDA and their batch gain: 8 ml.gan nodes sharing a 256 px generator,
  batched against one forward each (goal >= 5x), and the autoencoder likewise;
* one ml.gan at 256x256 through the engine, frames per second it could draw (goal:
  60 with headroom, i.e. >= 120);
* GL through the NVIDIA EGL driver, headless: graphs/tunnel.yaml rendered at 1920x1080
  and 60 fps with the conversion to YUV on the GPU and NVENC encoding, as a ratio to
  real time (goal >= 1x).

Without a CUDA GPU it says so and exits 1: nothing here is measured on a CPU.  With
``--smoke`` every step runs on whatever the machine has, at small sizes, so the script
is checked where there is no GPU (its figures then mean nothing).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from tonegraph.engine.graph import load_graph
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime
from tonegraph.tools.render import encoder_works, render
from tonegraph.nodes.ml import models

from . import bench_batch
from .common import table

ROOT = Path(__file__).resolve().parents[2]


def gan_fps(folder: Path, device: str, size: int, seconds: float) -> tuple[float, float]:
    """Frames per second one ml.gan at ``size`` px draws through the engine (offline, so
    nothing waits for a clock), and its mean ms per frame."""
    torch.manual_seed(0)
    weights = folder / f"gan-{size}.pt"
    models.save(weights, "gan", {"latent": 128, "size": size, "ngf": 16},
                models.Generator(128, size, 16).eval(), {})
    patch = folder / "gan.yaml"
    patch.write_text("patch: {fps: 1000}\nnodes:\n"
                     "  z: {type: ml.latent, params: {dim: 128, speed: 2}}\n"
                     f"  g: {{type: ml.gan, params: {{model: {weights}, device: {device}}}, in: {{value: z}}}}\n")
    reg = default_registry(plugins=False)
    graph, errors = load_graph(patch, reg)
    assert not errors, errors
    rt = Runtime(graph, reg, offline=True, duration=seconds)
    t0 = time.perf_counter()
    rt.run()
    if device == "cuda":
        torch.cuda.synchronize()
    took = time.perf_counter() - t0
    frames = rt.renders or rt.frames
    return frames / took, 1000 * took / max(1, frames)


def gl_render(folder: Path, size: tuple[int, int], seconds: float, encoder: str) -> tuple[str, float]:
    """The GL renderer's name and the render's speed as a ratio to real time."""
    import logging

    seen: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record) -> None:
            seen.append(record.getMessage())
    handler = Catch()
    logging.getLogger("tonegraph.gl").addHandler(handler)
    logging.getLogger("tonegraph.gl").setLevel(logging.INFO)
    try:
        rep = render(ROOT / "graphs" / "tunnel.yaml", default_registry(plugins=False), None,
                     folder / "tunnel.mp4", size, 60.0, 0.0, seconds, quiet=True, encoder=encoder)
    finally:
        logging.getLogger("tonegraph.gl").removeHandler(handler)
    renderer = next((m for m in seen if m.startswith("OpenGL")), "OpenGL: not reported")
    return renderer, rep.seconds / rep.wall


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="make bench-gpu")
    ap.add_argument("--smoke", action="store_true", help="run every step on this machine, tiny")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available() and not args.smoke:
        print("bench-gpu: torch sees no CUDA GPU here; nothing is measured (run it on a machine "
              "with an NVIDIA GPU, or with --smoke to check the script)", file=sys.stderr)
        return 1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (smoke run: not figures)"
    print(f"tonegraph GPU benchmarks on {name}")
    rounds, size, seconds, frame = (2, 64, 0.5, (320, 180)) if args.smoke else (25, 256, 10.0, (1920, 1080))
    bench_batch.N = 8
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        dev = torch.device(device)
        rows = [bench_batch.gan(folder, rounds, dev), bench_batch.autoencoder(folder, rounds, dev)]
        table(f"Batched inference on {name}, medians of {rounds} rounds (goal: GAN gain >= 5x)",
              ["model", "raw 8 singles / batch of 8", "raw gain", "engine off / on (per frame)",
               "engine gain", "kept"], rows)
        fps, ms = gan_fps(folder, device, size, seconds)
        encoder = "h264_nvenc" if encoder_works("h264_nvenc") is None else "libx264"
        renderer, speed = gl_render(folder, frame, min(seconds, 10.0), encoder)
        table("One GAN and a render", ["what", "figure", "goal"], [
            [f"ml.gan at {size}x{size} through the engine", f"{fps:.0f} frames/s ({ms:.2f} ms a frame)",
             ">= 120 frames/s (60 with headroom)"],
            [f"render of graphs/tunnel.yaml at {frame[0]}x{frame[1]}, 60 fps, {encoder}",
             f"{speed:.2f}x real time; {re.sub(r'^OpenGL ', '', renderer)}", ">= 1x"]])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
