"""``tonegraph train onsets``: the learned onset detector (nodes/audio/learned.py),
trained on sound the project makes itself, and with ``--real LABELS`` on real
recordings labelled by tools/pseudolabel.py or tools/fofcharts.py beside it.

Training data, made afresh from ``--seed``:

* songs written at random as MIDI (mido) and rendered by FluidSynth through a General
  MIDI soundfont (Debian's ``fluid-soundfont-gm`` or ``timgm6mb-soundfont``, or
  ``--soundfont``): solo instruments (piano, guitars, basses, mallets, organ, brass,
  reeds, leads), chords, drum kits, bands of all three, and rock bands whose guitars
  are rendered apart, distorted and mixed up to 9 dB over the drums, most through a
  mastering compressor (a loud record's dense mix, where hits barely stand out), at
  60-200 BPM, with every note-on as an onset (moved by FluidSynth's own delay,
  measured first: 6 ms here);
* the built-in groove (audio.synth) in random timbres, with its known hits;
* metronome clicks and beeps (tone or noise bursts, sharp or soft, often in digital
  silence), and sound with no onsets: drones with vibrato and tremolo, slowly
  swelling noise;
* a quarter overdriven; then each clip is changed as a room and a recording would:
  level (-25..0 dB), a tilted EQ, reverb (0.1-1.5 s), background noise, and three in
  five are mixed with one or two other clips (their onsets joined); one in ten is left
  as it was made.  With ``--lossy``, last, some are heard through a lower sample rate
  (8-16 kHz) and some through a lossy codec (MP3 or Ogg Vorbis at a low bitrate), as
  phone and streamed recordings are.

The network (see nodes/audio/learned.py) learns, after frame ``t``, whether frame
``t - lookahead`` starts a note (targets 1 on the onset's frame and 0.5 on each side).
Training is deterministic for a seed on one machine, shows a progress bar, plots the
loss, keeps a checkpoint and resumes from it.  The result is an ``.npz`` file of
arrays (no pickles) that the audio node runs in numpy.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
from torch import nn
from torch.nn import functional as F

from tonegraph.nodes.audio import learned
from tonegraph.nodes.audio.synth import Timbre, render_groove
from tonegraph.nodes.ml.frontend import MelFrontEnd
from .pseudolabel import merge
from .train import (Report, TrainError, _load_checkpoint, _plot, _progress, _resumed, _running_mean,
                    _save_checkpoint, _saved_on_interrupt)

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2",
              "/usr/share/sounds/sf2/default-GM.sf2")
#: General MIDI programs with a clear attack (pads and slow strings left out: where a
#: note "starts" in them is a matter of taste).
MELODIC = (list(range(0, 16)) + list(range(16, 21)) + list(range(24, 40)) + [45, 46, 47]
           + list(range(56, 80)) + list(range(80, 88)) + list(range(104, 120)))
#: The onset songs' programs: those and General MIDI's voices (choir aahs, voice oohs,
#: synth voice), whose notes start as softly as sung ones (the beat songs keep MELODIC).
ONSET_MELODIC = sorted(MELODIC + [52, 53, 54])
BASS = list(range(32, 40))
DRUMS = {"kick": (35, 36), "snare": (38, 40, 37), "hat": (42, 44, 46), "tom": (41, 43, 45, 47, 48, 50),
         "cymbal": (49, 51, 52, 55, 57, 59), "perc": (39, 54, 56, 60, 61, 62, 63, 64, 69, 70, 75, 76)}


class OnsetNet(nn.Module):
    """Two causal convolutions, a GRU and a linear layer over per-frame features
    (standardised log-mel and its rise); logits, one per frame."""

    def __init__(self, features: int, hidden: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(features, hidden, 5)
        self.conv2 = nn.Conv1d(hidden, hidden, 3)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # (B, T, features) -> (B, T)
        h = F.relu(self.conv1(F.pad(x.transpose(1, 2), (self.conv1.kernel_size[0] - 1, 0))))
        h = F.relu(self.conv2(F.pad(h, (self.conv2.kernel_size[0] - 1, 0))))
        h, _ = self.gru(h.transpose(1, 2))
        return self.out(h).squeeze(-1)

    def arrays(self) -> dict[str, np.ndarray]:
        g = self.gru
        t = lambda p: p.detach().cpu().numpy()  # noqa: E731
        return {"conv1_w": t(self.conv1.weight), "conv1_b": t(self.conv1.bias),
                "conv2_w": t(self.conv2.weight), "conv2_b": t(self.conv2.bias),
                "gru_wi": t(g.weight_ih_l0), "gru_wh": t(g.weight_hh_l0), "gru_bi": t(g.bias_ih_l0),
                "gru_bh": t(g.bias_hh_l0), "out_w": t(self.out.weight), "out_b": t(self.out.bias)}


def features(mel: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The network's input for a whole clip, as learned.Stream makes it frame by frame."""
    z = (mel - mean) / std
    prev = np.vstack([z[:1], z[:-1]])
    return np.concatenate([z, np.maximum(z - prev, 0.0)], axis=1).astype(np.float32)


# -- data -----------------------------------------------------------------------------------


def find_soundfont(given: Path | None) -> Path | None:
    if given is not None:
        if not Path(given).is_file():
            raise TrainError(f"--soundfont: no such file: {given}")
        return Path(given)
    return next((Path(p) for p in SOUNDFONTS if Path(p).is_file()), None)


def random_song(rng: np.random.Generator, seconds: float) -> list[tuple[Any, np.ndarray, float]]:
    """A song written at random as MIDI, as its parts: each a MIDI file, its note-on
    times [s] and how hard its sound is to be overdriven (0: clean).  Most songs are
    one part; a rock band's guitars are a part of their own, to be distorted alone and
    mixed loud over the drums, as on a record."""
    import mido

    bpm = float(rng.uniform(60, 200))
    tpb = 480
    beat_s = 60.0 / bpm
    style = rng.choice(["solo", "chords", "drums", "band", "band", "rock", "rock"])
    events: list[tuple[float, int, mido.Message]] = []     # (beats, order, message)

    def note(ch: int, at: float, length: float, pitch: int, vel: int) -> None:
        events.append((at, 1, mido.Message("note_on", channel=ch, note=int(pitch), velocity=int(vel))))
        events.append((at + length, 0, mido.Message("note_off", channel=ch, note=int(pitch), velocity=0)))

    beats = seconds / beat_s
    channel = 0

    def melodic(program: int, low: int, high: int, chords: bool, riff: bool = False) -> int:
        """A line (or chords) on a channel of its own; ``riff``: power chords struck
        on every eighth or quarter with few rests, as a rhythm guitar plays."""
        nonlocal channel
        ch = channel
        channel += 1
        events.append((0.0, 0, mido.Message("program_change", channel=ch, program=int(program))))
        if program < 8 and not riff and rng.random() < 0.5:       # the sustain pedal, changed each bar
            for bar in np.arange(0.0, beats, 4.0):
                events.append((float(bar), 0, mido.Message("control_change", channel=ch, control=64, value=0)))
                events.append((float(bar) + 0.1, 0, mido.Message("control_change", channel=ch, control=64, value=127)))
        at, pitch = float(rng.uniform(0, 1)), int(rng.integers(low, high))
        grid = rng.choice([0.5, 0.5, 1.0]) if riff else rng.choice([0.25, 0.5, 1.0 / 3.0, 0.5, 1.0])
        if riff:
            at = 0.0
        while at < beats - 0.5:
            length = float(rng.choice([1, 1, 1, 2] if riff else [1, 1, 2, 3, 4, 6, 8])) * grid
            if rng.random() < (0.03 if riff else 0.15):          # a rest
                at += length
                continue
            pitch = int(np.clip(pitch + rng.integers(-5, 6), low, high))
            vel = int(rng.integers(70, 128) if riff else rng.integers(20, 128))
            gate = length * float(rng.uniform(0.3, 1.0))
            pitches = [pitch]
            if riff:
                pitches += [pitch + 7] + ([pitch + 12] if rng.random() < 0.5 else [])
            elif chords or rng.random() < 0.1:
                pitches += [pitch + d for d in rng.choice([3, 4, 5, 7, 9, 12], size=int(rng.integers(1, 4)),
                                                           replace=False)]
            spread = float(rng.uniform(0, 0.03)) / beat_s if len(pitches) > 1 else 0.0   # strummed
            for k, p in enumerate(pitches):
                if p < 120:
                    note(ch, at + k * spread, gate, p, vel)
            at += length
        return ch

    def drums() -> None:
        pattern = rng.integers(0, 4)
        step = 0.25 if rng.random() < 0.5 else 0.5
        at = 0.0
        while at < beats - 0.25:
            pos = at % 4
            hits = []
            if (pattern == 0 and pos in (0, 2)) or (pattern == 1 and pos % 1 == 0) or \
               (pattern >= 2 and pos in (0, 2.5)) or rng.random() < 0.05:
                hits.append(rng.choice(DRUMS["kick"]))
            if pos in (1, 3) or rng.random() < 0.04:
                hits.append(rng.choice(DRUMS["snare"]))
            if (at / step) % 1 == 0 and rng.random() < 0.85:
                hits.append(DRUMS["hat"][0] if rng.random() < 0.8 else rng.choice(DRUMS["hat"]))
            if pos == 0 and rng.random() < 0.25:
                hits.append(rng.choice(DRUMS["cymbal"]))
            if rng.random() < 0.05:
                hits.append(rng.choice(DRUMS["tom"] + DRUMS["perc"]))
            for h in hits:
                note(9, at, 0.1, h, int(rng.integers(40, 128)))
            at += 0.25

    loud: set[int] = set()                 # the channels played through a distortion
    if style == "solo":
        melodic(int(rng.choice(ONSET_MELODIC)), 40, 88, False)
    elif style == "chords":
        melodic(int(rng.choice([0, 1, 2, 4, 5, 24, 25, 26, 27, 16, 17])), 45, 76, True)
    elif style == "drums":
        drums()
    elif style == "band":
        drums()
        melodic(int(rng.choice(BASS)), 28, 52, False)
        for _ in range(int(rng.integers(1, 3))):
            melodic(int(rng.choice(ONSET_MELODIC)), 48, 88, rng.random() < 0.4)
    else:                                   # rock: drums, bass, distorted guitars
        drums()
        melodic(int(rng.choice(BASS)), 28, 45, False, riff=rng.random() < 0.5)
        loud.add(melodic(int(rng.choice([29, 30, 27, 25])), 40, 60, False, riff=True))
        if rng.random() < 0.5:
            loud.add(melodic(int(rng.choice([29, 30, 81, 61, 65, 66])), 55, 84, False))
    events.sort(key=lambda e: (e[0], e[1]))
    return midi_parts(events, loud, float(rng.uniform(5, 40)), tpb, beat_s)


def midi_parts(events: list, loud: set[int], drive: float, tpb: int, beat_s: float
               ) -> list[tuple[Any, np.ndarray, float]]:
    """A song's (beats, order, message) events, time-ordered, as MIDI files: one of the
    channels played clean, one of the ``loud`` ones (to be driven at ``drive``), each
    with its note-on times [s] and drive (0: clean)."""
    import mido

    parts = []
    for chosen in ({m.channel for _, _, m in events} - loud, loud):
        if not chosen:
            continue
        mid = mido.MidiFile(ticks_per_beat=tpb)
        track = mido.MidiTrack()
        mid.tracks.append(track)
        track.append(mido.MetaMessage("set_tempo", tempo=int(round(beat_s * 1e6))))
        now = 0
        onsets = []
        for at, _, msg in events:
            if msg.channel not in chosen:
                continue
            tick = int(round(at * tpb))
            track.append(msg.copy(time=tick - now))
            now = tick
            if msg.type == "note_on" and msg.velocity > 0:
                onsets.append(tick / tpb * beat_s)
        parts.append((mid, np.array(sorted(set(onsets))), drive if chosen is loud else 0.0))
    return parts


def random_timbre(rng: np.random.Generator) -> Timbre:
    """The built-in groove's sounds, drawn at random."""
    return Timbre(kick_hz=float(rng.uniform(35, 70)), kick_decay=float(rng.uniform(5, 20)),
                  snare_hz=float(rng.uniform(150, 260)), hat_gain=float(rng.uniform(0.1, 0.6)),
                  pad_gain=float(rng.uniform(0, 0.15)), pad_wave=str(rng.choice(["sine", "saw", "square"])),
                  bass_gain=float(rng.uniform(0, 0.4)), transpose=int(rng.integers(-5, 6)),
                  quiet_level=float(rng.uniform(0.2, 1.0)))


def mix_song(rng: np.random.Generator, parts: list, soundfont: Path, sr: int, n: int, folder: Path
             ) -> np.ndarray:
    """A song's parts (``midi_parts``) rendered and mixed as on a record, ``n`` samples:
    each at its own loudness (distorted guitars up to 9 dB over the rest), most
    multi-part songs through a mastering compressor."""
    x = np.zeros(n, np.float32)
    for k, (mid, _, drive) in enumerate(parts):
        y = fitted(render(mid, soundfont, sr, folder), n)
        if drive:
            y = overdrive(y, drive)
        level = np.sqrt(np.mean(y ** 2)) + 1e-9
        x += y / level * (10 ** (rng.uniform(-3, 9) / 20) if k else 1.0)
    x = x / (np.max(np.abs(x)) + 1e-9)
    if len(parts) > 1 and rng.random() < 0.7:
        x = squash(rng, x, sr)
    return x


def overdrive(x: np.ndarray, drive: float) -> np.ndarray:
    """A distortion pedal: the sound driven into tanh, its peak at full scale."""
    return (np.tanh(drive * x / (np.max(np.abs(x)) + 1e-9)) / np.tanh(drive)).astype(np.float32)


def squash(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    """A mastering compressor: everything louder than the middle of the level's range
    turned down hard (3:1 to 20:1 over 5-30 ms), so hits barely stand out of a dense
    mix, as on a loud record."""
    win = max(1, int(sr * rng.uniform(0.005, 0.03)))
    env = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(win) / win, mode="same")) + 1e-9
    above = np.maximum(env / np.percentile(env, rng.uniform(30, 70)), 1.0)
    y = x * above ** (1.0 / rng.uniform(3, 20) - 1.0)
    return (y / (np.max(np.abs(y)) + 1e-9) * np.max(np.abs(x))).astype(np.float32)


def render(mid, soundfont: Path, sr: int, folder: Path) -> np.ndarray:
    import soundfile as sf

    src, wav = folder / "song.mid", folder / "song.wav"
    mid.save(src)
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(sr),
                    "-F", str(wav), str(soundfont), str(src)], check=True, capture_output=True, timeout=120)
    x, _ = sf.read(wav, dtype="float32", always_2d=True)
    return x.mean(axis=1)


def render_delay(soundfont: Path, sr: int) -> float:
    """How late FluidSynth's sound starts after its MIDI note-on [s] (it works in
    blocks, a few ms here), measured on a piano and a snare: added to every rendered
    onset so the labels sit where the sound does."""
    import mido

    mid = mido.MidiFile(ticks_per_beat=960)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000))          # a beat a second
    times = 0.5 + 0.9 * np.arange(12) + np.linspace(0.0, 0.1, 12)
    now = 0
    for k, t in enumerate(times):
        ch, pitch = (9, 38) if k % 2 else (0, 60)
        tick = int(round(t * 960))
        track.append(mido.Message("note_on", channel=ch, note=pitch, velocity=100, time=tick - now))
        track.append(mido.Message("note_off", channel=ch, note=pitch, velocity=0, time=100))
        now = tick + 100
    with tempfile.TemporaryDirectory() as d:
        x = render(mid, soundfont, sr, Path(d))
    late = []
    for t in np.round(times * 960) / 960:
        seg = np.abs(x[int((t - 0.02) * sr):int((t + 0.05) * sr)])
        if seg.size and seg.max() > 0:
            late.append(int(np.argmax(seg > 0.02 * seg.max())) / sr - 0.02)
    return float(np.clip(np.median(late), 0.0, 0.05)) if late else 0.0


def augment(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    n = len(x)
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    tilt = rng.uniform(-6, 6)                        # dB per octave around 1 kHz
    spec *= 10 ** (tilt * np.log2(np.maximum(f, 20.0) / 1000.0) / 20.0)
    x = np.fft.irfft(spec, n)
    if rng.random() < 0.6:                           # a room
        rt = rng.uniform(0.1, 1.5)
        t = np.arange(int(rt * sr)) / sr
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt)
        ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
        m = n + len(ir)
        wet = np.fft.irfft(np.fft.rfft(x, m) * np.fft.rfft(ir, m), m)[:n]
        x = x + rng.uniform(0.1, 0.6) * wet
    peak = np.max(np.abs(x)) + 1e-9
    x = x / peak * 10 ** (rng.uniform(-25, -1) / 20)
    if rng.random() < 0.5:                           # background noise
        noise = rng.standard_normal(n)
        if rng.random() < 0.5:
            noise = np.cumsum(noise)
            noise -= np.convolve(noise, np.ones(256) / 256, mode="same")
        noise /= np.std(noise) + 1e-9
        x = x + noise * np.std(x) * 10 ** (-rng.uniform(15, 50) / 20)
    return x.astype(np.float32)


#: With ``lossy``, the last of a recording's changes, to onset clips only (the beat
#: activation's training, tools/beattrain.py, keeps its data): the share of clips heard
#: through a lower sample rate (one of LOW_RATES), and the share through a lossy codec.
LOW_RATES, LOW_SHARE, CODEC_SHARE = (8000, 11025, 16000), 0.15, 0.2
#: The codecs, as soundfile (libsndfile) encodes them; both keep a click in place.
CODECS = (("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS"))


def fitted(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` cut or padded with silence to ``n`` samples."""
    return np.pad(x, (0, max(0, n - len(x))))[:n]


def low_rate(x: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """``x`` as a recording made at ``rate`` and played at ``sr``: nothing above
    ``rate / 2`` left, the same length and timing."""
    return fitted(soxr.resample(soxr.resample(x, sr, rate), rate, sr), len(x)).astype(np.float32)


def encoded(x: np.ndarray, sr: int, codec: tuple[str, str], level: float) -> np.ndarray:
    """``x`` encoded by ``codec`` at ``level`` (0..1, the higher the fewer bits) and
    decoded again, the same length and timing."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sr, format=codec[0], subtype=codec[1], compression_level=level)
    buf.seek(0)
    return fitted(sf.read(buf, dtype="float32")[0], len(x))


def recorded(rng: np.random.Generator, x: np.ndarray, sr: int) -> np.ndarray:
    """Some clips through a lower sample rate, some through a lossy codec."""
    if rng.random() < LOW_SHARE:
        x = low_rate(x, sr, int(rng.choice(LOW_RATES)))
    if rng.random() < CODEC_SHARE:
        x = encoded(x, sr, CODECS[int(rng.integers(len(CODECS)))], float(rng.uniform(0.5, 0.9)))
    return x


def texture(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Sound with no onsets in it: drones with vibrato and tremolo, noise that swells
    slowly (what a detector must not take for notes: sustained pads, cymbal wash)."""
    t = np.arange(n) / sr
    if rng.random() < 0.5:
        x = np.zeros(n)
        for _ in range(int(rng.integers(1, 5))):
            hz = 55 * 2 ** rng.uniform(0, 5)
            vib = 1 + 0.01 * rng.uniform(0, 1) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
            x += np.sin(2 * np.pi * np.cumsum(hz * vib) / sr) * rng.uniform(0.2, 1)
        # Tremolo slower and shallower than a fast click train, which is all onsets.
        x *= 1 + rng.uniform(0.1, 0.4) * np.sin(2 * np.pi * rng.uniform(1, 5) * t)
    else:
        noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * np.linspace(1, rng.uniform(0.05, 1), n // 2 + 1), n)
        period = rng.uniform(1.0, 4.0)
        x = noise * (0.5 - 0.5 * np.cos(2 * np.pi * t / period)) ** 2
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.5)      # slow in and out: no onset
    return (x * fade / (np.max(np.abs(x)) + 1e-9)).astype(np.float32)


def clicks(rng: np.random.Generator, n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Metronome clicks and beeps: tone or noise bursts, sharp or a few ms soft, short
    or long, on a tempo or anywhere, often in digital silence (what a click track or a
    test signal is)."""
    x = np.zeros(n)
    if rng.random() < 0.6:                     # 0.8 to 15 clicks a second
        period = 1.0 / np.exp(rng.uniform(np.log(0.8), np.log(15.0)))
        times = np.arange(rng.uniform(0, period), n / sr - 0.05, period)
    else:
        times = np.sort(rng.uniform(0, n / sr - 0.05, int(rng.integers(3, 30))))
    hz, length = rng.uniform(200, 5000), rng.uniform(0.005, 0.15)
    attack, tone = rng.choice([0.0, 0.001, 0.003, 0.006]), rng.random() < 0.7
    kept = []
    for t in times:
        if kept and t - kept[-1] < 0.06:
            continue
        m = int(length * sr)
        u = np.arange(m) / sr
        env = np.minimum(1.0, u / attack) if attack > 0 else np.ones(m)
        env *= np.exp(-u / (length / rng.uniform(0.5, 4)))
        burst = np.sin(2 * np.pi * hz * u) if tone else rng.standard_normal(m)
        i = int(t * sr)
        x[i:i + m] += (burst * env * rng.uniform(0.3, 1.0))[: n - i]
        kept.append(t)
    return x.astype(np.float32), np.array(kept)


def make_clips(count: int, seconds: float, seed: int, soundfont: Path | None, sr: int,
               progress=None, lossy: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` clips of sound and their onsets [s]; with ``lossy``, some through a
    lower sample rate or a lossy codec (:func:`recorded`)."""
    rng = np.random.default_rng(seed)
    raw: list[tuple[np.ndarray, np.ndarray]] = []
    n = int(seconds * sr)
    late = render_delay(soundfont, sr) if soundfont is not None else 0.0
    with tempfile.TemporaryDirectory() as d:
        for i in range(count):
            kind = rng.random()
            if kind < 0.12:
                x, onsets = texture(rng, n, sr), np.zeros(0)
            elif kind < 0.2:
                x, onsets = clicks(rng, n, sr)
            elif soundfont is None or kind < 0.25:
                timbre = random_timbre(rng)
                bpm = float(rng.uniform(70, 180))
                x, hits, _ = render_groove(sr, bpm, max(1, int(seconds / (240 / bpm)) + 1),
                                           seed=int(rng.integers(1 << 30)), timbre=timbre)
                onsets = np.array(hits)
            else:
                parts = random_song(rng, seconds)
                x = mix_song(rng, parts, soundfont, sr, n, Path(d))
                onsets = np.concatenate([times + late for _, times, _ in parts])
            x = fitted(x, n)
            if rng.random() < 0.25:                          # overdriven, as guitars are
                x = overdrive(x, rng.uniform(2, 20))
            raw.append((x, onsets[onsets < seconds - 0.05]))
            if progress is not None:
                progress(i + 1)
    clips = []
    for i, (x, onsets) in enumerate(raw):
        if rng.random() < 0.1:                               # left as it is: digital silence and all
            clips.append((x.astype(np.float32), merge(onsets)))
            continue
        for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):   # mixed with other clips
            j = int(rng.integers(len(raw)))
            y, more = raw[j]
            x = x + y * 10 ** (rng.uniform(-12, 0) / 20)
            onsets = np.concatenate([onsets, more])
        x = augment(rng, x, sr)
        clips.append((recorded(rng, x, sr) if lossy else x, merge(onsets)))
    return clips


def labelled_songs(labels: Path) -> tuple[Path, list[dict]]:
    """The songs' folder and the songs (``file``, ``labels``) that the summary.json of
    ``python -m tonegraph.tools.pseudolabel``'s output folder ``labels`` lists, each
    song and label file checked to be there."""
    import json

    try:
        summary = json.loads((Path(labels) / "summary.json").read_text())
        folder, songs = Path(summary["folder"]), list(summary["songs"])
        files = [(sound, song["labels"]) for song in songs for sound in _files(song)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainError(f"{labels}: not a folder of labels from python -m tonegraph.tools.pseudolabel or "
                         f"tonegraph.tools.fofcharts (its summary.json, naming the songs' folder: {exc})") from None
    for sound, onsets in files:
        for path in (folder / sound, Path(labels) / onsets):
            if not path.is_file():
                raise TrainError(f"{labels}: {path} is missing")
    return folder, songs


def _files(song: dict) -> list[str]:
    """A labelled song's sound files: one, or stems to be mixed."""
    return [song["file"]] if isinstance(song["file"], str) else list(song["file"])


def real_pieces(labels: Path, seconds: float, sr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Real recordings labelled by ``python -m tonegraph.tools.pseudolabel`` or
    ``tonegraph.tools.fofcharts`` (``labels``: the output folder, whose summary.json names
    the songs' folder and each song's sound file, or stems to mix, and label file), at
    ``sr`` mono, cut into consecutive ``seconds``-long pieces with their events [s]
    (onsets, or beats, merged as renders' are; a song's last, shorter piece is left out,
    and with a ``span`` [s] in its entry, every piece not wholly inside it)."""
    import soxr

    from .pseudolabel import mono

    labels = Path(labels)
    folder, songs = labelled_songs(labels)
    n = int(seconds * sr)
    pieces = []
    for song in songs:
        stems = []
        for name in _files(song):                       # stems are mixed, each weighed alike
            y, rate = mono(folder / name)
            stems.append(y if rate == sr else soxr.resample(y, rate, sr).astype(np.float32))
        x = np.mean([y[:min(map(len, stems))] for y in stems], axis=0, dtype=np.float32)
        try:
            onsets = merge(np.array([float(v) for v in (labels / song["labels"]).read_text().split()]))
        except ValueError as exc:
            raise TrainError(f"{labels / song['labels']}: not one time [s] a line ({exc})") from None
        first, last = song.get("span", (0.0, len(x) / sr))   # where the labels hold
        for start in range(0, len(x) - n + 1, n):
            t0 = start / sr
            if t0 < first or t0 + seconds > last + 0.05:
                continue
            inside = onsets[(onsets >= t0) & (onsets < t0 + seconds - 0.05)] - t0
            pieces.append((np.ascontiguousarray(x[start:start + n]), inside))
    if not pieces:
        raise TrainError(f"{labels}: no song of {seconds:g} s or longer")
    return pieces


def with_real(make: Any, labels: Path) -> Any:
    """``make`` (rendered clips) followed by :func:`real_pieces` of ``labels``, half of
    them changed as :func:`augment` changes rendered clips (level, EQ, room, noise)."""

    def made(count: int, seconds: float, seed: int, soundfont: Path | None, sr: int,
             progress=None) -> list[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng(seed + 1000)
        rendered = make(count, seconds, seed, soundfont, sr, progress)
        return rendered + [(augment(rng, x, sr) if rng.random() < 0.5 else x, onsets)
                           for x, onsets in real_pieces(labels, seconds, sr)]

    return made


def clip_frames(x: np.ndarray, sr: int, front: dict) -> np.ndarray:
    """A training clip's log-mel frames at the clip's own level.  audio.onset hears its
    input levelled (learned.Leveller), quieter than most clips are here, and on the
    real recordings of make eval that mismatch is what gains: a network trained on
    levelled clips scored 0.649 held out by source against 0.696 for the same recipe
    trained so (docs/real-training-music.md)."""
    frames = MelFrontEnd(front, sr).push(x)
    return np.stack(frames) if frames else np.zeros((0, int(front["bands"])), np.float32)


def targets(onsets: np.ndarray, frames: int, front: dict) -> np.ndarray:
    """1 on each onset's frame, 0.5 on the frames beside it."""
    y = np.zeros(frames, np.float32)
    k = np.round(onsets * float(front["samplerate"]) / float(front["hop"])).astype(int)
    for d, v in ((-1, 0.5), (1, 0.5), (0, 1.0)):
        idx = k + d
        idx = idx[(idx >= 0) & (idx < frames)]
        y[idx] = np.maximum(y[idx], v)
    return y


# -- training -------------------------------------------------------------------------------


def train_onsets(output: Path, *, clips: int = 1600, seconds: float = 8.0, steps: int = 10000,
                 batch: int = 16, length: int = 400, hidden: int = 64, lookahead: int = 1,
                 lr: float = 2e-3, seed: int = 0, members: int = 1, soundfont: Path | None = None,
                 plot: Path | None = None, checkpoint: Path | None = None, resume: bool = False,
                 checkpoint_every: int = 500, quiet: bool = False, real: Path | None = None,
                 lossy: bool = False) -> Report:
    if real is not None:
        labelled_songs(real)                                  # before the renders, not after
    rendered = functools.partial(make_clips, lossy=lossy)
    make = rendered if real is None else with_real(rendered, real)
    extra = ({} if real is None else {"real": Path(real).name}) | ({"lossy": True} if lossy else {})
    report = train_detector("onsets", make, dict(learned.FRONT), output, clips=clips, seconds=seconds,
                            steps=steps, batch=batch, length=length, hidden=hidden, lookahead=lookahead,
                            lr=lr, halve_every=2000, seed=seed, members=members, soundfont=soundfont,
                            plot=plot, checkpoint=checkpoint, resume=resume,
                            checkpoint_every=checkpoint_every, quiet=quiet,
                            extra=extra or None)
    w = learned.Weights.load(output)
    report.clicks = heard_clicks(w)
    if members > 1:
        report.network_clicks = [heard_clicks(w.network(i))[0] for i in range(members)]
    return report


def click_track(sr: int, per_second: float) -> tuple[np.ndarray, np.ndarray]:
    """Six seconds of a click track as jack_metro plays one (1 kHz, 30 ms, amplitude
    0.5) in digital silence, and its clicks' times [s]."""
    x = np.zeros(6 * sr, np.float32)
    u = np.arange(int(0.03 * sr)) / sr
    times = np.arange(0.25, 5.9, 1.0 / per_second)
    for t in times:
        x[int(t * sr):int(t * sr) + len(u)] += 0.5 * np.sin(2 * np.pi * 1000 * u)
    return x, times


def heard_clicks(w: learned.Weights, per_second: float = 10.0) -> tuple[int, int]:
    """How many clicks of a :func:`click_track` a detector hears at audio.onset's own
    settings for it (clicks with an onset within 30 ms, each onset counted for one
    click, less the onsets it reports anywhere else), and of how many: networks trained alike
    on other seeds differ here (one heard 11 of 57 at 10 a second, where the shipped
    one hears them all)."""
    from tonegraph.nodes.audio.onset import learned_onsets

    sr = int(w.front["samplerate"])
    x, times = click_track(sr, per_second)
    fps = sr / float(w.front["hop"])
    mel = np.stack([m for m, _ in learned.Leveller(w.front).push(x)])
    found = list(learned_onsets(learned.activations(w, mel), fps))
    matched = 0
    for t in times:
        near = [f for f in found if abs(f - t) < 0.03]
        if near:
            found.remove(min(near, key=lambda f: abs(f - t)))
            matched += 1
    return max(0, matched - len(found)), len(times)


def train_detector(kind: str, make: Any, front: dict, output: Path, *, members: int = 1, seed: int,
                   plot: Path | None, checkpoint: Path | None, resume: bool, **settings: Any) -> Report:
    """Train ``members`` networks, each as :func:`train_network` with its own seed
    (``seed``, ``seed + 1``, ...: its own songs, its own start), and write them as one
    weights file whose activation is their mean.  Each member's finished weights are
    kept beside the checkpoint (``<checkpoint>.m<i>.npz``) until the file is written:
    ``resume`` takes those as they are, resumes the member that was training from its
    checkpoint, and trains the rest."""
    checkpoint = checkpoint or output.with_name(output.stem + ".ckpt")
    if members == 1:
        return train_network(kind, make, front, output, seed=seed, plot=plot, checkpoint=checkpoint,
                             resume=resume, **settings)
    t0 = time.perf_counter()
    first = checkpoint.with_name(f"{checkpoint.stem}.m0{checkpoint.suffix}")
    if resume and not first.is_file():
        resume = _resumed(first, kind) is not None        # none yet: from the beginning, said once
    parts = []
    for i in range(members):
        part = checkpoint.with_name(f"{checkpoint.stem}.m{i}.npz")
        ck = checkpoint.with_name(f"{checkpoint.stem}.m{i}{checkpoint.suffix}")
        want = {"clips": settings["clips"], "seconds": settings["seconds"], "steps": settings["steps"],
                "seed": seed + i}
        _, config = learned.read(part) if resume and part.is_file() else ({}, {})
        if {k: config.get("trained", {}).get(k) for k in want} != want:
            train_network(kind, make, front, part, seed=seed + i, plot=None, checkpoint=ck,
                          resume=resume and ck.is_file(), **settings)
        parts.append((part, ck))
    final = write_ensemble(kind, output, plot, parts)
    for part, _ in parts:
        part.unlink()
    return Report(output, plot, time.perf_counter() - t0, final, settings["clips"] * members)


def write_ensemble(kind: str, output: Path, plot: Path | None, parts: list[tuple[Path, Path]]) -> float:
    """Write the networks of ``parts`` ((weights file, its checkpoint), in seed order)
    as one weights file, and plot their training losses; the mean of their last 50
    steps' losses."""
    nets = [learned.read(part) for part, _ in parts]
    curves = {f"network {i + 1} (seed {config['trained']['seed']})":
              _running_mean(_load_checkpoint(ck, kind)["losses"], 50)
              for i, ((_, ck), (_, config)) in enumerate(zip(parts, nets))}
    output.parent.mkdir(parents=True, exist_ok=True)
    learned.save_ensemble(output, nets)
    if plot is not None:
        _plot(plot, curves, "step", ("onset detector" if kind == "onsets" else "beat activation")
              + f": {len(parts)} networks, training loss (mean of 50 steps)")
    return float(np.mean([c[-1] for c in curves.values()]))


def train_network(kind: str, make: Any, front: dict, output: Path, *, clips: int, seconds: float,
                  steps: int, batch: int, length: int, hidden: int, lookahead: int, lr: float,
                  halve_every: int, seed: int, soundfont: Path | None, plot: Path | None,
                  checkpoint: Path, resume: bool, checkpoint_every: int, quiet: bool,
                  extra: dict | None = None) -> Report:
    """Train an OnsetNet on ``make(count, seconds, seed, soundfont, samplerate,
    progress)``'s clips and their event times (onsets, or beats) over ``front``'s
    log-mel frames, the learning rate halved every ``halve_every`` steps, and write its
    weights file."""
    if shutil.which("fluidsynth") is None:
        raise TrainError("fluidsynth is not installed (Debian: apt install fluidsynth fluid-soundfont-gm)")
    font = find_soundfont(soundfont)
    if font is None:
        raise TrainError("no General MIDI soundfont found (Debian: apt install fluid-soundfont-gm), "
                         "or name one with --soundfont")
    t0 = time.perf_counter()
    sr = int(front["samplerate"])
    state = _resumed(checkpoint, kind) if resume else None     # before hours of data
    torch.manual_seed(seed)
    with _progress(clips, "data", quiet) as bar:
        task = bar.add_task(f"rendering {clips} clips through {font.name}", total=clips)
        data = make(clips, seconds, seed, font, sr, progress=lambda k: bar.update(task, completed=k))
    mels = [clip_frames(x, sr, front) for x, _ in data]
    everything = np.concatenate(mels)
    mean, std = everything.mean(axis=0), everything.std(axis=0) + 1e-3
    feats = [features(m, mean, std) for m in mels]
    ys = [targets(on, len(m), front) for (_, on), m in zip(data, mels)]
    length = min(length, min(len(m) for m in mels))
    model = OnsetNet(feats[0].shape[1], hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    start = 0
    gen = np.random.default_rng(seed + 1)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        losses, start = list(state["losses"]), int(state["step"])
        gen.bit_generator.state = state["numpy"]
        torch.set_rng_state(state["torch"])
    pos_weight = torch.tensor(1.0)

    def save(step: int) -> None:
        _save_checkpoint(checkpoint, {"checkpoint": kind, "model": model.state_dict(),
                                      "optimiser": opt.state_dict(), "losses": losses, "step": step,
                                      "numpy": gen.bit_generator.state, "torch": torch.get_rng_state()})

    with _progress(steps, "train", quiet) as bar, _saved_on_interrupt(save, lambda: len(losses)):
        task = bar.add_task(kind, total=steps, completed=start)
        for step in range(start, steps):
            idx = gen.integers(len(feats), size=batch)
            xb, yb = [], []
            for i in idx:
                s = int(gen.integers(0, len(feats[i]) - length + 1))
                xb.append(feats[i][s:s + length])
                # After frame t the network answers for frame t - lookahead.
                y = np.concatenate([np.zeros(lookahead, np.float32), ys[i][s:s + length - lookahead]])
                yb.append(y)
            x = torch.from_numpy(np.stack(xb))
            y = torch.from_numpy(np.stack(yb))
            for group in opt.param_groups:          # halved every halve_every steps, whatever --steps
                group["lr"] = lr * 0.5 ** (step / halve_every)
            logits = model(x)[:, lookahead:]
            loss = F.binary_cross_entropy_with_logits(logits, y[:, lookahead:], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(task, advance=1, description=f"{kind}, loss {losses[-1]:.4f}")
            if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
                save(step + 1)
    config = {"frontend": front, "lookahead": lookahead, "hidden": hidden,
              "trained": {"clips": clips, "seconds": seconds, "steps": steps, "seed": seed,
                          "soundfont": font.name} | (extra or {})}
    output.parent.mkdir(parents=True, exist_ok=True)
    learned.save(output, {"mean": mean, "std": std, **model.arrays()}, config)
    if plot is not None:
        _plot(plot, {"training loss (mean of 50 steps)": _running_mean(losses, 50)}, "step",
              "onset detector" if kind == "onsets" else "beat activation")
    return Report(output, plot, time.perf_counter() - t0, float(np.mean(losses[-50:])), clips)
