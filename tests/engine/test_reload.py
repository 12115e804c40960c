"""Hot reload while the engine runs in real time: state kept, broken saves harmless."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading

import pytest

from tonegraph.engine.graph import load_graph
from tonegraph.engine.osc import encode
from tonegraph.engine.runtime import Runtime

from ..conftest import ROOT, Watching, rows, save, wait_for

BASE = """
patch: {{name: live, fps: 60}}
nodes:
  lfo: {{type: control.lfo, params: {{shape: saw, frequency: 0.5, amplitude: 0.5, offset: 0.5}}}}
  m:   {{type: control.map, params: {{out_range: [0, {top}]}}, in: {{value: lfo}}}}
  rec: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{lfo: lfo, m: m{extra_in}}}}}
{extra}"""


def continuous(points, frequency: float) -> bool:
    """A saw of ``frequency`` [Hz] sampled at media times ``t`` (the (t, value) pairs)
    moves on by exactly frequency x the time between two samples, modulo 1: never back,
    never a jump, whatever ticks were skipped under load."""
    for (ta, a), (tb, b) in zip(points, points[1:]):
        if tb <= ta:
            return False
        off = ((b - a) - frequency * (tb - ta)) % 1.0
        if min(off, 1.0 - off) > 1e-4:
            return False
    return True


def test_edit_applies_live_and_keeps_state(write_patch, registry, tmp_path):
    out = tmp_path / "rec.jsonl"
    path = write_patch(BASE.format(out=out, top=1, extra="", extra_in=""))
    run = Watching(path, registry)
    lfo = run.rt.runner.nodes["lfo"]
    try:
        save(path, BASE.format(out=out, top=100, extra_in=", c: c",
                               extra="  c: {type: control.constant, params: {value: 3}}\n"))
        assert wait_for(lambda: run.rt.reloads == 1)
        assert wait_for(lambda: any(r["name"] == "c" for r in rows(out)))
        ex = run.rt.runner
        assert ex.nodes["lfo"] is lfo                        # same instance, same phase
        assert ex.nodes["m"].p.out_range == [0.0, 100.0]
        assert ex.plan.diff.new == ("c",)
        n = len(rows(out))
        assert wait_for(lambda: len([r for r in rows(out) if r["name"] == "lfo"]) > 60 and
                        len(rows(out)) > n + 60)
    finally:
        run.stop()
    lfo_vals = [(r["t"], r["value"]) for r in rows(out) if r["name"] == "lfo"]
    assert len(lfo_vals) > 60
    # The LFO never jumped across the reload: 0.5 Hz saw, 0..1, one step per frame.
    assert continuous(lfo_vals, 0.5)
    assert max(r["value"] for r in rows(out) if r["name"] == "m") > 1.0
    assert run.rt.swap_times and max(run.rt.swap_times) < 0.5


def test_broken_save_changes_nothing_and_fix_applies(write_patch, registry, tmp_path, caplog):
    out = tmp_path / "rec.jsonl"
    path = write_patch(BASE.format(out=out, top=1, extra="", extra_in=""))
    run = Watching(path, registry)
    try:
        before = run.rt.runner
        save(path, "nodes:\n  lfo: {type: control.lfo, params: {frequency: fast}}\n")
        assert wait_for(lambda: run.rt.reloader.failures == 1)
        assert run.rt.runner is before and run.rt.reloads == 0
        assert any("patch.yaml:2:48: error: param 'frequency' must be a number, got 'fast'"
                   in r.getMessage() for r in caplog.records)
        save(path, "nodes: {lfo: {type: control.lfo}, x: {type: control.nope}}\n")
        assert wait_for(lambda: run.rt.reloader.failures == 2)
        save(path, BASE.format(out=out, top=7, extra="", extra_in=""))
        assert wait_for(lambda: run.rt.reloads == 1)
        assert run.rt.runner.nodes["m"].p.out_range == [0.0, 7.0]
    finally:
        run.stop()


def test_burst_of_saves_and_a_missing_file(write_patch, registry, tmp_path):
    out = tmp_path / "rec.jsonl"
    path = write_patch(BASE.format(out=out, top=1, extra="", extra_in=""))
    run = Watching(path, registry)
    try:
        for top in range(2, 12):          # ten saves in a burst: one reload, the last wins
            path.write_text(BASE.format(out=out, top=top, extra="", extra_in=""))
        assert wait_for(lambda: run.rt.runner.nodes["m"].p.out_range == [0.0, 11.0])
        assert run.rt.reloads <= 3
        path.unlink()                     # missing for a moment, mid-save
        gone = threading.Event()
        gone.wait(0.2)
        path.write_text(BASE.format(out=out, top=42, extra="", extra_in=""))
        assert wait_for(lambda: run.rt.runner.nodes["m"].p.out_range == [0.0, 42.0])
        assert run.rt.reloader.failures == 0
    finally:
        run.stop()


def test_restart_param_restarts_only_that_node(write_patch, registry, tmp_path):
    text = """
nodes:
  groove: {type: audio.synth}
  spec: {type: audio.spectrum, params: {size: SIZE}, in: {audio: groove}}
  onsets: {type: audio.onset, in: {audio: groove}}
"""
    path = write_patch(text.replace("SIZE", "2048"))
    run = Watching(path, registry)
    try:
        nodes = dict(run.rt.runner.nodes)
        pos = nodes["groove"].pos
        save(path, text.replace("SIZE", "1024"))
        assert wait_for(lambda: run.rt.reloads == 1)
        ex = run.rt.runner
        assert dict(ex.plan.diff.restarted) == {"spec": "size changed"}
        assert all(ex.nodes[k] is v for k, v in nodes.items() if k != "spec")
        assert ex.nodes["spec"] is not nodes["spec"]       # built anew, off the hot path
        assert len(ex.nodes["spec"].prev) == 513          # with the new size
        assert ex.nodes["groove"].pos != pos               # the source played on
        assert not ex.faults
    finally:
        run.stop()


def test_sighup_reloads_without_watching(write_patch, tmp_path):
    out = tmp_path / "rec.jsonl"
    path = write_patch(BASE.format(out=out, top=1, extra="", extra_in=""))
    proc = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(path), "--headless",
                             "--no-watch", "--osc-port", "0", "--duration", "20"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(rows(out)) > 10)
        save(path, BASE.format(out=out, top=500, extra="", extra_in=""))
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: max(r["value"] for r in rows(out) if r["name"] == "m") > 1.0)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert err.count("reloaded patch.yaml") == 1 and "Traceback" not in err


def test_without_watching_nothing_watches(write_patch, registry, tmp_path):
    path = write_patch(BASE.format(out=tmp_path / "rec.jsonl", top=1, extra="", extra_in=""))
    rt = Runtime(load_graph(path, registry)[0], registry, duration=0.2, watch=False)
    rt.run()
    assert rt.reloader is not None and rt.reloader._observer is None


CORRUPTIONS = [
    # Truncated mid-save (ending inside an unclosed list, so it is never a valid prefix).
    lambda t, r: t[: r.randrange(len(t))] + "\n  broken: [",
    lambda t, r: t.replace("frequency: 0.5", "frequency: loud"),             # wrong type
    lambda t, r: t.replace("control.map", "control.mapp"),                   # unknown node
    lambda t, r: t.replace("in: {value: lfo}", "in: {value: m}"),            # cycle
    lambda t, r: r.randbytes(200).decode("latin-1"),                         # binary junk
]


@pytest.mark.parametrize("count", [int(os.environ.get("TONEGRAPH_RELOADS", "120"))])
def test_many_reloads_with_corruptions_while_sending_osc(write_patch, registry, tmp_path, count):
    """Valid edits alternate with random corruptions while OSC flows: the engine never
    stops, never sends a malformed message, ends on the last valid patch, and the LFO
    nobody edited keeps a continuous phase."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    out = tmp_path / "rec.jsonl"
    extra = (f"  osc: {{type: osc.out, params: {{port: {port}, policy: every-frame, bundle: true}}, "
             f"in: {{/lfo: lfo, /m: m}}}}\n")
    path = write_patch(BASE.format(out=out, top=1, extra=extra, extra_in=""))
    received, bad = [], 0
    stop = threading.Event()

    def listen():
        nonlocal bad
        while not stop.is_set():
            try:
                data = listener.recv(65536)
            except socket.timeout:
                continue
            try:
                received.extend(encode.decode(data))
            except ValueError:
                bad += 1
    threading.Thread(target=listen, daemon=True).start()
    run = Watching(path, registry, seconds=600)
    lfo = run.rt.runner.nodes["lfo"]
    rng = random.Random(11)
    last_valid = 1
    try:
        for i in range(count):
            if i % 2 == 0:
                last_valid = i + 2
                text = BASE.format(out=out, top=last_valid, extra=extra, extra_in="")
                save(path, text)
                assert wait_for(lambda: "m" in run.rt.runner.nodes and
                                run.rt.runner.nodes["m"].p.out_range[1] == last_valid, 5)
            else:
                failures = run.rt.reloader.failures
                save(path, rng.choice(CORRUPTIONS)(text, rng))
                assert wait_for(lambda: run.rt.reloader.failures > failures, 5)
            assert run.thread.is_alive()
        assert run.rt.runner.nodes["m"].p.out_range == [0.0, float(last_valid)]
        assert run.rt.runner.nodes["lfo"] is lfo            # never rebuilt: its state kept
    finally:
        report = run.stop()
        stop.set()
    assert bad == 0
    # Timetags are the media time of each tick (plus the run's origin).
    origin = run.rt.ctx.clock_origin
    lfo_vals = [(tag - origin, m.params[0]) for tag, m in received if m.address == "/lfo"]
    assert len(lfo_vals) > 100 and continuous(lfo_vals, 0.5)
    assert report.faults == 0


def test_osc_out_added_by_a_reload_sends_audio_events_once(write_patch, registry):
    """A node configured off the hot path must learn which inputs the audio thread
    feeds: an onset sent from both threads would reach the lighting desk twice."""
    from tonegraph.engine.node import Tick
    from tonegraph.engine.plan import make_plan
    from tonegraph.engine.runner import build

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    first = write_patch("nodes: {s: {type: audio.synth}, o: {type: audio.onset, in: {audio: s}}}\n",
                        name="a.yaml")
    second = write_patch(f"""
        nodes:
          s: {{type: audio.synth}}
          o: {{type: audio.onset, in: {{audio: s}}}}
          out: {{type: osc.out, params: {{port: {port}, bundle: false}}, in: {{/hit: o}}}}
        """, name="b.yaml")
    g1, _ = load_graph(first, registry)
    g2, _ = load_graph(second, registry)
    ex1 = build(make_plan(g1, registry), registry, g1.spec.context(offline=True))
    ex2 = build(make_plan(g2, registry, ex1.plan), registry, ex1.ctx, ex1)
    for domain in ("audio", "control"):
        ex2.enter(domain)
    hp, onsets = 512 / 44100, 0
    for n in range(int(4 / hp)):
        ex2.audio_hop(Tick(n * hp, hp, n))
        onsets += len(ex2.nodes["o"].out["onset"])
        if n % 2 == 0:
            ex2.frame(Tick(n * hp, 2 * hp, n // 2))
    from tonegraph.engine.osc import encode

    presses = 0                 # each onset is a press (its strength) and then a release (0)
    try:
        while True:
            [(_, msg)] = encode.decode(listener.recv(65536))
            presses += float(msg.params[0]) > 0
    except socket.timeout:
        pass
    ex2.close()
    assert onsets > 10 and presses == onsets
