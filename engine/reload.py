"""Hot reload: watch the running patch and the files it uses; build changes off the hot path.

The watcher (watchdog) sees saves to the patch, to every file it includes and to every
file its nodes read (``Node.files()``: sound files, shaders, models).  Editors save in
odd ways (a temp file renamed over the original, several writes in a burst, the file
missing for a moment), so a change is acted on only after ``DEBOUNCE`` seconds of
quiet; a patch that is missing at that point gets up to ``MISSING_GRACE`` more.

One thread does every change to the running graph, in order: a saved patch (or
SIGHUP), a param set over OSC that needs set-up, a failing node the fault policy
restarts.  Each is planned from the running plan (engine/plan.py), and every node that
is new, replaced or restarted is created and configured here, on this thread, as a new
object with its predecessor's state (a model loads here, not on the hot path).  Only
then is the new runner installed (:meth:`engine.runtime.Runtime.install`).  A change
that fails anywhere changes nothing: its errors are logged as ``FILE:LINE:COL: error:
...`` (and so reach ``/tonegraph/error``), and fixing the file applies it.  Nothing
that goes wrong here stops this thread.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path

from .clock import Clock
from .errors import NodeError, describe, display_path
from .graph import load_graph
from .plan import make_plan
from .registry import Registry
from .runner import Runner, build, rebuild_context, stamp

log = logging.getLogger("tonegraph.reload")

DEBOUNCE = 0.03       # [s] of quiet after the last file event before reloading
MISSING_GRACE = 1.0   # [s] a patch may be missing mid-save before that is an error
POLL = 0.2            # [s] the longest the thread sleeps before looking at its stop flag


class Reloader:
    """Builds the next runner off the hot path and installs it (see the module doc)."""

    def __init__(self, runtime, patch: Path, registry: Registry, sets: list[str] | None,
                 clock: Clock) -> None:
        self.rt = runtime
        self.patch = Path(patch)
        self.registry = registry
        self.sets = sets or []
        self.clock = clock
        self.failures = 0
        self.last_event = 0.0
        self._file = False                 # a reload of the patch file was asked for
        self._jobs: deque = deque()        # ("params", id, values) / ("fresh", id)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer = None
        self._handler = None
        self._watched: set[Path] = set()
        self._dirs: set[Path] = set()
        self._thread = threading.Thread(target=self._loop, name="tonegraph-reload", daemon=True)

    # -- watching -----------------------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        if watch:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            reloader = self

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event) -> None:  # watchdog's thread
                    if event.event_type in ("opened", "closed_no_write"):
                        return
                    paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
                    if any(p and Path(p).resolve() in reloader._watched for p in paths):
                        reloader.last_event = reloader.clock.now()
                        reloader._file = True
                        reloader._wake.set()

            self._handler = Handler()
            self._observer = Observer()
            self._observer.daemon = True
            self.watch_files(self.rt.current)
            self._observer.start()
        self._thread.start()

    def watch_files(self, runner: Runner) -> None:
        """Watch the patch, its includes and the files its nodes read (their folders,
        so that a file replaced by a rename is seen)."""
        files = {Path(f).resolve() for f in runner.plan.graph.spec.files}
        files.add(self.patch.resolve())
        for node in runner.nodes.values():
            try:
                files.update(Path(f).resolve() for f in node.files())
            except Exception:  # a node that cannot name its files is simply not watched
                pass
        self._watched = files
        if self._observer is None:
            return
        for d in {f.parent for f in files} - self._dirs:
            if d.is_dir():
                try:
                    self._observer.schedule(self._handler, str(d), recursive=False)
                except OSError as exc:  # out of inotify watches: the patch still reloads on SIGHUP
                    log.warning("cannot watch %s: %s", display_path(d), exc.strerror or exc)
                self._dirs.add(d)

    # -- requests (any thread) ------------------------------------------------------------

    def request(self) -> None:
        """Reload the patch now (SIGHUP, or a test)."""
        self.last_event = 0.0
        self._file = True
        self._wake.set()

    def request_params(self, node_id: str, values: dict) -> None:
        """Set checked param values that need set-up (OSC control): a new object for the
        node is built here and swapped in."""
        for job in self._jobs:                  # one waiting set per node, the latest values
            if job[0] == "params" and job[1] == node_id:
                job[2].update(values)
                break
        else:
            self._jobs.append(("params", node_id, dict(values)))
        self._wake.set()

    def request_fresh(self, node_id: str) -> None:
        """Start a failing node afresh, without its state (the fault policy)."""
        self._jobs.append(("fresh", node_id))
        self._wake.set()

    # -- building -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.clock.wait(self._wake, POLL):
                continue
            self._wake.clear()
            try:
                self.work()
            except Exception as exc:  # the last guard: this thread must outlive any save
                self.failures += 1
                log.error("reload failed: %s; the running patch keeps running", describe(exc))

    def work(self) -> None:
        """Do what was asked for (on the reload thread, or a test's)."""
        if self._file:
            # Debounce: wait for DEBOUNCE seconds without a new file event.
            while self.clock.now() - self.last_event < DEBOUNCE and not self._stop.is_set():
                self.clock.sleep(DEBOUNCE / 3)
            self._file = False
            grace = self.clock.now() + MISSING_GRACE
            while not self.patch.exists() and self.clock.now() < grace and not self._stop.is_set():
                self.clock.sleep(0.02)
            self.reload_file()
        while self._jobs and not self._stop.is_set():
            job = self._jobs.popleft()
            if job[0] == "params":
                self.set_params(job[1], job[2])
            else:
                self.restart_fresh(job[1])

    def reload_file(self) -> bool:
        """Load, check, plan and build the saved patch, and install it."""
        started = self.last_event or None
        graph, errors = load_graph(self.patch, self.registry, self.sets)
        if errors:
            self.failures += 1
            for e in errors:
                log.error("%s", e)
            log.error("reload of %s failed: the running patch keeps running", display_path(self.patch))
            return False
        current = self.rt.current
        plan = make_plan(graph, self.registry, current.plan, fps=self.rt.pinned_fps,
                         stale=stale(current))
        return self._install(plan, f"reload of {display_path(self.patch)}",
                             f"reloaded {self.patch.name}", started)

    def set_params(self, node_id: str, values: dict) -> bool:
        current = self.rt.current
        if node_id not in current.nodes:
            log.error("OSC: node '%s' is gone; its params were not set", node_id)
            return False
        overrides = {k: dict(v) for k, v in current.plan.overrides.items()}
        overrides.setdefault(node_id, {}).update(values)
        plan = make_plan(current.plan.graph, self.registry, current.plan, fps=self.rt.pinned_fps,
                         overrides=overrides)
        names = ", ".join(f"{node_id}.{k}" for k in values)
        return self._install(plan, f"setting {names}", f"set {names}")

    def restart_fresh(self, node_id: str) -> bool:
        current = self.rt.current
        if node_id not in current.nodes:
            return False
        plan = make_plan(current.plan.graph, self.registry, current.plan, fps=self.rt.pinned_fps,
                         overrides=current.plan.overrides, fresh={node_id})
        return self._install(plan, f"restart of node '{node_id}'", f"restarted '{node_id}' afresh")

    def _install(self, plan, what: str, done: str, started: float | None = None) -> bool:
        current = self.rt.current
        try:
            new = build(plan, self.registry, rebuild_context(current.ctx, plan), current,
                        faults=self.rt.policy)
        except NodeError as exc:
            self.failures += 1
            log.error("%s failed: %s; the running patch keeps running", what, exc)
            return False
        self.rt.install(new, done, started)
        self.watch_files(new)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def stale(runner: Runner) -> set[str]:
    """Nodes whose files changed on disk since they were set up (a model saved anew);
    nodes that follow their own files (a shader keeping its last good program) never
    are."""
    return {nid for nid, node in runner.nodes.items()
            if not node.follows_files and stamp(node) != runner.stamps.get(nid, {})}
