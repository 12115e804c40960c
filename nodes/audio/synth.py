"""audio.synth: a groove the project makes itself, for demos and tests without a microphone.

A four-to-the-floor pattern (kick on every beat, snare on 2 and 4, hi-hats on eighths),
a bass line and a chord pad cycling A minor, F, C, G, with quiet and loud sections
alternating every four bars.  It is rendered once, deterministically, and looped; the
``beat`` output fires at the pattern's own beats, sample-exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import AudioBlock, Event

CHORDS = ((57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62))  # Am F C G (MIDI)


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


@dataclass(frozen=True)
class Timbre:
    """How the groove sounds; the defaults are audio.synth's own sound.  Training sets
    (``tonegraph sounds``) vary these to cover more kinds of music than one groove."""

    kick_hz: float = 45.0          #: the kick's resting pitch
    kick_decay: float = 9.0        #: per second
    snare_hz: float = 185.0
    hat_gain: float = 0.35
    pad_gain: float = 0.08
    pad_wave: str = "sine"         #: sine, saw or square
    bass_gain: float = 0.25
    transpose: int = 0             #: semitones
    drive: float = 0.0             #: tanh saturation, 0 for none
    lowpass_hz: float = 0.0        #: a one-pole low-pass over the mix, 0 for none
    quiet_level: float = 0.25      #: level of the quiet sections (the loud ones are 1)


def _wave(kind: str, hz: float, t: np.ndarray) -> np.ndarray:
    if kind == "saw":
        return 2.0 * ((hz * t) % 1.0) - 1.0
    if kind == "square":
        return np.sign(np.sin(2 * np.pi * hz * t))
    return np.sin(2 * np.pi * hz * t)


def render_groove(samplerate: int = 44100, bpm: float = 120.0, bars: int = 16,
                  seed: int = 1, timbre: Timbre | None = None) -> tuple[np.ndarray, list[float], list[float]]:
    """Render the groove. Returns (mono float32 samples, hit times [s], beat times [s]).

    Sections of four bars alternate quiet (level 0.25) and loud (level 1.0), starting
    quiet, so loudness-driven behaviour can be checked against known passages.
    """
    tb_ = timbre or Timbre()
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    n = int(round(bars * 4 * beat * samplerate))
    out = np.zeros(n, dtype=np.float64)
    t_env = np.arange(int(0.5 * samplerate)) / samplerate

    def add(at: float, sound: np.ndarray, gain: float) -> None:
        i = int(round(at * samplerate))
        j = min(n, i + len(sound))
        out[i:j] += gain * sound[: j - i]

    kick = (np.sin(2 * np.pi * np.cumsum(tb_.kick_hz + 90 * np.exp(-t_env * 30)) / samplerate)
            * np.exp(-t_env * tb_.kick_decay))
    noise = rng.standard_normal(len(t_env))
    snare = (0.6 * noise + 0.5 * np.sin(2 * np.pi * tb_.snare_hz * t_env)) * np.exp(-t_env * 22)
    hat = np.diff(rng.standard_normal(len(t_env) + 1)) * np.exp(-t_env * 70) * 0.5
    hits: list[float] = []
    beats: list[float] = []
    for bar in range(bars):
        level = tb_.quiet_level if (bar // 4) % 2 == 0 else 1.0
        chord = tuple(m + tb_.transpose for m in CHORDS[bar % 4])
        t_bar = bar * 4 * beat
        pad_len = int(4 * beat * samplerate)
        tp = np.arange(pad_len) / samplerate
        pad = sum(_wave(tb_.pad_wave, _hz(m), tp) for m in chord) / 3
        pad *= np.minimum(1.0, tp / 0.05) * np.minimum(1.0, (4 * beat - tp) / 0.05)
        add(t_bar, pad, tb_.pad_gain * level)
        for b in range(4):
            tb = t_bar + b * beat
            beats.append(tb)
            hits.append(tb)
            add(tb, kick, 0.9 * level)
            if b in (1, 3):
                add(tb, snare, 0.5 * level)
            tbass = np.arange(int(beat * 0.9 * samplerate)) / samplerate
            f = _hz(chord[0] - 24)
            bass = (2 * ((f * tbass) % 1.0) - 1) * np.exp(-tbass * 4)
            add(tb, bass, tb_.bass_gain * level)
            for half in (0.0, 0.5):
                add(tb + half * beat, hat, tb_.hat_gain * level)
                if half:
                    hits.append(tb + half * beat)
    if tb_.lowpass_hz > 0:          # first-order low-pass response, applied in the frequency domain
        f = np.fft.rfftfreq(n, 1.0 / samplerate)
        out = np.fft.irfft(np.fft.rfft(out) / (1.0 + 1j * f / tb_.lowpass_hz), n)
    if tb_.drive > 0:
        out = np.tanh(tb_.drive * out / (np.abs(out).max() or 1.0))
    peak = np.abs(out).max() or 1.0
    return (0.8 * out / peak).astype(np.float32), sorted(hits), beats


class Synth(Node):
    type_name = "audio.synth"
    description = "A built-in drum-and-chords groove: sound to react to without a microphone."
    domain = "audio"
    default_output = "audio"
    params = {
        "bpm": P.number(120.0, "Tempo.", unit="BPM", min=40.0, max=240.0, restart=True),
        "bars": P.integer(16, "Length of the rendered loop.", min=1, max=128, restart=True),
        "seed": P.integer(1, "Seed of the noise in drums.", min=0, restart=True),
        "gain": P.number(1.0, "Multiplies the output.", min=0.0),
    }
    outputs = {
        "audio": ports.audio("The groove, one hop per tick, looping."),
        "beat": ports.event("The pattern's own beats."),
    }

    def configure(self) -> None:
        sr = self.ctx.samplerate
        self.samples, _, beats = render_groove(sr, self.p.bpm, self.p.bars, self.p.seed)
        self.beat_samples = np.round(np.array(beats) * sr).astype(np.int64)
        self.pos = 0

    def process(self, tick: Tick) -> None:
        hop, n = self.ctx.hop, len(self.samples)
        lo, hi = self.pos, self.pos + hop
        # The loop wraps inside a hop when needed, so it lasts exactly `bars` bars.
        x = self.samples[lo:hi] if hi <= n else np.concatenate([self.samples[lo:], self.samples[:hi - n]])
        if self.p.gain != 1.0:
            x = x * np.float32(self.p.gain)
        self.out["audio"] = AudioBlock(x.reshape(-1, 1), tick.t, self.ctx.samplerate, x)
        offsets = np.sort((self.beat_samples - lo) % n)
        hit = offsets[offsets < hop]
        if len(hit):
            sr = self.ctx.samplerate
            self.out["beat"] = tuple(Event(tick.t + float(o) / sr) for o in hit)
        self.pos = hi % n

    def state(self) -> dict:
        return {"pos": self.pos}

    def restore(self, state: dict) -> None:
        self.pos = int(state.get("pos", 0)) % len(self.samples)
