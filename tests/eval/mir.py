"""Scoring onsets and beats against the human annotations in ../shared/data/mir, and the
Muldjord songs' Frets on Fire charts once ``make charts`` has fetched them.

The data is referenced in place, never copied (several clips are licensed for
non-commercial use only); everything here skips with a clear reason when it is absent.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aubio
import mir_eval
import numpy as np
import soundfile as sf

from tonegraph.engine.graph import load_graph
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime
from tonegraph.nodes.audio.base import ANALYSIS_HOP, ANALYSIS_RATE
from tonegraph.nodes.audio.onset import apply_onset_params
from tonegraph.tools import fofcharts
from tonegraph.tools.pseudolabel import merge     # annotated hits closer than 30 ms are one

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mir"
AUDIO = (".wav", ".flac", ".ogg")
HOP = 512


@dataclass
class Clip:
    source: str
    name: str
    audio: Path
    onsets: np.ndarray | None
    beats: np.ndarray | None

    @property
    def kind(self) -> str:
        """The kind of material, for tables and cross-validation folds."""
        return kind_of(self.source, self.name)


#: The kinds of material, in table order.
KINDS = ("solo guitar", "drums", "full mix", "piano", "singing", "solo instrument")

#: Each source folder's kind, or how its clips' names tell theirs (see kind_of).
SOURCE_KINDS = {
    "guitar_onsets": "solo guitar", "guitarset": "solo guitar",
    "vocadito": "singing", "ssvd": "singing",
    "ballroom": "full mix", "gtzan": "full mix", "hainsworth": "full mix", "simac": "full mix",
    "mdb_drums": "by name", "midi_render": "by name", "madmom": "by name", "bock_onsets": "by name",
    "muldjord": "solo guitar",
}

#: Frets on Fire packs whose guitar stems join the dev set's onset clips (see
#: chart_clips); the other pack, Sectoid's, stays held out (tests/eval/charts.py).
DEV_PACKS = ("muldjord",)
EXCERPT = 60.0        # [s] of each stem, from a second before its first charted note

#: Sources that are renders, not recordings: never what a default is judged on.
RENDERED = frozenset({"midi_render"})

#: bock_onsets' clips by what their names say (the data's MANIFEST.txt lists each).
BOCK = (("guitar", "solo guitar"), ("Vocal", "singing"), ("tabla", "drums"),
        ("percussion", "drums"), ("DaFunk", "full mix"), ("long_gone", "full mix"))


def kind_of(source: str, name: str) -> str:
    kind = SOURCE_KINDS.get(source, "full mix")
    if kind != "by name":
        return kind
    if source == "mdb_drums":
        return "drums" if name.endswith("_drum") else "full mix"
    if source == "midi_render":
        if name.startswith("groove"):
            return "drums"
        return "full mix" if name.startswith("slakh") else "piano"
    if source == "madmom":
        return "piano" if name == "stereo_sample" else "full mix"
    return next((k for word, k in BOCK if word in name), "solo instrument")   # winds, strings


def _times(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    vals = [float(line.split()[0]) for line in path.read_text().splitlines() if line.strip()]
    return np.array(sorted(vals))


def clips(root: Path = DATA, charts: Path | None = fofcharts.FOLDER) -> list[Clip]:
    """Every annotated clip under ``root``, and the dev packs' chart excerpts under
    ``charts`` (:func:`chart_clips`; None leaves them out)."""
    found = []
    for audio in sorted(p for p in root.rglob("*") if p.suffix in AUDIO):
        # Not with_suffix: clip names such as country.00000 contain dots.
        onsets = _times(audio.parent / f"{audio.stem}.onsets")
        beats = _times(audio.parent / f"{audio.stem}.beats")
        if onsets is not None:
            onsets = merge(onsets)
        if onsets is not None or beats is not None:
            found.append(Clip(audio.parent.name, audio.stem, audio, onsets, beats))
    return found + (chart_clips(charts) if charts is not None else [])


def chart_clips(root: Path = fofcharts.FOLDER, packs: tuple[str, ...] = DEV_PACKS,
                seconds: float = EXCERPT) -> list[Clip]:
    """The guitar stems of the Frets on Fire songs of ``packs`` under ``root`` (where
    ``make charts`` unpacks them) as onset clips: ``seconds`` of each stem from a second
    before its first charted note, against the hardest chart's notes there.  The
    excerpts are written once as WAV files beside the songs (``root/excerpts``), outside
    the project; none when the songs are not there."""
    from tonegraph.tools.pseudolabel import mono

    out = []
    for song in (s for s in fofcharts.songs(root) if s.pack in packs):
        start = max(0.0, float(song.notes[0]) - 1.0)
        name = f"{song.pack}_{song.name}".replace(" ", "_")
        wav = root / "excerpts" / f"{name}_{start:.3f}s+{seconds:g}s.wav"     # made again for another cut
        if not wav.is_file():
            x, sr = mono(song.folder / "guitar.ogg")
            wav.parent.mkdir(parents=True, exist_ok=True)
            part = wav.with_suffix(f".{os.getpid()}.part")
            sf.write(part, x[int(start * sr):int((start + seconds) * sr)], sr, format="WAV")
            part.replace(wav)                  # whole or absent, with eval's workers reading
        notes = song.notes[(song.notes >= start) & (song.notes < start + seconds)] - start
        out.append(Clip(song.pack, name, wav, notes, None))
    return out


def load_mono(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)), sr



# -- aubio, offline --------------------------------------------------------------------

def aubio_onsets(x: np.ndarray, sr: int, params: dict | None) -> np.ndarray:
    """aubio over a whole signal; ``params`` None keeps aubio's own defaults (at the
    file's rate, as aubio's users run it), other settings are run as audio.onset runs
    them (resampled to its analysis rate)."""
    if params is None:
        det = aubio.onset("default", 1024, HOP, sr)
    else:
        # As audio.onset hears it: at the rate its settings were chosen at.
        if sr != ANALYSIS_RATE:
            import soxr

            x, sr = soxr.resample(x, sr, ANALYSIS_RATE, quality="QQ"), ANALYSIS_RATE
        det = aubio.onset(params["method"], params.get("buf_size", 1024), ANALYSIS_HOP, sr)
        apply_onset_params(det, as_params(params))
    return np.array([det.get_last() / sr for h in hops_of(x, HOP) if det(h)[0]])


def aubio_beats(x: np.ndarray, sr: int, params: dict | None) -> np.ndarray:
    if params is None:
        det = aubio.tempo("default", 1024, HOP, sr)
    else:
        det = aubio.tempo(params["method"], params.get("buf_size", 1024), HOP, sr)
        det.set_threshold(params["threshold"])
        det.set_silence(params["silence"])
    return np.array([det.get_last() / sr for h in hops_of(x, HOP) if det(h)[0]])


def dbn_beats(x: np.ndarray, sr: int, params: dict) -> np.ndarray:
    """The dbn tracker over a whole signal at once (the node feeds it hop by hop)."""
    from tonegraph.nodes.audio.beats import BeatTracker
    from tonegraph.nodes.audio.tempo import BEATS, beat_weights

    share = params.get("learned", 0.0)
    weights = beat_weights(Path(params.get("beat_model") or BEATS)) if share else None
    tracker = BeatTracker(sr, params["min_bpm"], params["max_bpm"], params["silence"],
                          beats=weights, share=share)
    return np.array(tracker.push(x), dtype=float) / tracker.fps


def spliced(clips: list[Clip], at: float = 12.0, then: float = 16.0, min_change: float = 0.08,
            per: int = 3) -> Iterator[tuple[str, np.ndarray, int, float, np.ndarray]]:
    """Tempo changes from real recordings: the first ``at`` seconds of one clip cut
    straight into the first ``then`` seconds of another whose tempo differs by more than
    ``min_change`` (and is not twice or half of it), as a DJ's hard cut would; each clip
    into the ``per`` clips after it (in order, wrapping round) that differ so.  Yields
    (name, samples, rate, cut time, annotated beats after the cut)."""
    usable = [c for c in clips if c.beats is not None and len(c.beats) > 8]
    loaded = {c.name: load_mono(c.audio) for c in usable}
    usable = [c for c in usable if loaded[c.name][1] == 44100 and len(loaded[c.name][0]) > at * 44100]
    bpm = {c.name: 60.0 / float(np.median(np.diff(c.beats))) for c in usable}

    def apart(a: float, b: float) -> bool:
        return all(abs(np.log(a / b) - np.log(k)) > min_change for k in (1.0, 2.0, 0.5))
    for i, a in enumerate(usable):
        others = [c for c in usable[i + 1:] + usable[:i] if apart(bpm[a.name], bpm[c.name])]
        for b in others[:per]:
            (xa, sr), (xb, _) = loaded[a.name], loaded[b.name]
            cut = int(at * sr)
            x = np.concatenate([xa[:cut], xb[:int(then * sr)]])
            after = b.beats[b.beats < then] + at
            yield f"{a.name} -> {b.name}", x, sr, at, after


def live_delays(clip: Clip, x: np.ndarray, sr: int, params: dict, hop: int = HOP,
                beats: bool = False) -> np.ndarray:
    """How long after its sound reaches the engine each matched onset (or with ``beats``
    each matched beat, from audio.tempo) is out [s], as in a live run at ``hop``: the
    sound arrives with the hop that holds its annotated time; the event leaves when the
    node's work on a later hop is done.  The delay is the hops between the two plus the
    node's own time on the hop that emits it (measured); a beat the tracker expects
    before its sound is heard can leave early (a negative delay)."""
    import time

    from tonegraph.engine.node import Context, Tick
    from tonegraph.engine.ports import AudioBlock, PortType
    from tonegraph.nodes.audio.onset import Onset
    from tonegraph.nodes.audio.tempo import Tempo

    cls, port, ref, window = ((Tempo, "beat", clip.beats, 0.07) if beats
                              else (Onset, "onset", clip.onsets, 0.05))
    node = cls("o", {k: cls.params[k].coerce(v, k) for k, v in params.items()},
               Context(samplerate=sr, hop=hop, offline=True), {"audio": PortType.AUDIO})
    node.configure()
    emitted = []                      # (event time, delay after the hop holding it arrived)
    for i, h in enumerate(hops_of(x, hop)):
        t = i * hop / sr
        node.inp["audio"] = AudioBlock(h[:, None], t, sr, h)
        node.out[port] = ()
        t0 = time.perf_counter()
        node.process(Tick(t, hop / sr, i))
        work = time.perf_counter() - t0
        for ev in node.out[port]:
            emitted.append((ev.t, (i + 1) * hop / sr + work))
    if not emitted or ref is None:
        return np.zeros(0)
    est = np.array([e[0] for e in emitted])
    pairs = mir_eval.util.match_events(ref, est, window)
    arrive = lambda t: (np.floor(t * sr / hop) + 1) * hop / sr  # noqa: E731 - end of its hop
    return np.array([emitted[j][1] - arrive(ref[i]) for i, j in pairs])


def hops_of(x: np.ndarray, hop: int = HOP) -> Iterator[np.ndarray]:
    n = -(-len(x) // hop)
    padded = np.zeros(n * hop, dtype=np.float32)
    padded[: len(x)] = x
    for i in range(n):
        yield padded[i * hop:(i + 1) * hop]


# -- the engine, streaming -------------------------------------------------------------

def engine_events(clip: Clip, sr: int, onset_params: dict | None, tempo_params: dict
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Run a real patch (audio.file -> audio.onset, audio.tempo -> io.record) offline;
    ``onset_params`` None leaves audio.onset out (no onsets: only the beats are wanted)."""
    def params(d: dict) -> str:
        return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in d.items()) + "}"

    reg = default_registry(plugins=False)
    onsets = ("" if onset_params is None else
              f"  o: {{type: audio.onset, params: {params(onset_params)}, in: {{audio: f}}}}\n")
    wired = "" if onset_params is None else "onset: o, "
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "events.jsonl"
        patch = Path(d) / "eval.yaml"
        patch.write_text(f"""
patch: {{name: eval, fps: 30, samplerate: {sr}, hop: {HOP}}}
nodes:
  f: {{type: audio.file, params: {{path: {json.dumps(str(clip.audio))}}}}}
  b: {{type: audio.tempo, params: {params(tempo_params)}, in: {{audio: f}}}}
  r: {{type: io.record, params: {{path: {json.dumps(str(out))}}}, in: {{{wired}beat: b.beat}}}}
{onsets}""")
        graph, errors = load_graph(patch, reg)
        assert not errors, errors
        Runtime(graph, reg, offline=True).run()
        rows = [json.loads(l) for l in out.read_text().splitlines()]
    pick = lambda name: np.array([r["t"] for r in rows if r["name"] == name])  # noqa: E731
    return pick("onset"), pick("beat")


def node_defaults(type_name: str) -> dict:
    cls = default_registry(plugins=False)[type_name]
    return {k: p.default for k, p in cls.params.items() if k not in ("tap_hold",)}


# -- scores ----------------------------------------------------------------------------

def onset_f(ref: np.ndarray, est: np.ndarray) -> float:
    return mir_eval.onset.f_measure(ref, est, window=0.05)[0]


def beat_f(ref: np.ndarray, est: np.ndarray) -> float:
    # Untrimmed: several clips are shorter than 10 s, and trimming 5 s would gut them.
    return mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07)


def beat_scores(ref: np.ndarray, est: np.ndarray) -> tuple[float, float, float]:
    """F-measure, CMLt and AMLt (mir_eval's continuity: correct metrical level, and
    any allowed level: double, half, off-beat), untrimmed."""
    if len(est) < 2 or len(ref) < 2:
        return beat_f(ref, est), 0.0, 0.0
    _, cmlt, _, amlt = mir_eval.beat.continuity(ref, est)
    return beat_f(ref, est), float(cmlt), float(amlt)


#: Metrical levels a tracker may hear a song at, as its tempo over the annotated one.
LEVELS = (("double", 2.0), ("half", 0.5), ("3/2", 1.5), ("2/3", 2 / 3), ("triple", 3.0),
          ("third", 1 / 3))


def metrical_level(ref: np.ndarray, est: np.ndarray, tolerance: float = 0.08) -> str:
    """The level the tracker heard, from the median beat interval of its last two thirds
    against the annotations': "right", one of LEVELS' names (an octave error: "double",
    "half"; a triple-time error: "3/2", "2/3", ...), or "other"."""
    if len(est) < 4 or len(ref) < 2:
        return "other"
    ratio = float(np.median(np.diff(ref)) / np.median(np.diff(est[len(est) // 3:])))
    for name, level in (("right", 1.0), *LEVELS):
        if abs(ratio / level - 1.0) < tolerance:
            return name
    return "other"


def lock(ref: np.ndarray, est: np.ndarray, run: int = 4, window: float = 0.07) -> int | None:
    """How many annotated beats pass before the tracker holds: the index of the first
    annotated beat from which ``run`` beats in a row each have an estimated beat within
    ``window``; None if it never does."""
    hit = [bool(len(est)) and float(np.min(np.abs(est - r))) <= window for r in ref]
    for i in range(len(ref) - run + 1):
        if all(hit[i:i + run]):
            return i
    return None


def offsets(ref: np.ndarray, est: np.ndarray, window: float = 0.05) -> np.ndarray:
    """Detected minus annotated time [s] of every matched pair (mir_eval's matching)."""
    if len(ref) == 0 or len(est) == 0:
        return np.zeros(0)
    pairs = mir_eval.util.match_events(ref, est, window)
    return np.array([est[j] - ref[i] for i, j in pairs])


def as_params(d: dict) -> SimpleNamespace:
    return SimpleNamespace(**d)
