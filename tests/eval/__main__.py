"""`make eval`: streaming onsets and beats scored against human annotations, per kind
of material, with aubio's defaults beside them in the same run.

For every annotated clip in ../shared/data/mir (solo guitar, drums, full mixes, piano,
singing; see ``mir.kind_of``), and the Muldjord songs' guitar stems against their Frets
on Fire charts once ``make charts`` has fetched them (``mir.chart_clips``):

- tonegraph: the engine's streaming output with the nodes' defaults (a real patch run
  offline: audio.file -> audio.onset / audio.tempo -> io.record);
- aubio defaults: aubio over the whole file with its own defaults;
- each onset *family* (aubio's detection functions and their settings, and
  ``audio.onset``'s other methods) cross-validated: for each kind of material, the
  family's setting whose worst kind among the *others* gains most over aubio's
  defaults (per kind, so that 35 guitar clips do not outvote one singing clip, and
  no kind is given up for another) is scored on the held-out kind.  A family's
  cross-validated figure is what it would score on material it was not tuned on; the
  node's defaults are the best family's setting chosen so on every kind.  The same
  folds chosen by the mean of kinds are printed beside it, and the same cross-validation
  leaving one source of recordings out instead of one kind.

Onsets: F-measure with a 50 ms window (annotated hits closer than 30 ms merged).
Beats: mir_eval's F-measure (70 ms), CMLt and AMLt, untrimmed, for audio.tempo's dbn
tracker (early beats on and off, and with a share of the learned beat activation),
aubio's tracker through the node, and aubio's defaults; beats until each tracker
holds from a cold start and after hard cuts between recordings of different tempi
(``mir.spliced``).  Latency: detected minus annotated time of every matched event
(mean and spread), over all clips, and the live delay from a hop's arrival to the
event leaving the node.

``python -m tests.eval --quick`` scores a smaller grid.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from tonegraph.nodes.audio import learned, onset
from tonegraph.nodes.audio.learned import signal_activation
from tonegraph.nodes.audio.onset import learned_onsets

from . import mir

METHODS = tuple(m for m in onset.METHODS if m != "learned")      # aubio's


def aubio_grid(quick: bool = False) -> list[dict]:
    """aubio's family: its detection functions at thresholds, with and without its
    magnitude compression, at two least gaps between onsets (aubio's own defaults, hfc
    at 0.058 with compression 1 and 50 ms, are one of them).  Adaptive whitening is
    left out: in a grid that had it, no fold chose it."""
    base = mir.node_defaults("audio.onset")           # the method and threshold are set below
    thresholds = (0.058, 0.2, 0.5) if quick else (0.03, 0.058, 0.1, 0.2, 0.3, 0.5)
    compression = (0.0, 1.0)
    minioi = (0.05,) if quick else (0.02, 0.05)
    return [base | {"method": m, "threshold": t, "compression": c, "minioi": g, "whitening": False}
            for m, t, c, g in itertools.product(METHODS, thresholds, compression, minioi)]


def describe(params: dict) -> str:
    from tonegraph.nodes.audio.onset import minioi_of, threshold_of

    shown = dict(params)
    if "method" in shown:
        p = mir.as_params({"threshold": None, "minioi": None} | shown)
        shown["threshold"], shown["minioi"] = threshold_of(p), minioi_of(p)
    keys = ("method", "threshold") + (() if shown.get("method") == "learned" else ("compression",))
    said = ", ".join(f"{k} {shown[k]:g}" if isinstance(shown[k], float) else f"{k} {shown[k]}"
                     for k in keys if k in shown)
    return said + (f", minioi {shown['minioi'] * 1e3:g} ms" if "minioi" in shown else "")


# -- scoring, in worker processes ---------------------------------------------------------

_DATA: list = []


def _load(kind: str) -> None:
    _DATA[:] = [(c, *mir.load_mono(c.audio)) for c in mir.clips()
                if getattr(c, kind) is not None and c.source not in mir.RENDERED]


def _scored(found) -> tuple[np.ndarray, np.ndarray]:
    """F per onset clip, and every matched offset, of (clip, onsets found) pairs."""
    found = list(found)
    return (np.array([mir.onset_f(c.onsets, est) for c, est in found]),
            np.concatenate([mir.offsets(c.onsets, est) for c, est in found]))


def _score_onsets(params: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """One aubio setting (None: aubio's defaults) on every onset clip."""
    return _scored((c, mir.aubio_onsets(x, sr, params)) for c, x, sr in _DATA)


#: The learned beat activation's share in the dbn tracker's activation that the beat
#: tables show beside the default.
LEARNED_SHARE = 0.7
LEARNED_GRID = [{"method": "learned", "threshold": t, "minioi": g}
                for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8) for g in (0.02, 0.05)]
_ACTIVATIONS: dict[str, tuple[np.ndarray, float]] = {}


def _score_learned(params: dict) -> tuple[np.ndarray, np.ndarray]:
    """The shipped learned detector picked with ``params`` on every onset clip (each
    clip's activation computed once per worker)."""
    for c, x, sr in _DATA:
        if c.name not in _ACTIVATIONS:
            _ACTIVATIONS[c.name] = signal_activation(x, sr)
    return _scored((c, learned_onsets(*_ACTIVATIONS[c.name], params["threshold"], params["minioi"]))
                   for c, _, _ in _DATA)


# -- tables -------------------------------------------------------------------------------

def table(title: str, header: list[str], rows: list[list]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")


def by_kind(kinds: list[str], scores: np.ndarray) -> dict[str, float]:
    """Mean per kind, then the mean of the kinds and the mean of every clip."""
    out = {k: float(np.mean([s for kk, s in zip(kinds, scores) if kk == k]))
           for k in mir.KINDS if k in kinds}
    out["mean of kinds"] = float(np.mean(list(out.values())))
    out["all clips"] = float(np.mean(scores))
    return out


@dataclass
class CV:
    """A family cross-validated over kinds: per held-out kind, the setting chosen on the
    others and its scores there."""

    chosen: dict[str, int] = field(default_factory=dict)
    held_out: np.ndarray | None = None        # per clip, the score of its fold's choice
    best_overall: int = 0


def cross_validate(kinds: list[str], grid_scores: np.ndarray, baseline: np.ndarray | None = None) -> CV:
    """grid_scores: settings x clips.  With ``baseline`` (per clip: aubio's defaults),
    a fold's setting is the one whose worst kind among the others gains most over the
    baseline (ties: the best mean of kinds), so that no kind is given up for another;
    without it, the one with the best mean of kinds."""
    cv = CV(held_out=np.zeros(grid_scores.shape[1]))
    names = sorted(set(kinds))
    mask = {k: np.array([kk == k for kk in kinds]) for k in names}
    per_kind = np.stack([grid_scores[:, mask[k]].mean(axis=1) for k in names], axis=1)  # settings x kinds
    base = (np.array([baseline[mask[k]].mean() for k in names]) if baseline is not None else None)

    def best(cols: list[int]) -> int:
        mean = per_kind[:, cols].mean(axis=1)
        if base is None:
            return int(np.argmax(mean))
        worst = (per_kind[:, cols] - base[cols]).min(axis=1)
        return int(np.lexsort((mean, worst))[-1])

    for i, k in enumerate(names):
        pick = best([j for j in range(len(names)) if j != i])
        cv.chosen[k] = pick
        cv.held_out[mask[k]] = grid_scores[pick, mask[k]]
    cv.best_overall = best(list(range(len(names))))
    return cv


def held_out_rows(groups: list[str], what: str, families: dict, grids: dict, baseline: np.ndarray
                  ) -> list[list]:
    """Each family cross-validated by leaving one group of clips out (``groups``: each
    clip's kind or source; ``grids``: per family, settings x clips): per group, the
    setting chosen on the others, its F there, aubio's defaults there and the gain; then
    the means over the groups (``what`` they are)."""
    names = sorted(set(groups))
    mask = {s: np.array([x == s for x in groups]) for s in names}
    rows = []
    for name, (settings, said) in families.items():
        cv = cross_validate(groups, grids[name], baseline)
        held = [float(cv.held_out[mask[s]].mean()) for s in names]
        base = [float(baseline[mask[s]].mean()) for s in names]
        rows += [[f"{s} ({int(mask[s].sum())})", said(settings[cv.chosen[s]]), f3(h), f3(b), f"{h - b:+.3f}"]
                 for s, h, b in zip(names, held, base)]
        rows.append([f"{name}: mean of {what}", "", f3(np.mean(held)), f3(np.mean(base)),
                     f"{np.mean(held) - np.mean(base):+.3f}"])
    return rows


def coverage(sources: list[str], kinds: list[str], aim: int = 8, least: int = 5) -> str:
    """What the dev set reaches, per onset clip's source and kind: how many sources
    there are against ``aim``, and each kind with fewer than ``least`` clips or from
    one source only."""
    thin = []
    for kind in dict.fromkeys(kinds):
        theirs = sorted({s for s, k in zip(sources, kinds) if k == kind})
        n = kinds.count(kind)
        if n < least or len(theirs) < 2:
            came = ("all from " if n > 1 and len(theirs) == 1 else "from ") + ", ".join(theirs)
            thin.append(f"{kind} ({n} clip{'s' if n != 1 else ''}, {came})")
    said = f"{len(set(sources))} real sources of onsets (aim: at least {aim})"
    return said + (f"; kinds short of {least} clips from 2 sources: " + ", ".join(thin) if thin
                   else f"; every kind has {least} clips from 2 sources")


def latency_row(name: str, offs: np.ndarray) -> list[str]:
    ms = offs * 1e3
    return [name, len(ms), f"{ms.mean():+.1f}", f"{ms.std():.1f}", f"{np.median(ms):+.1f}"]


def f3(v: float) -> str:
    return f"{v:.3f}"


# -- the evaluation ------------------------------------------------------------------------

def evaluate(quick: bool = False) -> int:
    from multiprocessing import Pool

    every = mir.clips()
    clips = [c for c in every if c.source not in mir.RENDERED]
    onset_p, tempo_p = mir.node_defaults("audio.onset"), mir.node_defaults("audio.tempo")
    charted = sum(c.source in mir.DEV_PACKS for c in clips)
    print(f"{len(clips)} annotated real recordings: {len(clips) - charted} from {mir.DATA} "
          f"({len(every) - len(clips)} renders from {', '.join(sorted(mir.RENDERED))} left out), "
          + (f"{charted} guitar stems of {', '.join(mir.DEV_PACKS)}'s charted songs from {mir.fofcharts.FOLDER}"
             if charted else f"none of {', '.join(mir.DEV_PACKS)}'s charted songs ('make charts' fetches them)"))
    print(f"audio.onset defaults: {describe(onset_p)}; audio.tempo defaults: tracker "
          f"{tempo_p['tracker']}, learned {tempo_p['learned']:g}, {tempo_p['min_bpm']:g}-"
          f"{tempo_p['max_bpm']:g} BPM, silence "
          f"{tempo_p['silence']:g} dB (aubio's: {tempo_p['method']}, threshold {tempo_p['threshold']})")

    # The engine, streaming, on every clip (its onsets equal the detector's over the
    # whole file: tests/test_eval_data.py), with its defaults and with aubio's hfc.
    hfc_p = onset_p | {"method": "hfc"}
    ours_on, ours_beats, hfc_on = {}, {}, {}
    for clip in clips:
        _, sr = mir.load_mono(clip.audio)
        ours_on[clip.name], ours_beats[clip.name] = mir.engine_events(clip, sr, onset_p, tempo_p)
        if clip.onsets is not None:
            hfc_on[clip.name], _ = mir.engine_events(clip, sr, hfc_p, tempo_p)

    on_clips = [c for c in clips if c.onsets is not None]
    kinds = [c.kind for c in on_clips]
    grid = aubio_grid(quick)
    families = {"aubio": (grid, describe)}
    if learned.SHIPPED.is_file():
        families["learned"] = (LEARNED_GRID, describe)
    with Pool(2, initializer=_load, initargs=("onsets",)) as pool:
        results = pool.map(_score_onsets, [None, *grid])
        learned_results = (pool.map(_score_learned, LEARNED_GRID) if "learned" in families else [])
    default_scores, default_offs = results[0]
    scored = {"aubio": results[1:], "learned": learned_results}
    ours = np.array([mir.onset_f(c.onsets, ours_on[c.name]) for c in on_clips])
    ours_hfc = np.array([mir.onset_f(c.onsets, hfc_on[c.name]) for c in on_clips])
    ours_offs = np.concatenate([mir.offsets(c.onsets, ours_on[c.name]) for c in on_clips])
    grids = {name: np.stack([r[0] for r in scored[name]]) for name in families}     # settings x clips
    cvs = {name: cross_validate(kinds, grids[name], default_scores) for name in families}
    by_mean = {name: cross_validate(kinds, grids[name]) for name in families}

    columns = {"tonegraph": by_kind(kinds, ours), "tonegraph, method hfc": by_kind(kinds, ours_hfc),
               "aubio defaults": by_kind(kinds, default_scores)}
    for name, cv in cvs.items():
        columns[f"{name}, cross-validated"] = by_kind(kinds, cv.held_out)
    counts = {k: kinds.count(k) for k in set(kinds)}
    rows = [[k, counts.get(k, len(kinds) if k == "all clips" else len(counts)),
             *(f3(col[k]) for col in columns.values())]
            for k in columns["tonegraph"]]
    table("Onsets, F-measure (50 ms), mean over clips", ["kind", "clips", *columns], rows)

    held_header = ["held out", "chosen on the others", "F there", "aubio defaults", "gain"]
    table("Onsets, leave one kind out: each family's setting whose worst kind among the others "
          "gains most over aubio's defaults, scored on the one left out (clips in brackets)",
          held_header, held_out_rows(kinds, "kinds", families, grids, default_scores))
    table("Onsets, leave one source out: the same, the recordings grouped by where they come from "
          "(mdb_drums holds drums and full mixes, bock_onsets many kinds)",
          held_header, held_out_rows([c.source for c in on_clips], "sources", families, grids,
                                     default_scores))
    print(f"\nThe dev set: {coverage([c.source for c in on_clips], kinds)}")
    latency = [latency_row("tonegraph", ours_offs), latency_row("aubio defaults", default_offs)]
    for name, cv in cvs.items():
        settings, said = families[name]
        mean_cv = by_kind(kinds, by_mean[name].held_out)["mean of kinds"]
        print(f"\nBest {name} setting over every kind (its worst kind's gain over aubio's defaults; "
              f"mean of kinds cross-validated {columns[f'{name}, cross-validated']['mean of kinds']:.3f}, "
              f"{mean_cv:.3f} with each fold chosen by the mean of kinds): "
              f"{said(settings[cv.best_overall])}; by the mean of kinds: "
              f"{said(settings[by_mean[name].best_overall])}")
        latency.append(latency_row(said(settings[cv.best_overall]), scored[name][cv.best_overall][1]))
    table("Onset latency: detected minus annotated time of matched onsets [ms]",
          ["detector", "onsets matched", "mean", "spread (sd)", "median"], latency)

    live = {"tonegraph": onset_p, "tonegraph, method hfc": hfc_p}
    delays = {name: [] for name in live}
    for c in on_clips:
        x, sr = mir.load_mono(c.audio)
        for name, params in live.items():
            delays[name].append(mir.live_delays(c, x, sr, params))
    table(f"Live delay: from the hop holding an onset's sound reaching the engine to its event "
          f"leaving the node, hop {mir.HOP} samples [ms]",
          ["detector", "onsets matched", "mean", "spread (sd)", "median"],
          [latency_row(f"{name} ({describe(live[name])})", np.concatenate(d)) for name, d in delays.items()])

    beat_clips = [c for c in clips if c.beats is not None]
    bkinds = [c.kind for c in beat_clips]
    aubio_p = tempo_p | {"tracker": "aubio"}
    heard_p = tempo_p | {"early": False}
    mixed_p = tempo_p | {"learned": LEARNED_SHARE}
    trackers = {"tonegraph": ours_beats, "tonegraph, early off": {}, "tonegraph, learned": {},
                "aubio, tonegraph's settings": {}, "aubio defaults": {}}
    for c in beat_clips:
        x, sr = mir.load_mono(c.audio)
        trackers["tonegraph, early off"][c.name] = mir.engine_events(c, sr, None, heard_p)[1]
        trackers["tonegraph, learned"][c.name] = mir.engine_events(c, sr, None, mixed_p)[1]
        trackers["aubio, tonegraph's settings"][c.name] = mir.engine_events(c, sr, None, aubio_p)[1]
        trackers["aubio defaults"][c.name] = mir.aubio_beats(x, sr, None)
    scores = {name: np.array([mir.beat_scores(c.beats, est[c.name]) for c in beat_clips])
              for name, est in trackers.items()}
    cols = [by_kind(bkinds, a[:, i]) for a in scores.values() for i in range(3)]
    bcounts = {k: bkinds.count(k) for k in set(bkinds)}
    rows = [[k, bcounts.get(k, len(bkinds) if k == "all clips" else len(bcounts)),
             *(f3(c[k]) for c in cols)] for k in cols[0]]
    short = {"tonegraph": "tonegraph", "tonegraph, early off": "early off", "tonegraph, learned": "learned",
             "aubio, tonegraph's settings": "aubio ours", "aubio defaults": "aubio defaults"}
    table(f"Beats, mean over clips (mir_eval, 70 ms, untrimmed); tonegraph is the {tempo_p['tracker']} "
          f"tracker (early {tempo_p['early']}, learned {tempo_p['learned']:g}), 'learned' the same with "
          f"the learned beat activation's share at {LEARNED_SHARE:g}, 'aubio ours' aubio's tracker with the "
          f"node's settings",
          ["kind", "clips", *(h for name in trackers for h in (f"{short[name]} F", "CMLt", "AMLt"))], rows)

    levels = {name: [(c, mir.metrical_level(c.beats, est[c.name])) for c in beat_clips]
              for name, est in trackers.items()}
    table("Beats: metrical level heard, per tracker (clips at another level than the annotated "
          "tempo's: double or half is an octave error)",
          ["tracker", *(f"{k} ({bcounts[k]})" for k in mir.KINDS if k in bcounts), "clips at another level"],
          [[name, *(str(sum(1 for c, lv in got if c.kind == k and lv != "right"))
                    for k in mir.KINDS if k in bcounts),
            ", ".join(f"{c.name} {lv}" for c, lv in got if lv != "right") or "none"]
           for name, got in levels.items()])

    def lock_row(name: str, got: list) -> list:
        held = [g for g in got if g is not None]
        return [name, f"{len(held)} of {len(got)}", f"{np.median(held):.0f}" if held else "-",
                f"{np.percentile(held, 90):.0f}" if held else "-", max(held) if held else "-"]
    table("Beats until the tracker holds (4 annotated beats in a row matched, from the first)",
          ["tracker", "clips where it holds", "median beats", "90th percentile", "worst"],
          [lock_row(name, [mir.lock(c.beats, est[c.name]) for c in beat_clips])
           for name, est in trackers.items()])

    after = {name: [] for name in trackers}
    splices = list(mir.spliced(beat_clips))
    with tempfile.TemporaryDirectory() as d:
        for name, x, sr, cut, ref in splices:
            path = Path(d) / "splice.wav"
            sf.write(path, x, sr, subtype="FLOAT")
            clip = mir.Clip("splice", name, path, None, ref)
            for tracker, params in (("tonegraph", tempo_p), ("tonegraph, early off", heard_p),
                                    ("tonegraph, learned", mixed_p),
                                    ("aubio, tonegraph's settings", aubio_p)):
                est = mir.engine_events(clip, sr, None, params)[1]
                after[tracker].append(mir.lock(ref, est[est > cut - 0.05]))
            est = mir.aubio_beats(x, sr, None)
            after["aubio defaults"].append(mir.lock(ref, est[est > cut - 0.05]))
    table(f"Beats until the tracker holds again after a tempo change: {len(splices)} hard cuts "
          f"from one recording into another of a different tempo (12 s, then 16 s)",
          ["tracker", "cuts where it holds", "median beats", "90th percentile", "worst"],
          [lock_row(name, got) for name, got in after.items()])
    live_beats = {"tonegraph": tempo_p, "tonegraph, early off": heard_p, "tonegraph, learned": mixed_p,
                  "aubio, tonegraph's settings": aubio_p}
    delays = {name: [] for name in live_beats}
    for c in beat_clips:
        x, sr = mir.load_mono(c.audio)
        for name, params in live_beats.items():
            delays[name].append(mir.live_delays(c, x, sr, params, beats=True))
    table(f"Live delay of beats: from the hop holding a beat's sound reaching the engine to "
          f"its event leaving the node, hop {mir.HOP} samples [ms]",
          ["tracker", "beats matched", "mean", "spread (sd)", "median"],
          [latency_row(name, np.concatenate(d)) for name, d in delays.items()])
    table("Beat latency: detected minus annotated time of matched beats [ms]",
          ["tracker", "beats matched", "mean", "spread (sd)", "median"],
          [latency_row(name, np.concatenate([mir.offsets(c.beats, est[c.name], 0.07) for c in beat_clips]))
           for name, est in trackers.items()])
    if not quick:
        from . import agreement, downbeats

        downbeats.evaluate(table)
        agreement.evaluate(table)
        from . import charts

        charts.evaluate(table)
    from . import gate

    return 0 if gate.evaluate(table, on_clips, ours_on, default_scores).passed else 1


def main(argv: list[str]) -> int:
    if not mir.DATA.is_dir():
        print(f"make eval needs the annotated recordings in {mir.DATA}, which is not here "
              f"(it is not shipped with the project).", file=sys.stderr)
        return 2
    return evaluate(quick="--quick" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
