"""The runner: a plan (engine/plan.py) made into running code over node objects.

:func:`build` makes the node objects a plan needs (new, replaced and restarted ones are
created and configured here, restoring their predecessor's state; kept ones are taken
over as they are) and compiles each domain's schedule into one straight-line Python
function: for each call, statements that fill the node's inputs (copies from its
sources' output dicts, queue drains, delay buffers), empty its event outputs, and call
it inside its own ``try``.  The generated code refers to nodes and dicts only through
local names bound to objects (never to text from the patch, except port names as
``repr`` literals) and has no loops or look-ups by name left to do, which keeps a tick
close to a hand-written loop over the same nodes.

A runner is built whole, off the hot path, and put in charge by swapping one handle
(engine/runtime.py).  Each domain's thread picks the new runner up at its next tick and
first calls :meth:`Runner.enter`, which applies the param changes of the kept nodes of
that domain (cheap, in place, on the thread that runs them).

:class:`FaultPolicy` isolates failures: a node that raises keeps its last outputs (its
events are dropped), the failure is counted and logged with the node's id at most once
every few seconds, and the rest of the graph runs on.  A node that keeps failing
(``restart_after`` failures within :data:`FAULT_WINDOW`) is restarted afresh after a
delay that doubles with each restart in a row, from 0.5 s to at most 30 s
(:data:`RESTART_DELAY`): one log line announces each restart with its count and delay.
Restarts are counted per node id, across the fresh objects they make, and forgotten
once the node has gone :data:`HEALTHY` without a failure; a node that stops failing
for :data:`FAULT_WINDOW` before its restart is due is not restarted.  In real time the
restart is a new plan built off the hot path (``on_restart``); offline it happens in
place, timed by media time, so a run restarts a node at the same frames on any machine.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from .batch import BatchGroup
from .clock import SYSTEM, Clock
from .errors import NodeError, describe
from .node import Context, Node, Tick
from .plan import AUDIO, CONTROL, DOMAINS, RENDER, Plan, Step
from .ports import NO_EVENTS, PortType
from .registry import Registry

log = logging.getLogger("tonegraph.runner")

FAULT_LOG_INTERVAL = 5.0  # [s] between two log lines about the same failing node
FAULT_WINDOW = 10.0       # [s] over which failures are counted for the restart policy
RESTART_DELAY = (0.5, 30.0)  # [s] wait before a node's first restart in a row, and the longest
HEALTHY = 60.0            # [s] without a failure after which a node's restarts are forgotten


@dataclass
class Fault:
    """One node object's failures (the fresh object a restart makes starts anew)."""

    count: int = 0
    last_message: str = ""
    window_start: float = -1e9
    in_window: int = 0


@dataclass
class Backoff:
    """A node id's restarts and reports, kept across the objects that replace it."""

    restarts: int = 0               # restarts in a row (forgotten after HEALTHY)
    due: float | None = None        # [s] when the announced restart is made
    last_failure: float = -math.inf
    last_logged: float = -math.inf
    unlogged: int = 0               # failures since the last line about them


class FaultPolicy:
    """Counts, reports and restarts failing nodes (see the module docstring).  Called
    from every domain's thread, so its book-keeping holds a lock (failures are rare)."""

    def __init__(self, clock: Clock = SYSTEM, restart_after: int = 50) -> None:
        self.clock = clock
        #: Restart a node that failed this many times within FAULT_WINDOW (0: never).
        self.restart_after = restart_after
        self.faults: dict[str, Fault] = {}
        self.backoff: dict[str, Backoff] = {}
        #: Real time: asks for a new plan with this node started afresh.  None: restart
        #: in place (offline runs, where nothing waits).
        self.on_restart: Callable[[str], None] | None = None
        self._media = 0.0           # [s] the last failing tick's media time (offline)
        self._lock = threading.Lock()

    def __call__(self, node: Node, exc: BaseException, tick: Tick | None = None) -> None:
        if node.out:
            for name, port in node.outputs.items():
                if port.type == PortType.EVENT:
                    node.out[name] = NO_EVENTS
        with self._lock:
            now = self._now(tick)
            f = self.faults.setdefault(node.id, Fault())
            b = self.backoff.setdefault(node.id, Backoff())
            if now - b.last_failure >= HEALTHY:
                b.restarts = 0
            if now - b.last_failure > FAULT_WINDOW:
                b.due = None        # it stopped failing: a restart waits for failures anew
            b.last_failure = now
            f.count += 1
            f.last_message = describe(exc)
            if now - b.last_logged >= FAULT_LOG_INTERVAL:
                extra = f" (and {b.unlogged} more since the last report)" if b.unlogged else ""
                log.error("node '%s' (%s) failed: %s%s; its outputs hold their last values",
                          node.id, node.type_name, f.last_message, extra)
                b.last_logged = now
                b.unlogged = 0
            else:
                b.unlogged += 1
            if now - f.window_start > FAULT_WINDOW:
                f.window_start, f.in_window = now, 0
            f.in_window += 1
            restart = b.due is not None and now >= b.due
            if restart:
                b.due = None
                b.restarts += 1
                f.in_window = 0
            elif b.due is None and self.restart_after and f.in_window >= self.restart_after:
                first, longest = RESTART_DELAY
                delay = min(longest, first * 2 ** min(b.restarts, 32))
                b.due = now + delay
                log.error("node '%s' (%s) failed %d times in %g s: restarting it in %g s (restart %d)",
                          node.id, node.type_name, self.restart_after, FAULT_WINDOW, delay,
                          b.restarts + 1)
        if restart:
            if self.on_restart is not None:
                self.on_restart(node.id)
            else:
                try:
                    node.close()
                    node.configure()
                except Exception as err:
                    log.error("node '%s' (%s) could not restart: %s", node.id, node.type_name,
                              describe(err))

    def _now(self, tick: Tick | None) -> float:
        """In real time the clock's time.  Offline (restarts in place) the media time of
        the tick that failed, so a run restarts at the same frames however fast it runs;
        a failure outside a tick (a batch member's, a param change's) takes the last."""
        if self.on_restart is not None:
            return self.clock.now()
        if tick is not None:
            self._media = tick.t
        return self._media

    def count(self) -> int:
        return sum(f.count for f in list(self.faults.values()))

    def forget(self, ids) -> None:
        """New objects start with a clean record of failures; a restart announced for
        the old object is not made on them.  Their ids' restarts in a row are kept."""
        with self._lock:
            for nid in ids:
                self.faults.pop(nid, None)
                if nid in self.backoff:
                    self.backoff[nid].due = None


class Runner:
    """A plan with its node objects and compiled schedules (see the module docstring)."""

    def __init__(self, plan: Plan, nodes: dict[str, Node], ctx: Context, faults: FaultPolicy,
                 queues: dict[str, deque], buffers: dict[str, dict], stamps: dict[str, dict],
                 pending: dict[str, list[tuple[Node, dict[str, Any]]]]) -> None:
        self.plan = plan
        self.nodes = nodes
        self.ctx = ctx
        self.policy = faults
        self.queues = queues
        self.buffers = buffers
        #: Per node, the files it read and their modification times when it was set up.
        self.stamps = stamps
        self._pending = pending
        #: Set once each domain's thread has taken this runner over (engine/runtime.py).
        self.entered = {d: threading.Event() for d in DOMAINS}
        self.configured = False
        s = plan.schedules
        delays = {d: [x for x in plan.delays if x.domain == d] for d in DOMAINS}
        #: One control tick.
        self.control = self._generate(s[CONTROL], delays[CONTROL], "control")
        #: One render tick (GL and image nodes).
        self.render = self._generate(s[RENDER], delays[RENDER], "render")
        #: One audio hop.
        self.audio_hop = self._generate(s[AUDIO], delays[AUDIO], "audio")
        #: A control tick then a render tick, as one function (offline runs and tests).
        self.frame = self._generate(s[CONTROL] + s[RENDER], delays[CONTROL] + delays[RENDER], "frame")
        #: Real audio nodes make an audio domain worth running (an osc.out's audio side
        #: alone has nothing to wait for).
        self.has_audio = any(n.domain == AUDIO for n in plan.nodes.values())
        self.has_render = bool(s[RENDER])

    # -- running -----------------------------------------------------------------------

    def _generate(self, steps: tuple[Step, ...], delays: list, name: str):
        """Compile steps into one function ``run(tick)`` (see the module docstring)."""
        env: dict[str, Any] = {"NO_EVENTS": NO_EVENTS, "fault": self.policy}
        body: list[str] = []
        counter = iter(range(1 << 30))

        def call(c) -> int:
            i = next(counter)
            node = self.nodes[c.node]
            env[f"n{i}"], env[f"p{i}"] = node, getattr(node, c.method)
            env[f"i{i}"], env[f"o{i}"] = node.inp, node.out
            for j, inp in enumerate(c.inputs):
                if inp.kind == "copy":
                    env[f"s{i}_{j}"] = self.nodes[inp.src].out
                    body.append(f"i{i}[{inp.port!r}] = s{i}_{j}[{inp.src_port!r}]")
                elif inp.kind == "delayed":
                    env[f"s{i}_{j}"] = self.buffers[inp.src]
                    body.append(f"i{i}[{inp.port!r}] = s{i}_{j}[{inp.src_port!r}]")
                else:
                    env[f"q{i}_{j}"] = self.queues[inp.src]
                    body.append(f"i{i}[{inp.port!r}] = tuple([q{i}_{j}.popleft() for _ in "
                                f"range(len(q{i}_{j}))]) if q{i}_{j} else NO_EVENTS")
            for port in c.clears:
                body.append(f"o{i}[{port!r}] = NO_EVENTS")
            return i

        def posts(i: int, c, indent: str) -> None:
            for j, (port, key) in enumerate(c.posts):
                env[f"r{i}_{j}"] = self.queues[key]
                body.append(f"{indent}if o{i}[{port!r}]: r{i}_{j}.extend(o{i}[{port!r}])")

        for k, step in enumerate(steps):
            if step.group:   # every member's inputs, one call, every member's posts
                env[f"g{k}"] = BatchGroup([self.nodes[c.node] for c in step.calls], self.policy)
                ids = [call(c) for c in step.calls]
                body += ["try:", f"    g{k}(tick)", "except Exception as exc:"]
                body += [f"    fault(n{i}, exc, tick)" for i in ids]
                for i, c in zip(ids, step.calls):
                    posts(i, c, "")
                continue
            c = step.calls[0]
            i = call(c)
            body += ["try:", f"    p{i}(tick)", "except Exception as exc:", f"    fault(n{i}, exc, tick)"]
            if c.posts:
                body.append("else:")
                posts(i, c, "    ")
        for j, d in enumerate(delays):
            env[f"b{j}"], env[f"d{j}"] = self.buffers[d.key], self.nodes[d.src].out
            body.append(f"b{j}[{d.port!r}] = d{j}[{d.port!r}]")
        source = "def run(tick):\n" + "".join(f"    {line}\n" for line in body or ["pass"])
        exec(compile(source, f"<tonegraph {name} schedule>", "exec"), env)  # noqa: S102
        return env["run"]

    def enter(self, domain: str) -> None:
        """On ``domain``'s thread, before its first tick with this runner: apply the kept
        nodes' param changes there (cheap and in place; never set-up or I/O)."""
        for node, changes in self._pending.get(domain, ()):
            node.ctx = self.ctx
            if changes:
                try:
                    node.apply_params(changes)
                except Exception as exc:  # a node's own bug: isolated like a failed tick
                    self.policy(node, exc)
        self.entered[domain].set()

    # -- life cycle --------------------------------------------------------------------

    def configure(self) -> None:
        """Configure every node in order (the first start; a reload configures the nodes
        it builds in :func:`build`).  Raises NodeError naming the node that failed,
        after closing the others."""
        done: list[Node] = []
        for nid in self.plan.order:
            _start(nid, self.plan.nodes[nid].type, lambda n=self.nodes[nid]: _configured(n), done)
            self.stamps[nid] = stamp(self.nodes[nid])
        self.configured = True

    def close(self, domains: tuple[str, ...] = DOMAINS) -> None:
        """Close the nodes that run in ``domains`` (GL nodes close on the render thread),
        sinks first, except that nodes marked ``closes_last`` (a window, whose GL context
        the others' objects live in) close after all the others."""
        order = [nid for nid in reversed(self.plan.order) if self.plan.nodes[nid].domain in domains]
        order.sort(key=lambda nid: bool(getattr(self.nodes[nid], "closes_last", False)))
        for nid in order:
            close_quietly(self.nodes[nid])

    @property
    def sources(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_source]

    @property
    def faults(self) -> dict[str, Fault]:
        return self.policy.faults

    @property
    def restart_after(self) -> int:
        return self.policy.restart_after

    @restart_after.setter
    def restart_after(self, n: int) -> None:
        self.policy.restart_after = n

    def fault_count(self) -> int:
        return self.policy.count()

    def domain_of(self, node_id: str) -> str:
        return self.plan.nodes[node_id].domain


def build(plan: Plan, registry: Registry, ctx: Context, previous: Runner | None = None, *,
          faults: FaultPolicy | None = None, configure: bool = True) -> Runner:
    """The runner of ``plan``: kept nodes taken over from ``previous``, the others made
    (and configured, unless ``configure`` is off: the first start configures in
    :meth:`Runner.configure`).  A node that cannot start raises NodeError after the
    nodes made here are closed again; ``previous`` is untouched either way."""
    built = set(plan.diff.built) if previous is not None else set(plan.nodes)
    carried = set(plan.diff.carried) if previous is not None else set()
    nodes: dict[str, Node] = {}
    stamps: dict[str, dict] = {}
    pending: dict[str, list] = {d: [] for d in DOMAINS}
    created: list[Node] = []
    for nid in plan.order:
        np = plan.nodes[nid]
        if nid not in built:
            node = nodes[nid] = previous.nodes[nid]
            stamps[nid] = previous.stamps.get(nid, {})
            changes = {k: v for k, v in np.params.items() if getattr(node.p, k, v) != v}
            if changes or node.ctx is not ctx:
                pending[np.domain].append((node, changes))
            continue

        def make(np=np, nid=nid) -> Node:
            node = registry[np.type](nid, dict(np.params), ctx, dict(np.wired))
            node.audio_inputs = set(np.audio_inputs)
            return _configured(node) if configure else node

        node = _start(nid, np.type, make, created)
        if configure:
            stamps[nid] = stamp(node)
        nodes[nid] = node
        if nid in carried:
            try:
                node.restore(previous.nodes[nid].state())
            except Exception as exc:  # it starts afresh instead
                log.error("node '%s' (%s) could not take over its state: %s", nid, np.type,
                          describe(exc))
    old_q = previous.queues if previous is not None else {}
    queues = {key: old_q.get(key) or deque() for key in plan.queues()}
    old_b = previous.buffers if previous is not None else {}
    buffers = {d.key: old_b.get(d.key) or {d.port: nodes[d.src].out.get(d.port)} for d in plan.delays}
    policy = faults or FaultPolicy()
    if previous is not None:
        policy.forget(plan.diff.built)
    runner = Runner(plan, nodes, ctx, policy, queues, buffers, stamps, pending)
    runner.configured = configure
    return runner


def _configured(node: Node) -> Node:
    node.configure()
    return node


def _start(nid: str, type_name: str, make: Callable[[], Node], done: list[Node]) -> Node:
    """``make()`` a node (create and/or configure it) and add it to ``done``; if that
    fails, close every node in ``done`` and raise NodeError naming this one."""
    try:
        node = make()
    except Exception as exc:
        for other in reversed(done):
            close_quietly(other)
        if isinstance(exc, NodeError):
            raise
        raise NodeError(nid, f"{type_name}: {describe(exc)}") from exc
    done.append(node)
    return node


def retired(old: Runner, new: Runner) -> list[Node]:
    """Nodes of ``old`` that ``new`` no longer runs (removed, replaced, restarted)."""
    keep = {id(n) for n in new.nodes.values()}
    return [old.nodes[nid] for nid in reversed(old.plan.order) if id(old.nodes[nid]) not in keep]


def stamp(node: Node) -> dict[str, int]:
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


def close_quietly(node: Node) -> None:
    try:
        node.close()
    except Exception as exc:  # closing must never stop the others from closing
        log.error("node '%s' (%s) failed to close: %s", node.id, node.type_name, describe(exc))


def run_tasks(tasks: deque) -> None:
    """Run queued work for a domain, between two of its ticks."""
    while tasks:
        task = tasks.popleft()
        try:
            task()
        except Exception as exc:  # a task must never stop a domain's thread
            log.error("a live change failed: %s", describe(exc))


def rebuild_context(ctx: Context, plan: Plan) -> Context:
    """The context a plan runs with: ``ctx`` itself when the rates are the same, else a
    copy with the new ones (sharing the stop flag, OSC destinations and canvas)."""
    h = plan.header
    if (ctx.fps, ctx.samplerate, ctx.hop) == (h.fps, h.samplerate, h.hop):
        return ctx
    return replace(ctx, fps=h.fps, samplerate=h.samplerate, hop=h.hop)
