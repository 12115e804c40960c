"""``tonegraph train beats``: the learned beat activation of audio.tempo's dbn tracker,
trained only on sound the project makes itself.

The network is the onset detector's (tools/onsettrain.py, run by
nodes/audio/learned.py), over the beat tracker's own front end (100 frames a second),
and learns, after frame ``t``, whether frame ``t - 1`` is a beat: where a listener taps,
not every note.  Spectral flux rises on every hit, so a tracker that follows it alone
may lock to the eighth notes (twice the tempo) or take a while to leave a tempo
that no longer holds; a network that has heard where the beat sits among kicks,
snares, hats, bass notes and chords says which hits are beats.

Training data, made afresh from ``--seed``, every clip on one tempo (60-200 BPM, spread
evenly over octaves) with its beat grid as the labels (moved by FluidSynth's measured
delay), played as people play: in half the songs the tempo drifts by up to 8 % over
the clip, in three of ten the eighths or sixteenths are swung (up to a triplet's), and
every note is early or late by a spread of up to 12 ms; the labels are where the beats
are played:

* songs written at random as MIDI and rendered by FluidSynth: drum kits alone, bands
  (drums, bass, one or two melodic parts) and rock bands (drums, bass, distorted
  guitars rendered apart and mixed up to 9 dB over the rest, most through a mastering
  compressor), and keys without drums (bass on the beats or every other beat, chords
  on every beat).  The drums keep the backbeat (snare on 2 and 4) over five kick
  patterns, hats on quarters, eighths or sixteenths, a fill at the end of every fourth
  bar; the melodic parts play on a grid of half, whole or two beats from the first
  beat, louder on the beat;
* the built-in groove (audio.synth) in random timbres, with its own beats;
* a fifth overdriven; each changed as a room and a recording would (level, EQ tilt,
  reverb, background noise).  Clips are never mixed with each other: two tempi at once
  have no beat.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tonegraph.nodes.audio import beats as beat_front
from tonegraph.nodes.audio.synth import render_groove

from . import onsettrain as ot
from .train import Report

#: How loosely the songs are played: a beat written at ``b`` of a clip's ``n`` beats is
#: played at ``b * (1 + d * b / n)``, ``d`` up to ``drift`` either way (the beat's
#: length changes by up to twice that over the clip); swung notes land up to ``swing``
#: of their step late; each note is early or late by a spread of up to ``jitter`` s.
FEEL = {"drift": 0.04, "swing": 0.33, "jitter": 0.012}


def random_bpm(rng: np.random.Generator) -> float:
    """A tempo of 60-200 BPM, as likely in each octave."""
    return float(np.exp(rng.uniform(np.log(60), np.log(200))))


def beat_song(rng: np.random.Generator, seconds: float
              ) -> tuple[list[tuple[Any, np.ndarray, float]], np.ndarray]:
    """A song written at random as MIDI on one tempo and played loosely (``FEEL``): its
    parts (``midi_parts``: a MIDI file, its note-ons and how hard it is to be
    overdriven, 0: clean) and the times its beats are played [s]."""
    import mido

    bpm = random_bpm(rng)
    tpb = 480
    beat_s = 60.0 / bpm
    beats = seconds / beat_s
    style = rng.choice(["drums", "band", "band", "band", "rock", "rock", "keys"])
    events: list[tuple[float, int, mido.Message]] = []       # (beats, order, message)
    channel = [0]
    # How the song is played against its grid: the tempo drifting up or down over the
    # clip, eighths (or sixteenths) swung, every note a little early or late.
    drift = float(rng.uniform(-FEEL["drift"], FEEL["drift"])) if rng.random() < 0.5 else 0.0
    swing = float(rng.uniform(0.05, FEEL["swing"])) if rng.random() < 0.3 else 0.0
    swung = float(rng.choice([0.5, 0.25]))
    loose = float(rng.uniform(0.0, FEEL["jitter"])) / beat_s

    def played(at: float) -> float:
        """Where a note written at ``at`` beats sounds, in the grid's beats."""
        off = at % (2 * swung)
        if swing and abs(off - swung) < 1e-6:
            at += swing * swung
        return at * (1.0 + drift * at / beats)

    def note(ch: int, at: float, length: float, pitch: int, vel: int) -> None:
        start = max(0.0, played(at) + (float(rng.normal(0.0, loose)) if loose else 0.0))
        events.append((start, 1, mido.Message("note_on", channel=ch, note=int(pitch), velocity=int(vel))))
        events.append((start + length, 0, mido.Message("note_off", channel=ch, note=int(pitch), velocity=0)))

    def melodic(program: int, low: int, high: int, chords: bool, riff: bool = False,
                grid: float | None = None) -> int:
        ch = channel[0]
        channel[0] += 1
        events.append((0.0, 0, mido.Message("program_change", channel=ch, program=int(program))))
        grid = grid or float(rng.choice([0.5, 1.0, 1.0, 2.0] if not riff else [0.5, 0.5, 1.0]))
        at, pitch = 0.0, int(rng.integers(low, high))
        while at < beats - 0.5:
            length = float(rng.choice([1, 1, 1, 2] if riff else [1, 1, 2, 2, 4])) * grid
            if rng.random() < 0.1:                                # a rest
                at += length
                continue
            pitch = int(np.clip(pitch + rng.integers(-5, 6), low, high))
            vel = int(rng.integers(80, 128) if at % 1.0 == 0 else rng.integers(40, 100))
            pitches = [pitch]
            if riff:
                pitches += [pitch + 7] + ([pitch + 12] if rng.random() < 0.5 else [])
            elif chords:
                pitches += [pitch + d for d in rng.choice([3, 4, 5, 7, 9, 12], size=int(rng.integers(1, 4)),
                                                           replace=False)]
            for k, p in enumerate(pitches):
                if p < 120:
                    note(ch, at + k * 0.005 / beat_s, length * float(rng.uniform(0.3, 1.0)), p, vel)
            at += length
        return ch

    def drums() -> None:
        pattern = int(rng.integers(0, 5))
        step = float(rng.choice([0.25, 0.5, 0.5, 1.0]))
        at = 0.0
        while at < beats - 0.25:
            pos = at % 4
            fill = pos >= 3 and int(at // 4) % 4 == 3 and rng.random() < 0.7
            hits = []
            if fill:
                if (pos * 4) % 1 == 0 and rng.random() < 0.8:
                    hits.append(rng.choice(ot.DRUMS["tom"] + ot.DRUMS["snare"]))
            else:
                kick = (pos in (0, 2), pos % 1 == 0, pos in (0, 2.5), pos in (0, 0.75, 2, 2.5),
                        pos in (0, 1.5, 2.5))[pattern]
                if kick or rng.random() < 0.03:
                    hits.append(rng.choice(ot.DRUMS["kick"]))
                if pos in (1, 3) or rng.random() < 0.03:
                    hits.append(rng.choice(ot.DRUMS["snare"]))
                if (at / step) % 1 == 0 and rng.random() < 0.9:
                    hits.append(ot.DRUMS["hat"][0] if rng.random() < 0.8 else rng.choice(ot.DRUMS["hat"]))
            if pos == 0 and rng.random() < 0.25:
                hits.append(rng.choice(ot.DRUMS["cymbal"]))
            for h in hits:
                vel = 100 if pos % 1 == 0 else 70
                note(9, at, 0.1, h, int(np.clip(vel + rng.integers(-30, 28), 30, 127)))
            at += 0.25

    loud: set[int] = set()
    if style == "drums":
        drums()
    elif style == "keys":
        melodic(int(rng.choice(ot.BASS)), 28, 48, False, grid=float(rng.choice([1.0, 2.0])))
        melodic(int(rng.choice([0, 1, 2, 4, 5, 24, 25, 26, 27, 16, 17])), 48, 76, True, grid=1.0)
    elif style == "band":
        drums()
        melodic(int(rng.choice(ot.BASS)), 28, 52, False)
        for _ in range(int(rng.integers(1, 3))):
            melodic(int(rng.choice(ot.MELODIC)), 48, 88, rng.random() < 0.4)
    else:                                   # rock: drums, bass, distorted guitars
        drums()
        melodic(int(rng.choice(ot.BASS)), 28, 45, False, riff=rng.random() < 0.5)
        loud.add(melodic(int(rng.choice([29, 30, 27, 25])), 40, 60, False, riff=True))
        if rng.random() < 0.5:
            loud.add(melodic(int(rng.choice([29, 30, 81, 61, 65, 66])), 55, 84, False))
    events.sort(key=lambda e: (e[0], e[1]))
    grid = np.array([played(k) for k in range(int(np.ceil(beats)))]) * beat_s
    return ot.midi_parts(events, loud, float(rng.uniform(5, 40)), tpb, beat_s), grid[grid < seconds]


def make_beat_clips(count: int, seconds: float, seed: int, soundfont: Path, sr: int,
                    progress=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` clips of sound and their beats [s]."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    late = ot.render_delay(soundfont, sr)
    clips = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(count):
            if rng.random() < 0.15:
                timbre = ot.random_timbre(rng)
                bpm = random_bpm(rng)
                x, _, grid = render_groove(sr, bpm, max(1, int(seconds / (240 / bpm)) + 1),
                                           seed=int(rng.integers(1 << 30)), timbre=timbre)
                beats = np.array(grid)
            else:
                parts, beats = beat_song(rng, seconds)
                x = ot.mix_song(rng, parts, soundfont, sr, n, Path(d))
                beats = beats + late
            x = ot.fitted(x, n)
            if rng.random() < 0.2:
                x = ot.overdrive(x, rng.uniform(2, 20))
            clips.append((ot.augment(rng, x, sr), beats[beats < seconds - 0.05]))
            if progress is not None:
                progress(i + 1)
    return clips


def train_beats(output: Path, *, clips: int = 600, seconds: float = 12.0, steps: int = 3000,
                batch: int = 16, length: int = 700, hidden: int = 64, lookahead: int = 1,
                lr: float = 2e-3, seed: int = 0, members: int = 1, soundfont: Path | None = None,
                plot: Path | None = None, checkpoint: Path | None = None, resume: bool = False,
                checkpoint_every: int = 500, quiet: bool = False, real: Path | None = None) -> Report:
    if real is not None:
        ot.labelled_songs(real)                               # before the renders, not after
    make = make_beat_clips if real is None else ot.with_real(make_beat_clips, real)
    return ot.train_detector("beats", make, dict(beat_front.FRONT), output, clips=clips,
                             seconds=seconds, steps=steps, batch=batch, length=length, hidden=hidden,
                             lookahead=lookahead, lr=lr, halve_every=1000, seed=seed, members=members,
                             soundfont=soundfont, plot=plot, checkpoint=checkpoint, resume=resume,
                             checkpoint_every=checkpoint_every, quiet=quiet,
                             extra=None if real is None else {"real": Path(real).name})
