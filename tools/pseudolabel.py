"""Onset labels for unannotated music, by agreement of several independent detectors.

Real recordings that nobody annotated can still teach the learned onset detector if
their labels are trustworthy.  Each song is run through several detectors that work
in different ways: aubio's ``hfc`` (high-frequency energy), ``complex`` (phase and
magnitude prediction) and ``specflux`` (positive spectral flux), each with aubio's own
defaults at the file's rate (1024-sample windows, 512-sample hops, as ``make eval``
runs aubio's defaults), and the project's shipped learned detector (nodes/audio/
learned.py, its own threshold and least gap).  An onset is kept where at least ``k``
of them report one within ``tolerance`` seconds of each other, at the median of the
agreeing times: what one detector hears alone (a vibrato swell, a reverb tail, a
hit the network has never met) is dropped, what several hear is kept.

The defaults, 2 of the 4 within 50 ms, scored best of 2-4 voters within 20-50 ms against
the human annotations of real recordings (docs/real-training-music.md): about as good as
the best single detector on the mean of sources, and near the best on every source
where each single detector falls well behind on some.

    python -m tonegraph.tools.pseudolabel SONGS/ -o LABELS/ [-k 2] [--tolerance 0.05]

writes ``<name>.onsets`` (seconds, one a line) per song and ``summary.json`` (the
settings, and per song its length, onsets and each detector's count).  Any format
``read_sound`` reads is labelled (nodes/audio/sound.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

#: aubio's detection functions that vote, each with aubio's own defaults.
AUBIO_METHODS = ("hfc", "complex", "specflux")
AUBIO_WINDOW = 1024   # [samples] aubio's default analysis window
AUBIO_HOP = 512       # [samples] aubio's default hop
#: Every detector that votes, by name.
DETECTORS = AUBIO_METHODS + ("learned",)
MERGE = 0.03          # [s] onsets closer than this are one (the evaluation data's own advice)
K = 2                 # detectors that must agree for an onset to be kept
TOLERANCE = 0.05      # [s] the widest spread of the agreeing detectors' times

#: A detector: (mono float32 samples, sample rate) -> onset times [s].
Detector = Callable[[np.ndarray, int], np.ndarray]


def merge(times: np.ndarray, gap: float = MERGE) -> np.ndarray:
    """Onset times [s], sorted, those closer than ``gap`` to the one kept before them
    dropped (a chord, a flam, one hit annotated twice): how every label here is read."""
    out: list[float] = []
    for t in np.sort(np.asarray(times, dtype=float)):
        if not out or t - out[-1] >= gap:
            out.append(float(t))
    return np.array(out)


def aubio_detector(method: str, threshold: float | None = None) -> Detector:
    """aubio's ``method`` over a whole signal with aubio's defaults at its own rate
    (its peak-picking ``threshold`` too unless given)."""

    def detect(x: np.ndarray, sr: int) -> np.ndarray:
        import aubio

        det = aubio.onset(method, AUBIO_WINDOW, AUBIO_HOP, sr)
        if threshold is not None:
            det.set_threshold(threshold)
        n = -(-len(x) // AUBIO_HOP)
        padded = np.zeros(n * AUBIO_HOP, dtype=np.float32)
        padded[:len(x)] = x
        found = [det.get_last() / sr for i in range(n)
                 if det(padded[i * AUBIO_HOP:(i + 1) * AUBIO_HOP])[0]]
        return np.array(found, dtype=float)

    return detect


def learned_detector(model: Path | None = None, threshold: float | None = None) -> Detector:
    """The learned detector (the shipped weights unless ``model``) over a whole signal,
    its activation picked as audio.onset picks it live (at its own threshold unless
    given)."""

    def detect(x: np.ndarray, sr: int) -> np.ndarray:
        from tonegraph.nodes.audio.learned import signal_activation
        from tonegraph.nodes.audio.onset import learned_onsets

        return learned_onsets(*signal_activation(x, sr, model), threshold)

    return detect


def detectors(names: Sequence[str] = DETECTORS, model: Path | None = None) -> dict[str, Detector]:
    """The named detectors (``DETECTORS``' names)."""
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector {unknown[0]!r}; known: {', '.join(DETECTORS)}")
    return {n: learned_detector(model) if n == "learned" else aubio_detector(n) for n in names}


def agree(found: Iterable[np.ndarray], k: int = K, tolerance: float = TOLERANCE) -> np.ndarray:
    """Onset times [s] that at least ``k`` of the detectors' lists agree on.

    From the earliest time not yet used, each detector offers its earliest unused time
    within ``tolerance`` after it; if ``k`` or more detectors offer one, their median is
    an onset and their times are used up, otherwise only the earliest time is dropped
    (it may not start a group, but nothing else is lost)."""
    lists = [np.sort(np.asarray(f, dtype=float)) for f in found]
    if k < 1:
        raise ValueError("k must be at least 1")
    times = np.concatenate(lists) if lists else np.zeros(0)
    who = np.concatenate([np.full(len(f), i) for i, f in enumerate(lists)]) if lists else np.zeros(0)
    order = np.argsort(times, kind="stable")
    times, who = times[order], who[order]
    used = np.zeros(len(times), dtype=bool)
    out = []
    for i in range(len(times)):
        if used[i]:
            continue
        group = {}
        j = i
        while j < len(times) and times[j] - times[i] <= tolerance:
            if not used[j] and who[j] not in group:
                group[who[j]] = j
            j += 1
        if len(group) >= k:
            idx = list(group.values())
            used[idx] = True
            out.append(float(np.median(times[idx])))
        else:
            used[i] = True
    return np.array(out)


def mono(path: Path) -> tuple[np.ndarray, int]:
    """A sound file's samples as one float32 channel, and its rate."""
    from tonegraph.nodes.audio.sound import read_sound

    data, sr = read_sound(path)
    return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)), int(sr)


def detect_all(x: np.ndarray, sr: int, dets: dict[str, Detector]) -> dict[str, np.ndarray]:
    """Each detector's onset times [s] in one signal."""
    return {name: d(x, sr) for name, d in dets.items()}


def label(x: np.ndarray, sr: int, dets: dict[str, Detector] | None = None, k: int = K,
          tolerance: float = TOLERANCE) -> np.ndarray:
    """Agreement labels [s] of one signal."""
    return agree(detect_all(x, sr, dets or detectors()).values(), k, tolerance)


def songs(folder: Path) -> list[Path]:
    """The sound files under ``folder``, sorted."""
    from tonegraph.nodes.audio.sound import SUFFIXES

    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def out_name(song: Path, root: Path) -> str:
    """A song's label file name: its path under ``root`` with folders joined by ``__``
    (two songs both named song.ogg in different folders stay apart)."""
    rel = song.relative_to(root) if song.is_relative_to(root) else Path(song.name)
    return "__".join(rel.with_suffix("").parts).replace(" ", "_") + ".onsets"


def label_folder(folder: Path, out: Path, k: int = K, tolerance: float = TOLERANCE,
                 dets: dict[str, Detector] | None = None,
                 progress: Callable[[str], None] = lambda s: None) -> dict:
    """Label every song under ``folder`` into ``out``; returns (and writes) the summary."""
    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dets = dets or detectors()
    summary = {"folder": str(folder.resolve()), "detectors": list(dets), "k": k, "tolerance_s": tolerance, "songs": []}
    _write_summary(out, summary)          # none yet: a folder without songs still has one
    for song in songs(folder):
        x, sr = mono(song)
        found = detect_all(x, sr, dets)
        onsets = agree(found.values(), k, tolerance)
        name = out_name(song, folder)
        (out / name).write_text("".join(f"{t:.4f}\n" for t in onsets))
        seconds = len(x) / sr
        summary["songs"].append({
            "file": str(song.relative_to(folder)), "labels": name, "seconds": round(seconds, 2),
            "onsets": len(onsets), "per_second": round(len(onsets) / max(seconds, 1e-9), 3),
            "by_detector": {n: len(t) for n, t in found.items()}})
        progress(f"{song.relative_to(folder)}: {len(onsets)} onsets in {seconds:.0f} s")
        _write_summary(out, summary)      # after every song: a stopped run keeps its count
    return summary


def _write_summary(out: Path, summary: dict) -> None:
    """Totals over the songs labelled so far, into ``summary`` and summary.json."""
    total = sum(s["seconds"] for s in summary["songs"])
    count = sum(s["onsets"] for s in summary["songs"])
    summary |= {"minutes": round(total / 60, 2), "onsets": count,
                "per_second": round(count / total, 3) if total else 0.0}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tonegraph.tools.pseudolabel",
                                 description="Label onsets in unannotated songs by agreement "
                                             "of several detectors.")
    ap.add_argument("folder", type=Path, help="songs to label (searched recursively)")
    ap.add_argument("-o", "--output", type=Path, required=True, help="folder for the labels")
    ap.add_argument("-k", type=int, default=K, help=f"detectors that must agree (default {K})")
    ap.add_argument("--tolerance", type=float, default=TOLERANCE,
                    help=f"widest spread of agreeing times [s] (default {TOLERANCE:g})")
    ap.add_argument("--detectors", default=",".join(DETECTORS),
                    help=f"comma-separated voters (default {','.join(DETECTORS)})")
    ap.add_argument("--model", type=Path, help="the learned detector's weights (default: shipped)")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 1
    try:
        dets = detectors([d.strip() for d in args.detectors.split(",") if d.strip()], args.model)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not 1 <= args.k <= len(dets):
        print(f"error: -k must be 1..{len(dets)}", file=sys.stderr)
        return 1
    s = label_folder(args.folder, args.output, args.k, args.tolerance, dets, progress=print)
    print(f"{len(s['songs'])} songs, {s['minutes']:.1f} min, {s['onsets']} onsets "
          f"({s['per_second']:.2f}/s) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
