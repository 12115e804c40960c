"""io.record: named inputs to JSON Lines (or CSV), one row per value change or event.

Each row is ``{"t": <media time [s]>, "name": "<input>", "value": <number | list | true>}``;
numbers and vectors are written when they change, events each time they fire (with the
event's own media time), text when it changes.  This is how features leave tonegraph for
other tools, as seed 002 exported its features to JSON for a web player.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from typing import Any

import numpy as np

from engine import params as P
from engine import ports
from engine.node import Node, Tick
from engine.ports import PortType

from .values import plain

log = logging.getLogger("tonegraph.record")

RETRY = 5.0  # [s] between attempts to write again after a write failed (a full disk)

RECORDABLE = (PortType.NUMBER, PortType.VECTOR, PortType.EVENT, PortType.TEXT, PortType.ANY)


class Record(Node):
    type_name = "io.record"
    description = "Record named inputs to JSON Lines or CSV, one row per change or event."
    params = {
        "path": P.outpath("record.jsonl", "Output file (relative to the working directory)."),
        "format": P.choice("jsonl", ("jsonl", "csv"), "File format.", restart=True),
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
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "w", encoding="utf-8", newline="")
        self.csv = csv.writer(self.file) if self.p.format == "csv" else None
        self.failing: str = ""     # why writing fails (a full disk), or ""
        self.retry_at = 0.0
        self.dropped = 0
        if self.csv:
            self.csv.writerow(["t", "name", "value"])
        self.events = [n for n, t in self.wired.items() if t == PortType.EVENT]
        self.values = [n for n, t in self.wired.items() if t != PortType.EVENT]
        self.last: dict[str, Any] = {}
        self.next_flush = 0.0
        self.rows = 0

    def _write(self, t: float, name: str, value: Any) -> None:
        if self.failing:
            self.dropped += 1
            return
        try:
            if self.csv:
                v = " ".join(repr(x) for x in value) if isinstance(value, list) else value
                self.csv.writerow([repr(t), name, "true" if v is True else v])
            else:
                self.file.write(json.dumps({"t": t, "name": name, "value": value}) + "\n")
        except OSError as exc:
            self._failed(exc)
            return
        self.rows += 1

    def _failed(self, exc: OSError) -> None:
        self.dropped += 1
        if not self.failing:
            self.failing = exc.strerror or str(exc)
            log.warning("node '%s': cannot write %s (%s); dropping rows and trying again every "
                        "%g s", self.id, self.path, self.failing, RETRY)
        self.retry_at = time.monotonic() + RETRY

    def _recover(self) -> None:
        """Reopen for appending; rows resume when the cause (a full disk) has gone."""
        try:
            self.file.close()
        except OSError:
            pass
        try:
            self.file = open(self.path, "a", encoding="utf-8", newline="")
            self.csv = csv.writer(self.file) if self.p.format == "csv" else None
        except OSError as exc:
            self.failing = ""
            self._failed(exc)
            return
        log.warning("node '%s': writing %s again (%d rows were dropped)", self.id, self.path,
                    self.dropped)
        self.failing = ""

    def process(self, tick: Tick) -> None:
        inp = self.inp
        if self.failing and time.monotonic() >= self.retry_at:
            self._recover()
        if tick.t >= self.next_flush and not self.failing:
            try:
                self.file.flush()
            except OSError as exc:
                self._failed(exc)
            self.next_flush = tick.t + self.p.flush
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
            self._write(tick.t, name, plain(v))
        for name in self.events:
            if inp[name]:
                for ev in inp[name]:
                    self._write(float(ev.t), name, True)

    def close(self) -> None:
        f = getattr(self, "file", None)
        if f is not None and not f.closed:
            try:
                f.close()
            except OSError as exc:  # the last rows could not be written (a full disk)
                log.warning("node '%s': closing %s: %s", self.id, getattr(self, "path", "?"),
                            exc.strerror or exc)
