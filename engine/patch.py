"""Reading patch files: YAML with positions, includes, and the patch's plain-data model.

The YAML is composed with PyYAML's safe loader into a node tree that keeps the line and
column of every key and value; values are built from it with the safe constructor, so a
Python object tag is an error, never code.  Every problem found is collected, so one
run reports all of them.

A file is read through engine/files.py's bounded reader: a regular file of at most
:data:`~engine.files.TEXT_LIMIT` bytes (a link to ``/dev/zero`` or a FIFO is refused
before a byte is read).  Before composing, one pass over the parser's events bounds
what a file can make the loader do: its nesting (:data:`MAX_DEPTH`), and the values its
aliases expand to (:data:`MAX_VALUES`; a 657-byte "billion laughs" file would otherwise
build 10^9 values), and refuses an alias inside its own anchor.  Each is an error with
the position of what crossed the line.

Format::

    patch: {name: demo, fps: 60}
    include: [parts/lights.yaml]          # relative to this file, inside its folder tree
    nodes:
      lfo:  {type: control.lfo, params: {frequency: 0.5}}
      dim:  {type: control.map, in: {value: lfo.out}}
      fb:   {type: control.math, in: {a: {from: fb.out, delay: 1}}}   # feedback
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Loc, PatchError, closest, display_path
from .files import TEXT_LIMIT, read_bounded, yaml_bounds

ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
WIRE_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)(?:\.([A-Za-z_/][A-Za-z0-9_\-/{}]*))?$")
TOP_KEYS = ("patch", "include", "nodes")
MAX_DEPTH = 64          # deepest nesting of mappings and lists
MAX_VALUES = 100_000    # values a file may hold once its aliases are expanded
HEADER_KEYS = {"name": str, "fps": float, "samplerate": int, "hop": int, "description": str}
NODE_KEYS = ("type", "params", "in", "description")
# Exactly the tags the safe constructor builds; python/* tags share the yaml.org prefix.
SAFE_TAGS = frozenset(t for t in yaml.SafeLoader.yaml_constructors if t is not None)


@dataclass
class Wire:
    """An input wired to ``node.port`` (``port`` None: the node's default output)."""

    node: str
    port: str | None
    delay: bool
    loc: Loc


@dataclass
class NodeSpec:
    """One node as written in a patch (params not yet checked against its type)."""

    id: str
    type: str
    loc: Loc
    type_loc: Loc
    params: dict[str, Any] = field(default_factory=dict)
    param_locs: dict[str, Loc] = field(default_factory=dict)
    param_key_locs: dict[str, Loc] = field(default_factory=dict)
    inputs: dict[str, Wire] = field(default_factory=dict)
    input_key_locs: dict[str, Loc] = field(default_factory=dict)
    description: str = ""


@dataclass
class PatchSpec:
    """A whole patch: header, nodes from every file, and the files it was read from."""

    path: Path
    name: str = "untitled"
    fps: float = 60.0
    samplerate: int = 44100
    hop: int = 512
    description: str = ""
    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    header_locs: dict[str, Loc] = field(default_factory=dict)
    def context(self, **kw: Any) -> "Context":
        """The run context this patch's header describes."""
        from .node import Context

        return Context(fps=self.fps, samplerate=self.samplerate, hop=self.hop,
                       patch_dir=self.path.resolve().parent, **kw)

    #: False when a file could not be parsed at all: its nodes are missing, so checks
    #: of wiring would only report their absence.
    complete: bool = True


class _Reader:
    """Reads one patch and its includes, collecting errors."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve().parent
        self.errors: list[PatchError] = []
        self.seen: set[Path] = set()
        self._ctor = yaml.SafeLoader("")

    def err(self, message: str, loc: Loc) -> None:
        self.errors.append(PatchError(message, loc))

    def loc(self, node: yaml.Node, file: str) -> Loc:
        return Loc(file, node.start_mark.line + 1, node.start_mark.column + 1)

    def name(self, node: yaml.Node, file: str) -> Any:
        """A key, id or wire: the text as written, so ``on``, ``no`` or ``1e3`` stay names
        instead of turning into YAML 1.1 booleans or numbers."""
        if isinstance(node, yaml.ScalarNode) and node.tag in SAFE_TAGS and not node.style:
            return node.value
        return self.value(node, file)

    def value(self, node: yaml.Node, file: str) -> Any:
        """Plain Python value of a YAML node; unsafe tags are errors."""
        tag = node.tag or ""
        if tag not in SAFE_TAGS:
            self.err(f"YAML tag '{tag}' is not allowed in a patch (only plain data)", self.loc(node, file))
            return None
        if isinstance(node, yaml.MappingNode):
            out = {}
            for k, v in node.value:
                key = self.value(k, file)
                try:
                    out[key] = self.value(v, file)
                except TypeError:
                    self.err("a mapping key must be a plain value", self.loc(k, file))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.value(v, file) for v in node.value]
        try:
            return self._ctor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.err(f"bad value: {getattr(exc, 'problem', exc)}", self.loc(node, file))
            return None

    def compose(self, path: Path, shown: str, at: Loc | None) -> yaml.Node | None:
        try:
            text = read_bounded(path, TEXT_LIMIT, "patch file")
        except FileNotFoundError:
            self.errors.append(PatchError(f"no such patch file: {shown}", at or Loc(shown, 1, 1)))
            return None
        except OSError as exc:
            text = getattr(exc, "head", b"")        # a song is too large for a patch: say it is a song
            if media_kind(text) is None:
                self.errors.append(PatchError(f"cannot read {shown}: {exc.strerror}", at or Loc(shown, 1, 1)))
                return None
        kind = media_kind(text[:16])
        if kind is not None:
            self.err(f"this is a {kind} file, not a patch (a patch is YAML, as in graphs/); to play it, "
                     f"name it in a patch: tonegraph run graphs/tunnel.yaml --set song.path={shown}",
                     Loc(shown, 1, 1))
            return None
        try:
            source = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = text[: exc.start].count(b"\n") + 1
            col = exc.start - (text.rfind(b"\n", 0, exc.start) + 1) + 1
            self.err("file is not UTF-8 text (a patch is YAML text, as in graphs/)", Loc(shown, line, col))
            return None
        try:
            problem = yaml_bounds(source, MAX_VALUES, MAX_DEPTH)
            if problem is not None:
                message, mark = problem
                self.err(message, Loc(shown, mark.line + 1, mark.column + 1))
                return None
            return yaml.compose(source, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            message, mark = yaml_words(exc)
            loc = Loc(shown, mark.line + 1, mark.column + 1) if mark else Loc(shown, 1, 1)
            self.err(f"YAML syntax: {message}", loc)
        except yaml.YAMLError as exc:
            self.err(f"YAML syntax: {exc}", Loc(shown, 1, 1))
        return None

    def read(self, path: Path, spec: PatchSpec, chain: tuple[Path, ...], at: Loc | None) -> None:
        shown = display_path(path)
        count = len(self.errors)
        doc = self.compose(path, shown, at)
        spec.files.append(path)
        if len(self.errors) > count:
            spec.complete = False
        if doc is None:
            if len(self.errors) == count and not chain:
                self.err("the patch is empty: a patch has a 'nodes' mapping", Loc(shown, 1, 1))
                spec.complete = False
            return
        if not isinstance(doc, yaml.MappingNode):
            self.err("a patch is a mapping with 'patch', 'nodes' and 'include' keys", self.loc(doc, shown))
            return
        top = self.items(doc, shown)
        for key, (knode, _) in top.items():
            if key not in TOP_KEYS:
                self.err(self.unknown("top-level key", key, TOP_KEYS), self.loc(knode, shown))
        if "patch" in top and not chain:
            self.header(top["patch"][1], shown, spec)
        if "include" in top:
            self.includes(top["include"][1], path, shown, spec, chain + (path.resolve(),))
        if "nodes" in top:
            self.nodes(top["nodes"][1], shown, spec)

    def items(self, mapping: yaml.MappingNode, file: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys of a mapping with their nodes; a repeated key is reported."""
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in mapping.value:
            key = self.name(knode, file)
            if not isinstance(key, str):
                self.err(f"key {key!r} must be a name", self.loc(knode, file))
                continue
            if key in out:
                first = self.loc(out[key][0], file)
                self.err(f"duplicate key '{key}' (first at line {first.line})", self.loc(knode, file))
                continue
            out[key] = (knode, vnode)
        return out

    def header(self, node: yaml.Node, file: str, spec: PatchSpec) -> None:
        if not isinstance(node, yaml.MappingNode):
            self.err("'patch' must be a mapping like {name: show, fps: 60}", self.loc(node, file))
            return
        for key, (knode, vnode) in self.items(node, file).items():
            if key not in HEADER_KEYS:
                self.err(self.unknown("patch header key", key, tuple(HEADER_KEYS)), self.loc(knode, file))
                continue
            val = self.value(vnode, file)
            loc = self.loc(vnode, file)
            spec.header_locs[key] = loc
            want = HEADER_KEYS[key]
            if want is str:
                if not isinstance(val, str):
                    self.err(f"patch {key} must be a string, got {val!r}", loc)
                    continue
            elif isinstance(val, bool) or not isinstance(val, (int, float)):
                self.err(f"patch {key} must be a number, got {val!r}", loc)
                continue
            if key == "fps" and not 0 < val <= 1000:
                self.err(f"patch fps = {val} is outside its range 0..1000 (exclusive of 0)", loc)
                continue
            if key == "samplerate" and not (isinstance(val, int) and 8000 <= val <= 384000):
                self.err(f"patch samplerate = {val} must be an integer in 8000..384000", loc)
                continue
            if key == "hop" and not (isinstance(val, int) and 16 <= val <= 65536):
                self.err(f"patch hop = {val} must be an integer in 16..65536", loc)
                continue
            setattr(spec, key, want(val))

    def includes(self, node: yaml.Node, path: Path, file: str, spec: PatchSpec,
                 chain: tuple[Path, ...]) -> None:
        entries = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for entry in entries:
            loc = self.loc(entry, file)
            name = self.value(entry, file)
            if not isinstance(name, str) or not name:
                self.err("an include is a file path relative to this patch", loc)
                continue
            target = (path.parent / name).resolve()
            if not target.is_relative_to(self.root):
                self.err(f"include '{name}' is outside the patch's folder {display_path(self.root)}", loc)
                continue
            if target in chain:
                self.err(f"include '{name}' includes itself (include cycle)", loc)
                continue
            if not target.is_file():
                self.err(f"include '{name}' does not exist", loc)
                continue
            if target in self.seen:  # included twice through two branches: once is enough
                continue
            self.seen.add(target)
            self.read(target, spec, chain, loc)

    def nodes(self, node: yaml.Node, file: str, spec: PatchSpec) -> None:
        if not isinstance(node, yaml.MappingNode):
            self.err("'nodes' must be a mapping of node id to {type, params, in}", self.loc(node, file))
            return
        for knode, vnode in node.value:
            nid = self.name(knode, file)
            kloc = self.loc(knode, file)
            if not isinstance(nid, str) or not ID_RE.match(nid):
                self.err(
                    f"node id {nid!r} must start with a letter or '_' and use only letters, digits, '_' and '-'",
                    kloc,
                )
                continue
            if nid in spec.nodes:
                first = spec.nodes[nid].loc
                self.err(f"duplicate node id '{nid}' (first defined at {first})", kloc)
                continue
            ns = self.node(nid, kloc, vnode, file)
            if ns is not None:
                spec.nodes[nid] = ns

    def node(self, nid: str, kloc: Loc, vnode: yaml.Node, file: str) -> NodeSpec | None:
        if not isinstance(vnode, yaml.MappingNode):
            self.err(f"node '{nid}' must be a mapping like {{type: control.lfo, params: {{...}}}}",
                     self.loc(vnode, file))
            return None
        fields = self.items(vnode, file)
        for key, (fk, _) in fields.items():
            if key not in NODE_KEYS:
                self.err(self.unknown(f"key in node '{nid}'", key, NODE_KEYS), self.loc(fk, file))
        if "type" not in fields:
            self.err(f"node '{nid}' has no 'type'", kloc)
            return None
        tnode = fields["type"][1]
        ntype = self.name(tnode, file)
        if not isinstance(ntype, str):
            self.err(f"node '{nid}': type must be a name like control.lfo", self.loc(tnode, file))
            return None
        ns = NodeSpec(nid, ntype, kloc, self.loc(tnode, file))
        if "description" in fields:
            ns.description = str(self.value(fields["description"][1], file))
        if "params" in fields:
            pnode = fields["params"][1]
            if isinstance(pnode, yaml.MappingNode):
                for key, (pk, pv) in self.items(pnode, file).items():
                    ns.params[key] = self.value(pv, file)
                    ns.param_locs[key] = self.loc(pv, file)
                    ns.param_key_locs[key] = self.loc(pk, file)
            elif not (isinstance(pnode, yaml.ScalarNode) and pnode.tag.endswith(":null")):
                self.err(f"node '{nid}': params must be a mapping of name to value", self.loc(pnode, file))
        if "in" in fields:
            inode = fields["in"][1]
            if isinstance(inode, yaml.MappingNode):
                for key, (ik, iv) in self.items(inode, file).items():
                    wire = self.wire(iv, file)
                    if wire is not None:
                        ns.inputs[key] = wire
                        ns.input_key_locs[key] = self.loc(ik, file)
            elif not (isinstance(inode, yaml.ScalarNode) and inode.tag.endswith(":null")):
                self.err(f"node '{nid}': 'in' must be a mapping of input name to 'node.port'",
                         self.loc(inode, file))
        return ns

    def wire(self, node: yaml.Node, file: str) -> Wire | None:
        loc = self.loc(node, file)
        delay = False
        if isinstance(node, yaml.MappingNode):
            fields = self.items(node, file)
            for key, (fk, _) in fields.items():
                if key not in ("from", "delay"):
                    self.err(self.unknown("key in a wire", key, ("from", "delay")), self.loc(fk, file))
            if "from" not in fields:
                self.err("a wire mapping needs 'from: node.port'", loc)
                return None
            if "delay" in fields:
                d = self.value(fields["delay"][1], file)
                if d not in (0, 1, True, False):
                    self.err(f"delay must be 1 (one tick) or 0, got {d!r}", self.loc(fields["delay"][1], file))
                    return None
                delay = bool(d)
            node = fields["from"][1]
            loc = self.loc(node, file)
        text = self.name(node, file)
        m = WIRE_RE.match(text) if isinstance(text, str) else None
        if not m:
            self.err(f"a wire is 'node.port' or 'node', got {text!r}", loc)
            return None
        return Wire(m.group(1), m.group(2), delay, loc)

    @staticmethod
    def unknown(what: str, key: str, valid: tuple[str, ...]) -> str:
        guess = closest(key, valid)
        hint = f"did you mean '{guess}'? " if guess else ""
        return f"unknown {what} '{key}' ({hint}expected one of: {', '.join(valid)})"


def read_patch(path: str | Path) -> tuple[PatchSpec, list[PatchError]]:
    """Read a patch and its includes. Returns the spec and every syntax-level problem."""
    path = Path(path)
    spec = PatchSpec(path=path, name=path.stem)
    reader = _Reader(path)
    reader.read(path, spec, (), None)
    if spec.complete and not spec.nodes and not reader.errors:
        reader.err("the patch has no nodes: add a 'nodes' mapping of node id to "
                   "{type, params, in}", Loc(display_path(path), 1, 1))
        spec.complete = False
    return spec, reader.errors


def apply_overrides(spec: PatchSpec, sets: list[str]) -> list[PatchError]:
    """Apply ``node.param=value`` overrides (``tonegraph run --set``) to a read patch.

    Values are YAML scalars or lists; they are checked later exactly like the patch's
    own values, with ``--set:N`` as their position.  Nothing after the ``=`` is an empty
    text (``--set lights.host=``), not YAML's null.
    """
    errors = []
    for i, item in enumerate(sets, 1):
        loc = Loc("--set", i, 1)
        target, eq, raw = item.partition("=")
        nid, dot, pname = target.partition(".")
        if not eq or not dot:
            errors.append(PatchError(f"--set wants node.param=value, got {item!r}", loc))
            continue
        if nid not in spec.nodes:
            names = list(spec.nodes)
            listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            errors.append(PatchError(f"--set: no node '{nid}' in the patch (its nodes: {listed})", loc))
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        ns = spec.nodes[nid]
        ns.params[pname] = value
        ns.param_locs[pname] = ns.param_key_locs[pname] = loc
    return errors


#: The first bytes of files people give as a patch by mistake: (prefix, offset, what).
MAGIC = ((b"fLaC", 0, "FLAC sound"), (b"OggS", 0, "Ogg sound"), (b"ID3", 0, "MP3 sound"),
         (b"\xff\xfb", 0, "MP3 sound"), (b"\xff\xf3", 0, "MP3 sound"), (b"WAVE", 8, "WAV sound"),
         (b"ftyp", 4, "MP4 (video or sound)"), (b"\x89PNG", 0, "PNG picture"), (b"\xff\xd8\xff", 0, "JPEG picture"),
         (b"PK\x03\x04", 0, "zip (or .npz weights)"), (b"\x1aE\xdf\xa3", 0, "Matroska or WebM video"))


def media_kind(head: bytes) -> str | None:
    """What a file is, from its first bytes, when it is a sound, picture or video."""
    for magic, at, kind in MAGIC:
        if head[at:at + len(magic)] == magic:
            return kind
    return None


#: PyYAML's words for the mistakes people make, in plain words: (its problem, its context
#: or None for any, ours, whether the place to show is where the construct began).
YAML_WORDS = (
    ("found character '\\t' that cannot start any token", None,
     "a tab: YAML indents with spaces only", False),
    ("expected <block end>, but found '<block mapping start>'", None,
     "this line is indented more than the lines it belongs with: line it up with them", False),
    ("expected <block end>, but found '-'", None,
     "a list item ('- ...') where a key was expected: check its indentation", False),
    ("expected <block end>, but found", None,
     "this line's indentation does not match the lines above it", False),
    ("mapping values are not allowed here", None,
     "a ':' where none can be: a key's colon needs a space after it, and nested keys go on "
     "their own lines, indented", False),
    ("could not find expected ':'", None,
     "a line that is not 'key: value' (a missing ':' or a line indented too far)", False),
    ("found unexpected end of stream", "while scanning a quoted scalar",
     "a quote opened here is never closed", True),
    ("expected ',' or '}'", "while parsing a flow mapping",
     "a '{' opened here is never closed with '}' (or a ',' is missing between its items)", True),
    ("expected ',' or ']'", "while parsing a flow sequence",
     "a '[' opened here is never closed with ']' (or a ',' is missing between its items)", True),
)


def yaml_words(exc: yaml.MarkedYAMLError):
    """A YAML syntax error in plain words, and where to show it."""
    problem = exc.problem or "invalid YAML"
    for theirs, context, ours, at_start in YAML_WORDS:
        if problem.startswith(theirs) and (context is None or exc.context == context):
            mark = (exc.context_mark if at_start else None) or exc.problem_mark or exc.context_mark
            return ours, mark
    context = f" ({exc.context})" if exc.context else ""
    return f"{problem}{context}", exc.problem_mark or exc.context_mark
