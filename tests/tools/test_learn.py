"""tonegraph learn: the next fader, knob, pad or OSC message written into the patch.

Real peers: a controller in a process of its own on a private JACK server (a virtual
MIDI port made with mido/RtMidi, as tests/nodes/test_midi.py has it) and liblo's
oscsend.  The patch file is read back after each learn: it loads, its comments and
untouched lines are as they were, and the wire is there; a running engine watching it
takes the edit in and is then driven by the learned control."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest
import yaml

from tonegraph.engine import cli
from tonegraph.engine.graph import load_graph
from tonegraph.tools.learn import Heard, write_mapping
from tonegraph.engine.ports import PortType
from tonegraph.engine.runtime import OscOptions
from tonegraph.tools.yaml_edit import EditError, set_entry

from ..conftest import ROOT, Watching, rows, wait_for
from ..nodes.conftest import jack  # noqa: F401 - the fixture
from ..nodes.test_midi import connected
from ..osc_peers import Engine, free_port, need

#: A controller as a separate process: a JACK MIDI port named nanoPAD that sends what
#: each line on its stdin says ("cc 7 64", "note 36 100"; "to PORT" sends to that port
#: from then on, as an app does) and answers "ok".
CONTROLLER = r"""
import sys
import mido
b = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
pad = b.open_output("nanoPAD", virtual=True)
print("ok", flush=True)
for line in sys.stdin:
    kind, rest = line.split(maxsplit=1)
    if kind == "to":
        pad = b.open_output(rest.strip())
    else:
        n, v = map(int, rest.split())
        pad.send(mido.Message("control_change", control=n, value=v) if kind == "cc"
                 else mido.Message("note_on", note=n, velocity=v))
    print("ok", flush=True)
"""

#: No JACK server of the machine's (or a test's) is asked, and none is started.
NO_MIDI = {"JACK_DEFAULT_SERVER": "tonegraph-learn-none", "JACK_NO_START_SERVER": "1"}


class Pad:
    def __init__(self, env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CONTROLLER], env=env, cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout.readline().strip() == "ok"

    def send(self, kind: str, number: int | str, value: int | str = "") -> None:
        self.proc.stdin.write(f"{kind} {number} {value}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def move(self, kind: str, number: int, value: int, until, timeout: float = 20.0) -> bool:
        """Send again and again, as a hand moving a control does, until ``until()`` holds
        (False after ``timeout`` [s]).  One message alone can be lost: JACK starts
        passing MIDI along a new connection some cycles after it is listed."""
        return wait_for(lambda: self.send(kind, number, value) or until(), timeout)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


class Learning:
    """``tonegraph learn`` in a process of its own; ready once it says it is waiting."""

    def __init__(self, *argv: str, env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "learn", *map(str, argv)],
                                     cwd=ROOT, env={**os.environ, **env}, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        assert wait_for(lambda: self.said("waiting up to") or self.ended(), 30), self.err
        assert not self.ended(), "".join(self.err)

    def said(self, fragment: str) -> bool:
        return any(fragment in line for line in list(self.err))

    def ended(self) -> bool:
        return self.proc.poll() is not None

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)

    def result(self) -> tuple[int, str, str]:
        out = self.proc.stdout.read()
        code = self.proc.wait(30)
        self.reader.join(10)
        return code, out, "".join(self.err)


def listed(jack, port: str) -> bool:
    """Whether JACK lists ``port`` (a name with spaces, as RtMidi's are)."""
    out = subprocess.run(["jack_lsp"], env=jack.env, capture_output=True, text=True, timeout=10).stdout
    return port in out.splitlines()


NANOPAD = "RtMidiOut Client:nanoPAD"
OWN_PORT = "RtMidiIn Client:tonegraph learn"


def learn_from_pad(jack, patch, target: str, kind: str, number: int, to: str = NANOPAD):
    """``tonegraph learn`` with no port named (so every MIDI input there is, and a port
    of learn's own) while the pad, playing to ``to``, moves its control ``kind number``:
    learn's exit status, stdout and stderr."""
    pad = Pad(jack.env)
    try:
        learning = Learning(patch, target, "--osc-port", free_port(), "--timeout", 30, env=jack.env)
        if to != NANOPAD:
            assert wait_for(lambda: listed(jack, to), 10)
            pad.send("to", to)
        assert wait_for(lambda: connected(jack, to), 10)
        assert pad.move(kind, number, 100, until=learning.ended)
        return learning.result()
    finally:
        pad.close()


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_a_fader_on_a_named_controller_is_learned_and_then_drives_the_show(jack, registry, tmp_path):
    out = tmp_path / "rec.jsonl"
    patch = tmp_path / "show.yaml"
    patch.write_text(dedent(f"""
        # The show's dimmer, learned from a desk.
        patch: {{name: show, fps: 60}}
        nodes:
          lfo: {{type: control.lfo, params: {{frequency: 0.5}}}}
          dim: {{type: control.map, in: {{value: lfo}}}}     # the dimmer
          rec: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{dim: dim}}}}
        """))
    before = patch.read_text().splitlines()
    pad = Pad(jack.env)
    eng = None
    try:
        learning = Learning(patch, "dim.value", "--midi", "nanopad", "--osc-port", free_port(),
                            "--timeout", 30, env=jack.env)
        assert wait_for(lambda: connected(jack, NANOPAD), 10)
        # A pad is an event: not for a number input.
        assert pad.move("note", 36, 100, until=lambda: learning.said("ignored note 36"))
        assert pad.move("cc", 7, 64, until=learning.ended)
        code, said, err = learning.result()
        assert code == 0, err
        assert said == f"learned CC 7 on 'nanoPAD' -> nanopad.cc7 -> dim.value (was lfo); wrote {patch}:5\n"
        assert "ignored note 36 on 'RtMidiOut Client:nanoPAD'" in err and "Traceback" not in err

        after = patch.read_text().splitlines()
        assert after[:4] == before[:4] and after[5] == before[5]             # comment, header, lfo, rec
        assert after[4] == "  dim: {type: control.map, in: {value: nanopad.cc7}}     # the dimmer"
        assert after[6:] == ["  nanopad: {type: midi.in, params: {port: nanoPAD, controls: {cc7: 7}}}"]
        graph, errors = load_graph(patch, registry)
        assert not errors, errors
        assert any((e.src, e.src_port, e.dst, e.dst_port) == ("nanopad", "cc7", "dim", "value")
                   for e in graph.edges)

        # The learned patch, run, follows the fader.
        eng = Engine(patch, env=jack.env)
        assert wait_for(lambda: eng.said("MIDI input 'RtMidiOut Client:nanoPAD'"), 20), eng.log
        assert wait_for(lambda: connected(jack, NANOPAD), 10)
        assert pad.move("cc", 7, 127, until=lambda: any(r["name"] == "dim" and r["value"] == 1.0
                                                        for r in rows(out))), rows(out)[-5:]
    finally:
        if eng is not None:
            eng.stop()
        pad.close()


def test_a_pad_is_learned_as_an_event_on_the_controllers_node_already_there(jack, registry, tmp_path):
    patch = tmp_path / "show.yaml"
    patch.write_text(dedent("""
        nodes:
          pad:   {type: midi.in, params: {port: nanopad, controls: {fader: 7}}}
          flash: {type: control.envelope}
          rec:   {type: io.record, params: {path: rec.jsonl}, in: {fader: pad.fader, flash: flash}}
        """))
    code, said, err = learn_from_pad(jack, patch, "flash.trigger", "note", 36)
    assert code == 0, err
    assert said == f"learned note 36 on 'nanoPAD' -> pad.note36 -> flash.trigger; wrote {patch}:3\n"
    lines = patch.read_text().splitlines()
    assert lines[1] == ("  pad:   {type: midi.in, params: {port: nanopad, controls: {fader: 7}, "
                        "note_names: {note36: 36}}}")
    assert lines[2] == "  flash: {type: control.envelope, in: {trigger: pad.note36}}"
    assert len(lines) == 4                                                # no second midi.in
    graph, errors = load_graph(patch, registry)
    assert not errors, errors
    edge = next(e for e in graph.edges if e.dst == "flash")
    assert (edge.src, edge.src_port, edge.type) == ("pad", "note36", PortType.EVENT)


def test_an_app_playing_to_learns_own_port_gets_a_virtual_port_in_the_patch(jack, registry, tmp_path):
    patch = tmp_path / "show.yaml"
    patch.write_text("nodes:\n  dim: {type: control.map}\n")
    code, said, err = learn_from_pad(jack, patch, "dim.value", "cc", 1, to=OWN_PORT)
    assert code == 0, err
    assert said == f"learned CC 1 on 'tonegraph learn' -> midi.cc1 -> dim.value; wrote {patch}:2\n"
    assert patch.read_text().splitlines()[2] == ("  midi: {type: midi.in, params: {port: tonegraph learn, "
                                                 "virtual: true, controls: {cc1: 1}}}")
    _, errors = load_graph(patch, registry)
    assert not errors, errors


def test_an_osc_message_from_oscsend_is_learned_and_a_running_engine_takes_it(registry, tmp_path):
    need("oscsend", "liblo-tools")
    out = tmp_path / "rec.jsonl"
    patch = tmp_path / "show.yaml"
    patch.write_text(dedent(f"""
        nodes:
          lfo: {{type: control.lfo, params: {{frequency: 0.5}}}}
          # What the room sees.
          rec:
            type: io.record
            params: {{path: "{out}", flush: 0}}
            in:
              level: lfo     # the level
              lfo: lfo
        """))
    run = Watching(patch, registry, osc=OscOptions(port=0, query_port=0))
    try:
        port = free_port()
        learning = Learning(patch, "rec.level", "--osc-port", port, "--range", "0,255",
                            "--timeout", 30, env=NO_MIDI)
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/1/fader1", "f", "0.5"], check=True, timeout=10)
        code, said, err = learning.result()
        assert code == 0, err
        assert said == (f"learned OSC /1/fader1 -> osc.fader1 -> rec_level (0..255) -> rec.level "
                        f"(was lfo); wrote {patch}:8\n")
        text = patch.read_text()
        assert "# What the room sees.\n" in text and "      level: rec_level     # the level\n" in text
        assert text.endswith("  osc: {type: osc.in, params: {addresses: {fader1: /1/fader1}}}\n"
                             "  rec_level: {type: control.map, params: {out_range: [0, 255]}, "
                             "in: {value: osc.fader1}}\n")

        # The engine watching the patch reloads it, and the fader now moves the level.
        assert wait_for(lambda: run.rt.reloads == 1, 20)
        assert {"osc", "rec_level"} <= set(run.rt.runner.nodes)
        subprocess.run(["oscsend", "127.0.0.1", str(run.rt.server.port), "/1/fader1", "f", "0.25"],
                       check=True, timeout=10)
        assert wait_for(lambda: any(r["name"] == "level" and r["value"] == pytest.approx(63.75)
                                    for r in rows(out)), 10), rows(out)[-5:]
    finally:
        run.stop()


# -- what is written, without peers ---------------------------------------------------


def heard_cc(number: int = 7, port: str = NANOPAD, **kw) -> Heard:
    return Heard("cc", number=number, port=port, ports=(port,), **kw)


def test_a_cc_onto_an_event_input_goes_through_a_trigger(registry, write_patch):
    patch = write_patch("""
        nodes:
          flash: {type: control.envelope}
        """)
    line = write_mapping(patch, "flash.trigger", heard_cc(), registry)
    assert line.startswith("learned CC 7 on 'nanoPAD' -> nanopad.cc7 -> flash_trigger (trigger) "
                           "-> flash.trigger; wrote ")
    graph, errors = load_graph(patch, registry)
    assert not errors, errors
    assert graph.nodes["flash_trigger"].type == "control.trigger"
    assert ("flash_trigger", "out", "flash", "trigger") in {(e.src, e.src_port, e.dst, e.dst_port)
                                                             for e in graph.edges}


def test_a_target_in_an_included_file_is_wired_there(registry, write_patch):
    write_patch("""
        nodes:
          dim: {type: control.map}   # lights
        """, "parts/lights.yaml")
    patch = write_patch("""
        include: [parts/lights.yaml]
        nodes:
          lfo: {type: control.lfo}
        """)
    line = write_mapping(patch, "dim.value", Heard("osc", address="/fader", args=(0.5,)), registry)
    part = patch.parent / "parts" / "lights.yaml"
    assert line.endswith(f"wrote {part}:2")
    assert part.read_text() == ("nodes:\n  dim: {type: control.map, in: {value: osc.fader}}   # lights\n"
                                "  osc: {type: osc.in, params: {addresses: {fader: /fader}}}\n")
    _, errors = load_graph(patch, registry)
    assert not errors, errors


def test_an_address_or_controller_already_named_is_used_again(registry, write_patch):
    patch = write_patch("""
        nodes:
          ctl: {type: osc.in, params: {addresses: {tap: {address: /tap, type: event}}}}
          desk: {type: midi.in, params: {port: nanopad, controls: {fader: 7}}}
          flash: {type: control.envelope}
          dim: {type: control.map}
        """)
    before = patch.read_text().splitlines()
    assert "-> ctl.tap -> flash.trigger" in write_mapping(patch, "flash.trigger",
                                                         Heard("osc", address="/tap"), registry)
    assert "-> desk.fader -> dim.value" in write_mapping(patch, "dim.value", heard_cc(), registry)
    after = patch.read_text().splitlines()
    assert after[:3] == before[:3] and len(after) == len(before)      # the sources as they were


def test_a_message_through_learns_own_port_makes_a_virtual_port(registry, write_patch):
    patch = write_patch("""
        nodes:
          dim: {type: control.map}
        """)
    write_mapping(patch, "dim.value", Heard("cc", number=1, port="", virtual=True), registry)
    graph, errors = load_graph(patch, registry)
    assert not errors, errors
    midi = graph.nodes["midi"].params
    assert midi["virtual"] is True and midi["port"] == "tonegraph learn" and midi["controls"] == {"cc1": 1}


def test_a_mapping_that_would_not_load_is_taken_back(registry, write_patch, monkeypatch):
    from tonegraph.tools import learn

    patch = write_patch("""
        nodes:
          dim: {type: control.map}   # as it was
        """)
    before = patch.read_text()
    # A planning mistake: the wire is written, the node it names is not.
    monkeypatch.setattr(learn._Plan, "add_node", lambda self, wanted, fallback, body: "nowhere")
    with pytest.raises(learn.LearnError, match=r"the mapping did not load \(.*no node 'nowhere'.*is as it was"):
        write_mapping(patch, "dim.value", Heard("osc", address="/fader", args=(0.5,)), registry)
    assert patch.read_text() == before
    assert [f.name for f in patch.parent.iterdir()] == [patch.name]     # no file left beside it


# -- the text edits -------------------------------------------------------------------

LAYOUTS = {
    "flow, no in": ("a: {type: x}   # note\n", ("a", "in"), "a: {type: x, in: {v: s.o}}   # note\n"),
    "flow, in": ("a: {type: x, in: {u: t}}\n", ("a", "in"),
                 "a: {type: x, in: {u: t, v: s.o}}\n"),
    "flow, empty in": ("a: {type: x, in: {}}\n", ("a", "in"), "a: {type: x, in: {v: s.o}}\n"),
    "flow, wired": ("a: {type: x, in: {v: {from: old, delay: 1}, u: t}}\n", ("a", "in"),
                    "a: {type: x, in: {v: s.o, u: t}}\n"),
    "block, no in": ("a:\n  type: x   # t\n# after\nb: 1\n", ("a", "in"),
                     "a:\n  type: x   # t\n  in: {v: s.o}\n# after\nb: 1\n"),
    "block, null in": ("a:\n  type: x\n  in:\n", ("a", "in"), "a:\n  type: x\n  in: {v: s.o}\n"),
    "block, ~ in": ("a:\n  in: ~  # none yet\n", ("a", "in"), "a:\n  in: {v: s.o}  # none yet\n"),
    "block, in": ("a:\n  in:\n    u: t  # c\n", ("a", "in"), "a:\n  in:\n    u: t  # c\n    v: s.o\n"),
    "block, wired": ("a:\n  in:\n    v: old\n    u: t\n", ("a", "in"), "a:\n  in:\n    v: s.o\n    u: t\n"),
    "crlf": ("a:\r\n  type: x\r\n", ("a", "in"), "a:\r\n  type: x\r\n  in: {v: s.o}\r\n"),
    "no newline at the end": ("a:\n  type: x", ("a", "in"), "a:\n  type: x\n  in: {v: s.o}"),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_an_entry_is_set_where_it_belongs_and_nothing_else_moves(name):
    text, path, want = LAYOUTS[name]
    new, line = set_entry(text, path, "v", "s.o")
    assert new == want
    assert yaml.safe_load(new)["a"]["in"]["v"] == "s.o"
    assert "v: s.o" in new.splitlines()[line - 1]


def test_an_alias_or_a_value_that_is_no_mapping_is_refused():
    with pytest.raises(EditError, match="alias"):
        set_entry("base: &b {type: x}\na: *b\n", ("a", "in"), "v", "s.o")
    with pytest.raises(EditError, match="not a mapping"):
        set_entry("a: {type: x, in: 3}\n", ("a", "in"), "v", "s.o")


# -- errors: one line, exit 1 ---------------------------------------------------------

GOOD = """
nodes:
  lfo: {type: control.lfo}
  dim: {type: control.map, in: {value: lfo}}
  flash: {type: control.envelope}
  groove: {type: audio.synth}
  lvl: {type: audio.level, in: {audio: groove}}
"""

ERRORS = {
    "no such node": (["nope.value"],
                     "error: no node 'nope' in {patch} (its nodes: lfo, dim, flash, groove, lvl)"),
    "no such input": (["dim.valeu"], "error: control.map node 'dim' has no input 'valeu' (did you mean "
                                     "'value'?); its inputs: value, vector"),
    "a param": (["dim.out_range"], "error: 'dim.out_range' is a param, not an input; learn wires inputs "
                                   "(dim's: value, vector); a param is set in the patch, with --set, or "
                                   "over OSC at /tonegraph/dim/out_range"),
    "an audio input": (["lvl.audio"], "error: 'lvl.audio' is an audio input; learn wires number, event, "
                                      "vector and text inputs"),
    "no dot": (["dim"], "error: learn wants NODE.INPUT (like dim.value), got 'dim'"),
    "range onto events": (["flash.trigger", "--range", "0,1"],
                          "error: --range maps numbers; 'flash.trigger' takes events"),
    "bad range": (["dim.value", "--range", "1"],
                  "error: argument --range: expected LO,HI like 0,255, got '1'"),
    "nothing comes": (["dim.value", "--timeout", "0.2"],
                      "error: no MIDI control or note and no OSC message came within 0.2 s; "
                      "{patch} is unchanged"),
    "no MIDI system for a named port": (["dim.value", "--midi", "nanopad"],
                                        "error: --midi nanopad: no MIDI system answers"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_bad_input_is_one_line(name, write_patch, capsys, monkeypatch):
    for key, value in NO_MIDI.items():
        monkeypatch.setenv(key, value)
    patch = write_patch(GOOD)
    before = patch.read_text()
    argv, want = ERRORS[name]
    try:
        code = cli.main(["learn", str(patch), *argv, "--osc-port", str(free_port())])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code in (1, 2) and "Traceback" not in err, err
    assert len(errors) == 1 and want.format(patch=patch) in errors[0], err
    assert patch.read_text() == before


def test_a_patch_that_does_not_load_is_its_problems_and_nothing_is_written(write_patch, capsys):
    patch = write_patch("nodes:\n  dim: {type: control.map, in: {value: nowhere}\n")
    before = patch.read_text()
    assert cli.main(["learn", str(patch), "dim.value", "--osc-port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{patch}:") and "error: YAML syntax" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert patch.read_text() == before


def test_an_osc_port_in_use_is_one_line(write_patch, capsys, monkeypatch):
    import socket

    for key, value in NO_MIDI.items():
        monkeypatch.setenv(key, value)
    patch = write_patch(GOOD)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        code = cli.main(["learn", str(patch), "dim.value", "--osc-port", str(port), "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"error: cannot listen for OSC on 127.0.0.1:{port} "
                                            f"(Address already in use); give another --osc-port")
