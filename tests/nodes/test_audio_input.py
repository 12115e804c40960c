"""audio.input through a real PortAudio device: JACK's dummy backend, clicks from
jack_metro (a JACK client we did not write), and the server killed and restarted
mid-run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from ..conftest import ROOT, rows, wait_for

PATCH = """
patch: {{name: live, fps: 30, samplerate: 48000, hop: 256}}
nodes:
  mic: {{type: audio.input, params: {{device: system, retry: 0.3}}}}
  on:  {{type: audio.onset, params: {{buf_size: 512}}, in: {{audio: mic}}}}
  strobe: {{type: control.envelope, params: {{attack: 0, decay: 0.08}}, in: {{trigger: on}}}}
  rec: {{type: io.record, params: {{path: "{out}", flush: 0}},
         in: {{onset: on, live: mic.live, strobe: strobe}}}}
"""


def flashes(r, after: float = -1.0) -> list[float]:
    """Times of the control ticks at which the strobe was at full level."""
    return [x["t"] for x in r if x["name"] == "strobe" and x["value"] > 0.99 and x["t"] > after]


def aligned(r, after: float) -> bool:
    """Every onset after ``after`` meets a tick at which the strobe it triggered was at
    full level within 0.15 s of media time (a hair before it, when sound and clock meet
    within a hop): onsets land in the current tick (or, on a machine this busy, within
    a few), not seconds behind the clock."""
    peaks = flashes(r, after)
    onsets = [x["t"] for x in r if x["name"] == "onset" and x["t"] > after]
    return bool(onsets) and all(any(-0.02 <= p - t < 0.15 for p in peaks) for t in onsets[:-1])





def wait_rows(path, pred, timeout: float) -> list:
    if not wait_for(lambda: pred(rows(path)), timeout):
        raise AssertionError(f"timed out; rows so far: {rows(path)[-10:]}")
    return rows(path)


def listen_to_clicks(jack, patch) -> subprocess.Popen:
    """The engine running ``patch`` on JACK, its input fed by jack_metro at 120 BPM."""
    engine = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless",
                               "--duration", "60"], cwd=ROOT, env=jack.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    jack.wait_for_port("PortAudio:in_0")
    jack.connect(jack.metro(120), "PortAudio:in_0")
    return engine


def test_live_input_survives_device_loss_and_return(jack, write_patch, tmp_path):
    out = tmp_path / "live.jsonl"
    patch = write_patch(PATCH.format(out=out))
    engine = listen_to_clicks(jack, patch)
    try:
        onsets = lambda r: [x["t"] for x in r if x["name"] == "onset"]  # noqa: E731

        def steady(r) -> bool:
            """Three 120 BPM gaps in a row: the clicks are heard, each once (a click
            lost while the test machine is overloaded does not decide it)."""
            gaps = [b - a for a, b in zip(onsets(r), onsets(r)[1:])]
            return any(all(abs(g - 0.5) < 0.03 for g in gaps[i:i + 3]) for i in range(len(gaps) - 2))
        wait_rows(out, steady, 20)
        assert len(flashes(rows(out))) >= 3                         # each click flashes the strobe

        jack.stop()                                                  # the device vanishes
        wait_rows(out, lambda r: r and r[-1] == {**r[-1], "name": "live", "value": 0.0}, 10)
        assert engine.poll() is None, "the engine must keep running without its device"
        n_before = len(onsets(rows(out)))

        jack.start()                                                 # ... and comes back
        jack.wait_for_port("PortAudio:in_0")
        jack.connect(jack.metro(120), "PortAudio:in_0")
        back = rows(out)[-1]["t"]
        wait_rows(out, lambda r: len(onsets(r)) >= n_before + 4, 15)
        live = [x["value"] for x in rows(out) if x["name"] == "live"]
        assert live[-1] == 1.0 and 0.0 in live
        # The lights follow the clicks again, on time: media time re-anchored.
        wait_rows(out, lambda r: len(flashes(r, back)) >= 3 and aligned(r, back), 15)
    finally:
        engine.terminate()
        _, err = engine.communicate(timeout=20)
    assert engine.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("stopped delivering audio") == 1, err    # said once, not per block
    assert err.count("is back") == 1, err


def test_onset_lights_fire_again_after_the_engine_was_stopped(jack, write_patch, tmp_path):
    """SIGSTOP for 3 s (a machine that froze), then SIGCONT: the strobe flashes on the
    clicks again, each onset landing in the control tick that is current, and the
    stalled engine never stalled the JACK server (jack_metro's clicks went on)."""
    out = tmp_path / "live.jsonl"
    patch = write_patch(PATCH.format(out=out))
    engine = listen_to_clicks(jack, patch)
    try:
        wait_rows(out, lambda r: len(flashes(r)) >= 3, 15)
        os.kill(engine.pid, signal.SIGSTOP)
        stalled = threading.Event()
        stalled.wait(3.0)                      # the engine stands still for 3 s
        os.kill(engine.pid, signal.SIGCONT)
        resumed = rows(out)[-1]["t"] + 2.5     # media time went on while it stood still
        # From the first flash after the stall on (a flash at the level recorded last before
        # the stall is no change, so the recorder has no row for it).
        wait_rows(out, lambda r: len(flashes(r, resumed)) >= 4 and
                  aligned(r, flashes(r, resumed)[0]), 15)
        assert "PortAudio:in_0" in jack.ports()
    finally:
        engine.terminate()
        _, err = engine.communicate(timeout=20)
    assert engine.returncode == 0, err
    assert "Traceback" not in err
    assert "media time re-anchored" in err, err


def run_briefly(jack, write_patch, out, replace: tuple[str, str], seconds: float):
    """Run the live patch, changed by ``replace``, for ``seconds``; returns the problems logged."""
    patch = write_patch(PATCH.format(out=out).replace(*replace))
    res = subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless",
                          "--duration", str(seconds)], cwd=ROOT, env=jack.env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return [l for l in res.stderr.splitlines() if "unavailable" in l], res.stderr


def test_missing_device_lists_devices_and_keeps_running(jack, write_patch, tmp_path):
    out = tmp_path / "none.jsonl"
    lines, err = run_briefly(jack, write_patch, out, ("device: system", "device: Scarlett"), 2)
    assert len(lines) == 1, err                                 # reported once, not per retry
    assert "no input device matches 'Scarlett' (inputs: 0 'system' (2 in))" in lines[0]
    assert any(r["name"] == "live" and r["value"] == 0.0 for r in rows(out))


def test_refused_samplerate_is_reported(jack, write_patch, tmp_path):
    out = tmp_path / "sr.jsonl"
    lines, err = run_briefly(jack, write_patch, out, ("samplerate: 48000", "samplerate: 44100"), 1.5)
    assert len(lines) == 1 and "sample rate" in lines[0].lower(), err


def test_file_plays_in_real_time_and_monitors_to_a_device(jack, write_patch, tmp_path):
    """audio.file on the real-time clock: paced like a player, and with monitor: true
    heard on a real output (JACK's jack_rec records what arrives at the engine's port)."""
    from tonegraph.nodes.audio.synth import render_groove
    import soundfile as sf

    song = tmp_path / "song.wav"
    samples, _, _ = render_groove(48000, 120.0, 4)
    sf.write(song, samples, 48000)
    out = tmp_path / "pos.jsonl"
    patch = write_patch(f"""
        patch: {{fps: 30, samplerate: 48000, hop: 256}}
        nodes:
          f: {{type: audio.file, params: {{path: "{song}", monitor: true, monitor_device: system}}}}
          r: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{pos: f.position}}}}
        """)
    engine = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless",
                               "--duration", "6"], cwd=ROOT, env=jack.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        jack.wait_for_port("PortAudio:out_0")
        heard = tmp_path / "heard.wav"
        subprocess.run(["jack_rec", "-f", str(heard), "-d", "2", "PortAudio:out_0"],
                       env=jack.env, timeout=30, capture_output=True)
    finally:
        _, err = engine.communicate(timeout=30)
    assert engine.returncode == 0, err
    # Paced like a player: 6 s of media time took about 6 s (as fast as possible would
    # have taken a fraction of a second).
    media, wall = map(float, re.search(r"([\d.]+) s media time in ([\d.]+) s", err).groups())
    assert media == pytest.approx(6.0, abs=0.1) and wall > 5.5, err
    pos = [r["value"] for r in rows(out) if r["name"] == "pos"]
    assert pos and 5.5 < pos[-1] <= 6.1
    data, rate = sf.read(heard)
    assert rate == 48000 and len(data) >= 48000
    assert np.abs(data).max() > 0.1                           # the groove reached the device


def test_no_default_input_is_said_in_words_with_the_inputs_there_are():
    """With no device named and no default input, PortAudio's own words were 'Error
    querying device -1'."""
    from types import SimpleNamespace

    from tonegraph.nodes.audio.devhost import find_device

    none = SimpleNamespace(default=SimpleNamespace(device=(-1, -1)), query_devices=lambda: [])
    with pytest.raises(LookupError, match=r"no default input device \(inputs: none\): set the node's device"):
        find_device(none, "")
    one = SimpleNamespace(default=SimpleNamespace(device=(0, 1)), query_devices=lambda: [
        {"name": "Scarlett 2i2", "max_input_channels": 2}])
    assert find_device(one, "") is None and find_device(one, "scarlett") == 0
