"""io.record: named inputs to JSON Lines (or CSV), one row per value change or event.

Each row is ``{"t": <media time [s]>, "name": "<input>", "value": <number | list | text>}``;
numbers and vectors are written when they change, events each time they fire (with the
event's own media time, and its strength as the value), text when it changes.  This is how features leave tonegraph for
other tools, as seed 002 exported its features to JSON for a web player.

A recording is never lost to the engine: the file is opened for appending (a restart
after a reload or the next run add rows after the ones there; a format other than the
one the file holds is refused rather than mixed into it), rows
go out in whole-row writes (one ``write`` per flush; a write the disk cut short is
taken back, so no torn row is left), and a full disk is reported once, as is its
recovery, with the rows of the meantime kept in memory (up to ``MAX_PENDING``) and
written when space returns.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from typing import Any

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import PortType

from .values import plain

log = logging.getLogger("tonegraph.record")

RETRY = 5.0           # [s] between attempts to write again after a write failed (a full disk)
MAX_PENDING = 50_000  # rows kept in memory while writing fails; beyond, the oldest are dropped
FLUSH_ROWS = 2_000    # rows that make a flush even before ``flush`` seconds

RECORDABLE = (PortType.NUMBER, PortType.VECTOR, PortType.EVENT, PortType.TEXT, PortType.ANY)


class Record(Node):
    type_name = "io.record"
    description = "Record named inputs to JSON Lines or CSV, one row per change or event (appends)."
    params = {
        "path": P.outpath("record.jsonl", "Output file (relative to the working directory); "
                                          "rows are added after what it holds."),
        "format": P.choice("jsonl", ("jsonl", "csv"), "File format.", restart=True, route=True),
        "flush": P.number(1.0, "Longest time rows wait in memory before being written.",
                          unit="s", min=0.0),
    }
    variadic = ports.any_port("Named number, vector, event or text inputs.")

    @classmethod
    def check(cls, params, wired, ctx):
        bad = [(n, t) for n, t in wired.items() if t not in RECORDABLE]
        return [("", f"io.record cannot record {t.value} input '{n}' (numbers, vectors, events "
                     f"and text only)") for n, t in bad]

    def configure(self) -> None:
        self.path = path = self.ctx.resolve_output(self.p.path)
        if path.is_dir():
            raise OSError(f"{path} is a folder, not a file")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd: int | None = None
        self._open()
        self.csv = self.p.format == "csv"
        if os.fstat(self.fd).st_size and (_first_byte(path) == b"{") == self.csv:
            held = "JSON Lines" if self.csv else "CSV"
            os.close(self.fd)
            self.fd = None
            raise OSError(f"{path} holds {held} rows; a {self.p.format} recording goes to a "
                          f"file of its own (name another path)")
        if self.csv and os.fstat(self.fd).st_size == 0:
            self.pending: list[str] = [_csv_line(["t", "name", "value"])]
        else:
            self.pending = []
        self.failing: str = ""     # why writing fails (a full disk), or ""
        self.retry_at = 0.0
        self.dropped = 0
        self.events = [n for n, t in self.wired.items() if t == PortType.EVENT]
        self.values = [n for n, t in self.wired.items() if t != PortType.EVENT]
        self.last: dict[str, Any] = {}
        self.next_flush = 0.0
        self.rows = 0

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _row(self, t: float, name: str, value: Any) -> None:
        if self.csv:
            v = " ".join(repr(x) for x in value) if isinstance(value, list) else value
            line = _csv_line([repr(t), name, "true" if v is True else v])
        else:
            line = json.dumps({"t": t, "name": name, "value": value}) + "\n"
        self.pending.append(line)
        self.rows += 1
        if len(self.pending) > MAX_PENDING:
            del self.pending[0]
            self.dropped += 1

    def _flush(self) -> None:
        """Write every pending row in one go; on failure keep them and say so once."""
        if not self.pending or self.fd is None:
            return
        data = "".join(self.pending).encode("utf-8")
        try:
            size = os.fstat(self.fd).st_size
            written = os.write(self.fd, data)
            if written < len(data):          # the disk filled up mid-write: take it back
                os.ftruncate(self.fd, size)
                raise OSError(28, os.strerror(28))
        except OSError as exc:
            self.retry_at = time.monotonic() + RETRY
            if not self.failing:
                self.failing = exc.strerror or str(exc)
                log.warning("node '%s': cannot write %s (%s); keeping rows in memory and trying "
                            "again every %g s", self.id, self.path, self.failing, RETRY)
            return
        self.pending = []
        if self.failing:
            log.warning("node '%s': writing %s again%s", self.id, self.path,
                        f" ({self.dropped} rows were dropped)" if self.dropped else "")
            self.failing = ""

    def _retry(self) -> None:
        """Reopen (the file may have been moved or its disk remounted) and write."""
        try:
            fd, self.fd = self.fd, None
            if fd is not None:
                os.close(fd)
        except OSError:
            pass
        try:
            self._open()
        except OSError:
            self.retry_at = time.monotonic() + RETRY
            return
        self._flush()

    def process(self, tick: Tick) -> None:
        inp = self.inp
        for name in self.values:
            v = inp[name]
            last = self.last.get(name)
            if isinstance(v, np.ndarray):
                if last is not None and np.array_equal(last, v):
                    continue
                self.last[name] = v.copy()
            else:
                if name in self.last and last == v:
                    continue
                self.last[name] = v
            self._row(tick.t, name, plain(v))
        for name in self.events:
            if inp[name]:
                for ev in inp[name]:
                    self._row(float(ev.t), name, plain(ev.value))
        if self.failing:
            if time.monotonic() >= self.retry_at:
                self._retry()
        elif tick.t >= self.next_flush or len(self.pending) >= FLUSH_ROWS:
            self._flush()
            self.next_flush = tick.t + self.p.flush

    def close(self) -> None:
        if getattr(self, "fd", None) is None:
            return
        self._flush()
        if self.pending:
            log.warning("node '%s': %d rows could not be written to %s (%s)", self.id,
                        len(self.pending), self.path, self.failing)
        log.info("node '%s': %d rows recorded to %s", self.id, self.rows, self.path)
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = None


def _first_byte(path) -> bytes:
    with open(path, "rb") as f:
        return f.read(1)


def _csv_line(fields: list) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(fields)
    return buf.getvalue()
