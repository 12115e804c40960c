"""A broad set of synthetic sounds to train the autoencoder on (``tonegraph sounds``).

An autoencoder trained on one groove maps every real song outside the range it learned,
so its code saturates.  This set covers what a show may play, without any recording:
the built-in groove at 60-190 BPM with varied timbre (kick pitch and decay, pad
waveform, key, drive, a low-pass, section levels), each at a random loudness and some
with a noise bed; dense mixes (a groove under sustained parts and extra hits, as a
full band fills the spectrum); noise (white, pink, brown) with swells and bursts; sustained tones
and chords, sweeps and vibrato; irregular hits off any grid; and silence and
near-silence.  Everything is drawn from one seed, so the set is reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tonegraph.engine.files import written_whole
from tonegraph.nodes.audio.synth import Timbre, render_groove

from .progress import progress

#: Share of each kind of clip, in the order drawn.
KINDS = (("groove", 0.35), ("mix", 0.25), ("noise", 0.1), ("tones", 0.12), ("hits", 0.08),
         ("quiet", 0.10))


def make_sounds(folder: Path, count: int = 80, seed: int = 0, samplerate: int = 22050,
                seconds: float = 8.0, quiet: bool = True) -> dict[str, int]:
    """Write ``count`` clips of ``seconds`` each as FLAC under ``folder``; returns how
    many of each kind.  A progress bar unless ``quiet``."""
    with progress(count, "sounds", quiet) as bar:
        task = bar.add_task("", total=count)
        made = None
        for made in _made(folder, count, seed, samplerate, seconds):
            bar.update(task, advance=1)
    return made if made is not None else {name: 0 for name, _ in KINDS}


def _made(folder: Path, count: int, seed: int, samplerate: int, seconds: float):
    """Make and write the clips one by one, yielding the counts so far after each."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names, shares = zip(*KINDS)
    made = dict.fromkeys(names, 0)
    n = int(round(seconds * samplerate))
    for i in range(count):
        kind = names[int(rng.choice(len(names), p=np.asarray(shares) / sum(shares)))]
        x = MAKERS[kind](rng, samplerate, n)
        x = _fit(x, n)
        if kind != "quiet":
            x = x * 10 ** (rng.uniform(-30.0, 0.0) / 20) / max(float(np.abs(x).max()), 1e-9)
        # Written whole or not at all (a stopped run leaves no half file to train on).
        with written_whole(folder / f"{kind}-{i:04d}.flac") as part:
            sf.write(part, np.clip(x, -1, 1).astype(np.float32), samplerate, format="FLAC",
                     subtype="PCM_24")
        made[kind] += 1
        yield made


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - len(x), x.dtype)])


def _groove(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    bpm = float(rng.uniform(60.0, 190.0))
    bars = int(np.ceil(n / sr / (240.0 / bpm))) + 1
    timbre = Timbre(kick_hz=float(rng.uniform(35, 70)), kick_decay=float(rng.uniform(5, 20)),
                    snare_hz=float(rng.uniform(150, 260)), hat_gain=float(rng.uniform(0.0, 0.7)),
                    pad_gain=float(rng.uniform(0.0, 0.4)),
                    pad_wave=str(rng.choice(["sine", "saw", "square"])),
                    bass_gain=float(rng.uniform(0.0, 0.6)), transpose=int(rng.integers(-7, 8)),
                    drive=float(rng.choice([0.0, rng.uniform(1.0, 6.0)])),
                    lowpass_hz=float(rng.choice([0.0, rng.uniform(300.0, 4000.0)])),
                    quiet_level=float(rng.uniform(0.1, 1.0)))
    x, _, _ = render_groove(sr, bpm, bars, int(rng.integers(0, 1 << 30)), timbre)
    start = int(rng.integers(0, max(1, len(x) - n)))
    x = x[start:start + n].astype(np.float64)
    if rng.random() < 0.3:
        x = x + _coloured(rng, len(x)) * rng.uniform(0.02, 0.3) * np.abs(x).max()
    return x


def _coloured(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise, peak 1."""
    white = rng.standard_normal(n)
    slope = rng.choice([0.0, 0.5, 1.0])          # power ~ 1/f**(2*slope)
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    x = np.fft.irfft(np.fft.rfft(white) / f ** slope, n)
    return x / max(float(np.abs(x).max()), 1e-9)


def _noise(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    x = _coloured(rng, n)
    t = np.arange(n) / sr
    if rng.random() < 0.5:                       # slow swells
        x *= 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t + rng.uniform(0, 6.3))
    else:                                        # bursts
        env = np.zeros(n)
        for at in rng.uniform(0, n / sr, int(rng.integers(3, 20))):
            i = int(at * sr)
            length = int(rng.uniform(0.05, 1.0) * sr)
            env[i:i + length] = np.maximum(env[i:i + length], np.exp(-np.arange(min(length, n - i)) / (0.2 * length)))
        x *= env
    return x


def _tones(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    t = np.arange(n) / sr
    x = np.zeros(n)
    for _ in range(int(rng.integers(1, 5))):
        f0 = 440.0 * 2 ** ((rng.uniform(28, 96) - 69) / 12)
        how = rng.random()
        if how < 0.3:                            # a sweep
            f = f0 * 2 ** (rng.uniform(-3, 3) * t / t[-1])
        elif how < 0.6:                          # vibrato
            f = f0 * (1 + rng.uniform(0.005, 0.03) * np.sin(2 * np.pi * rng.uniform(3, 7) * t))
        else:
            f = np.full(n, f0)
        phase = np.cumsum(f) / sr
        harmonics = int(rng.integers(1, 8))
        tone = sum(np.sin(2 * np.pi * k * phase) / k ** rng.uniform(0.5, 2.0) for k in range(1, harmonics + 1))
        on = rng.uniform(0, 0.6 * t[-1])
        env = np.clip((t - on) / rng.uniform(0.01, 1.0), 0, 1) * np.exp(-np.maximum(t - on, 0) * rng.uniform(0, 1.5))
        x += tone * env
    return x


def _hits(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Percussive sounds at irregular times: no grid, varied pitch and decay."""
    x = np.zeros(n)
    for at in np.sort(rng.uniform(0, n / sr, int(rng.integers(4, 60)))):
        length = int(0.6 * sr)
        t = np.arange(length) / sr
        if rng.random() < 0.5:
            body = rng.standard_normal(length)
        else:
            body = np.sin(2 * np.pi * rng.uniform(40, 2000) * t)
        hit = body * np.exp(-t * rng.uniform(8, 60)) * rng.uniform(0.2, 1.0)
        i = int(at * sr)
        j = min(n, i + length)
        x[i:j] += hit[: j - i]
    return x


def _mix(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A groove with sustained parts and off-grid hits over it."""
    def peak1(x: np.ndarray) -> np.ndarray:
        return x / max(float(np.abs(x).max()), 1e-9)

    x = peak1(_groove(rng, sr, n))
    for _ in range(int(rng.integers(1, 4))):
        x = x + rng.uniform(0.2, 1.0) * peak1(_tones(rng, sr, n))
    if rng.random() < 0.5:
        x = x + rng.uniform(0.1, 0.6) * peak1(_hits(rng, sr, n))
    if rng.random() < 0.5:                       # a master bus pushed into saturation
        x = np.tanh(rng.uniform(1.0, 4.0) * peak1(x))
    return x


def _quiet(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Digital silence, or room noise 50-80 dB down."""
    if rng.random() < 0.4:
        return np.zeros(n)
    return _coloured(rng, n) * 10 ** (rng.uniform(-80.0, -50.0) / 20)


MAKERS = {"groove": _groove, "mix": _mix, "noise": _noise, "tones": _tones, "hits": _hits, "quiet": _quiet}
