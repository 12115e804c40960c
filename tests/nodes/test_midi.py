"""midi.in and midi.out for real: JACK MIDI on a private dummy server (this machine has
no ALSA sequencer), with peers in processes of their own: a controller made with
mido/RtMidi (notes, CC, program change, clock, unplugged and plugged back) and JACK's
own jack_midi_dump as the synth tonegraph plays to."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from ..conftest import ROOT, rows, wait_for
from ..osc_peers import Engine



#: A controller as a separate process: a JACK MIDI port named nanoPAD that does what
#: each line on its stdin says, and answers "ok" when done.
CONTROLLER = r"""
import sys, time
import mido
b = mido.Backend("mido.backends.rtmidi/UNIX_JACK", load=True)
pad = b.open_output("nanoPAD", virtual=True)
print("ok", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "play":
        pad.send(mido.Message("note_on", note=36, velocity=100))
        pad.send(mido.Message("note_on", note=40, velocity=20))
        pad.send(mido.Message("control_change", control=7, value=64))
        pad.send(mido.Message("program_change", program=5))
        pad.send(mido.Message("start"))
        step, t0 = 60.0 / (24 * 120.0), time.monotonic()
        for i in range(24 * 6):                      # 3 s of clock at 120 BPM
            delay = t0 + i * step - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pad.send(mido.Message("clock"))
    elif cmd[0] == "unplug":
        pad.close()
    elif cmd[0] == "plug":
        pad = b.open_output("nanoPAD", virtual=True)
    elif cmd[0] == "kick":
        pad.send(mido.Message("note_on", note=36, velocity=127))
    print("ok", flush=True)
"""


def connected(jack, port: str) -> bool:
    """Whether JACK shows ``port`` connected to anything (jack_lsp -c)."""
    out = subprocess.run(["jack_lsp", "-c"], env=jack.env, capture_output=True, text=True, timeout=10).stdout
    lines = out.splitlines()
    return any(line == port and i + 1 < len(lines) and lines[i + 1].startswith("   ")
               for i, line in enumerate(lines))


class Controller:
    def __init__(self, env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CONTROLLER], env=env, cwd=ROOT, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout.readline().strip() == "ok"

    def do(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok", cmd

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def test_a_controller_drives_a_patch_and_is_found_again_after_it_leaves(jack, write_patch, tmp_path):
    pad = Controller(jack.env)
    out = tmp_path / "midi.jsonl"
    patch = write_patch(f"""
        nodes:
          ctl: {{type: midi.in, params: {{port: nanopad, api: jack, note_names: {{kick: 36}},
                                          controls: {{fader: 7}}}}}}
          rec: {{type: io.record, params: {{path: "{out}", flush: 0}},
                 in: {{kick: ctl.kick, notes: ctl.notes, fader: ctl.fader, program: ctl.program,
                       bpm: ctl.bpm, beat: ctl.beat, start: ctl.start, note: ctl.note,
                       velocity: ctl.velocity}}}}
        """)
    eng = Engine(patch, env=jack.env)

    def named(name):
        return [r for r in rows(out) if r["name"] == name]
    try:
        assert wait_for(lambda: "MIDI input 'RtMidiOut Client:nanoPAD" in "".join(eng.log), 10), eng.log
        assert wait_for(lambda: connected(jack, "RtMidiOut Client:nanoPAD"), 10)   # JACK has wired it
        pad.do("play")
        assert wait_for(lambda: named("kick") and named("program") and len(named("beat")) >= 5, 10), (
            [(r["name"], round(r["t"], 3), r["value"]) for r in rows(out)][-20:])
        assert len(named("kick")) == 1 and len(named("notes")) == 2          # note 36 is the kick
        assert named("note")[-1]["value"] == 40 and named("velocity")[-1]["value"] == pytest.approx(20 / 127)
        assert named("fader")[-1]["value"] == pytest.approx(64 / 127)
        assert named("program")[-1]["value"] == 5
        assert named("bpm")[-1]["value"] == pytest.approx(120, abs=3)
        beats = np.array([r["t"] for r in named("beat")])
        assert np.diff(beats) == pytest.approx(0.5, abs=0.03)        # every 24th pulse
        assert len(named("start")) == 1

        # The controller is unplugged, then comes back: reported once each, and it plays.
        pad.do("unplug")
        assert wait_for(lambda: "MIDI input 'RtMidiOut Client:nanoPAD' is gone" in "".join(eng.log), 10)
        pad.do("plug")
        assert wait_for(lambda: "is back" in "".join(eng.log), 10), eng.log
        assert wait_for(lambda: connected(jack, "RtMidiOut Client:nanoPAD"), 10)
        kicks = len(named("kick"))
        pad.do("kick")
        assert wait_for(lambda: len(named("kick")) == kicks + 1, 10)
        assert named("velocity")[-1]["value"] == 1.0
    finally:
        log = eng.stop()
        pad.close()
    assert "Traceback" not in log and log.count("is gone") == 1 and log.count("is back") == 1


DUMP = re.compile(r"^\s*(\d+): ((?:[0-9a-f]{2} ?)+)")


def test_a_patch_plays_notes_controllers_and_clock_to_a_synth(jack, write_patch):
    """jack_midi_dump (JACK's MIDI monitor) is the synth: it prints every event with its
    sample time."""
    dump = subprocess.Popen(["jack_midi_dump", "-a", "synth"], env=jack.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    jack.wait_for_port("synth:input")
    patch = write_patch("""
        nodes:
          sq:    {type: control.lfo, params: {shape: square, frequency: 2}}
          hit:   {type: control.trigger, params: {threshold: 0.5}, in: {value: sq}}
          ramp:  {type: control.lfo, params: {shape: saw, frequency: 0.5, amplitude: 0.5, offset: 0.5}}
          bpm:   {type: control.constant, params: {value: 120}}
          out:   {type: midi.out, params: {port: synth, api: jack, channel: 10, length: 0.05,
                                           note_names: {kick: 36}, controls: {cutoff: 74}},
                  in: {kick: hit, cutoff: ramp, tempo: bpm}}
        """)
    eng = Engine(patch, env=jack.env)
    events: list = []
    try:
        for line in dump.stdout:
            m = DUMP.match(line)
            if m:
                events.append((int(m.group(1)) / jack.rate, bytes.fromhex(m.group(2))))
            if sum(1 for _, b in events if b[0] == 0x99) >= 5 and sum(1 for _, b in events if b[0] == 0xF8) > 96:
                break
    finally:
        log = eng.stop()
        dump.kill()
        dump.wait(10)
        rest = dump.stdout.read()
    events += [(int(m.group(1)) / jack.rate, bytes.fromhex(m.group(2)))
               for m in map(DUMP.match, rest.splitlines()) if m]
    ons = [(t, b) for t, b in events if b[0] == 0x99 and b[2] > 0]        # note on, channel 10
    offs = [(t, b) for t, b in events if b[0] == 0x89 or (b[0] == 0x99 and b[2] == 0)]
    assert ons and all(b[1] == 36 and b[2] == 127 for _, b in ons)
    assert np.diff([t for t, _ in ons]) == pytest.approx(0.5, abs=0.05)    # the square's rising edges
    held = [off - on for (on, _), (off, _) in zip(ons, offs)][:-1]      # the last is cut by the stop
    assert held and all(0.045 <= h <= 0.1 for h in held), held          # 50 ms, to the next tick
    ccs = [b[2] for _, b in events if b[0] == 0xB9 and b[1] == 74]
    assert len(set(ccs)) > 20 and max(ccs) <= 127
    # Only changes are sent: the ramp goes out one step at a time.  (Under load the dump
    # has once printed an event twice, so a stray repeat is allowed.)
    assert np.count_nonzero(np.diff(ccs) == 0) <= max(1, len(ccs) // 50)
    pulses = np.array([t for t, b in events if b[0] == 0xF8])
    starts = [t for t, b in events if b[0] == 0xFA]
    assert starts and starts[0] <= pulses[0]
    assert np.median(np.diff(pulses)) == pytest.approx(60 / (24 * 120), rel=0.05)
    assert any(b[0] == 0xFC for _, b in events)                             # stop, on close
    assert "Traceback" not in log


def test_clock_tempo_holds_when_a_pulse_comes_late():
    from tonegraph.nodes.midi.inp import clock_bpm

    step = 60.0 / (24 * 120.0)
    steady = [k * step for k in range(25)]
    assert clock_bpm(steady) == pytest.approx(120.0, abs=1e-6)
    late = steady[:-1] + [steady[-1] + 0.04]        # the last pulse 40 ms late (a busy sender)
    assert clock_bpm(late) == pytest.approx(120.0, abs=3)
    assert 60.0 * 24 / (24.0 * (late[-1] - late[0])) < 112   # first-to-last would say 111
    assert clock_bpm([0.0]) is None and clock_bpm([1.0, 1.0]) is None
