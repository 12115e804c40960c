"""The checked graph: plain data built from a patch spec, with networkx doing graph work.

:func:`build_graph` turns a :class:`engine.patch.PatchSpec` into a :class:`Graph` or a
list of every problem found: unknown node types, params, ports, type mismatches,
missing nodes and cycles without a delayed edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from .errors import Loc, ParamError, PatchError, describe, did_you_mean, display_path
from .patch import NodeSpec, PatchSpec, apply_overrides, read_patch
from .node import missing_extra
from .ports import PortType, compatible
from .registry import Registry


@dataclass(frozen=True)
class Edge:
    src: str
    src_port: str
    dst: str
    dst_port: str
    type: PortType
    delay: bool = False


@dataclass
class GraphNode:
    id: str
    type: str
    params: dict[str, Any]
    wired: dict[str, PortType]
    spec: NodeSpec


@dataclass
class Graph:
    """A valid patch: nodes with checked params, typed edges, and an execution order."""

    spec: PatchSpec
    nodes: dict[str, GraphNode]
    edges: list[Edge]
    order: list[str]
    generations: list[list[str]]
    nx: nx.MultiDiGraph = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec.name


#: How alike a patch's mistyped name must be to one it could mean (looser than
#: difflib's 0.6: node ids and port names are short).
ALIKE = 0.5


def build_graph(spec: PatchSpec, registry: Registry) -> tuple[Graph | None, list[PatchError]]:
    errors: list[PatchError] = []
    err = lambda msg, loc: errors.append(PatchError(msg, loc))  # noqa: E731
    known = registry.names()
    nodes: dict[str, GraphNode] = {}
    lacking: dict[str, list] = {}     # extra -> the nodes that need it, first at the top

    # Node types and params.
    for ns in spec.nodes.values():
        cls = registry.get(ns.type)
        if cls is None:
            err(f"unknown node type '{ns.type}'{did_you_mean(ns.type, known, ALIKE)}; "
                f"'tonegraph nodes' lists them", ns.type_loc)
            continue
        if missing_extra(cls):
            lacking.setdefault(cls.extra, []).append((ns, cls))
            continue
        params: dict[str, Any] = {}
        for name, value in ns.params.items():
            decl = cls.params.get(name)
            if decl is None:
                valid = ", ".join(cls.params) or "none"
                err(f"unknown param '{name}' for {ns.type}{did_you_mean(name, cls.params, ALIKE)}; "
                    f"params: {valid}", ns.param_key_locs[name])
                continue
            try:
                params[name] = decl.coerce(value, name)
            except ParamError as exc:
                err(str(exc), ns.param_locs[name])
        nodes[ns.id] = GraphNode(ns.id, ns.type, params, {}, ns)
    # One line per extra to install, however many nodes need it (at the first of them).
    for (ns, cls), *others in lacking.values():
        err(missing_extra(cls, ns.id, [o.id for o, _ in others]), ns.type_loc)

    # Wires: ports, referenced nodes, types.
    edges: list[Edge] = []
    for ns in spec.nodes.values():
        if ns.id not in nodes:
            continue
        cls = registry[ns.type]
        for in_name, wire in ns.inputs.items():
            dst_type = cls.port_type(in_name, output=False)
            if dst_type is None:
                valid = ", ".join(cls.inputs) or "none"
                err(f"unknown input port '{in_name}' on {ns.type}"
                    f"{did_you_mean(in_name, cls.inputs, ALIKE)}; inputs: {valid}",
                    ns.input_key_locs[in_name])
                continue
            if wire.node not in spec.nodes:
                err(f"no node '{wire.node}' to wire from{did_you_mean(wire.node, spec.nodes, ALIKE)}",
                    wire.loc)
                continue
            if wire.node not in nodes:
                continue  # its own error (unknown type) is already reported
            src_cls = registry[spec.nodes[wire.node].type]
            src_params = {n: d.default for n, d in src_cls.params.items()} | nodes[wire.node].params
            src_outputs = src_cls.outputs_for(src_params)
            port = wire.port or src_cls.default_output
            src_type = src_outputs[port].type if port in src_outputs else None
            if src_type is None:
                valid = ", ".join(src_outputs) or "none"
                err(f"unknown output port '{port}' on node '{wire.node}' ({src_cls.type_name})"
                    f"{did_you_mean(port, src_outputs, ALIKE)}; outputs: {valid}", wire.loc)
                continue
            if not compatible(src_type, dst_type):
                err(f"cannot wire {src_type.value} output '{wire.node}.{port}' to "
                    f"{dst_type.value} input '{in_name}' of '{ns.id}'", wire.loc)
                continue
            nodes[ns.id].wired[in_name] = src_type
            edges.append(Edge(wire.node, port, ns.id, in_name, src_type, wire.delay))
        for in_name, port_decl in cls.inputs.items():
            if port_decl.required and in_name not in ns.inputs:
                err(f"node '{ns.id}' ({ns.type}) needs its input '{in_name}' wired", ns.loc)

    # Checks a node type makes across its params, wiring and the patch's rates.
    ctx = spec.context()
    for gn in nodes.values():
        cls = registry[gn.type]
        full = {n: d.default for n, d in cls.params.items()} | gn.params
        try:
            problems = cls.check(full, gn.wired, ctx)
        except Exception as exc:  # a node type's own bug is its error, not the loader's
            problems = [("", f"{gn.type} could not check its params: {describe(exc)}")]
        for pname, msg in problems:
            loc = gn.spec.param_locs.get(pname, gn.spec.loc)
            err(msg, loc)

    # Cycles: only undelayed edges must form a DAG.
    g = nx.MultiDiGraph()
    g.add_nodes_from(nodes)
    for e in edges:
        g.add_edge(e.src, e.dst, src_port=e.src_port, dst_port=e.dst_port, delay=e.delay)
    dag = nx.DiGraph()
    dag.add_nodes_from(nodes)
    dag.add_edges_from((e.src, e.dst) for e in edges if not e.delay)
    for comp in sorted(nx.strongly_connected_components(dag), key=min):
        if len(comp) == 1 and not any(dag.has_edge(n, n) for n in comp):
            continue
        cycle = nx.find_cycle(dag.subgraph(comp), source=min(comp))
        names = [u for u, _ in cycle] + [cycle[0][0]]
        # Point at the wire that closes the cycle (the input of its first node).
        closing = cycle[-1]
        wire = next(w for k, w in nodes[closing[1]].spec.inputs.items()
                    if w.node == closing[0] and not w.delay)
        err(f"cycle {' -> '.join(names)}: mark one of its wires as delayed, "
            f"e.g. {{from: {wire.node}{'.' + wire.port if wire.port else ''}, delay: 1}}", wire.loc)

    if errors:
        errors.sort(key=lambda e: (e.loc.file, e.loc.line, e.loc.col) if e.loc else ("", 0, 0))
        return None, errors
    order = list(nx.lexicographical_topological_sort(dag))
    generations = [sorted(gen) for gen in nx.topological_generations(dag)]
    return Graph(spec, nodes, edges, order, generations, g), []


def load_graph(path: str | Path, registry: Registry,
               sets: list[str] | None = None) -> tuple[Graph | None, list[PatchError]]:
    """Read, check and build a patch file (with optional ``node.param=value`` overrides).

    Returns the graph, or None and every problem found, sorted by position.  Never
    raises: whatever goes wrong while loading is a problem with a position.
    """
    try:
        return _load_graph(path, registry, sets)
    except Exception as exc:  # the last guard: no file may stop the caller (a running show)
        return None, [PatchError(f"cannot load the patch: {describe(exc)}",
                                 Loc(display_path(Path(path)), 1, 1))]


def _load_graph(path: str | Path, registry: Registry,
                sets: list[str] | None) -> tuple[Graph | None, list[PatchError]]:
    spec, errors = read_patch(path)
    errors += apply_overrides(spec, sets or [])
    _paths_from_the_command_line(spec, registry)
    graph = None
    if spec.complete:
        graph, more = build_graph(spec, registry)
        errors += more
    if errors:
        errors.sort(key=lambda e: (e.loc.file, e.loc.line, e.loc.col) if e.loc else ("", 0, 0))
        return None, errors
    return graph, []


def _paths_from_the_command_line(spec, registry: Registry) -> None:
    """A file param set with ``--set`` names a file where the user typed it: relative
    to the working directory, not to the patch's folder (where paths written in the
    patch are)."""
    cwd = Path.cwd()
    for ns in spec.nodes.values():
        cls = registry.get(ns.type)
        if cls is None:
            continue
        for name, value in ns.params.items():
            loc = ns.param_locs.get(name)
            param = cls.params.get(name)
            if (loc is not None and loc.file == "--set" and param is not None and param.kind == "path"
                    and isinstance(value, str) and value and not Path(value).expanduser().is_absolute()):
                ns.params[name] = str(cwd / value)


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text: one box per node with its type, edges labelled by port."""
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"digraph {q(graph.name)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fillcolor="#f4f4f4", fontname="Helvetica"];',
             '  edge [fontname="Helvetica", fontsize=10];']
    for nid in graph.order:
        gn = graph.nodes[nid]
        lines.append(f"  {q(nid)} [label={q(nid + chr(10) + gn.type)}];")
    for e in graph.edges:
        attrs = [f"label={q(e.src_port + ' -> ' + e.dst_port)}"]
        if e.delay:
            attrs.append('style=dashed')
        if e.type == PortType.EVENT:
            attrs.append('color="#c0392b"')
        lines.append(f"  {q(e.src)} -> {q(e.dst)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
