"""Shared test helpers: a registry, patch writing, offline runs and node driving."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tonegraph.engine.graph import load_graph
from tonegraph.engine.node import Context, Node, Tick
from tonegraph.engine.ports import PortType
from tonegraph.engine.registry import Registry, default_registry
from tonegraph.engine.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def registry() -> Registry:
    return default_registry(plugins=False)


@pytest.fixture
def write_patch(tmp_path):
    """Write a patch (dedented) to tmp_path/NAME and return its path."""
    def write(text: str, name: str = "patch.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path
    return write


def load_ok(path: Path, registry: Registry):
    graph, errors = load_graph(path, registry)
    assert not errors, "\n".join(map(str, errors))
    return graph


def make_runner(graph, registry: Registry, batching: bool = True):
    """A graph's runner, configured on an offline context, for a test to tick by hand."""
    from tonegraph.engine.plan import make_plan
    from tonegraph.engine.runner import build

    return build(make_plan(graph, registry, batching=batching), registry,
                 graph.spec.context(offline=True))


def run_offline(path: Path, registry: Registry, duration: float, **kw) -> Runtime:
    graph = load_ok(path, registry)
    rt = Runtime(graph, registry, offline=True, duration=duration, **kw)
    rt.report = rt.run()
    return rt


def tonegraph(*args: str, cwd: Path | None = None, timeout: float = 120,
              **kw: Any) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", *args], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout, **kw)


class NodeDriver:
    """Runs one node by hand on a virtual clock: set inputs, tick, read outputs."""

    def __init__(self, cls: type[Node], params: dict | None = None, wired: dict | None = None,
                 fps: float = 60.0, node_id: str = "n") -> None:
        coerced = {k: cls.params[k].coerce(v, k) for k, v in (params or {}).items()}
        wired_types = {name: (cls.port_type(name, False) or PortType.NUMBER)
                       for name in (wired or [])}
        if wired and isinstance(wired, dict):
            wired_types.update({k: v for k, v in wired.items() if isinstance(v, PortType)})
        self.node = cls(node_id, coerced, Context(fps=fps, offline=True), wired_types)
        self.node.configure()
        self.period = 1.0 / fps
        self.index = -1

    def tick(self, **inputs: Any) -> dict[str, Any]:
        self.index += 1
        for name, port in self.node.outputs.items():
            if port.type == PortType.EVENT:
                self.node.out[name] = ()
        self.node.inp.update(inputs)
        self.node.process(Tick(self.index * self.period, self.period, self.index))
        return dict(self.node.out)

    @property
    def t(self) -> float:
        return self.index * self.period


class Watching:
    """A real-time Runtime on a thread of its own, watching its patch."""

    def __init__(self, path: Path, registry: Registry, seconds: float = 120.0, **kw: Any) -> None:
        import threading

        graph, errors = load_graph(path, registry)
        assert not errors, errors
        self.rt = Runtime(graph, registry, duration=seconds, watch=True, **kw)
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert wait_for(lambda: self.rt.reloader is not None and self.rt.frames > 5)

    def _run(self) -> None:
        try:
            self.report = self.rt.run()
        except Exception as exc:  # surfaced by stop()
            self.error = exc

    def stop(self):
        self.rt.request_stop()
        self.thread.join(timeout=20)
        assert self.error is None, self.error
        return self.report


def save(path: Path, text: str) -> None:
    """Save as editors do: write a temp file, then rename it over the patch."""
    import os

    tmp = path.with_name(f".{path.name}.swp")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_for(pred, timeout: float = 10.0) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` [s] passes (for tests of real processes)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def rows(path: Path) -> list:
    """The rows an io.record JSON Lines file holds so far (whole rows: a row still being
    written, with no newline yet, is left for the next look)."""
    import json

    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n")[:-1] if line]
