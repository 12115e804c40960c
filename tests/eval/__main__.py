"""`make eval`: streaming onsets and beats scored against human annotations.

For every annotated clip in ../shared/data/mir, per source and overall:
- tonegraph: the engine's streaming output with the nodes' defaults (a real patch run
  offline: audio.file -> audio.onset / audio.tempo -> io.record)
- aubio, same params: aubio over the whole file with exactly those parameters
- aubio defaults: aubio over the whole file with its own defaults

Onsets: F-measure with a 50 ms window (annotated hits closer than 30 ms merged).
Beats: mir_eval's beat F-measure (70 ms), untrimmed.

``python -m tests.eval --tune`` searches onset parameters on the same data, and
``python -m tests.eval --tune tempo`` the beat tracker's.
"""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict

import numpy as np

from . import mir


def table(title: str, rows: list[list[str]]) -> None:
    header = ["source", "clips", "tonegraph", "aubio, same params", "aubio defaults"]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")


def summarise(scores: dict[str, list[tuple[float, float, float]]]) -> list[list[str]]:
    rows, everything = [], []
    for source in sorted(scores):
        s = np.array(scores[source])
        everything.extend(scores[source])
        rows.append([source, len(s), *(f"{v:.3f}" for v in s.mean(axis=0))])
    s = np.array(everything)
    rows.append(["**all clips**", len(s), *(f"**{v:.3f}**" for v in s.mean(axis=0))])
    return rows


def evaluate() -> int:
    clips = mir.clips()
    onset_p, tempo_p = mir.node_defaults("audio.onset"), mir.node_defaults("audio.tempo")
    print(f"{len(clips)} annotated clips from {mir.DATA}")
    print(f"audio.onset defaults: {onset_p}")
    print(f"audio.tempo defaults: {tempo_p}")
    onsets, beats = defaultdict(list), defaultdict(list)
    for clip in clips:
        x, sr = mir.load_mono(clip.audio)
        ours_on, ours_beat = mir.engine_events(clip, sr, onset_p, tempo_p)
        if clip.onsets is not None:
            onsets[clip.source].append((
                mir.onset_f(clip.onsets, ours_on),
                mir.onset_f(clip.onsets, mir.aubio_onsets(x, sr, onset_p)),
                mir.onset_f(clip.onsets, mir.aubio_onsets(x, sr, None))))
        if clip.beats is not None:
            beats[clip.source].append((
                mir.beat_f(clip.beats, ours_beat),
                mir.beat_f(clip.beats, mir.aubio_beats(x, sr, tempo_p)),
                mir.beat_f(clip.beats, mir.aubio_beats(x, sr, None))))
    table("Onsets, F-measure (50 ms)", summarise(onsets))
    table("Beats, F-measure (mir_eval, 70 ms, untrimmed)", summarise(beats))
    return 0


_DATA: list = []


def _score_onsets(params: dict) -> float:
    # Mean over clips, as `make eval` reports it.
    return float(np.mean([mir.onset_f(c.onsets, mir.aubio_onsets(x, sr, params))
                          for c, x, sr in _DATA]))


def _score_beats(params: dict | None) -> float:
    return float(np.mean([mir.beat_f(c.beats, mir.aubio_beats(x, sr, params))
                          for c, x, sr in _DATA]))


def _load_data(kind: str = "onsets") -> None:
    _DATA[:] = [(c, *mir.load_mono(c.audio)) for c in mir.clips()
                if getattr(c, kind) is not None]


def tune_tempo() -> int:
    """Search the beat tracker's onset function and threshold on the annotated beats."""
    from multiprocessing import Pool

    base = mir.node_defaults("audio.tempo")
    candidates = [base | {"method": m, "threshold": t} for m, t in itertools.product(
        ("specdiff", "hfc", "complex", "energy", "specflux", "kl", "mkl", "phase"),
        (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5))]
    with Pool(2, initializer=_load_data, initargs=("beats",)) as pool:
        scored = sorted(zip(pool.map(_score_beats, candidates), candidates), key=lambda r: -r[0])
        defaults = pool.apply(_score_beats, (None,))
    for s, p in scored[:5]:
        print(f"  {s:.4f} {p}")
    print(f"aubio defaults: {defaults:.4f}")
    return 0


def tune() -> int:
    """Coarse-to-fine search over onset parameters with aubio over whole files (equal to
    the engine's streaming output, as the tests show), scored on every annotated clip."""
    from multiprocessing import Pool

    base = mir.node_defaults("audio.onset")
    with Pool(2, initializer=_load_data) as pool:
        def stage(name: str, candidates: list[dict]) -> list[tuple[float, dict]]:
            scored = sorted(zip(pool.map(_score_onsets, candidates), candidates),
                            key=lambda r: -r[0])
            print(f"\n{name}:")
            for s, p in scored[:5]:
                print(f"  {s:.4f} {p}", flush=True)
            return scored

        coarse = stage("method x threshold", [
            base | {"method": m, "threshold": t}
            for m, t in itertools.product(
                ("hfc", "energy", "complex", "phase", "specdiff", "kl", "mkl", "specflux"),
                (0.1, 0.2, 0.3, 0.5, 0.8))])
        shape = stage("whitening x compression x minioi, best two methods", [
            p | {"whitening": w, "compression": c, "minioi": i}
            for (_, p), w, c, i in itertools.product(
                coarse[:2], (False, True), (0.0, 1.0, 10.0), (0.02, 0.05))])
        best = shape[0][1]
        stage("threshold, fine", [best | {"threshold": round(best["threshold"] * f, 3)}
                                  for f in (0.6, 0.8, 1.0, 1.25, 1.5)])
        defaults = pool.apply(_aubio_defaults_score)
    print(f"\naubio defaults: {defaults:.4f}")
    return 0


def _aubio_defaults_score() -> float:
    return float(np.mean([mir.onset_f(c.onsets, mir.aubio_onsets(x, sr, None))
                          for c, x, sr in _DATA]))


def main(argv: list[str]) -> int:
    if not mir.DATA.is_dir():
        print(f"make eval needs the annotated recordings in {mir.DATA}, which is not here "
              f"(it is not shipped with the project).", file=sys.stderr)
        return 2
    if "--tune" in argv:
        return tune_tempo() if "tempo" in argv else tune()
    return evaluate()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
