"""Batched inference (the design card's "GPU nodes batched").

Two models, each measured twice in one run: a plain torch forward of a batch of 8
against 8 single forwards (the raw gain), and the engine running the same work with
batching on against off (the engine's gain):

* GAN: a 3.8M-parameter DCGAN generator at 256x256, shared by 8 ml.gan nodes, each fed
  its own moving latent by an ml.latent node.
* Autoencoder: a 2M-parameter MLP (64 mel bands x 8 frames in, 1024-512-10), one
  ml.autoencoder node with 8 audio hops queued per frame.  The hops are queued (the
  audio thread's work, untimed) before each engine frame, and the same audio work runs
  untimed before each raw pass too, so that every timed pass starts with the cache as
  a frame finds it.

Target: the engine keeps at least 90 % of the raw gain (engine ratio / raw ratio >= 0.9).
Runs on CUDA when torch sees a GPU (the device is printed)."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tonegraph.engine.plan import make_plan
from tonegraph.engine.runner import Runner, build
from tonegraph.engine.graph import load_graph
from tonegraph.engine.node import Tick
from tonegraph.engine.registry import default_registry
from tonegraph.nodes.ml import models
from tonegraph.nodes.ml.frontend import DEFAULT as FRONT
from tonegraph.nodes.ml.models import pick_device

from .common import quick, table

N = 8


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict, rounds: int, device) -> dict[str, float]:
    """Median seconds of each function, all run once per round in turn, so that the
    machine's ups and downs fall on every one alike.  A value may be a pair
    ``(prepare, fn)``: ``prepare`` runs untimed before each timed ``fn``."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds + 1):                     # the first round warms up
        for name, fn in fns.items():
            if isinstance(fn, tuple):
                fn[0]()
                fn = fn[1]
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(ts[1:])) for name, ts in times.items()}


def raw(module: torch.nn.Module, inputs: torch.Tensor, device) -> dict:
    """8 single forwards, and one forward of 8, of the plain module."""
    module = module.to(device).eval()
    x = inputs.to(device)

    def singles() -> None:
        with torch.inference_mode():
            for i in range(N):
                module(x[i:i + 1])

    def batch() -> None:
        with torch.inference_mode():
            module(x)

    return {"raw singles": singles, "raw batch": batch}


def _runner(text: str, folder: Path, batching: bool) -> Runner:
    reg = default_registry(plugins=False)
    path = folder / f"bench-{batching}.yaml"
    path.write_text(text)
    graph, errors = load_graph(path, reg)
    assert not errors, errors
    return build(make_plan(graph, reg, batching=batching), reg, graph.spec.context(offline=True))


def gan(folder: Path, rounds: int, device) -> list[str]:
    torch.manual_seed(0)
    g = models.Generator(128, 256, 16)
    params = sum(p.numel() for p in g.parameters())
    weights = folder / "gan-256.pt"
    models.save(weights, "gan", {"latent": 128, "size": 256, "ngf": 16}, g.eval(), {})
    lines = ["patch: {fps: 30}", "nodes:"]
    for i in range(N):
        lines.append(f"  z{i}: {{type: ml.latent, params: {{dim: 128, seed: {i}, speed: 2}}}}")
        lines.append(f"  g{i}: {{type: ml.gan, params: {{model: {weights}, device: {device.type}}}, "
                     f"in: {{value: z{i}}}}}")
    text = "\n".join(lines) + "\n"
    fns = raw(g, torch.randn(N, 128), device)
    exs = {}
    for batching in (False, True):
        ex = exs[batching] = _runner(text, folder, batching)
        tick = Tick(0.0, 1 / 30, 0)

        def frame(ex=ex, tick=tick) -> None:        # every frame has 8 new latents
            tick.index += 1
            tick.t = tick.index / 30
            ex.frame(tick)

        fns[f"engine {'on' if batching else 'off'}"] = frame
    t = interleaved(fns, rounds, device)
    for ex in exs.values():
        assert ex.fault_count() == 0
        ex.close()
    return _rows(f"GAN {params / 1e6:.1f}M params 256x256, {N} nodes", t)


def autoencoder(folder: Path, rounds: int, device) -> list[str]:
    torch.manual_seed(0)
    bands, context = FRONT["bands"], 8
    config = {"input": bands * context, "hidden": [1024, 512], "code": 10, "context": context}
    net = models.AutoEncoder(config["input"], config["hidden"], config["code"])
    params = sum(p.numel() for p in net.parameters())
    extra = {"frontend": dict(FRONT), "mean": torch.zeros(config["input"]),
             "std": torch.ones(config["input"]), "code_lo": torch.zeros(10), "code_hi": torch.ones(10),
             "error_median": 1.0}
    weights = folder / "ae-2m.pt"
    models.save(weights, "autoencoder", config, net.eval(), extra)
    text = (f"patch: {{fps: 30, samplerate: {FRONT['samplerate']}, hop: {FRONT['hop']}}}\n"
            "nodes:\n"
            "  groove: {type: audio.synth}\n"
            f"  ae: {{type: ml.autoencoder, params: {{model: {weights}, device: {device.type}}}, "
            "in: {audio: groove}}\n")
    fns = raw(net, torch.randn(N, config["input"]), device)
    exs = {}
    for batching in (False, True):
        ex = exs[batching] = _runner(text, folder, batching)
        hop = Tick(0.0, FRONT["hop"] / FRONT["samplerate"], 0)
        frame = Tick(0.0, 1 / 30, 0)

        def queue_hops(ex=ex, hop=hop) -> None:     # not timed: the audio thread's share
            for _ in range(N):
                ex.audio_hop(hop)
                hop.index += 1
                hop.t += hop.dt

        def run_frame(ex=ex, frame=frame) -> None:
            frame.index += 1
            frame.t = frame.index / 30
            ex.frame(frame)
            assert ex.nodes["ae"].out["hops"] == N

        fns[f"engine {'on' if batching else 'off'}"] = (queue_hops, run_frame)
    # The raw passes come after the same untimed audio work as the engine's frames (the
    # front end's hops push the weights out of the cache), so both start alike.
    side = _runner(text, folder, True)
    heard = Tick(0.0, FRONT["hop"] / FRONT["samplerate"], 0)

    def hear() -> None:
        for _ in range(N):
            side.audio_hop(heard)
            heard.index += 1
            heard.t += heard.dt
        side.nodes["ae"].queue.clear()
    fns = {name: (hear, fn) if name.startswith("raw") else fn for name, fn in fns.items()}
    t = interleaved(fns, rounds * 10, device)
    side.close()
    for ex in exs.values():
        assert ex.fault_count() == 0
        ex.close()
    return _rows(f"autoencoder {params / 1e6:.1f}M params, {N} hops", t)


def _rows(label: str, t: dict[str, float]) -> list[str]:
    raw_gain = t["raw singles"] / t["raw batch"]
    eng_gain = t["engine off"] / t["engine on"]
    return [label, f"{t['raw singles'] * 1e3:.2f} / {t['raw batch'] * 1e3:.2f} ms", f"{raw_gain:.2f}x",
            f"{t['engine off'] * 1e3:.2f} / {t['engine on'] * 1e3:.2f} ms", f"{eng_gain:.2f}x",
            f"{eng_gain / raw_gain:.0%}"]


@contextlib.contextmanager
def torch_threads(count: int | None):
    """Torch on ``count`` threads whatever ``share_cores`` would leave it (what the
    engine refuses to do beside GL and audio: the baseline its choice is measured
    against); None: ``share_cores``' own choice."""
    saved = models.share_cores, torch.get_num_threads()
    if count:
        models.share_cores = lambda sharing=frozenset(): (torch.set_num_threads(count), count)[1]
    try:
        yield
    finally:
        models.share_cores = saved[0]
        torch.set_num_threads(saved[1])


def realtime_patch(all_cores: bool = False) -> list[str]:
    """graphs/learned.yaml (two GANs and an autoencoder on the shipped models, batched)
    in real time at its 60 fps: control ticks skipped and their work time (the
    autoencoder's batch), and frames drawn and dropped by the render domain (the GANs).  By
    default torch leaves a core to each of the audio thread and GL; ``all_cores`` is the
    baseline where it takes every core (what OMP_NUM_THREADS did before it was capped)."""
    import os

    from tonegraph.engine.runtime import Runtime

    from .common import percentile

    reg = default_registry(plugins=False)
    path = Path(__file__).resolve().parents[2] / "graphs" / "learned.yaml"
    graph, errors = load_graph(path, reg)
    assert not errors, errors
    seconds = 5.0 if quick() else 30.0
    rt = Runtime(graph, reg, duration=seconds, watch=False)
    rt.tick_record = []
    with torch_threads(os.cpu_count() if all_cores else None), \
            contextlib.redirect_stdout(io.StringIO()):   # the patch's io.print
        report = rt.run()
    work = rt.tick_record[60:]                      # past the first second (model loading)
    label = "torch on every core" if all_cores else "torch leaving a core to audio and GL"
    return [f"graphs/learned.yaml in real time, {seconds:g} s at {graph.spec.fps:g} fps, {label}",
            f"{report.frames} control ticks, {report.skipped_frames} skipped; "
            f"{report.renders} frames drawn, {report.skipped_renders} dropped",
            f"control tick work p50 / p99 / max: {percentile(work, 50) * 1e3:.2f} / "
            f"{percentile(work, 99) * 1e3:.2f} / {max(work) * 1e3:.2f} ms",
            f"budget {1e3 / graph.spec.fps:.1f} ms"]


def run() -> None:
    device = pick_device("auto")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU, {torch.get_num_threads()} torch threads"
    rounds = 5 if quick() else 25
    with tempfile.TemporaryDirectory() as d:
        rows = [gan(Path(d), rounds, device), autoencoder(Path(d), rounds, device)]
    table(f"Batched inference on {name}, medians of {rounds} interleaved rounds "
          "(target: the engine keeps >= 90 % of the raw gain)",
          ["model", "raw 8 singles / batch of 8", "raw gain", "engine off / on (per frame)",
           "engine gain", "kept"], rows)
    table("The shipped models at the frame rate", ["patch", "ticks and frames", "work", "budget"],
          [realtime_patch(), realtime_patch(all_cores=True)])
