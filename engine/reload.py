"""Hot reload: watch the running patch and the files it uses; swap in changes live.

The watcher (watchdog) sees saves to the patch, to every file it includes and to every
file its nodes read (``Node.files()``: sound files, shaders, models).  Editors save in
odd ways (a temp file renamed over the original, several writes in a burst, the file
missing for a moment), so a change is acted on only after ``DEBOUNCE`` seconds of
quiet; a patch that is missing at that point gets up to ``MISSING_GRACE`` more.

On its own thread, the reloader reads and checks the new patch and configures the nodes
that are new (a model loads here, not on the hot path).  The engine then swaps it in
between two ticks (:meth:`engine.runtime.Runtime.swap`).  A patch that fails to load
changes nothing: its errors are logged as ``FILE:LINE:COL: error: ...`` (and so reach
``/tonegraph/error``), and fixing the file applies it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import NodeError, TonegraphError
from .executor import Executor
from .graph import load_graph
from .registry import Registry

log = logging.getLogger("tonegraph.reload")

DEBOUNCE = 0.03       # [s] of quiet after the last file event before reloading
MISSING_GRACE = 1.0   # [s] a patch may be missing mid-save before that is an error


class Reloader:
    """Builds the next executor off the hot path; the engine picks it up with ``take``."""

    def __init__(self, patch: Path, registry: Registry, current: Callable[[], Executor],
                 sets: list[str] | None = None) -> None:
        self.patch = Path(patch)
        self.registry = registry
        self.current = current
        self.sets = sets or []
        self.requested = threading.Event()
        self.ready: Executor | None = None
        self.failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = None
        self._watched: set[Path] = set()
        self._dirs: set[Path] = set()
        self._thread = threading.Thread(target=self._loop, name="tonegraph-reload", daemon=True)
        self.last_event = 0.0

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
                        reloader.last_event = time.monotonic()
                        reloader.requested.set()

            self._handler = Handler()
            self._observer = Observer()
            self._observer.daemon = True
            self.watch_files(self.current())
            self._observer.start()
        self._thread.start()

    def watch_files(self, executor: Executor) -> None:
        """Watch the patch, its includes and the files its nodes read (their folders,
        so that a file replaced by a rename is seen)."""
        files = {Path(f).resolve() for f in executor.graph.spec.files}
        files.add(self.patch.resolve())
        for node in executor.nodes.values():
            try:
                files.update(Path(f).resolve() for f in node.files())
            except Exception:  # a node that cannot name its files is simply not watched
                pass
        self._watched = files
        if self._observer is None:
            return
        for d in {f.parent for f in files} - self._dirs:
            if d.is_dir():
                self._observer.schedule(self._handler, str(d), recursive=False)
                self._dirs.add(d)

    def request(self) -> None:
        """Reload now (SIGHUP, or a test)."""
        self.last_event = 0.0
        self.requested.set()

    # -- building -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.requested.wait(0.2):
                continue
            # Debounce: wait for DEBOUNCE seconds without a new file event.
            while time.monotonic() - self.last_event < DEBOUNCE and not self._stop.is_set():
                time.sleep(DEBOUNCE / 3)
            self.requested.clear()
            grace = time.monotonic() + MISSING_GRACE
            while not self.patch.exists() and time.monotonic() < grace:
                time.sleep(0.02)
            self._build()

    def _build(self) -> None:
        try:
            graph, errors = load_graph(self.patch, self.registry, self.sets)
        except TonegraphError as exc:
            graph, errors = None, [exc]
        if errors:
            self.failures += 1
            for e in errors:
                log.error("%s", e)
            log.error("reload of %s failed: the running patch keeps running", self.patch)
            return
        with self._lock:
            # Always from the running executor: a prepared one that was never swapped in
            # (a newer save arrived first) is discarded below.
            previous = self.current()
            ex = Executor(graph, self.registry, previous.ctx, previous=previous)
            try:
                ex.prepare()
            except NodeError as exc:
                self.failures += 1
                log.error("reload of %s failed: %s; the running patch keeps running", self.patch, exc)
                return
            if self.ready is not None:
                _discard(self.ready)
            self.ready = ex

    def take(self) -> Executor | None:
        """The engine thread: the prepared executor, if a reload is waiting."""
        if self.ready is None:
            return None
        with self._lock:
            ex, self.ready = self.ready, None
        return ex

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
        if self.ready is not None:
            _discard(self.ready)


def _discard(ex: Executor) -> None:
    """Close the nodes a prepared executor created (it never ran)."""
    for nid in ex.fresh:
        try:
            ex.nodes[nid].close()
        except Exception:
            pass
