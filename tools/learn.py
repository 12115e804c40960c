"""``tonegraph learn PATCH NODE.INPUT``: wire an input to the next control that moves.

As on a lighting desk or in a VJ tool: point at what to control, move a fader, and the
mapping is written into the patch, which stays the truth.  learn listens for

* the first MIDI control change or note-on: on the input named by ``--midi PORT`` (a
  name substring, the port ``midi.in`` would open), or else on every MIDI input there
  is when it starts and on a virtual input of its own, ``tonegraph learn``, that other
  apps connect to;
* the first OSC message on 127.0.0.1:``--osc-port`` (default 9001, so that it runs
  beside a show listening on 9000; messages to ``/tonegraph/...`` are the engine's
  own and are passed over);

whichever comes first, within ``--timeout`` seconds.  A message that cannot drive the
input is passed over with a line saying why (a note is an event, so it cannot move a
number input; MIDI has no vectors or text) and learn waits on.

What it writes:

* a control change becomes a named output of a ``midi.in`` node (``controls:
  {cc7: 7}``), a note an event output (``note_names: {note36: 36}``), an OSC message
  an entry of an ``osc.in`` node (``addresses: {fader1: /1/fader1}``, with the type the
  input takes: number, event, vector or text).  A ``midi.in`` that would already open
  that port (and hears that channel) gets the entry, or gives the name it already
  has for that controller or note; likewise the first ``osc.in``.  Otherwise a new
  node is added, named after the port (``nanopad``) or ``osc``; a port is written as
  the shortest part of its name that still picks it (ALSA's client:port numbers, which
  change between boots, left out).  A message through learn's own port gives a
  ``midi.in`` with ``virtual: true`` and the same port name.  No ``channel`` is
  written: the node hears every channel.
* NODE.INPUT is wired to that output, in place of what fed it (the line says what it
  was; the former source stays in the patch).  A controller is 0..1: ``--range LO,HI``
  puts a ``control.map`` (``out_range: [LO, HI]``) between them.  Inputs declare no
  range of their own, so without ``--range`` the 0..1 (or the OSC value) goes in as
  it is.  A control change onto an event input goes through a ``control.trigger``
  (a button that sends CC 127 and 0 fires on its press).

The file is edited as text (:mod:`engine.yaml_edit`): the new entries go where they
belong and every other character, comments included, stays as it was.  Each file is
replaced in one rename, as editors save, and the patch is loaded again: a mapping that
would not load is taken back.  A show running the patch (``tonegraph run``, which
watches it) reloads it as after any save.  The one line printed says what was learned
and where the wire was written.  A target that is not an input (a param, or no such
node) and a patch that does not load are refused before anything is listened to.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import re
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tonegraph.engine.errors import PatchError, TonegraphError, describe, did_you_mean, display_path
from tonegraph.engine.graph import Graph, GraphNode, load_graph
from tonegraph.engine.ports import PortType
from tonegraph.engine.registry import Registry
from .yaml_edit import EditError, flow, set_entry

log = logging.getLogger("tonegraph.learn")

LEARN_PORT = "tonegraph learn"   # learn's own virtual MIDI input
OSC_PORT = 9001                  # UDP port learn listens on for OSC (127.0.0.1)
TIMEOUT = 60.0                   # [s] default wait for a message
POLL = 0.02                      # [s] between looks at the OSC queue while waiting
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LEARNABLE = (PortType.NUMBER, PortType.EVENT, PortType.VECTOR, PortType.TEXT, PortType.ANY)
TAKES = {PortType.NUMBER: "a number", PortType.EVENT: "events", PortType.VECTOR: "vectors",
         PortType.TEXT: "text", PortType.ANY: "anything"}


class LearnError(TonegraphError):
    """Why nothing was learned (one line)."""


class PatchInvalid(LearnError):
    """The patch does not load: its problems, one line each."""

    def __init__(self, errors: list[PatchError]) -> None:
        super().__init__(str(errors[0]))
        self.errors = errors


@dataclass(frozen=True)
class Heard:
    """A message that arrived: a MIDI control change or note-on, or an OSC message."""

    kind: str                       # "cc", "note" or "osc"
    number: int = 0                 # the controller or note
    port: str = ""                  # the MIDI input it came through, as listed
    ports: tuple[str, ...] = ()     # the MIDI inputs there were
    virtual: bool = False           # through learn's own port
    channel: int = 0                # 1-16
    api: str = ""                   # the MIDI system: alsa or jack
    address: str = ""
    args: tuple = ()

    def what(self, port: str | None = None) -> str:
        """``CC 7 on 'nanoPAD'``, ``note 36 on ...``, ``OSC /1/fader1`` (``port``: the name to show)."""
        if self.kind == "osc":
            return f"OSC {self.address}"
        name = LEARN_PORT if self.virtual else port or self.port
        return f"{'CC' if self.kind == 'cc' else 'note'} {self.number} on '{name}'"

    @property
    def numbers(self) -> bool:
        """Whether it carries a number (a controller's value, a numeric OSC argument)."""
        return self.kind == "cc" or any(isinstance(a, (int, float)) for a in self.args)


@dataclass(frozen=True)
class Target:
    node: str
    input: str
    type: PortType

    def __str__(self) -> str:
        return f"{self.node}.{self.input}"


def value_range(text: str) -> tuple[float, float]:
    """``--range LO,HI``: two finite numbers that differ."""
    import math

    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI like 0,255, got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        raise argparse.ArgumentTypeError(f"expected two different finite numbers, got {text!r}")
    return lo, hi


def load(patch: str | Path, registry: Registry) -> Graph:
    graph, errors = load_graph(patch, registry)
    if errors:
        raise PatchInvalid(errors)
    return graph


def find_target(graph: Graph, text: str, registry: Registry,
                out_range: tuple[float, float] | None = None) -> Target:
    """The input ``NODE.INPUT`` names, or a one-line error saying what to name instead."""
    nid, dot, name = text.partition(".")
    if not dot or not nid or not name:
        raise LearnError(f"learn wants NODE.INPUT (like dim.value), got {text!r}")
    node = graph.nodes.get(nid)
    if node is None:
        names = list(graph.nodes)
        listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise LearnError(f"no node '{nid}' in {display_path(graph.spec.path)} (its nodes: {listed})")
    cls = registry[node.type]
    inputs = ", ".join(cls.inputs) or "none"
    typ = cls.port_type(name, output=False)
    if typ is None:
        if name in cls.params:
            raise LearnError(f"'{text}' is a param, not an input; learn wires inputs ({nid}'s: "
                             f"{inputs}); a param is set in the patch, with --set, or over OSC at "
                             f"/tonegraph/{nid}/{name}")
        hint = did_you_mean(name, cls.inputs)
        raise LearnError(f"{node.type} node '{nid}' has no input '{name}'{hint}; its inputs: {inputs}")
    if typ not in LEARNABLE:
        raise LearnError(f"'{text}' is an {typ.value} input; learn wires number, event, vector and "
                         f"text inputs")
    if out_range is not None and typ not in (PortType.NUMBER, PortType.ANY):
        raise LearnError(f"--range maps numbers; '{text}' takes {TAKES[typ]}")
    return Target(nid, name, typ)


def misfit(heard: Heard, target: Target, out_range: tuple[float, float] | None = None) -> str | None:
    """Why ``heard`` cannot drive the target, or None when it can."""
    typ = target.type
    if typ == PortType.NUMBER or out_range is not None:
        if heard.kind == "note":
            return "a note is an event; move a fader or knob"
        if not heard.numbers:
            return "it carries no number"
    elif typ in (PortType.VECTOR, PortType.TEXT):
        if heard.kind != "osc":
            return f"MIDI has no {TAKES[typ]}; send OSC"
        if typ == PortType.VECTOR and not heard.numbers:
            return "it carries no number"
        if typ == PortType.TEXT and not heard.args:
            return "it carries no argument"
    return None


# -- listening ----------------------------------------------------------------------


def _first_match(want: str, names) -> str | None:
    """The port midi.in opens for ``port: want``: the first whose name holds it (ours,
    named 'tonegraph ...', only when asked for)."""
    want = want.lower()
    match = [n for n in names if want in n.lower()]
    if "tonegraph" not in want:
        match = [n for n in match if "tonegraph " not in n] or match
    return match[0] if match else None


class Listener:
    """The MIDI inputs and the OSC port learn listens on; :meth:`next` waits for a message."""

    def __init__(self, midi: str | None, osc_port: int) -> None:
        self.want, self.osc_port = midi, osc_port
        self.queue: queue.Queue[Heard] = queue.Queue()
        self.clients: list = []
        self.names: tuple[str, ...] = ()
        self.api = ""
        self.opened: list[str] = []     # the MIDI inputs listened to
        self.no_midi = ""               # why none is
        self.server = None

    def __enter__(self) -> "Listener":
        try:
            self._open_midi()
            self._open_osc()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _open_midi(self) -> None:
        from tonegraph.engine.node import missing_modules

        missing = missing_modules("MIDI", "midi", ("mido", "rtmidi"))
        if missing is None:
            import rtmidi

            from tonegraph.nodes.midi.ports import backend
            try:
                system = backend("auto")
            except OSError as exc:
                missing = str(exc)
        if missing is not None:
            if self.want is not None:
                raise LearnError(f"--midi {self.want}: {missing}")
            self.no_midi = missing
            return
        api = {"LINUX_ALSA": rtmidi.API_LINUX_ALSA, "UNIX_JACK": rtmidi.API_UNIX_JACK}[system.api]
        self.api = "alsa" if system.api == "LINUX_ALSA" else "jack"
        scan = rtmidi.MidiIn(api, name=f"{LEARN_PORT} scan")
        self.clients.append(scan)
        self.names = tuple(scan.get_ports())
        if self.want is not None:
            port = _first_match(self.want, self.names)
            if port is None:
                raise LearnError(f"--midi {self.want}: no MIDI input matches '{self.want}' "
                                 f"(there are: {', '.join(self.names) or 'none'})")
            ports = [port]
        else:
            ports = [n for n in self.names if "tonegraph " not in n]
        # Every port is opened before any callback is set: a callback running while JACK
        # makes the next client would wait on the interpreter that client creation holds.
        opened = []
        for port in [*ports, *([None] if self.want is None else [])]:
            try:
                client = rtmidi.MidiIn(api, name=LEARN_PORT if port else "RtMidiIn Client")
                self.clients.append(client)
                if port:
                    client.open_port(self.names.index(port))
                else:
                    client.open_virtual_port(LEARN_PORT)
            except Exception as exc:  # noqa: BLE001 - rtmidi raises its own errors (a port gone)
                what = f"cannot open MIDI input '{port or LEARN_PORT}': {describe(exc)}"
                if self.want is not None:
                    raise LearnError(f"--midi {self.want}: {what}") from exc
                log.info("%s", what)
                continue
            opened.append((client, port or LEARN_PORT, not port))
        for client, port, virtual in opened:
            client.set_callback(partial(self._midi, port, virtual))
        self.opened = [port for _, port, _ in opened]

    def _midi(self, port: str, virtual: bool, event, data=None) -> None:
        """RtMidi's thread: queue a control change or note-on."""
        msg = event[0]
        if len(msg) < 3:
            return
        status = msg[0] & 0xF0
        if status == 0xB0 or (status == 0x90 and msg[2] > 0):
            self.queue.put(Heard("cc" if status == 0xB0 else "note", number=msg[1],
                                 port="" if virtual else port, ports=self.names, virtual=virtual,
                                 channel=(msg[0] & 0x0F) + 1, api=self.api))

    def _open_osc(self) -> None:
        from tonegraph.engine.osc.server import OscServer

        server = OscServer("127.0.0.1", self.osc_port)
        try:
            server.start()
        except OSError as exc:
            raise LearnError(f"cannot listen for OSC on 127.0.0.1:{self.osc_port} "
                             f"({exc.strerror or exc}); give another --osc-port") from exc
        self.server = server

    def describe(self) -> str:
        osc = f"send OSC to 127.0.0.1:{self.server.port}"
        if not self.opened:
            return f"{osc} (no MIDI: {self.no_midi or 'no input'})"
        names = ", ".join(f"'{port}'" for port in self.opened)
        return f"move a control on MIDI input{'s' if len(self.opened) > 1 else ''} {names}, or {osc}"

    def next(self, timeout: float) -> Heard | None:
        """The next message within ``timeout`` [s], or None."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.server.drain():
                if not msg.address.startswith("/tonegraph/"):
                    self.queue.put(Heard("osc", address=msg.address, args=tuple(msg.args)))
            left = deadline - time.monotonic()
            try:
                return self.queue.get(timeout=max(0.0, min(POLL, left)))
            except queue.Empty:
                if left <= 0:
                    return None

    def close(self) -> None:
        for client in reversed(self.clients):
            try:
                client.cancel_callback()
                client.close_port()
                client.delete()
            except Exception:  # noqa: BLE001 - a client whose MIDI system went away
                pass
        self.clients = []
        if self.server is not None:
            self.server.stop()
            self.server = None


def learn(patch: str | Path, target: str, registry: Registry, *, midi: str | None = None,
          osc_port: int = OSC_PORT, timeout: float = TIMEOUT,
          out_range: tuple[float, float] | None = None) -> str:
    """Wait for a control (see the module docstring), write the mapping; the line to print."""
    graph = load(patch, registry)
    aim = find_target(graph, target, registry, out_range)
    ignored: set[str] = set()
    deadline = time.monotonic() + timeout
    with Listener(midi, osc_port) as listener:
        log.info("learning %s: %s; waiting up to %g s", aim, listener.describe(), timeout)
        while True:
            heard = listener.next(deadline - time.monotonic())
            if heard is None:
                what = (f"nothing that fits {aim} ({len(ignored)} ignored)" if ignored
                        else "no MIDI control or note and no OSC message")
                raise LearnError(f"{what} came within {timeout:g} s; "
                                 f"{display_path(Path(patch))} is unchanged")
            why = misfit(heard, aim, out_range)
            if why is None:
                break
            if heard.what() not in ignored:
                ignored.add(heard.what())
                log.info("ignored %s: %s takes %s, and %s", heard.what(), aim, TAKES[aim.type], why)
    return write_mapping(patch, target, heard, registry, out_range)


# -- writing ------------------------------------------------------------------------


def short_port(heard: Heard) -> str:
    """The shortest part of the port's name that midi.in still opens it by."""
    full = heard.port
    base = re.sub(r"\s+\d+:\d+$", "", full)       # ALSA's client:port numbers
    for name in (base.split(":", 1)[-1].strip(), base):
        if name and _first_match(name, heard.ports) == full:
            return name
    return full


def _new_id(wanted: str, taken: set[str], fallback: str) -> str:
    base = re.sub(r"[^A-Za-z0-9_]+", "_", wanted).strip("_").lower()
    if not NAME_RE.match(base):
        base = fallback
    nid, n = base, 1
    while nid in taken:
        n += 1
        nid = f"{base}_{n}"
    taken.add(nid)
    return nid


def _full(node: GraphNode, registry: Registry) -> dict:
    return {n: d.default for n, d in registry[node.type].params.items()} | node.params


def _file_of(graph: Graph, nid: str) -> Path:
    """The file (the patch or one it includes) node ``nid`` is written in."""
    shown = graph.spec.nodes[nid].loc.file
    return next(f for f in graph.spec.files if display_path(f) == shown)


@dataclass
class _Plan:
    """The entries to write: (file, keys to the mapping, key, YAML text)."""

    graph: Graph
    registry: Registry
    home: Path                      # the file the target node is written in; new nodes go there
    taken: set[str] = field(default_factory=set)
    edits: list[tuple[Path, tuple[str, ...], str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.taken |= set(self.graph.nodes)

    def add_node(self, wanted: str, fallback: str, body: dict) -> str:
        nid = _new_id(wanted, self.taken, fallback)
        self.edits.append((self.home, ("nodes",), nid, flow(body)))
        return nid

    def add_output(self, node: GraphNode, param: str, wanted: str, value) -> str:
        outputs = set(self.registry[node.type].outputs_for(_full(node, self.registry)))
        name = _new_id(wanted, outputs, "learned")
        keys = ("nodes", node.id, "params", param)
        self.edits.append((_file_of(self.graph, node.id), keys, name, flow(value)))
        return f"{node.id}.{name}"


def _midi_source(plan: _Plan, heard: Heard) -> str:
    param = "controls" if heard.kind == "cc" else "note_names"
    out = f"{heard.kind}{heard.number}"
    for node in plan.graph.nodes.values():
        if node.type != "midi.in":
            continue
        p = _full(node, plan.registry)
        if heard.virtual:
            same = p["virtual"] and (p["port"] or f"tonegraph {node.id}") == LEARN_PORT
        else:
            same = (not p["virtual"] and p["port"] and _first_match(p["port"], heard.ports) == heard.port
                    and p["channel"] in (0, heard.channel) and p["api"] in ("auto", heard.api or p["api"]))
        if same:
            known = [name for name, n in p[param].items() if n == heard.number]
            return f"{node.id}.{known[0]}" if known else plan.add_output(node, param, out, heard.number)
    port = LEARN_PORT if heard.virtual else short_port(heard)
    params = {"port": port, "virtual": True} if heard.virtual else {"port": port}
    nid = plan.add_node("midi" if heard.virtual else port, "midi",
                        {"type": "midi.in", "params": {**params, param: {out: heard.number}}})
    return f"{nid}.{out}"


def _osc_source(plan: _Plan, heard: Heard, typ: PortType) -> str:
    kind = {PortType.EVENT: "event", PortType.VECTOR: "vector", PortType.TEXT: "text"}.get(
        typ, "number" if heard.numbers or typ == PortType.NUMBER else "event")
    entry = heard.address if kind == "number" else {"address": heard.address, "type": kind}
    nodes = [n for n in plan.graph.nodes.values() if n.type == "osc.in"]
    for node in nodes:
        for name, spec in node.params.get("addresses", {}).items():
            address, typ_ = (spec, "number") if isinstance(spec, str) else (spec.get("address"),
                                                                          spec.get("type", "number"))
            if address == heard.address and typ_ == kind:
                return f"{node.id}.{name}"
    wanted = heard.address.rstrip("/").rsplit("/", 1)[-1]
    if nodes:
        return plan.add_output(nodes[0], "addresses", wanted, entry)
    out = _new_id(wanted, set(), "osc")
    nid = plan.add_node("osc", "osc", {"type": "osc.in", "params": {"addresses": {out: entry}}})
    return f"{nid}.{out}"


def _plain(v: float) -> float | int:
    return int(v) if v == int(v) else v


def write_mapping(patch: str | Path, target: str, heard: Heard, registry: Registry,
                  out_range: tuple[float, float] | None = None) -> str:
    """Write what ``heard`` becomes into the patch (see the module docstring); the line
    saying what was learned and where."""
    patch = Path(patch)
    graph = load(patch, registry)
    aim = find_target(graph, target, registry, out_range)
    why = misfit(heard, aim, out_range)
    if why is not None:
        raise LearnError(f"{heard.what()} cannot drive {aim}: {why}")
    spec = graph.spec.nodes[aim.node]
    plan = _Plan(graph, registry, _file_of(graph, aim.node))
    source = _osc_source(plan, heard, aim.type) if heard.kind == "osc" else _midi_source(plan, heard)
    wire, via = source, ""
    if out_range is not None:
        lo, hi = out_range
        wire = plan.add_node(f"{aim.node}_{aim.input}", "learned", {
            "type": "control.map", "params": {"out_range": [_plain(lo), _plain(hi)]},
            "in": {"value": source}})
        via = f" -> {wire} ({lo:g}..{hi:g})"
    elif heard.kind == "cc" and aim.type == PortType.EVENT:
        wire = plan.add_node(f"{aim.node}_{aim.input}", "learned",
                             {"type": "control.trigger", "in": {"value": source}})
        via = f" -> {wire} (trigger)"
    plan.edits.append((plan.home, ("nodes", aim.node, "in"), aim.input, wire))
    old = spec.inputs.get(aim.input)
    was = f"{old.node}.{old.port}" if old and old.port else old.node if old else ""
    loc = _write(patch, plan.edits, registry).spec.nodes[aim.node].input_key_locs[aim.input]
    what = heard.what(None if heard.kind == "osc" or heard.virtual else short_port(heard))
    return (f"learned {what} -> {source}{via} -> {aim}{f' (was {was})' if was and was != wire else ''}; "
            f"wrote {loc.file}:{loc.line}")


def _write(patch: Path, edits: list[tuple[Path, tuple[str, ...], str, str]], registry: Registry) -> Graph:
    """Apply the edits file by file, replace each file in one rename, and load the patch
    again (the graph it is now); when it does not load, every file is put back as it was."""
    before: dict[Path, str] = {}
    after: dict[Path, str] = {}
    for file, keys, key, value in edits:
        if file not in after:
            before[file] = after[file] = file.read_bytes().decode("utf-8")
        try:
            after[file], _ = set_entry(after[file], keys, key, value)
        except EditError as exc:
            raise LearnError(f"{display_path(file)}: cannot write the mapping there: {exc}; "
                             f"nothing was written") from exc
    for file, text in after.items():
        _replace_file(file, text)
    graph, errors = load_graph(patch, registry)
    if errors:
        for file, text in before.items():
            _replace_file(file, text)
        raise LearnError(f"the mapping did not load ({errors[0]}); {display_path(patch)} is as it was")
    return graph


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to a file beside ``path`` and rename it over ``path`` (a link's
    target), keeping its mode, so that a watcher never reads half a file."""
    real = Path(os.path.realpath(path))
    tmp = real.with_name(f".{real.name}.learn")
    tmp.write_bytes(text.encode("utf-8"))
    shutil.copymode(real, tmp)
    os.replace(tmp, real)
