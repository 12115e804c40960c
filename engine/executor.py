"""The executor: runs a checked graph's nodes tick by tick, isolating failures.

The graph is compiled once into flat step lists, one per rate domain (``frame`` and
``audio``).  A step copies the node's wired inputs from its sources' output dicts into
its own input dict and calls ``process``; nothing is looked up by name while running,
which keeps dispatch within a small factor of a hand-written loop.

* Delayed (feedback) edges read a buffer filled at the end of the previous tick.
* Events crossing domains (an onset found in an audio hop, read by a frame node) go
  through a thread-safe queue that the consumer drains, so no event is seen twice or
  lost between frames.
* A node that raises keeps its last outputs (its events are dropped), the failure is
  counted and logged with the node's id at most once every few seconds, and the rest
  of the graph runs on.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .errors import NodeError
from .graph import Graph
from .node import Context, Node, Tick
from .ports import NO_EVENTS, PortType
from .registry import Registry

log = logging.getLogger("tonegraph.executor")

FAULT_LOG_INTERVAL = 5.0  # [s] between two log lines about the same failing node


@dataclass
class Fault:
    count: int = 0
    last_message: str = ""
    last_logged: float = -1e9
    unlogged: int = 0


@dataclass
class _Step:
    node: Node
    copies: list[tuple[str, dict, str]] = field(default_factory=list)
    drains: list[tuple[str, deque]] = field(default_factory=list)
    posts: list[tuple[str, deque]] = field(default_factory=list)
    event_outputs: list[str] = field(default_factory=list)

    def compiled(self) -> tuple:
        """``(node, process, inp, copies, extra)``; ``extra`` is None for the common
        node with no events to clear and no cross-domain queues, so the hot loop skips
        that work with one test."""
        extra = None
        if self.drains or self.posts or self.event_outputs:
            extra = (tuple(self.drains), tuple(self.posts), tuple(self.event_outputs))
        return (self.node, self.node.process, self.node.inp, tuple(self.copies), extra)


class Executor:
    """Instantiates a graph's nodes and runs them."""

    def __init__(self, graph: Graph, registry: Registry, ctx: Context) -> None:
        self.graph = graph
        self.ctx = ctx
        self.nodes: dict[str, Node] = {}
        for nid in graph.order:
            gn = graph.nodes[nid]
            cls = registry[gn.type]
            self.nodes[nid] = cls(nid, gn.params, ctx, gn.wired)
        self.faults: dict[str, Fault] = {}
        self._delayed: list[tuple[dict, str, dict, str]] = []
        self.frame_steps, self.audio_steps = self._compile()
        self.configured = False

    # -- set-up -------------------------------------------------------------------

    def _compile(self) -> tuple[tuple, tuple]:
        steps: dict[str, _Step] = {nid: _Step(node) for nid, node in self.nodes.items()}
        for nid, node in self.nodes.items():
            steps[nid].event_outputs = [n for n, p in node.outputs.items() if p.type == PortType.EVENT]
        for e in self.graph.edges:
            src, dst = self.nodes[e.src], self.nodes[e.dst]
            step = steps[e.dst]
            if e.delay:
                buf: dict[str, Any] = {e.src_port: src.out.get(e.src_port)}
                self._delayed.append((buf, e.src_port, src.out, e.src_port))
                step.copies.append((e.dst_port, buf, e.src_port))
            elif e.type == PortType.EVENT and src.domain != dst.domain:
                queue: deque = deque()
                steps[e.src].posts.append((e.src_port, queue))
                step.drains.append((e.dst_port, queue))
            else:
                step.copies.append((e.dst_port, src.out, e.src_port))
        frame = tuple(steps[n].compiled() for n in self.graph.order if self.nodes[n].domain == "frame")
        audio = tuple(steps[n].compiled() for n in self.graph.order if self.nodes[n].domain == "audio")
        return frame, audio

    def configure(self) -> None:
        """Configure every node in order; a failure names the node and closes the rest."""
        done = []
        for nid, node in self.nodes.items():
            try:
                node.configure()
            except Exception as exc:
                for other in reversed(done):
                    _close_quietly(other)
                if isinstance(exc, NodeError):
                    raise
                raise NodeError(nid, f"{node.type_name}: {_describe(exc)}") from exc
            done.append(node)
        self.configured = True

    def close(self) -> None:
        for node in reversed(list(self.nodes.values())):
            _close_quietly(node)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_steps)

    # -- running ------------------------------------------------------------------

    def frame(self, tick: Tick) -> None:
        """Run every frame-domain node once."""
        self._run(self.frame_steps, tick)
        for buf, key, out, port in self._delayed:
            buf[key] = out[port]

    def audio_hop(self, tick: Tick) -> None:
        """Run every audio-domain node once, for one hop."""
        self._run(self.audio_steps, tick)

    def _run(self, steps: tuple, tick: Tick) -> None:
        for node, process, inp, copies, extra in steps:
            for name, src, port in copies:
                inp[name] = src[port]
            if extra is None:
                try:
                    process(tick)
                except Exception as exc:  # isolate: the show goes on
                    self._fault(node, exc)
                continue
            drains, posts, event_outputs = extra
            for name, queue in drains:
                n = len(queue)
                inp[name] = tuple(queue.popleft() for _ in range(n)) if n else NO_EVENTS
            out = node.out
            for name in event_outputs:
                out[name] = NO_EVENTS
            try:
                process(tick)
            except Exception as exc:
                self._fault(node, exc)
                continue
            for name, queue in posts:
                events = out[name]
                if events:
                    queue.extend(events)

    def _fault(self, node: Node, exc: Exception) -> None:
        if node.out:
            for name, port in node.outputs.items():
                if port.type == PortType.EVENT:
                    node.out[name] = NO_EVENTS
        f = self.faults.setdefault(node.id, Fault())
        f.count += 1
        f.last_message = _describe(exc)
        now = time.monotonic()
        if now - f.last_logged >= FAULT_LOG_INTERVAL:
            extra = f" (and {f.unlogged} more since the last report)" if f.unlogged else ""
            log.error("node '%s' (%s) failed: %s%s; its outputs hold their last values",
                      node.id, node.type_name, f.last_message, extra)
            f.last_logged = now
            f.unlogged = 0
        else:
            f.unlogged += 1

    def fault_count(self) -> int:
        return sum(f.count for f in self.faults.values())


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(node: Node) -> None:
    try:
        node.close()
    except Exception as exc:  # closing must never stop the others from closing
        log.error("node '%s' (%s) failed to close: %s", node.id, node.type_name, _describe(exc))
