"""Nothing a show throws at the engine stops it: one test per way it used to.

Datagrams go to a real engine process (``tonegraph run``) over UDP; saves go to a
runtime watching its patch on a thread of this process.  Every wait is on a condition
with a deadline."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request

import pytest

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.graph import load_graph
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.osc import encode
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime

from ..conftest import ROOT, Watching, load_ok, rows, save, tonegraph, wait_for
from ..osc_peers import Engine

EXPR = """
nodes:
  a:   {{type: control.constant, params: {{value: 1}}}}
  m:   {{type: control.math, params: {{op: expr, expr: "x * 2"}}, in: {{x: a}}}}
  rec: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{m: m}}}}
"""


def values(path, name):
    return [r["value"] for r in rows(path) if r["name"] == name]


def test_expression_datagrams_are_refused_and_the_show_goes_on(write_patch, tmp_path):
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(EXPR.format(out=out)))
    try:
        assert wait_for(lambda: values(out, "m") == [2.0])
        for expr, why in (("x * " + "1" * 400, "number too large"),
                          ("+".join(["x"] * 3000), "expression too long")):
            [reply] = eng.ask(encode.message("/tonegraph/m/expr", [("s", expr)]))
            assert reply.address == "/tonegraph/error" and why in reply.params[0]
            assert len(reply.params[0]) <= 300
        eng.send(encode.message("/tonegraph/a/value", [("f", 5.0)]))
        assert wait_for(lambda: values(out, "m")[-1:] == [10.0])
        assert eng.alive()
    finally:
        log = eng.stop()
    assert "Traceback" not in log
    assert max(len(line) for line in log.splitlines()) < 600


def test_osc_never_writes_files_nor_changes_their_format(write_patch, tmp_path):
    """Output paths cannot be set over OSC (the engine would have written anywhere the
    process may write), nor a recording's format (CSV rows went into a JSON Lines file)."""
    out = tmp_path / "rec.jsonl"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    eng = Engine(write_patch(EXPR.format(out=out)))
    try:
        assert wait_for(lambda: len(rows(out)) >= 1)
        for target in (victim, tmp_path, tmp_path / "blocker" / "x.jsonl"):
            [reply] = eng.ask(encode.message("/tonegraph/rec/path", [("s", str(target))]))
            assert "is an output file" in reply.params[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{eng.query_port}/tonegraph/rec/path",
                                    timeout=5) as r:
            assert json.loads(r.read())["ACCESS"] == 1
        for k in range(3, 8):
            eng.send(encode.message("/tonegraph/a/value", [("f", float(k))]))
            assert wait_for(lambda: values(out, "m")[-1:] == [2.0 * k])
        before = out.read_text()
        [reply] = eng.ask(encode.message("/tonegraph/rec/format", [("s", "csv")]))
        assert "'format' says where rec's output goes" in reply.params[0]
        eng.send(encode.message("/tonegraph/a/value", [("f", 9.0)]))
        assert wait_for(lambda: values(out, "m")[-1:] == [18.0])        # still JSON Lines
        assert eng.alive()
    finally:
        log = eng.stop()
    assert victim.read_text() == "precious\n"
    assert out.read_text().startswith(before)              # nothing recorded was lost
    assert "Traceback" not in log


def test_a_model_that_is_not_a_model_is_refused_off_the_hot_path(write_patch, tmp_path):
    (tmp_path / "junk.pt").write_text("this is not a model")
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(f"""
        nodes:
          g:   {{type: ml.gan, params: {{speed: 3}}}}
          a:   {{type: control.constant, params: {{value: 1}}}}
          rec: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{z: g.latent, a: a}}}}
        """), "--restart-failing", "0")
    try:
        assert wait_for(lambda: len(values(out, "z")) > 3, 30)
        eng.send(encode.message("/tonegraph/g/model", [("s", "junk.pt")]))
        assert wait_for(lambda: eng.said("setting g.model failed"), 30)
        [reply] = eng.ask(encode.message("/tonegraph/g/model", [("s", "/etc/passwd")]))
        assert "outside the patch's folder" in reply.params[0]
        n = len(values(out, "z"))
        assert wait_for(lambda: len(values(out, "z")) > n + 3)  # the old generator draws on
        eng.send(encode.message("/tonegraph/a/value", [("f", 4.0)]))
        assert wait_for(lambda: values(out, "a")[-1:] == [4.0])
    finally:
        log = eng.stop()
    assert "Traceback" not in log


# -- saves ----------------------------------------------------------------------------------

LIVE = """
patch: {{name: live, fps: {fps}, hop: {hop}}}
nodes:
  lfo: {{type: control.lfo, params: {{shape: saw, frequency: 0.5}}}}
  src: {{type: audio.synth}}
  lvl: {{type: audio.level, in: {{audio: src}}}}
  rec: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{lfo: lfo{extra_in}}}}}
{extra}"""


BAD_SAVES = [
    "",                                                                          # empty
    "# nothing but a comment\n",
    "nodes: {}\n",
    "nodes:\n  c: {type: control.constant, params: {value: &v [1, *v]}}\n",    # recursive alias
    "nodes:\n  c: {type: control.constant, params: {value: " + "[" * 3000 + "]" * 3000 + "}}\n",
    "nodes:\n  a: {type: control.constant}\n"                                   # huge number
    "  m: {type: control.math, params: {op: expr, expr: 'x * " + "9" * 400 + "'}, in: {x: a}}\n",
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(                         # alias bomb
        f"b{i}: &b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 10) + "]\n"
        for i in range(9)) + "nodes: {c: {type: control.constant}}\n",
]


def test_no_save_ends_hot_reload_and_none_changes_a_running_show(write_patch, registry, tmp_path):
    out = tmp_path / "rec.jsonl"
    good = LIVE.format(fps=60, hop=512, out=out, extra="", extra_in="")
    path = write_patch(good)
    run = Watching(path, registry)
    try:
        first = run.rt.current
        for i, text in enumerate(BAD_SAVES, 1):
            save(path, text)
            assert wait_for(lambda: run.rt.reloader.failures == i), text[:40]
            assert run.rt.current is first and run.rt.reloads == 0
        n = len(values(out, "lfo"))
        assert wait_for(lambda: len(values(out, "lfo")) > n + 10)   # the show never stopped
        save(path, LIVE.format(fps=60, hop=512, out=out, extra_in=", c: c",
                               extra="  c: {type: control.constant, params: {value: 3}}\n"))
        assert wait_for(lambda: run.rt.reloads == 1)
        assert wait_for(lambda: values(out, "c") == [3.0])
        assert run.rt.reloader._thread.is_alive()
    finally:
        run.stop()
    bad = [write_patch(text, name=f"bad{i}.yaml") for i, text in enumerate(BAD_SAVES)]
    res = tonegraph("validate", *map(str, bad))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == len(bad), res.stderr
    res = tonegraph("run", str(bad[3]), "--offline", "--duration", "1")
    assert res.returncode == 1 and "Traceback" not in res.stderr


def test_header_changes_apply(write_patch, registry, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tonegraph")
    out = tmp_path / "rec.jsonl"
    path = write_patch(LIVE.format(fps=60, hop=512, out=out, extra="", extra_in=""))
    run = Watching(path, registry)
    try:
        src, lfo = run.rt.current.nodes["src"], run.rt.current.nodes["lfo"]
        save(path, LIVE.format(fps=10, hop=256, out=out, extra="", extra_in=""))
        assert wait_for(lambda: run.rt.reloads == 1)
        now = run.rt.current
        assert run.rt.fps == 10.0 and now.ctx.hop == 256 and now.ctx.fps == 10.0
        assert now.nodes["src"] is not src and now.nodes["lfo"] is lfo   # audio side re-made
        t_swap = run.rt.control_clock.last_t
        assert wait_for(lambda: len([r for r in rows(out) if r["t"] > t_swap + 0.05]) >= 5)
        assert wait_for(lambda: run.rt.control_clock.fps == 10.0)
    finally:
        run.stop()
    after = [r["t"] for r in rows(out) if r["t"] > t_swap + 0.05]
    gaps = [b - a for a, b in zip(after, after[1:])]
    assert gaps and all(abs(g / 0.1 - round(g / 0.1)) < 1e-6 and g > 0.05 for g in gaps)
    assert any("header: fps 60 -> 10, hop 512 -> 256" in r.getMessage() for r in caplog.records)


class SlowStart(Node):
    """Test node whose set-up blocks until the test lets it go (a model that takes its
    time to load)."""

    type_name = "test.slow"
    description = "slow to set up"
    params = {"size": P.integer(1, restart=True)}
    outputs = {"out": ports.number()}
    entered = threading.Event()
    release = threading.Event()

    def configure(self) -> None:
        if self.p.size > 1:
            SlowStart.entered.set()
            SlowStart.release.wait(30)

    def process(self, tick: Tick) -> None:
        self.out["out"] = float(self.p.size)


def test_a_slow_set_up_in_a_reload_stalls_nothing(write_patch, tmp_path):
    reg = default_registry(plugins=False)
    reg.add(SlowStart, __name__)
    out = tmp_path / "rec.jsonl"
    text = LIVE.format(fps=60, hop=512, out=out, extra_in=", s: s",
                       extra="  s: {type: test.slow, params: {size: SIZE}}\n")
    path = write_patch(text.replace("SIZE", "1"))
    SlowStart.entered.clear()
    SlowStart.release.clear()
    run = Watching(path, reg)
    try:
        save(path, text.replace("SIZE", "2"))
        assert SlowStart.entered.wait(10)
        frames, hops = run.rt.frames, run.rt.driver.hops
        # While the reload thread sets the node up, the show runs on: ticks and hops.
        assert wait_for(lambda: run.rt.frames > frames + 30 and run.rt.driver.hops > hops + 40)
        assert run.rt.reloads == 0 and values(out, "s") == [1.0]
        SlowStart.release.set()
        assert wait_for(lambda: values(out, "s")[-1:] == [2.0])
    finally:
        SlowStart.release.set()
        run.stop()


class WallClock(Node):
    """Test node: how far media time is from the wall clock mapped through the run's
    clock_origin, at its first tick."""

    type_name = "test.wall"
    description = "media time against the wall clock"
    outputs = {"out": ports.number()}
    seen: list = []

    def process(self, tick: Tick) -> None:
        if not WallClock.seen:
            WallClock.seen.append(time.time() - self.ctx.clock_origin - tick.t)
        self.out["out"] = 0.0


def test_media_time_zero_is_after_a_slow_set_up(write_patch):
    """OSC media timetags are clock_origin + t: a node that takes 0.5 s to set up must
    not shift every timetag of the run by 0.5 s."""
    reg = default_registry(plugins=False)
    reg.add(SlowStart, __name__)
    reg.add(WallClock, __name__)
    path = write_patch("nodes:\n  s: {type: test.slow, params: {size: 2}}\n  w: {type: test.wall}\n")
    SlowStart.entered.clear()
    SlowStart.release.clear()
    WallClock.seen.clear()
    threading.Timer(0.5, SlowStart.release.set).start()      # the model takes 0.5 s to load
    rt = Runtime(load_ok(path, reg), reg, duration=0.2, watch=False)
    rt.run()
    assert SlowStart.entered.is_set() and len(WallClock.seen) == 1
    assert abs(WallClock.seen[0]) < 0.1, WallClock.seen


@pytest.mark.parametrize("name", ["demo.yaml", "seed-000-live-world.yaml"])
def test_validate_and_plan_shipped_patches(name):
    res = tonegraph("graph", str(ROOT / "graphs" / name), "--plan")
    assert res.returncode == 0 and "control (" in res.stdout, res.stderr


class SlowDraw(Node):
    """A render node that takes 100 ms a frame (a software renderer at 720p)."""

    type_name = "test.slowdraw"
    description = "slow to draw"
    domain = "render"
    inputs = {"level": ports.number()}
    outputs = {"out": ports.number()}
    busy = threading.Event()           # never set: wait() is the 100 ms of drawing

    def process(self, tick: Tick) -> None:
        SlowDraw.busy.wait(0.1)
        self.out["out"] = self.inp["level"]


def test_lights_keep_their_rate_when_drawing_is_slow(write_patch):
    import socket

    from tonegraph.engine.osc import encode

    reg = default_registry(plugins=False)
    reg.add(SlowDraw, __name__)
    desk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    desk.bind(("127.0.0.1", 0))
    desk.settimeout(0.5)
    path = write_patch(f"""
        patch: {{fps: 60}}
        nodes:
          lfo:  {{type: control.lfo, params: {{shape: saw, frequency: 0.3}}}}
          draw: {{type: test.slowdraw, in: {{level: lfo}}}}
          out:  {{type: osc.out, params: {{port: {desk.getsockname()[1]}, policy: every-frame,
                  bundle: false}}, in: {{/dim: lfo}}}}
        """)
    got = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                got.append(desk.recv(1024))
            except OSError:
                pass
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    rt = Runtime(load_graph(path, reg)[0], reg, duration=3.0)
    report = rt.run()
    stop.set()
    listener.join(5)
    assert report.renders <= 35                        # drawing ran at ~10 fps ...
    assert report.frames >= 150                        # ... and the lights at ~60 (of 180)
    assert len(got) >= 150 and report.frames >= 4 * report.renders
    assert all(encode.decode(p)[0][1].address == "/dim" for p in got)


def test_a_run_whose_set_up_is_interrupted_takes_its_status_reporter_off_the_logger(write_patch, monkeypatch):
    """The status reporter starts before the nodes set up (so what they say on the way
    reaches the monitor); a set-up stopped there (Ctrl-C while a model loads) must not
    leave it on the tonegraph logger, holding its destination."""
    import socket

    from tonegraph.engine.osc.status import StatusReporter
    from tonegraph.engine.runner import Runner
    from tonegraph.engine.runtime import OscOptions

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "configure", interrupted)
    registry = default_registry(plugins=False)
    graph = load_ok(write_patch("nodes:\n  lfo: {type: control.lfo}\n"), registry)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        to = f"127.0.0.1:{listener.getsockname()[1]}"
        rt = Runtime(graph, registry, duration=1.0, osc=OscOptions(port=None, status_to=to))
        with pytest.raises(KeyboardInterrupt):
            rt.run()
    logger = logging.getLogger("tonegraph")
    left = [h for h in logger.handlers if isinstance(h, StatusReporter)]
    for h in left:                                                     # not into later tests
        logger.removeHandler(h)
    assert rt.reporter is not None                                     # it had started
    assert not left
