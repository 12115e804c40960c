"""The node contract: everything a node type declares and does, in one place.

A node type is a subclass of :class:`Node` that declares, as class attributes:

``type_name``    the name a patch uses, ``family.name`` (``control.lfo``)
``description``  one line for ``tonegraph nodes``
``params``       name -> :class:`engine.params.Param`
``inputs``       name -> :class:`engine.ports.Port`
``outputs``      name -> :class:`engine.ports.Port`; ``out`` is the default output
``variadic``     a Port type for inputs named freely by the patch (recorders, OSC
                 senders), or ``None``
``domain``       ``"control"`` (once per control tick, at the patch's fps: numbers,
                 events, lights), ``"render"`` (once per drawn frame: GL and image
                 nodes, as fast as drawing allows), ``"audio"`` (once per audio hop),
                 or ``"both"``: ``process`` runs per control tick and ``process_audio``
                 per hop with the node's inputs that come from the audio domain, so
                 such events are handled as soon as their hop is (OSC cues)

and implements the life cycle:

``configure()``        heavy setup (open files, load models); called before the first
                       tick and again when a ``restart`` param changes
``process(tick)``      cheap per-tick work: read ``self.inp``, write ``self.out``
``params_changed(ch)`` apply changed params in place (``self.p`` already holds them)
``reset()``            back to the initial state, keeping configuration
``state()/restore()``  carry running state across a hot reload
``close()``            free resources
``files()``            files the node reads, for the file watcher

Inputs and outputs live in two plain dicts, ``self.inp`` and ``self.out``, that the
runner fills and reads directly; this keeps dispatch close to a hand-written loop.
An event output holds the events of the current tick only: the runner empties it
before each ``process`` call, so a node writes it only when something fires.

``configure`` may be slow (it runs off the hot path on a reload: a model loads, a device
opens); ``process``, ``params_changed`` and ``restore`` run on the node's domain thread
or between its ticks and must stay cheap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from .clock import SYSTEM, Clock, Tick  # noqa: F401  (Tick: nodes take it from here)
from .params import Param
from .ports import Port, PortType


@dataclass
class Context:
    """What a node may know about the run it is part of."""

    fps: float = 60.0
    samplerate: int = 44100
    hop: int = 512
    offline: bool = False
    headless: bool = True
    patch_dir: Path = field(default_factory=Path.cwd)
    stop: threading.Event = field(default_factory=threading.Event)
    #: Shared OSC destinations (one socket per destination for the whole engine).
    osc: "Transports" = field(default_factory=lambda: _transports())
    #: Unix time at media time 0, for OSC timetags that line cues up with the audio.
    clock_origin: float = 0.0
    #: The output frame's size (set by the patch's gl.window), for nodes that draw at it.
    canvas: tuple[int, int] | None = None
    #: What else keeps cores busy in this run: "audio" (the real-time audio thread),
    #: "gl" (any GL node: a CPU renderer draws on the cores, and a GPU's driver needs a
    #: thread fed), "encoder" (a render's ffmpeg).  Torch takes the cores they leave.
    sharing: frozenset = frozenset()
    #: Who takes the frames a gl.window draws, by node id (``tonegraph render``, tests):
    #: {"sink": callable, "pixels": format}.  Kept here, not on the node, so a window
    #: started afresh (a reload, the fault policy) goes on giving them.
    recorders: dict = field(default_factory=dict)
    #: The run's one source of time (engine/clock.py), for nodes that keep their own
    #: pace (an output's rate): the system's, or a test's fake one.
    clock: Clock = SYSTEM

    def resolve_input(self, path: str) -> Path:
        """An input file named in a patch, relative to the patch's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.patch_dir / p)

    def resolve_output(self, path: str) -> Path:
        """An output file, relative to the working directory."""
        return Path(path).expanduser()


def _transports():
    from .osc.transport import Transports

    return Transports()


class Node:
    """Base class of every node type (see the module docstring for the contract)."""

    type_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    inputs: ClassVar[dict[str, Port]] = {}
    outputs: ClassVar[dict[str, Port]] = {}
    variadic: ClassVar[Port | None] = None
    domain: ClassVar[str] = "control"
    default_output: ClassVar[str] = "out"
    #: Reads media from outside (a file, a device): an offline run ends when every
    #: source reports ``finished``.
    is_source: ClassVar[bool] = False
    #: The optional install this type needs (``pip install 'tonegraph[<extra>]'``), and
    #: the modules that extra brings, checked when a patch uses the type.
    extra: ClassVar[str] = ""
    extra_modules: ClassVar[tuple[str, ...]] = ()
    #: Reloads its own files when they change (a shader keeping its last good program);
    #: otherwise a hot reload replaces a node whose files changed on disk.
    follows_files: ClassVar[bool] = False

    def __init__(self, node_id: str, params: dict[str, Any], ctx: Context,
                 wired: dict[str, PortType] | None = None) -> None:
        self.id = node_id
        self.ctx = ctx
        full = {name: decl.default for name, decl in self.params.items()}
        full.update(params)
        self.p = SimpleNamespace(**full)
        # Names of inputs the patch wired, with the source's type (variadic nodes use
        # this to know what they receive).
        self.wired: dict[str, PortType] = dict(wired or {})
        self.inp: dict[str, Any] = {n: port.initial() for n, port in self.inputs.items()}
        for name, typ in self.wired.items():
            if name not in self.inp:
                self.inp[name] = Port(typ).initial()
        self.out: dict[str, Any] = {n: port.initial()
                                    for n, port in self.outputs_for(full).items()}
        #: For ``domain = "both"``: the inputs the runner fills on the audio thread.
        self.audio_inputs: set[str] = set()

    # -- life cycle ---------------------------------------------------------------

    def configure(self) -> None:
        """Heavy setup. Called before the first tick and after a restart param changes."""

    def process(self, tick: Tick) -> None:
        raise NotImplementedError

    def process_audio(self, tick: Tick) -> None:
        """For ``domain = "both"``: once per hop, with audio-domain events in ``self.inp``."""

    def params_changed(self, changed: set[str]) -> None:
        """Apply changed params in place; ``self.p`` already holds the new values."""

    def reset(self) -> None:
        """Return to the initial running state."""

    def state(self) -> dict[str, Any]:
        """Running state to carry across a hot reload."""
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state` returned."""

    def close(self) -> None:
        """Free resources. Called once; the node is not used afterwards."""

    def files(self) -> list[Path]:
        """Files this node reads, so that a change to them reloads the patch."""
        return []

    @property
    def finished(self) -> bool:
        """A source that has nothing more to give (a file played to its end)."""
        return False

    @property
    def device_missing(self) -> bool:
        """A node of a device (an audio interface) running on without it, waiting for it
        to come (counted in the status heartbeat)."""
        return False

    def wait_hop(self, timeout: float) -> bool | None:
        """For a source that owns a hardware clock (a live input): block until its next
        hop of samples is ready (True) or ``timeout`` [s] passes (False).  None means
        the node has no live clock now, and the engine paces hops itself."""
        return None

    # -- helpers ------------------------------------------------------------------

    def validate_params(self, values: dict[str, Any]) -> dict[str, Any]:
        """Check new param values exactly as a patch is checked; returns them coerced.

        Raises :class:`engine.errors.ParamError` naming the problem; nothing changes.
        """
        from .errors import ParamError, did_you_mean

        coerced = {}
        for name, value in values.items():
            decl = self.params.get(name)
            if decl is None:
                raise ParamError(f"{self.type_name} has no param '{name}'{did_you_mean(name, self.params)}")
            coerced[name] = decl.coerce(value, name)
        problems = self.check(vars(self.p) | coerced, self.wired, self.ctx)
        if problems:
            raise ParamError("; ".join(msg for _, msg in problems))
        return coerced

    def apply_params(self, coerced: dict[str, Any]) -> set[str]:
        """Apply values from :meth:`validate_params`; returns the names that need a
        restart (the caller reconfigures the node), after applying the others in place."""
        changed = {n for n, v in coerced.items() if getattr(self.p, n) != v}
        for name in changed:
            setattr(self.p, name, coerced[name])
        restart = {n for n in changed if self.params[n].restart}
        if changed - restart:
            self.params_changed(changed - restart)
        return restart

    def set_params(self, values: dict[str, Any]) -> set[str]:
        """Validate and apply new param values; returns the names that need a restart.

        Raises :class:`engine.errors.ParamError` without changing anything when any
        value is invalid.
        """
        return self.apply_params(self.validate_params(values))

    @classmethod
    def check(cls, params: dict[str, Any], wired: dict[str, PortType],
              ctx: Context) -> list[tuple[str, str]]:
        """Checks across params (and the patch's rates) that one declaration cannot express.

        Returns ``(param_name, message)`` pairs; an empty name points at the node.
        """
        return []

    @classmethod
    def outputs_for(cls, params: dict[str, Any]) -> dict[str, Port]:
        """The outputs of a node with these params: the declared ones, unless a node type
        names its outputs from its params (``osc.in`` names them after addresses)."""
        return cls.outputs

    @classmethod
    def port_type(cls, name: str, output: bool, params: dict[str, Any] | None = None) -> PortType | None:
        ports = (cls.outputs_for(params or {}) if output else cls.inputs)
        if name in ports:
            return ports[name].type
        if not output and cls.variadic is not None:
            return cls.variadic.type
        return None


def missing_extra(cls: type[Node], node: str | None = None, also: list[str] = ()) -> str | None:
    """What to install for node type ``cls`` (one line, naming the patch's ``node`` of
    that type and the nodes ``also`` that need it too), or None when it is all there."""
    what = f"node '{node}' ({cls.type_name})" if node else cls.type_name
    return missing_modules(what, cls.extra, cls.extra_modules, also)


def missing_modules(what: str, extra: str, modules: tuple[str, ...], also: list[str] = ()) -> str | None:
    """One line naming the extra to install when one of ``modules`` is not importable."""
    import importlib.util

    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):   # a module set to None, or a broken package
            found = False
        if not found:
            others = f" (so do {', '.join(repr(n) for n in also)})" if also else ""
            return (f"{what} needs the '{extra}' extra ({module} is not installed){others}: "
                    f"pip install 'tonegraph[{extra}]'")
    return None
