"""The plan: what running a checked graph means, as plain data, before anything runs.

:func:`make_plan` is a pure function of the graph, the node types' declarations and the
plan that runs now (for a hot reload).  It decides

* the **domain** each node runs in: ``audio`` (once per hop, paced by the sound),
  ``control`` (once per control tick at the patch's ``fps``: numbers, events, lights,
  OSC) or ``render`` (GL and image nodes, as fast as drawing allows up to ``fps``);
  a node declared ``both`` runs in ``control`` and also has an ``audio`` call that gets
  its audio-domain inputs as soon as their hop is done;
* the **schedule** of each domain: calls in dependency order, nodes sharing a model
  grouped into one batched call (engine/batch.py);
* how each input is filled before a call: a **copy** of the source's current output, a
  **queue** drained (events crossing domains, each delivered exactly once), or a
  **delay** buffer (a feedback wire reads the previous tick's value);
* the **diff** against the running plan: nodes kept (same object, params changed in
  place), new, replaced (a file they read changed), restarted (a param that needs
  set-up, their wiring or the audio rates changed; with the reason), removed, and the
  header fields that changed.

Nothing here touches a node object, a file or a thread: the runner (engine/runner.py)
turns a plan into running code, and ``tonegraph graph PATCH --plan`` prints one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .batch import Batched
from .graph import Graph
from .ports import PortType
from .registry import Registry

AUDIO, CONTROL, RENDER = "audio", "control", "render"
DOMAINS = (AUDIO, CONTROL, RENDER)
#: Header fields whose change re-makes the audio side.
AUDIO_HEADER = ("samplerate", "hop")


@dataclass(frozen=True)
class Header:
    fps: float
    samplerate: int
    hop: int


@dataclass(frozen=True)
class NodePlan:
    id: str
    type: str
    #: Where ``process`` runs: audio, control or render.
    domain: str
    #: A ``both`` node: ``process_audio`` also runs per hop.
    audio_side: bool
    #: Every param, defaults filled in.
    params: Mapping[str, Any]
    wired: Mapping[str, PortType]
    #: For ``both`` nodes: the inputs filled on the audio side.
    audio_inputs: frozenset[str]
    batched: bool
    #: Names of the node's outputs (with these params).
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Input:
    """How one input is filled before a call.  ``kind`` is ``copy`` (``src`` is a node
    id), ``drain`` (``src`` is a queue key) or ``delayed`` (``src`` is a buffer key)."""

    port: str
    kind: str
    src: str
    src_port: str


@dataclass(frozen=True)
class Call:
    node: str
    #: ``process``, or ``process_audio`` for the audio side of a ``both`` node.
    method: str
    inputs: tuple[Input, ...]
    #: Event outputs emptied before the call.
    clears: tuple[str, ...]
    #: (output port, queue key): events posted to another domain after the call.
    posts: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Step:
    """One call, or a batch group's calls (one forward pass for all of them)."""

    calls: tuple[Call, ...]
    group: bool = False


@dataclass(frozen=True)
class Delay:
    """A feedback wire's buffer, refreshed at the end of its source's domain tick."""

    key: str
    src: str
    port: str
    domain: str


@dataclass(frozen=True)
class Diff:
    kept: tuple[str, ...] = ()
    #: Kept nodes whose params change in place: id -> names.
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    new: tuple[str, ...] = ()
    #: A file the node reads changed: a new object, its predecessor's state carried over.
    replaced: tuple[str, ...] = ()
    #: A new object for a reason (id -> reason); state carried over unless listed in
    #: ``fresh_start`` (a node the fault policy restarts: its state may be the cause).
    restarted: Mapping[str, str] = field(default_factory=dict)
    fresh_start: tuple[str, ...] = ()
    #: Gone from the patch, or now of another type.
    removed: tuple[str, ...] = ()
    #: Header field -> (old, new).
    header: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    @property
    def built(self) -> tuple[str, ...]:
        """Nodes set up as new objects for this plan."""
        return self.new + self.replaced + tuple(self.restarted)

    @property
    def carried(self) -> tuple[str, ...]:
        """New objects that take over their predecessor's state."""
        return self.replaced + tuple(n for n in self.restarted if n not in self.fresh_start)

    def summary(self) -> str:
        parts = [f"{len(self.kept)} kept"]
        for label, ids in (("new", self.new), ("replaced", self.replaced), ("removed", self.removed)):
            if ids:
                parts.append(f"{len(ids)} {label} ({', '.join(ids)})")
        if self.restarted:
            parts.append(f"{len(self.restarted)} restarted (" + ", ".join(
                f"{n}: {why}" for n, why in self.restarted.items()) + ")")
        if self.changed:
            parts.append("params changed in place: " + ", ".join(
                f"{n}.{p}" for n, ps in self.changed.items() for p in ps))
        if self.header:
            parts.append("header: " + ", ".join(
                f"{k} {_num(a)} -> {_num(b)}" for k, (a, b) in self.header.items()))
        return ", ".join(parts)


@dataclass(frozen=True)
class Plan:
    name: str
    header: Header
    nodes: Mapping[str, NodePlan]
    #: The graph's dependency order over all nodes.
    order: tuple[str, ...]
    schedules: Mapping[str, tuple[Step, ...]]
    delays: tuple[Delay, ...]
    diff: Diff
    #: Params set live (over OSC) that need set-up: id -> {param: value}.  They hold
    #: until the patch file is saved again.
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The checked graph it was made from (not printed).
    graph: Graph | None = field(default=None, compare=False, repr=False)

    def queues(self) -> list[str]:
        return [q for steps in self.schedules.values() for s in steps for c in s.calls
                for _, q in c.posts]

    def describe(self) -> str:
        """The plan as text: ``tonegraph graph PATCH --plan``."""
        h = self.header
        lines = [f"plan for {self.name}: {_num(h.fps)} fps, {h.samplerate} Hz, hop {h.hop} "
                 f"({h.hop / h.samplerate * 1e3:.1f} ms)"]
        rates = {AUDIO: f"every hop, {h.samplerate / h.hop:.1f} Hz",
                 CONTROL: f"{_num(h.fps)} Hz, never waits for pictures",
                 RENDER: f"up to {_num(h.fps)} fps, late frames dropped"}
        n = 0
        for domain in DOMAINS:
            steps = self.schedules[domain]
            if not steps:
                continue
            lines.append(f"{domain} ({rates[domain]}):")
            for step in steps:
                n += 1
                if step.group:
                    lines.append(f"  {n}. batch of {len(step.calls)} "
                                 f"({self.nodes[step.calls[0].node].type}, one forward pass)")
                for call in step.calls:
                    node = self.nodes[call.node]
                    what = f"{call.node} ({node.type}{', audio side' if call.method == 'process_audio' else ''})"
                    lines.append(f"  {'   ' if step.group else ''}{'' if step.group else f'{n}. '}{what}")
                    for i in call.inputs:
                        how = {"copy": "", "drain": "  [queued across domains]",
                               "delayed": "  [previous tick]"}[i.kind]
                        src = i.src.split(">")[0].split("~")[0] if i.kind != "copy" else f"{i.src}.{i.src_port}"
                        lines.append(f"       {i.port} <- {src}{how}")
        if self.delays:
            lines.append("feedback buffers: " + ", ".join(f"{d.src}.{d.port}" for d in self.delays))
        lines.append("changes: " + self.diff.summary())
        return "\n".join(lines) + "\n"


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def node_domain(cls: type) -> tuple[str, bool]:
    """(domain of ``process``, has an audio side) for a node type."""
    d = getattr(cls, "domain", CONTROL)
    if d == "both":
        return CONTROL, True
    if d in ("frame", CONTROL):  # "frame" is the earlier name of the control domain
        return CONTROL, False
    if d not in DOMAINS:
        raise ValueError(f"{cls.type_name}: unknown domain {d!r}")
    return d, False


def make_plan(graph: Graph, registry: Registry, previous: Plan | None = None, *,
              fps: float | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None,
              stale: frozenset[str] | set[str] = frozenset(),
              fresh: frozenset[str] | set[str] = frozenset(), batching: bool = True) -> Plan:
    """Plan ``graph`` (see the module docstring).

    ``fps`` pins the control rate (``run --fps``); ``overrides`` are live param values
    that need set-up; ``stale`` names nodes whose files changed on disk; ``fresh`` names
    nodes to start afresh, without their state (the fault policy's restarts).
    ``batching`` off runs every batched node on its own (the benchmarks' baseline).
    """
    spec = graph.spec
    header = Header(float(fps or spec.fps), int(spec.samplerate), int(spec.hop))
    overrides = {k: dict(v) for k, v in (overrides or {}).items() if k in graph.nodes}
    classes = {nid: registry[gn.type] for nid, gn in graph.nodes.items()}

    # Nodes, and the wires that make each input.
    nodes: dict[str, NodePlan] = {}
    for nid in graph.order:
        gn, cls = graph.nodes[nid], classes[nid]
        domain, audio_side = node_domain(cls)
        params = {n: d.default for n, d in cls.params.items()} | gn.params | overrides.get(nid, {})
        nodes[nid] = NodePlan(nid, gn.type, domain, audio_side, params, dict(gn.wired), frozenset(),
                              issubclass(cls, Batched), tuple(cls.outputs_for(params)))
    inputs: dict[tuple[str, str], list[Input]] = {}     # (node, method) -> inputs
    posts: dict[str, list[tuple[str, str]]] = {}
    delays: list[Delay] = []
    audio_inputs: dict[str, set[str]] = {}
    for e in graph.edges:
        src, dst = nodes[e.src], nodes[e.dst]
        declared = classes[e.dst].inputs.get(e.dst_port)
        if dst.audio_side and src.domain == AUDIO and not e.delay and (
                e.type == PortType.EVENT or (declared is not None and declared.type == PortType.AUDIO)):
            inputs.setdefault((e.dst, "process_audio"), []).append(Input(e.dst_port, "copy", e.src, e.src_port))
            audio_inputs.setdefault(e.dst, set()).add(e.dst_port)
            continue
        if e.delay:
            key = f"{e.src}.{e.src_port}~{e.dst}.{e.dst_port}"
            delays.append(Delay(key, e.src, e.src_port, src.domain))
            inp = Input(e.dst_port, "delayed", key, e.src_port)
        elif e.type == PortType.EVENT and src.domain != dst.domain:
            key = f"{e.src}.{e.src_port}>{e.dst}.{e.dst_port}"
            posts.setdefault(e.src, []).append((e.src_port, key))
            inp = Input(e.dst_port, "drain", key, e.src_port)
        else:
            inp = Input(e.dst_port, "copy", e.src, e.src_port)
        inputs.setdefault((e.dst, "process"), []).append(inp)
    for nid, ports in audio_inputs.items():
        nodes[nid] = _replace(nodes[nid], audio_inputs=frozenset(ports))

    def call(nid: str, method: str) -> Call:
        node = nodes[nid]
        clears = () if method == "process_audio" else tuple(
            name for name, port in classes[nid].outputs_for(node.params).items()
            if port.type == PortType.EVENT)
        return Call(nid, method, tuple(inputs.get((nid, method), ())), clears,
                    tuple(posts.get(nid, ())) if method == "process" else ())

    schedules: dict[str, tuple[Step, ...]] = {}
    for domain in (CONTROL, RENDER):
        order = [n for n in graph.order if nodes[n].domain == domain]
        schedules[domain] = tuple(_batch(order, graph, nodes, call, batching))
    schedules[AUDIO] = tuple(
        Step((call(n, "process" if nodes[n].domain == AUDIO else "process_audio"),))
        for n in graph.order if nodes[n].domain == AUDIO or nodes[n].audio_side)

    diff = _diff(previous, header, nodes, classes, stale, fresh)
    return Plan(spec.name, header, nodes, tuple(graph.order), schedules, tuple(delays), diff,
                overrides, graph)


def _replace(node: NodePlan, **kw: Any) -> NodePlan:
    from dataclasses import replace

    return replace(node, **kw)


def _batch(order: list[str], graph: Graph, nodes: dict[str, NodePlan], call,
           batching: bool) -> list[Step]:
    """A domain's schedule, with batched nodes that cannot feed one another gathered
    into one step per node type.

    A batched node's level is the most batched nodes of its own type on any undelayed
    path into it, so nodes of one type and level never feed one another.  Contracting
    each (type, level) to one step is then kept if the graph stays acyclic (nodes of
    two types can feed each other crosswise); otherwise levels count batched nodes of
    every type, which always leaves it acyclic.  The schedule is the contracted
    graph's topological order, ties kept in the patch's order."""
    import networkx as nx

    batched = {n for n in order if nodes[n].batched} if batching else set()
    if not batched:
        return [Step((call(n, "process"),)) for n in order]
    incoming: dict[str, list[str]] = {}
    for e in graph.edges:
        if not e.delay:
            incoming.setdefault(e.dst, []).append(e.src)
    mine_set = set(order)

    def contract(per_type: bool) -> nx.DiGraph:
        levels: dict[str, dict[str, int]] = {}
        for nid in graph.order:
            mine: dict[str, int] = {}
            for src in incoming.get(nid, ()):
                for t, v in levels[src].items():
                    mine[t] = max(mine.get(t, 0), v)
                if src in batched:
                    t = nodes[src].type if per_type else ""
                    mine[t] = max(mine.get(t, 0), levels[src].get(t, 0) + 1)
            levels[nid] = mine
        unit = {n: (f"{nodes[n].type} {levels[n].get(nodes[n].type if per_type else '', 0)}"
                    if n in batched else n) for n in order}
        dag = nx.DiGraph()
        for i, nid in enumerate(order):
            dag.add_node(unit[nid])
            dag.nodes[unit[nid]].setdefault("position", i)
            dag.nodes[unit[nid]].setdefault("members", []).append(nid)
        for e in graph.edges:
            if not e.delay and e.src in mine_set and e.dst in mine_set and unit[e.src] != unit[e.dst]:
                dag.add_edge(unit[e.src], unit[e.dst])
        return dag

    dag = contract(per_type=True)
    if not nx.is_directed_acyclic_graph(dag):
        dag = contract(per_type=False)
    schedule = []
    for u in nx.lexicographical_topological_sort(dag, key=lambda u: dag.nodes[u]["position"]):
        members = dag.nodes[u]["members"]
        schedule.append(Step(tuple(call(m, "process") for m in members), members[0] in batched))
    return schedule


def _diff(previous: Plan | None, header: Header, nodes: dict[str, NodePlan], classes: dict,
          stale, fresh) -> Diff:
    if previous is None:
        return Diff(new=tuple(nodes))
    old_h = previous.header
    header_changes = {k: (getattr(old_h, k), getattr(header, k)) for k in ("fps", *AUDIO_HEADER)
                      if getattr(old_h, k) != getattr(header, k)}
    audio_change = [k for k in AUDIO_HEADER if k in header_changes]
    kept, new, replaced, removed = [], [], [], []
    restarted: dict[str, str] = {}
    changed: dict[str, tuple[str, ...]] = {}
    for nid, node in nodes.items():
        old = previous.nodes.get(nid)
        if old is None or old.type != node.type:
            new.append(nid)
            if old is not None:
                removed.append(nid)
            continue
        cls = classes[nid]
        differs = [k for k, v in node.params.items() if old.params.get(k) != v]
        needs = [k for k in differs if cls.params[k].restart]
        if nid in fresh:
            restarted[nid] = "kept failing"
        elif nid in stale:
            replaced.append(nid)
        elif audio_change and (node.domain == AUDIO or node.audio_side
                               or PortType.AUDIO in node.wired.values()):
            restarted[nid] = " and ".join(audio_change) + " changed"
        elif dict(old.wired) != dict(node.wired) or old.audio_inputs != node.audio_inputs:
            restarted[nid] = "wiring changed"
        elif old.outputs != node.outputs:
            restarted[nid] = "outputs changed"
        elif needs:
            restarted[nid] = ", ".join(needs) + " changed"
        else:
            kept.append(nid)
            if differs:
                changed[nid] = tuple(differs)
    removed += [nid for nid in previous.nodes if nid not in nodes]
    return Diff(tuple(kept), changed, tuple(new), tuple(replaced), restarted,
                tuple(n for n in restarted if n in fresh), tuple(removed), header_changes)
