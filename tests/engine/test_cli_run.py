"""`tonegraph run` and `tonegraph graph` as a user runs them, in a subprocess."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys

import pytest

from ..conftest import ROOT, tonegraph, wait_for

RECORDED = """
patch: {name: rec, fps: 50}
nodes:
  lfo: {type: control.lfo, params: {shape: random-smooth, frequency: 3}}
  sq:  {type: control.lfo, params: {shape: square, frequency: 2}}
  hit: {type: control.trigger, in: {value: sq}}
  env: {type: control.envelope, params: {decay: 0.2}, in: {trigger: hit}}
  m:   {type: control.map, params: {in_range: [-1, 1], out_range: [0, 255], step: 1, fall: 0.1},
        in: {value: lfo}}
  rec: {type: io.record, params: {path: OUT}, in: {level: m, env: env, hit: hit}}
"""


def test_offline_run_is_bit_for_bit_repeatable(write_patch, tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}.jsonl"
        path = write_patch(RECORDED.replace("OUT", str(out)), name=f"p{i}.yaml")
        res = tonegraph("run", str(path), "--offline", "--duration", "5")
        assert res.returncode == 0, res.stderr
        assert "stopped (duration reached): 250 control ticks" in res.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and len(outs[0]) > 1000
    rows = [json.loads(l) for l in outs[0].decode().splitlines()]
    hits = [r for r in rows if r["name"] == "hit"]
    # A square wave at 2 Hz starts high; it rises again every 0.5 s.
    assert [round(r["t"], 9) for r in hits] == [0.5 * k for k in range(1, 10)]
    assert all(r["value"] == 1.0 for r in hits)          # each event's strength: the square's top
    assert all(0 <= r["value"] <= 255 and r["value"] == int(r["value"])
               for r in rows if r["name"] == "level")


def test_set_overrides_a_param_and_is_validated(write_patch, tmp_path):
    out = tmp_path / "set.jsonl"
    path = write_patch(f"""
        nodes:
          c: {{type: control.constant, params: {{value: 1}}}}
          rec: {{type: io.record, params: {{path: "{out}"}}, in: {{c: c}}}}
        """)
    res = tonegraph("run", str(path), "--offline", "--duration", "0.1", "--set", "c.value=7.5")
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text().splitlines()[0])["value"] == 7.5
    bad = tonegraph("run", str(path), "--offline", "--duration", "0.1", "--set", "c.value=[1]")
    assert bad.returncode == 1
    assert "--set:1:1: error: param 'value' must be a number, got [1]" in bad.stderr
    bad = tonegraph("run", str(path), "--offline", "--duration", "0.1", "--set", "zz.value=1")
    assert bad.returncode == 1 and "no node 'zz' in the patch (its nodes: c, rec)" in bad.stderr


def test_a_file_given_with_set_is_where_the_user_typed_it(tmp_path):
    """--set song.path=song.flac names ./song.flac; paths written in the patch stay
    relative to the patch's folder."""
    show, work = tmp_path / "show", tmp_path / "work"
    show.mkdir()
    work.mkdir()
    groove = ROOT / "graphs" / "media" / "groove.flac"
    shutil.copy(groove, show / "inside.flac")
    shutil.copy(groove, work / "song.flac")
    patch = show / "p.yaml"
    patch.write_text("nodes:\n  song: {type: audio.file, params: {path: inside.flac}}\n"
                     "  lvl: {type: audio.level, in: {audio: song}}\n")
    ok = tonegraph("run", str(patch), "--offline", "--duration", "0.1", cwd=work)
    assert ok.returncode == 0, ok.stderr                       # the patch's own path: its folder
    ok = tonegraph("run", str(patch), "--offline", "--duration", "0.1", "--set", "song.path=song.flac",
                   cwd=work)
    assert ok.returncode == 0, ok.stderr                       # --set: the working directory
    bad = tonegraph("run", str(patch), "--offline", "--duration", "0.1", "--set", "song.path=inside.flac",
                    cwd=work)
    assert bad.returncode == 1 and "inside.flac" in bad.stderr and str(work) in bad.stderr


def test_offline_without_end_is_refused(write_patch):
    path = write_patch("nodes: {c: {type: control.constant}}\n")
    res = tonegraph("run", str(path), "--offline")
    assert res.returncode == 1 and "give --duration SECONDS" in res.stderr


def test_engine_and_plain_patches_never_import_torch(write_patch):
    path = write_patch("""
        nodes:
          lfo: {type: control.lfo}
          p: {type: io.print, params: {interval: 1}, in: {x: lfo}}
        """)
    code = (
        "import sys, runpy\n"
        "from tonegraph.engine import cli, registry\n"
        "registry.default_registry()\n"
        f"sys.argv = ['tonegraph', 'run', {str(path)!r}, '--offline', '--duration', '0.2']\n"
        "try:\n"
        "    cli.main(sys.argv[1:])\n"
        "finally:\n"
        "    print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert res.stdout.strip().endswith("NO-TORCH"), res.stdout + res.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_realtime_run_stops_cleanly_on_signal(write_patch, tmp_path, sig):
    """...and releases what it holds: the song is resampled (22,050 Hz into 48,000) and
    the autoencoder's front end resamples again; soxr's streams must be gone by exit
    (nanobind reports any that are not)."""
    out = tmp_path / "rt.jsonl"
    path = write_patch(f"""
        patch: {{fps: 60, samplerate: 48000}}
        nodes:
          song: {{type: audio.file, params: {{path: "{ROOT / 'graphs/media/groove.flac'}", loop: true}}}}
          code: {{type: ml.autoencoder, in: {{audio: song}}}}
          lfo: {{type: control.lfo}}
          rec: {{type: io.record, params: {{path: "{out}", flush: 100}}, in: {{x: lfo}}}}
          seen: {{type: io.record, params: {{path: "{out}.now", flush: 0}}, in: {{x: lfo}}}}
        """)
    proc = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(path), "--headless"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    now = out.with_name(out.name + ".now")
    # Real ticks have run (seen in a recorder that writes at once) before the signal.
    assert wait_for(lambda: now.exists() and len(now.read_text().splitlines()) >= 20, 30)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped (stop requested)" in err and "Traceback" not in err
    assert "leak" not in err and "nanobind" not in err, err
    rows = out.read_text().splitlines()   # closed and flushed on the way out
    assert len(rows) >= 20


def test_ctrl_c_while_the_program_exits_ends_it_without_a_traceback(write_patch, tmp_path):
    """A Ctrl-C that comes as tonegraph is already exiting (its run over, the
    interpreter winding down: here a clean-up that waits, as a GL driver's or a
    thread's can) ends the process at once, with no "Exception ignored ...
    KeyboardInterrupt" traceback."""
    path = write_patch(RECORDED.replace("OUT", str(tmp_path / "out.jsonl")))
    exiting = tmp_path / "exiting"
    script = (f"import atexit, pathlib, sys\n"
              f"def slow():\n"
              f"    pathlib.Path({str(exiting)!r}).touch()\n"
              f"    sys.stdin.readline()\n"                 # blocks until the test lets go
              f"atexit.register(slow)\n"
              f"from tonegraph.engine.cli import main\n"
              f"sys.argv = ['tonegraph', 'run', {str(path)!r}, '--offline', '--duration', '1']\n"
              f"sys.exit(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_for(exiting.exists, 60)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert "stopped (duration reached)" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert proc.returncode == -signal.SIGINT


def test_graph_dot_and_svg(tmp_path):
    res = tonegraph("graph", "graphs/demo.yaml")
    assert res.returncode == 0 and res.stdout.startswith('digraph "demo"')
    assert '"onsets" -> "hit" [label="onset -> trigger"' in res.stdout
    if shutil.which("dot") is None:
        pytest.fail("Graphviz 'dot' is missing; 'make setup' installs the graphviz package")
    svg = tmp_path / "demo.svg"
    res = tonegraph("graph", "graphs/demo.yaml", "-o", str(svg))
    assert res.returncode == 0, res.stderr
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and "onsets" in text
    bad = tonegraph("graph", "graphs/demo.yaml", "-o", str(tmp_path / "x.bmp"))
    assert bad.returncode == 1 and "use .dot, .svg, .png or .pdf" in bad.stderr


def test_set_with_nothing_after_the_equals_sign_is_an_empty_text(write_patch):
    """`--set lights.host=` empties a text param (dmx.out's host: sACN multicast); a
    number param given nothing says what it wants."""
    path = write_patch("""
        nodes:
          c: {type: control.constant, params: {value: 1}}
          lights: {type: dmx.out, in: {ch1: c}}
        """)
    ok = tonegraph("run", str(path), "--offline", "--duration", "0.1", "--set", "lights.host=")
    assert ok.returncode == 0, ok.stderr
    bad = tonegraph("run", str(path), "--offline", "--duration", "0.1", "--set", "c.value=")
    assert bad.returncode == 1
    assert "--set:1:1: error: param 'value' must be a number, got ''" in bad.stderr
