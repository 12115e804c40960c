"""Audio sources and analysis nodes, offline, on sound the tests make themselves."""

from __future__ import annotations

import json

import aubio
import numpy as np
import pytest
import soundfile as sf

from tonegraph.engine import ports
from tonegraph.engine.graph import load_graph
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime
from tonegraph.nodes.audio.synth import render_groove

from ..conftest import load_ok

SR = 44100
HOP = 512


class Collect(Node):
    """Test sink in the audio domain: keeps every hop's input values."""

    type_name = "test.collect"
    description = "collects per-hop values"
    domain = "audio"
    variadic = ports.any_port()

    def configure(self) -> None:
        self.rows: dict[str, list] = {n: [] for n in self.wired}

    def process(self, tick: Tick) -> None:
        for n, v in self.inp.items():
            self.rows[n].append(v.copy() if isinstance(v, np.ndarray) else v)


@pytest.fixture(scope="module")
def reg():
    r = default_registry(plugins=False)
    r.add(Collect, __name__)
    return r


@pytest.fixture(scope="module")
def groove(tmp_path_factory):
    """The built-in groove as a 44.1 kHz WAV, with its known hits and beats."""
    samples, hits, beats = render_groove(SR, 120.0, 8, seed=3)
    path = tmp_path_factory.mktemp("audio") / "groove.wav"
    sf.write(path, samples, SR, subtype="FLOAT")
    return path, samples, hits, beats


def run_patch(write_patch, reg, text: str, **kw) -> Runtime:
    path = write_patch(text)
    rt = Runtime(load_ok(path, reg), reg, offline=True, **kw)
    rt.report = rt.run()
    return rt


def hops_of(samples: np.ndarray) -> list[np.ndarray]:
    n = len(samples) // HOP + (len(samples) % HOP > 0)
    padded = np.zeros(n * HOP, dtype=np.float32)
    padded[: len(samples)] = samples
    return [padded[i * HOP:(i + 1) * HOP] for i in range(n)]


def test_onset_streaming_equals_aubio_over_whole_file(write_patch, reg, groove, tmp_path):
    path, samples, hits, _ = groove
    for method, threshold in (("hfc", 0.3), ("specflux", 0.2), ("complex", 0.5)):
        out = tmp_path / f"{method}.jsonl"
        run_patch(write_patch, reg, f"""
            patch: {{samplerate: {SR}, hop: {HOP}}}
            nodes:
              f: {{type: audio.file, params: {{path: "{path}"}}}}
              o: {{type: audio.onset, params: {{method: {method}, threshold: {threshold},
                   minioi: 0.03, silence: -60, whitening: true}}, in: {{audio: f}}}}
              r: {{type: io.record, params: {{path: "{out}"}}, in: {{onset: o}}}}
            """)
        got = [json.loads(l)["t"] for l in out.read_text().splitlines()]
        ref = aubio.onset(method, 1024, HOP, SR)
        ref.set_threshold(threshold)
        ref.set_minioi_s(0.03)
        ref.set_silence(-60)
        ref.set_awhitening(1)
        ref.set_compression(1.0)                        # the node's default, aubio's own
        want = [ref.get_last() / SR for x in hops_of(samples) if ref(x)[0]]
        assert len(got) > 20
        assert got == pytest.approx(want, abs=1e-9), method


def test_onsets_find_the_grooves_hits(write_patch, reg, groove, tmp_path):
    import mir_eval

    path, _, hits, _ = groove
    out = tmp_path / "o.jsonl"
    run_patch(write_patch, reg, f"""
        nodes:
          f: {{type: audio.file, params: {{path: "{path}"}}}}
          o: {{type: audio.onset, in: {{audio: f}}}}
          r: {{type: io.record, params: {{path: "{out}"}}, in: {{onset: o}}}}
        """)
    got = np.array([json.loads(l)["t"] for l in out.read_text().splitlines()])
    f, p, r = mir_eval.onset.f_measure(np.array(hits), got, window=0.05)
    assert f > 0.9, (f, p, r)


def test_tempo_pitch_mfcc_streaming_equal_whole_file(write_patch, reg, groove):
    path, samples, _, beats = groove
    rt = run_patch(write_patch, reg, f"""
        nodes:
          f: {{type: audio.file, params: {{path: "{path}"}}}}
          t: {{type: audio.tempo, params: {{tracker: aubio}}, in: {{audio: f}}}}
          p: {{type: audio.pitch, in: {{audio: f}}}}
          m: {{type: audio.mfcc, in: {{audio: f}}}}
          c: {{type: test.collect, in: {{beat: t.beat, bpm: t.bpm, phase: t.phase, hz: p.hz, mfcc: m}}}}
        """)
    rows = rt.runner.nodes["c"].rows
    tempo = aubio.tempo("complex", 1024, HOP, SR)
    tempo.set_threshold(0.02)
    tempo.set_silence(-60)
    pitch = aubio.pitch("yinfft", 2048, HOP, SR)
    pitch.set_unit("Hz")
    pitch.set_tolerance(0.85)
    pitch.set_silence(-50)
    pv, mf = aubio.pvoc(1024, HOP), aubio.mfcc(1024, 40, 13, SR)
    want_beats, want_hz, want_mfcc = [], [], []
    for x in hops_of(samples):
        if tempo(x)[0]:
            want_beats.append(tempo.get_last() / SR)
        want_hz.append(float(pitch(x)[0]))
        want_mfcc.append(np.array(mf(pv(x))))
    got_beats = [e.t for evs in rows["beat"] for e in evs]
    assert got_beats == pytest.approx(want_beats, abs=1e-9)
    n = len(want_hz)
    assert rows["hz"][:n] == pytest.approx(want_hz)
    assert np.allclose(np.array(rows["mfcc"][:n]), np.array(want_mfcc))
    # The tracker locks to the groove's 120 BPM, and the phase runs 0..1 between beats.
    assert np.median(rows["bpm"][-200:]) == pytest.approx(120.0, abs=1.0)
    phase = np.array(rows["phase"][-200:])
    assert phase.min() >= 0.0 and phase.max() < 1.0 and phase.max() > 0.9


def test_file_resamples_loops_and_starts(write_patch, reg, tmp_path):
    # A 1 s, 440 Hz sine at 22.05 kHz, played in a 44.1 kHz patch.
    t = np.arange(22050) / 22050
    path = tmp_path / "sine.flac"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), 22050, subtype="PCM_24")
    rt = run_patch(write_patch, reg, f"""
        patch: {{samplerate: 44100, hop: 512}}
        nodes:
          f: {{type: audio.file, params: {{path: "{path}"}}}}
          p: {{type: audio.pitch, in: {{audio: f}}}}
          c: {{type: test.collect, in: {{a: f.audio, hz: p.hz}}}}
        """)
    assert rt.report.reason == "sources ended"
    audio = np.concatenate([b.data[:, 0] for b in rt.runner.nodes["c"].rows["a"]])
    assert 44100 <= len(audio) < 44100 + 2 * 512        # one second at the patch rate
    assert np.median(rt.runner.nodes["c"].rows["hz"][10:70]) == pytest.approx(440, abs=2)
    # loop + start: 0.25 s into a 1 s file, looping, for 2 s: never ends, never silent.
    rt = run_patch(write_patch, reg, f"""
        nodes:
          f: {{type: audio.file, params: {{path: "{path}", loop: true, start: 0.25}}}}
          l: {{type: audio.level, in: {{audio: f}}}}
          c: {{type: test.collect, in: {{rms: l.rms, pos: f.position}}}}
        """, duration=2.0)
    rows = rt.runner.nodes["c"].rows
    assert rt.report.reason == "duration reached"
    assert min(rows["rms"][1:]) > 0.3                   # sine of amplitude 0.5: rms 0.35
    assert rows["pos"][0] == pytest.approx(0.25 + 512 / 44100)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_file_formats(write_patch, reg, tmp_path, fmt):
    t = np.arange(4410) / 44100
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 1000 * t), 44100, format=fmt)
    rt = run_patch(write_patch, reg, f"""
        nodes:
          f: {{type: audio.file, params: {{path: "{path}"}}}}
          l: {{type: audio.level, in: {{audio: f}}}}
          c: {{type: test.collect, in: {{rms: l.rms}}}}
        """)
    assert max(rt.runner.nodes["c"].rows["rms"]) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_bad_audio_input_is_a_load_error(write_patch, reg, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF not really a wave file")
    mp3ish = tmp_path / "song.xyz"
    mp3ish.write_bytes(b"\x00" * 100)
    path = write_patch(f"""
        patch: {{hop: 2048}}
        nodes:
          a: {{type: audio.file, params: {{path: "{junk}"}}}}
          b: {{type: audio.file, params: {{path: missing.wav}}}}
          c: {{type: audio.file, params: {{path: "{mp3ish}"}}}}
          d: {{type: audio.file}}
          s: {{type: audio.spectrum, params: {{size: 1024}}, in: {{audio: a}}}}
          o: {{type: audio.onset, in: {{audio: a}}}}
        """)
    _, errors = load_graph(path, reg)
    text = "\n".join(map(str, errors))
    assert "patch.yaml:3:40: error: cannot read junk.wav:" in text
    assert "patch.yaml:4:40: error: no such file:" in text and "missing.wav" in text
    assert "patch.yaml:5:40: error: cannot read song.xyz:" in text
    assert "patch.yaml:6:3: error: audio.file needs a 'path'" in text
    assert "size 1024 is smaller than the patch's hop 2048" in text
    assert "buf_size 1024 is smaller than the patch's hop 2048" in text
    assert len(errors) == 6, text


def test_spectrum_bands_split_centroid_agc(write_patch, reg, tmp_path):
    t = np.arange(44100) / 44100
    sig = np.concatenate([0.5 * np.sin(2 * np.pi * 100 * t), 0.5 * np.sin(2 * np.pi * 1000 * t),
                          0.5 * np.sin(2 * np.pi * 8000 * t)]).astype(np.float32)
    path = tmp_path / "three.wav"
    sf.write(path, sig, 44100, subtype="FLOAT")
    rows = {}
    for agc in (False, True):
        rt = run_patch(write_patch, reg, f"""
            nodes:
              f: {{type: audio.file, params: {{path: "{path}"}}}}
              s: {{type: audio.spectrum, params: {{agc: {str(agc).lower()}}}, in: {{audio: f}}}}
              c: {{type: test.collect, in: {{bass: s.bass, mid: s.mid, high: s.high,
                   centroid: s.centroid, bands: s.bands, flux: s.flux}}}}
            """)
        rows[agc] = rt.runner.nodes["c"].rows
    raw = rows[False]
    sec = 44100 // 512
    mid_of = lambda name, k: float(np.median(raw[name][k * sec + 10:(k + 1) * sec - 10]))  # noqa
    assert mid_of("bass", 0) > 10 * max(mid_of("mid", 0), mid_of("high", 0))
    assert mid_of("mid", 1) > 10 * max(mid_of("bass", 1), mid_of("high", 1))
    assert mid_of("high", 2) > 10 * max(mid_of("bass", 2), mid_of("mid", 2))
    assert mid_of("bass", 0) == pytest.approx(0.5, rel=0.2)   # a 0.5 sine reads about 0.5
    assert mid_of("centroid", 1) == pytest.approx(1000, rel=0.05)
    # The band holding 8 kHz is the strongest in the last second.
    bands8k = np.median(np.array(raw["bands"][2 * sec + 10:3 * sec - 10]), axis=0)
    assert int(np.argmax(bands8k)) > len(bands8k) * 0.7
    agc = rows[True]
    for name in ("bass", "mid", "high", "flux"):
        assert max(agc[name]) <= 1.0 + 1e-6 and min(agc[name]) >= 0.0
    assert max(max(b) for b in agc["bands"]) <= 1.0 + 1e-6
    # Flux jumps when the tone changes (at 1 s and 2 s).
    flux = np.array(raw["flux"])
    assert flux[sec - 2:sec + 6].max() > 5 * np.median(flux[20:sec - 20])


def test_level_chroma_pitch_on_known_tones(write_patch, reg, tmp_path):
    t = np.arange(44100) / 44100
    sig = np.concatenate([np.sin(2 * np.pi * 440 * t), np.zeros(44100)]).astype(np.float32)
    path = tmp_path / "a4.wav"
    sf.write(path, sig, 44100, subtype="FLOAT")
    rt = run_patch(write_patch, reg, f"""
        nodes:
          f: {{type: audio.file, params: {{path: "{path}"}}}}
          l: {{type: audio.level, in: {{audio: f}}}}
          k: {{type: audio.chroma, in: {{audio: f}}}}
          p: {{type: audio.pitch, in: {{audio: f}}}}
          c: {{type: test.collect, in: {{rms: l.rms, db: l.db, peak: l.peak, cls: k.class,
               name: k.name, chroma: k, midi: p.midi}}}}
        """)
    rows = rt.runner.nodes["c"].rows
    assert rows["rms"][40] == pytest.approx(1 / np.sqrt(2), rel=5e-3)
    assert rows["db"][40] == pytest.approx(-3.01, abs=0.05)
    assert rows["peak"][40] == pytest.approx(1.0, abs=1e-3)
    assert rows["db"][-1] == -120.0                       # silence floors
    assert rows["cls"][40] == 9 and rows["name"][40] == "A"
    assert rows["chroma"][40][9] == 1.0 and sorted(rows["chroma"][40])[-2] < 0.2
    assert rows["midi"][40] == pytest.approx(69.0, abs=0.05)


def test_tempo_tap_and_bpm_override(write_patch, reg, tmp_path):
    from tonegraph.engine.ports import Event
    from tonegraph.nodes.audio.tempo import Tempo

    from ..conftest import NodeDriver

    # Silence in, taps every 0.4 s: beats follow the taps at 150 BPM.
    d = NodeDriver(Tempo, {}, wired=["audio", "tap"], fps=44100 / 512)
    d.node.ctx.hop = 512
    d.node.configure()
    beats = []
    for k in range(600):
        t = k * 512 / 44100
        taps = tuple(Event(x) for x in (1.0, 1.4, 1.8, 2.2) if t <= x < t + 512 / 44100)
        out = d.tick(audio=None, tap=taps)
        beats += [e.t for e in out["beat"]]
    assert out["bpm"] == pytest.approx(150.0)
    assert out["confidence"] == 1.0
    after = [b for b in beats if b > 2.3]
    assert after[:3] == pytest.approx([2.6, 3.0, 3.4])
    d.node.inp["bpm"] = 60.0   # a fader forcing 60 BPM
    later = []
    for k in range(600, 900):
        later += [e.t for e in d.tick(audio=None, tap=())["beat"]]
    assert np.diff(later) == pytest.approx(1.0)


def test_synth_beats_are_sample_exact(write_patch, reg):
    rt = run_patch(write_patch, reg, """
        nodes:
          s: {type: audio.synth, params: {bpm: 100, bars: 2}}
          c: {type: test.collect, in: {beat: s.beat}}
        """, duration=6.0)
    beats = [e.t for evs in rt.runner.nodes["c"].rows["beat"] for e in evs]
    # 2 bars of 100 BPM = 4.8 s, then the loop starts again.
    assert beats[:9] == pytest.approx([0.6 * k for k in range(8)] + [4.8], abs=1 / 44100)


def test_committed_demo_recording_is_the_synth_render(tmp_path):
    from ..conftest import ROOT, tonegraph

    out = tmp_path / "groove.flac"
    res = tonegraph("synth", "-o", str(out), "--samplerate", "22050")
    assert res.returncode == 0, res.stderr
    a, _ = sf.read(out, dtype="int16")
    b, _ = sf.read(ROOT / "graphs" / "media" / "groove.flac", dtype="int16")
    assert np.array_equal(a, b)


def test_channel_pick_and_mix():
    from tonegraph.engine.ports import AudioBlock
    from tonegraph.nodes.audio.dsp import mono, pick_channels

    stereo = np.stack([np.full(4, 0.2, np.float32), np.full(4, 0.6, np.float32)], axis=1)
    assert pick_channels(stereo, -1)[:, 0] == pytest.approx([0.4] * 4)
    assert pick_channels(stereo, 1)[:, 0] == pytest.approx([0.6] * 4)
    assert pick_channels(stereo[:, 0], -1).shape == (4, 1)
    assert mono(AudioBlock(stereo, 0.0, 44100), 4) == pytest.approx([0.4] * 4)
    assert not mono(None, 8).any() and len(mono(None, 8)) == 8


def test_file_picks_a_channel(write_patch, reg, tmp_path):
    left = 0.5 * np.sin(2 * np.pi * 220 * np.arange(22050) / 44100)
    path = tmp_path / "lr.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 44100)
    levels = {}
    for channel in (-1, 0, 1):
        rt = run_patch(write_patch, reg, f"""
            nodes:
              f: {{type: audio.file, params: {{path: "{path}", channel: {channel}}}}}
              l: {{type: audio.level, in: {{audio: f}}}}
              c: {{type: test.collect, in: {{rms: l.rms}}}}
            """)
        levels[channel] = float(np.median(rt.runner.nodes["c"].rows["rms"][5:30]))
    assert levels[0] == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    assert levels[-1] == pytest.approx(levels[0] / 2, rel=0.02)
    assert levels[1] < 1e-6


def test_onset_and_beat_strengths_are_0_to_1_against_their_recent_history(write_patch, reg, tmp_path):
    """Clicks every 0.5 s, loud and soft in turn; after 12 s the whole track drops by
    20 dB.  Every strength is in 0..1, a loud click reads near 1 and a soft one well
    below it, and once the loud part is more than 'recent' (8 s) behind, the quiet
    part's loud clicks read near 1 again (against what was heard lately, not the
    loudest sound ever)."""
    sr, n = SR, 24 * SR
    x = (np.random.default_rng(2).standard_normal(n) * 0.001).astype(np.float32)   # a noise floor
    click = (np.random.default_rng(1).standard_normal(400) * np.exp(-np.arange(400) / 60)).astype(np.float32)
    times = np.arange(0.25, 24, 0.5)
    loud = {}
    for k, t in enumerate(times):
        gain = (1.0 if k % 2 == 0 else 0.25) * (1.0 if t < 12 else 0.1)
        i = int(t * sr)
        x[i:i + 400] += gain * click
        loud[round(t, 2)] = k % 2 == 0
    path = tmp_path / "clicks.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    out = tmp_path / "s.jsonl"
    run_patch(write_patch, reg, f"""
        patch: {{samplerate: {sr}, hop: {HOP}}}
        nodes:
          f: {{type: audio.file, params: {{path: "{path}", loop: false}}}}
          o: {{type: audio.onset, in: {{audio: f}}}}
          b: {{type: audio.tempo, in: {{audio: f}}}}
          r: {{type: io.record, params: {{path: "{out}"}}, in: {{onset: o, beat: b.beat, level: o.strength}}}}
        """)
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    values = [r["value"] for r in rows]
    assert all(0.0 <= v <= 1.0 for v in values), max(values)
    onsets = [(r["t"], r["value"]) for r in rows if r["name"] == "onset"]

    def near(t):
        k = min(loud, key=lambda c: abs(c - t))
        return k if abs(k - t) < 0.05 else None
    found = [(near(t), v) for t, v in onsets if near(t) is not None]
    assert len(found) >= 40
    for lo_t, hi_t in ((2.0, 12.0), (20.5, 24.0)):      # before the drop, and 8 s after it
        strong = [v for t, v in found if lo_t <= t < hi_t and loud[t]]
        weak = [v for t, v in found if lo_t <= t < hi_t and not loud[t]]
        assert np.median(strong) > 0.5 and np.median(weak) < 0.5 * np.median(strong), (lo_t, strong, weak)
    beats = [r["value"] for r in rows if r["name"] == "beat"]
    assert len(beats) > 20 and max(beats) > 0.5


def at_rate_and_back(samples: np.ndarray, rate: int, folder) -> tuple:
    """The groove played at ``rate``, and that same sound played at 44.1 kHz (at 8 kHz
    the hi-hats lose what they had above 4 kHz: this is the sound to compare with)."""
    import soxr

    heard = soxr.resample(samples, SR, rate)
    low, back = folder / f"groove-{rate}.wav", folder / f"groove-{rate}-at-44k.wav"
    sf.write(low, heard, rate, subtype="FLOAT")
    sf.write(back, soxr.resample(heard, rate, SR), SR, subtype="FLOAT")
    return low, back


def events_of(write_patch, reg, folder, audio, sr: int, node: str, port: str) -> np.ndarray:
    """The times of ``node``'s ``port`` events over a file played in a patch at ``sr``."""
    out = folder / f"{port}-{audio.stem}.jsonl"
    run_patch(write_patch, reg, f"""
        patch: {{samplerate: {sr}}}
        nodes:
          f: {{type: audio.file, params: {{path: "{audio}"}}}}
          n: {node}
          r: {{type: io.record, params: {{path: "{out}"}}, in: {{e: n.{port}}}}}
        """)
    return np.array([json.loads(line)["t"] for line in out.read_text().splitlines()])


@pytest.mark.parametrize("what,rate", [("onset", 8000), ("onset", 22050), ("onset", 48000), ("beat", 8000),
                                       ("beat", 48000)])
def test_aubio_hears_the_same_sound_alike_at_any_patch_rate(write_patch, reg, groove, tmp_path, what, rate):
    """aubio's detectors were tuned at 44.1 kHz, and its tracker analyses in 512-sample
    hops: a patch at another rate (an 8 kHz recording, a 48 kHz interface) is resampled
    to 44.1 kHz first, so a sound played at that rate gives the onsets (within 20 ms)
    and the beats (within 15 ms) the same sound gives at 44.1 kHz.  Unresampled, 8 kHz
    gave half the onsets, F 0.15 between the two, and beats placed coarsely in 64 ms
    hops, F 0.48."""
    import mir_eval

    path, samples, hits, _ = groove
    low, back = at_rate_and_back(samples, rate, tmp_path)
    node = ("{type: audio.onset, params: {method: hfc}, in: {audio: f}}" if what == "onset" else
            "{type: audio.tempo, params: {tracker: aubio}, in: {audio: f}}")
    same = events_of(write_patch, reg, tmp_path, back, SR, node, what)
    other = events_of(write_patch, reg, tmp_path, low, rate, node, what)
    if what == "onset":
        assert len(same) > 20
        assert mir_eval.onset.f_measure(same, other, window=0.02)[0] > 0.9, (len(same), len(other))
        assert mir_eval.onset.f_measure(np.array(hits), other, window=0.05)[0] > (0.7 if rate < 16000 else 0.9)
    else:
        assert len(same) > 8
        assert mir_eval.beat.f_measure(same, other, f_measure_threshold=0.015) > 0.9, (same, other)
