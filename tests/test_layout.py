"""The layout shows the architecture: the engine's modules import one another without a
circle (lazy imports inside functions count too), and the packages depend one way:
engine <- nodes <- tools, the command line composing them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path, package: str) -> set[str]:
    """The tonegraph modules a file imports, anywhere in it, as dotted names."""
    found = set()
    here = package.split(".")
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {n for n in found if n.startswith("tonegraph.")}


def modules(folder: str, package: str) -> dict[str, set[str]]:
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        rel = path.relative_to(ROOT / folder).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        name = ".".join([package, *parts])
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        out[name] = imports(path, pkg)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each module that can reach itself, with the path it takes."""
    found = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            mod, path = stack.pop()
            for dep in graph.get(mod, ()):
                if dep == start:
                    found.append(path + [start])
                    stack = []
                    break
                if dep in graph and dep not in seen:
                    seen.add(dep)
                    stack.append((dep, path + [dep]))
    return found


def test_the_engine_imports_without_a_circle():
    graph = modules("engine", "tonegraph.engine")
    assert "tonegraph.engine.runtime" in graph and len(graph) > 20
    loops = cycles(graph)
    assert not loops, "import circles in the engine:\n" + "\n".join(" -> ".join(p) for p in loops)


def test_the_cycle_check_sees_a_lazy_import(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import y\n")
    assert imports(tmp_path / "a.py", "tonegraph.p") >= {"tonegraph.p.b"}
    assert cycles({"tonegraph.p.a": imports(tmp_path / "a.py", "tonegraph.p"),
                   "tonegraph.p.b": imports(tmp_path / "b.py", "tonegraph.p")})


def test_packages_depend_one_way_and_nodes_hold_nodes():
    """engine <- nodes <- tools: the engine reaches the nodes only through the registry
    (by name, at run time) and the tools only from the command line; no node module
    imports a tool or defines a command."""
    engine = modules("engine", "tonegraph.engine")
    nodes = modules("nodes", "tonegraph.nodes")
    tools = modules("tools", "tonegraph.tools")
    assert {"tonegraph.tools.train", "tonegraph.tools.render", "tonegraph.tools.commands"} <= set(tools)

    def uses(graph, prefix):
        return sorted(f"{m} -> {d}" for m, deps in graph.items() for d in deps
                      if d.startswith(prefix) and d.count(".") >= 2)
    assert uses(nodes, "tonegraph.tools") == []
    assert {u.split(" -> ")[0] for u in uses(engine, "tonegraph.tools")} == {"tonegraph.engine.cli"}
    assert uses(engine, "tonegraph.nodes.") == [], "the engine imports node modules"
    commands = [p.relative_to(ROOT) for p in (ROOT / "nodes").rglob("*.py")
                if "add_parser(" in p.read_text() or p.name == "commands.py"]
    assert commands == [], f"commands among the nodes: {commands}"
