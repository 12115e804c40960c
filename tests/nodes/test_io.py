"""io.print and io.record."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from tonegraph.engine.ports import Event, PortType
from tonegraph.nodes.io.print import Print
from tonegraph.nodes.io.record import Record

from ..conftest import NodeDriver


def test_record_jsonl_rows_on_change_and_event(tmp_path):
    path = tmp_path / "out" / "f.jsonl"
    wired = {"x": PortType.NUMBER, "v": PortType.VECTOR, "hit": PortType.EVENT, "s": PortType.TEXT}
    r = NodeDriver(Record, {"path": str(path)}, wired=wired, fps=10)
    vec = np.array([0.5, 0.25], dtype=np.float32)
    r.tick(x=1.0, v=vec, hit=(), s="a")
    r.tick(x=1.0, v=vec.copy(), hit=(Event(0.05, 0.9), Event(0.08)), s="a")
    r.tick(x=2.0, v=vec, hit=(), s="b")
    r.node.close()
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    assert rows == [
        {"t": 0.0, "name": "x", "value": 1.0},
        {"t": 0.0, "name": "v", "value": [0.5, 0.25]},
        {"t": 0.0, "name": "s", "value": "a"},
        {"t": 0.05, "name": "hit", "value": 0.9},      # an event's strength
        {"t": 0.08, "name": "hit", "value": 1.0},
        {"t": 0.2, "name": "x", "value": 2.0},
        {"t": 0.2, "name": "s", "value": "b"},
    ]


def test_record_csv(tmp_path):
    path = tmp_path / "f.csv"
    r = NodeDriver(Record, {"path": str(path), "format": "csv"},
                   wired={"x": PortType.NUMBER, "v": PortType.VECTOR}, fps=10)
    r.tick(x=0.5, v=np.array([1, 2], dtype=np.float32))
    r.node.close()
    rows = list(csv.reader(path.open()))
    assert rows == [["t", "name", "value"], ["0.0", "x", "0.5"], ["0.0", "v", "1.0 2.0"]]


def test_record_refuses_images_at_load_time(write_patch, registry):
    from tonegraph.engine.graph import load_graph
    from tonegraph.engine.node import Node
    from tonegraph.engine import ports
    from tonegraph.engine.registry import default_registry

    class Img(Node):
        type_name = "test.img"
        outputs = {"out": ports.image()}

    reg = default_registry(plugins=False)
    reg.add(Img, "test")
    path = write_patch("""
        nodes:
          i: {type: test.img}
          r: {type: io.record, in: {pic: i}}
        """)
    _, errors = load_graph(path, reg)
    assert len(errors) == 1 and "io.record cannot record image input 'pic'" in str(errors[0])


def test_print_is_rate_limited_and_counts_events():
    p = NodeDriver(Print, {"interval": 0.5, "label": "L"},
                   wired={"x": PortType.NUMBER, "hit": PortType.EVENT}, fps=10)
    p.node.stream = io.StringIO()
    for k in range(12):
        p.tick(x=k / 10, hit=(Event(k / 10),) if k % 3 == 0 else ())
    lines = p.node.stream.getvalue().splitlines()
    assert len(lines) == 3                                   # t = 0, 0.5, 1.0
    assert lines[0] == "[   0.000s] L: x=0.000  hit=*"
    assert lines[1] == "[   0.500s] L: x=0.500  hit=*"       # events at 0.3 (one since 0.0 line)
    assert lines[2] == "[   1.000s] L: x=1.000  hit=**"      # events at 0.6 and 0.9


def test_record_appends_across_restarts_and_overlapping_writers(tmp_path):
    """A reload builds the restarted recorder while the old one still runs: both append
    whole rows to the same file, and nothing written before is lost."""
    path = tmp_path / "f.jsonl"
    old = NodeDriver(Record, {"path": str(path), "flush": 0.0}, wired={"x": PortType.NUMBER})
    for k in range(261):
        old.tick(x=float(k))
    new = NodeDriver(Record, {"path": str(path), "flush": 0.0},
                     wired={"x": PortType.NUMBER, "y": PortType.NUMBER})
    new.tick(x=1000.0, y=1.0)            # the new one starts before the old one is closed
    old.tick(x=261.0)
    old.node.close()
    new.tick(x=1001.0, y=1.0)
    new.node.close()
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    xs = [r["value"] for r in rows if r["name"] == "x"]
    assert xs[:261] == [float(k) for k in range(261)] and sorted(xs[261:]) == [261.0, 1000.0, 1001.0]


def test_record_csv_header_once_when_appending(tmp_path):
    path = tmp_path / "f.csv"
    for run in range(2):
        r = NodeDriver(Record, {"path": str(path), "format": "csv"}, wired={"x": PortType.NUMBER})
        r.tick(x=float(run))
        r.node.close()
    rows = list(csv.reader(path.open()))
    assert rows == [["t", "name", "value"], ["0.0", "x", "0.0"], ["0.0", "x", "1.0"]]


def test_record_path_that_is_a_folder_or_under_a_file_is_a_set_up_error(tmp_path):
    import pytest

    (tmp_path / "blocker").write_text("a file where a folder should be")
    for bad in (tmp_path, tmp_path / "blocker" / "x.jsonl"):
        with pytest.raises(OSError):
            NodeDriver(Record, {"path": str(bad)}, wired={"x": PortType.NUMBER})


def test_a_recording_never_mixes_formats_in_one_file(tmp_path):
    """Rows are added after what a file holds, so a format other than the file's is
    refused instead of writing CSV rows into JSON Lines (or the other way)."""
    jsonl = tmp_path / "rec.jsonl"
    r = NodeDriver(Record, {"path": str(jsonl)}, wired={"x": PortType.NUMBER}, fps=10)
    r.tick(x=0.5)
    r.node.close()
    with pytest.raises(OSError, match="holds JSON Lines rows; a csv recording goes to a file"):
        NodeDriver(Record, {"path": str(jsonl), "format": "csv"}, wired={"x": PortType.NUMBER})
    again = NodeDriver(Record, {"path": str(jsonl)}, wired={"x": PortType.NUMBER}, fps=10)
    again.tick(x=0.75)
    again.node.close()
    assert [json.loads(line)["value"] for line in jsonl.read_text().splitlines()] == [0.5, 0.75]
