"""ml.latent: movement follows the music; keyframes lock to the beat; repeatable."""

from __future__ import annotations

import numpy as np
import pytest

from tonegraph.engine.ports import Event, PortType
from tonegraph.nodes.ml.latent import Latent, slerp

from ..conftest import NodeDriver, run_offline

WIRED = {"energy": PortType.NUMBER, "onset": PortType.EVENT, "beat": PortType.EVENT,
         "phase": PortType.NUMBER, "spectrum": PortType.VECTOR}


def drive(params, frames, energy=0.5, beats=(), onsets=(), phase=lambda k: 0.0, spectrum=None):
    d = NodeDriver(Latent, {"dim": 16, **params}, wired=WIRED, fps=60)
    outs = []
    for k in range(frames):
        outs.append(d.tick(energy=energy(k) if callable(energy) else energy,
                           beat=(Event(k / 60),) if k in beats else (),
                           onset=(Event(k / 60),) if k in onsets else (),
                           phase=phase(k),
                           spectrum=spectrum if spectrum is not None else np.zeros(0, np.float32))
                    ["out"].copy())
    return d.node, np.array(outs)


def path_length(outs: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(outs, axis=0), axis=1)))


def test_louder_moves_further_and_stays_on_the_shell():
    quiet_node, quiet = drive({"smooth": 0}, 120, energy=0.05)
    loud_node, loud = drive({"smooth": 0}, 120, energy=0.95)
    assert path_length(loud) > 4 * path_length(quiet)
    assert loud_node.walk.travelled > quiet_node.walk.travelled
    norms = np.linalg.norm(loud, axis=1)
    assert np.allclose(norms, 0.8 * np.sqrt(16), rtol=1e-4)   # on the shell, times truncation


def test_beats_change_direction_and_runs_repeat():
    node, outs = drive({"smooth": 0, "seed": 3}, 60, energy=1.0, beats={30})
    steps = np.diff(outs, axis=0)
    before, after = steps[25] / np.linalg.norm(steps[25]), steps[35] / np.linalg.norm(steps[35])
    assert np.dot(before, after) < 0.9                          # it turned on the beat
    _, again = drive({"smooth": 0, "seed": 3}, 60, energy=1.0, beats={30})
    _, other = drive({"smooth": 0, "seed": 4}, 60, energy=1.0, beats={30})
    assert np.array_equal(outs, again) and not np.allclose(outs, other)


def test_onset_pulses_toward_the_spectrum_and_decays():
    spec = np.linspace(0, 1, 24).astype(np.float32)
    node, outs = drive({"smooth": 0, "speed": 0, "pulse": 1.0, "pulse_decay": 0.1}, 60,
                       onsets={10}, spectrum=spec)
    jump = np.linalg.norm(outs[10] - outs[9])
    assert jump > 0.5 * np.sqrt(16) * 0.8                      # a real push
    toward = node.walk.toward(spec)
    assert np.dot(outs[10] - outs[9], toward) > 0               # in the spectrum's direction
    assert np.linalg.norm(outs[59] - outs[9]) < 0.05 * jump     # and it faded


def test_keyframes_lock_to_beat_phase():
    beats = set(range(30, 600, 30))                             # a beat every 0.5 s from 0.5 s
    phase = lambda k: (k % 30) / 30                              # noqa: E731
    node, outs = drive({"mode": "keyframes", "smooth": 0, "keyframes": 4, "beats_per_keyframe": 2,
                        "truncation": 1.0}, 240, beats=beats, phase=phase)
    keys = node.walk.keys
    # On beat 2, 4, 6 (phase 0) the output is exactly the next keyframe.
    assert np.allclose(outs[60], keys[1], atol=1e-5)
    assert np.allclose(outs[120], keys[2], atol=1e-5)
    assert np.allclose(outs[180], keys[3], atol=1e-5)
    # On beat 1 it is halfway from keyframe 0 to 1 (smoothstep(0.5) = 0.5).
    mid = slerp(keys[0], keys[1], 0.5)
    assert np.allclose(outs[30], mid, atol=1e-5)
    assert path_length(outs) > 0 and np.all(np.linalg.norm(np.diff(outs, axis=0), axis=1) < 1.0)


def test_external_latent_blend_and_truncation():
    d = NodeDriver(Latent, {"dim": 4, "blend": 1.0, "truncation": 0.5, "smooth": 0},
                   wired={"value": PortType.VECTOR})
    out = d.tick(value=np.array([2, 4, 6, 8], np.float32))["out"]
    assert out == pytest.approx([1, 2, 3, 4])


def test_a_patch_moves_further_in_the_grooves_loud_sections(registry, tmp_path, monkeypatch, write_patch):
    """The groove alternates quiet and loud sections every 4 bars (8 s at 120 BPM)."""
    import json

    out = tmp_path / "z.jsonl"
    path = write_patch(f"""
        patch: {{fps: 30}}
        nodes:
          groove: {{type: audio.synth, params: {{bars: 8}}}}
          level:  {{type: audio.level, in: {{audio: groove}}}}
          energy: {{type: control.map, params: {{in_range: [-30, -10], fall: 0.3}}, in: {{value: level.db}}}}
          tempo:  {{type: audio.tempo, in: {{audio: groove}}}}
          onsets: {{type: audio.onset, in: {{audio: groove}}}}
          spec:   {{type: audio.spectrum, in: {{audio: groove}}}}
          z:      {{type: ml.latent, params: {{dim: 32, pulse: 0}},
                    in: {{energy: energy, beat: tempo.beat, onset: onsets, spectrum: spec.bands}}}}
          rec:    {{type: io.record, params: {{path: "{out}"}}, in: {{z: z}}}}
        """)
    run_offline(path, registry, duration=16.0)
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    t = np.array([r["t"] for r in rows])
    z = np.array([r["value"] for r in rows])
    moves = np.linalg.norm(np.diff(z, axis=0), axis=1)
    quiet = moves[(t[1:] > 1) & (t[1:] < 7.5)].sum()
    loud = moves[(t[1:] > 9) & (t[1:] < 15.5)].sum()
    assert loud > 2 * quiet


def test_keyframes_made_from_the_music_differ_by_song_and_repeat_per_song():
    """Two 'songs' with different chroma: the keyframes after the first phrase differ
    between them, and the same song gives the same keyframes every time."""
    def play(chroma: np.ndarray) -> np.ndarray:
        d = NodeDriver(Latent, {"dim": 16, "mode": "keyframes", "beats_per_keyframe": 4, "smooth": 0},
                       wired={**WIRED, "features": PortType.VECTOR}, fps=60)
        outs = []
        for k in range(60 * 12):                          # 12 s at 120 BPM: 24 beats, 6 phrases
            beat = (Event(k / 60),) if k % 30 == 0 and k else ()
            outs.append(d.tick(beat=beat, phase=(k % 30) / 30, energy=0.5, onset=(),
                               spectrum=np.zeros(0, np.float32), features=chroma)["out"].copy())
        return np.array(outs)

    a = np.array([1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0], np.float32)    # C major's notes
    b = np.array([0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0], np.float32)    # D major's
    song_a, song_b, again = play(a), play(b), play(a)
    assert np.array_equal(song_a, again)
    assert np.allclose(song_a[:110], song_b[:110])                   # before a phrase was heard
    assert np.abs(song_a[-120:] - song_b[-120:]).max() > 0.5          # after: their own pictures
    norms = np.linalg.norm(song_a, axis=1)
    assert np.allclose(norms, 0.8 * 4.0, rtol=0.05)                   # still on the shell
