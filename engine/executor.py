"""The executor: runs a checked graph's nodes tick by tick, isolating failures.

The graph is compiled once into one straight-line Python function per rate domain
(``frame`` and ``audio``): for each node in order, statements that copy its wired
inputs from its sources' output dicts, clear its event outputs, and call ``process``
inside its own ``try``.  The generated code refers to nodes and dicts only through
local names bound to objects (never to text from the patch, except port names as
``repr`` literals), and it has no loops or look-ups by name left to do, which keeps a
tick close to a hand-written loop over the same nodes.

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
from pathlib import Path
from typing import Any

from .batch import Batched, BatchGroup
from .errors import NodeError
from .graph import Graph
from .node import Context, Node, Tick
from .ports import NO_EVENTS, PortType
from .registry import Registry

log = logging.getLogger("tonegraph.executor")

FAULT_LOG_INTERVAL = 5.0  # [s] between two log lines about the same failing node
FAULT_WINDOW = 10.0       # [s] over which failures are counted for the restart policy
RESTART_BACKOFF = (1.0, 60.0)  # [s] first and longest wait between two restarts of a node


@dataclass
class Fault:
    count: int = 0
    last_message: str = ""
    last_logged: float = -1e9
    unlogged: int = 0
    window_start: float = -1e9
    in_window: int = 0
    restarts: int = 0
    next_restart: float = 0.0


@dataclass
class _Step:
    node: Node
    process: Any = None
    copies: list[tuple[str, dict, str]] = field(default_factory=list)
    drains: list[tuple[str, deque]] = field(default_factory=list)
    posts: list[tuple[str, deque]] = field(default_factory=list)
    event_outputs: list[str] = field(default_factory=list)
    #: For a batch group: the member nodes' steps (``process`` is the BatchGroup).
    members: list["_Step"] = field(default_factory=list)


def _generate(steps: list[_Step], delayed: list[tuple[dict, str, dict, str]],
              fault, name: str):
    """Compile the steps into one function ``run(tick)`` (see the module docstring)."""
    env: dict[str, Any] = {"NO_EVENTS": NO_EVENTS, "fault": fault}
    body: list[str] = []

    def bind(i: int, st: _Step) -> None:
        env[f"n{i}"], env[f"p{i}"] = st.node, st.process or st.node.process
        env[f"i{i}"], env[f"o{i}"] = st.node.inp, st.node.out

    def inputs(i: int, st: _Step) -> None:
        for j, (port, src, src_port) in enumerate(st.copies):
            env[f"s{i}_{j}"] = src
            body.append(f"i{i}[{port!r}] = s{i}_{j}[{src_port!r}]")
        for j, (port, queue) in enumerate(st.drains):
            env[f"q{i}_{j}"] = queue
            body.append(f"i{i}[{port!r}] = tuple([q{i}_{j}.popleft() for _ in range(len(q{i}_{j}))]) "
                        f"if q{i}_{j} else NO_EVENTS")
        for port in st.event_outputs:
            body.append(f"o{i}[{port!r}] = NO_EVENTS")

    def posts(i: int, st: _Step, indent: str) -> None:
        for j, (port, queue) in enumerate(st.posts):
            env[f"r{i}_{j}"] = queue
            body.append(f"{indent}if o{i}[{port!r}]: r{i}_{j}.extend(o{i}[{port!r}])")

    i = 0
    for k, st in enumerate(steps):
        if st.members:   # a batch group: every member's inputs, one call, every member's posts
            env[f"g{k}"] = st.process
            first = i
            for m in st.members:
                bind(i, m)
                inputs(i, m)
                i += 1
            body += ["try:", f"    g{k}(tick)", "except Exception as exc:"]
            body += [f"    fault(n{j}, exc)" for j in range(first, i)]
            for j, m in enumerate(st.members, first):
                posts(j, m, "")
            continue
        bind(i, st)
        inputs(i, st)
        body += ["try:", f"    p{i}(tick)", "except Exception as exc:", f"    fault(n{i}, exc)"]
        if st.posts:
            body.append("else:")
            posts(i, st, "    ")
        i += 1
    for j, (buf, key, out, port) in enumerate(delayed):
        env[f"b{j}"], env[f"d{j}"] = buf, out
        body.append(f"b{j}[{key!r}] = d{j}[{port!r}]")
    source = "def run(tick):\n" + "".join(f"    {line}\n" for line in body or ["pass"])
    exec(compile(source, f"<tonegraph {name} schedule>", "exec"), env)  # noqa: S102
    return env["run"]


class Executor:
    """Instantiates a graph's nodes and runs them."""

    def __init__(self, graph: Graph, registry: Registry, ctx: Context,
                 previous: "Executor | None" = None, batching: bool = True) -> None:
        """Instantiate the graph's nodes.  With ``previous`` (a hot reload), a node whose
        id and type are unchanged is taken over with its state instead of created: see
        :meth:`prepare` and :meth:`adopt`.  ``batching`` runs nodes that share a model
        in one forward pass per tick (engine/batch.py)."""
        self.graph = graph
        self.ctx = ctx
        self.registry = registry
        self.batching = batching
        self.nodes: dict[str, Node] = {}
        self.fresh: set[str] = set()      # created for this graph (not taken over)
        #: Per node, the files it read and their modification times when it was configured.
        self.stamps: dict[str, dict[str, int]] = {}
        #: Nodes replaced because a file they read changed: their state carries over.
        self.replaced: dict[str, Node] = {}
        for nid in graph.order:
            gn = graph.nodes[nid]
            old = previous.nodes.get(nid) if previous is not None else None
            if old is not None and old.type_name == gn.type:
                if old.follows_files or _stamp(old) == previous.stamps.get(nid, {}):
                    self.nodes[nid] = old
                    continue
                self.replaced[nid] = old   # a model or sound file it read was saved anew
            cls = registry[gn.type]
            self.nodes[nid] = cls(nid, gn.params, ctx, gn.wired)
            self.fresh.add(nid)
        self.previous = previous
        self.faults: dict[str, Fault] = {}
        #: Restart a node that failed this many times within FAULT_WINDOW (0: never).
        self.restart_after = 50
        #: Work for the audio thread, run between two hops (param changes of audio nodes).
        self.audio_tasks: deque = deque()
        self._delayed: list[tuple[dict, str, dict, str]] = []
        # Only real audio nodes make an audio domain worth running.
        self.has_audio = any(n.domain == "audio" for n in self.nodes.values())
        self.configured = False
        if previous is None:
            self._build()

    def _build(self) -> None:
        self._delayed = []
        frame_steps, audio_steps = self._compile()
        #: Run every frame-domain node once (then refresh delayed edges).
        self.frame = _generate(frame_steps, self._delayed, self._fault, "frame")
        #: Run every audio-domain node once, for one hop.
        self.audio_hop = _generate(audio_steps, [], self._fault, "audio")

    # -- hot reload -----------------------------------------------------------------

    def prepare(self) -> None:
        """Off the hot path (the reload thread): configure the nodes that are new.
        Raises NodeError, closing them again, if one cannot start."""
        self._configure([nid for nid in self.graph.order if nid in self.fresh])

    def adopt(self) -> list[str]:
        """Between two ticks (audio thread held): take over the previous graph's nodes,
        apply changed params and wiring, and close the nodes that are gone.  Returns
        the ids of nodes that were restarted."""
        from .node import Port

        previous = self.previous
        assert previous is not None
        restarted = []
        for nid, node in self.nodes.items():
            if nid in self.fresh:
                continue
            gn = self.graph.nodes[nid]
            full = {n: d.default for n, d in node.params.items()} | gn.params
            restart = node.apply_params({k: v for k, v in full.items() if getattr(node.p, k) != v})
            if dict(gn.wired) != node.wired:
                for name in set(node.inp) - set(node.inputs) - set(gn.wired):
                    del node.inp[name]
                for name, typ in gn.wired.items():
                    node.inp.setdefault(name, Port(typ).initial())
                node.wired = dict(gn.wired)
                restart = True
            if restart:
                try:
                    node.restart()
                except Exception as exc:
                    self._fault(node, exc)
                restarted.append(nid)
            node.audio_inputs = set()
        for nid, old in self.replaced.items():
            try:
                self.nodes[nid].restore(old.state())
            except Exception as exc:
                log.error("node '%s' (%s) could not take over its state: %s", nid,
                          old.type_name, _describe(exc))
        for nid, node in self.nodes.items():
            if nid not in self.fresh:
                self.stamps[nid] = _stamp(node) if nid in restarted else previous.stamps.get(nid, {})
        for nid, node in previous.nodes.items():
            if self.nodes.get(nid) is not node:
                _close_quietly(node)
        self.faults = {k: v for k, v in previous.faults.items() if k in self.nodes and k not in self.fresh}
        self.audio_tasks = previous.audio_tasks
        self._build()
        self.configured = True
        self.previous = None
        return restarted


    # -- set-up -------------------------------------------------------------------

    def _compile(self) -> tuple[list[_Step], list[_Step]]:
        steps: dict[str, _Step] = {nid: _Step(node) for nid, node in self.nodes.items()}
        # A "both" node also has an audio step, fed its audio-domain events.
        audio_side = {nid: _Step(node, node.process_audio) for nid, node in self.nodes.items()
                      if node.domain == "both"}
        for nid, node in self.nodes.items():
            outputs = node.outputs_for(vars(node.p))
            steps[nid].event_outputs = [n for n, p in outputs.items() if p.type == PortType.EVENT]
        for e in self.graph.edges:
            src, dst = self.nodes[e.src], self.nodes[e.dst]
            step = steps[e.dst]
            if dst.domain == "both" and src.domain == "audio" and not e.delay and (
                    e.type == PortType.EVENT or _declared(dst, e.dst_port) == PortType.AUDIO):
                audio_side[e.dst].copies.append((e.dst_port, src.out, e.src_port))
                dst.audio_inputs.add(e.dst_port)
                continue
            src_domain = "frame" if src.domain == "both" else src.domain
            dst_domain = "frame" if dst.domain == "both" else dst.domain
            if e.delay:
                buf: dict[str, Any] = {e.src_port: src.out.get(e.src_port)}
                self._delayed.append((buf, e.src_port, src.out, e.src_port))
                step.copies.append((e.dst_port, buf, e.src_port))
            elif e.type == PortType.EVENT and src_domain != dst_domain:
                queue: deque = deque()
                steps[e.src].posts.append((e.src_port, queue))
                step.drains.append((e.dst_port, queue))
            else:
                step.copies.append((e.dst_port, src.out, e.src_port))
        frame = self._batch([n for n in self.graph.order if self.nodes[n].domain in ("frame", "both")],
                            steps)
        audio = [steps[n] if self.nodes[n].domain == "audio" else audio_side[n]
                 for n in self.graph.order if self.nodes[n].domain in ("audio", "both")]
        return frame, audio

    def _batch(self, order: list[str], steps: dict[str, _Step]) -> list[_Step]:
        """The frame schedule, with batched nodes (engine/batch.py) that cannot feed one
        another gathered into one step per node type.

        A batched node's level is the most batched nodes of its own type on any undelayed
        path into it, so nodes of one type and level never feed one another.  Contracting
        each (type, level) to one step is then kept if the graph stays acyclic (nodes of
        two types can feed each other crosswise); otherwise levels count batched nodes of
        every type, which always leaves it acyclic.  The schedule is the contracted
        graph's topological order, ties kept in the patch's order."""
        import networkx as nx

        batched = {n for n in order if isinstance(self.nodes[n], Batched)}
        if not self.batching or not batched:
            return [steps[n] for n in order]
        incoming: dict[str, list[str]] = {}
        for e in self.graph.edges:
            if not e.delay:
                incoming.setdefault(e.dst, []).append(e.src)
        type_of = {n: self.nodes[n].type_name for n in batched}

        def contract(per_type: bool) -> nx.DiGraph:
            # levels[nid][t]: most batched nodes of type t on a path into nid
            levels: dict[str, dict[str, int]] = {}
            for nid in self.graph.order:
                mine: dict[str, int] = {}
                for src in incoming.get(nid, ()):
                    for t, v in levels[src].items():
                        mine[t] = max(mine.get(t, 0), v)
                    if src in batched:
                        t = type_of[src] if per_type else ""
                        mine[t] = max(mine.get(t, 0), levels[src].get(t, 0) + 1)
                levels[nid] = mine
            unit = {n: (f"{type_of[n]} {levels[n].get(type_of[n] if per_type else '', 0)}"
                        if n in batched else n) for n in order}
            dag = nx.DiGraph()
            for i, nid in enumerate(order):
                dag.add_node(unit[nid])
                dag.nodes[unit[nid]].setdefault("position", i)
                dag.nodes[unit[nid]].setdefault("members", []).append(nid)
            for e in self.graph.edges:
                if not e.delay and e.src in unit and e.dst in unit and unit[e.src] != unit[e.dst]:
                    dag.add_edge(unit[e.src], unit[e.dst])
            return dag

        dag = contract(per_type=True)
        if not nx.is_directed_acyclic_graph(dag):
            dag = contract(per_type=False)
        schedule = []
        for u in nx.lexicographical_topological_sort(dag, key=lambda u: dag.nodes[u]["position"]):
            members = dag.nodes[u]["members"]
            if members[0] in batched:
                group = _Step(self.nodes[members[0]], members=[steps[m] for m in members])
                group.process = BatchGroup([self.nodes[m] for m in members], self._fault)
                schedule.append(group)
            else:
                schedule.append(steps[u])
        return schedule

    def configure(self) -> None:
        """Configure every node in order (first start; a reload uses prepare/adopt).
        Raises NodeError naming the node that failed, after closing the others."""
        self._configure(list(self.nodes))
        self.configured = True

    def _configure(self, ids: list[str]) -> None:
        done = []
        for nid in ids:
            node = self.nodes[nid]
            try:
                node.configure()
            except Exception as exc:
                for other in reversed(done):
                    _close_quietly(other)
                if isinstance(exc, NodeError):
                    raise
                raise NodeError(nid, f"{node.type_name}: {_describe(exc)}") from exc
            done.append(node)
            self.stamps[nid] = _stamp(node)

    def close(self) -> None:
        for node in reversed(list(self.nodes.values())):
            _close_quietly(node)

    def run_audio_tasks(self) -> None:
        """Called by whoever runs audio hops, between two of them."""
        tasks = self.audio_tasks
        while tasks:
            task = tasks.popleft()
            try:
                task()
            except Exception as exc:  # a task must never stop the audio thread
                log.error("audio-thread task failed: %s", _describe(exc))

    def in_domain(self, node: Node, fn) -> None:
        """Run ``fn`` where ``node`` runs: now for frame nodes (the caller is the frame
        thread), before the next hop for audio nodes."""
        if node.domain == "audio" and self.has_audio:
            self.audio_tasks.append(fn)
        else:
            fn()

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
        if now - f.window_start > FAULT_WINDOW:
            f.window_start, f.in_window = now, 0
        f.in_window += 1
        if self.restart_after and f.in_window >= self.restart_after and now >= f.next_restart:
            self._restart_failing(node, f, now)

    def _restart_failing(self, node: Node, f: Fault, now: float) -> None:
        """The restart policy: a node that keeps failing starts afresh (no state carried
        over, since its state may be the cause), with a growing pause between restarts."""
        first, longest = RESTART_BACKOFF
        f.restarts += 1
        f.next_restart = now + min(longest, first * 2 ** (f.restarts - 1))
        f.in_window = 0
        log.error("node '%s' (%s) failed %d times in %g s: restarting it (restart %d)",
                  node.id, node.type_name, self.restart_after, FAULT_WINDOW, f.restarts)
        try:
            node.close()
            node.configure()
        except Exception as exc:
            log.error("node '%s' (%s) could not restart: %s", node.id, node.type_name, _describe(exc))

    def fault_count(self) -> int:
        return sum(f.count for f in self.faults.values())


def _stamp(node: Node) -> dict[str, int]:
    """The files a node reads, with their modification times (-1: missing)."""
    try:
        files = node.files()
    except Exception:  # a node that cannot name its files is never replaced for them
        return {}
    stamps = {}
    for f in files:
        try:
            stamps[str(f)] = Path(f).stat().st_mtime_ns
        except OSError:
            stamps[str(f)] = -1
    return stamps


def _declared(node: Node, port: str) -> PortType | None:
    """The type a node declares for an input port (None for variadic inputs)."""
    decl = node.inputs.get(port)
    return decl.type if decl is not None else None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close_quietly(node: Node) -> None:
    try:
        node.close()
    except Exception as exc:  # closing must never stop the others from closing
        log.error("node '%s' (%s) failed to close: %s", node.id, node.type_name, _describe(exc))
