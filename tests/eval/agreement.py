"""How far onset labels made by agreement of detectors can be trusted (tools/pseudolabel.py).

Unannotated real music is labelled where K of the detectors (aubio's hfc, complex and
specflux, and the shipped learned detector) agree within a tolerance.  Whether such
labels are worth training on is measured here on the annotated real recordings: each
source's onset F (50 ms) of every single detector and of agreement at K = 2, 3, 4 within
20, 30 and 50 ms, against the human annotations; the mean is over real sources (renders
left out).  Agreement earns its place only if it stays near the best detector on every
source, since which single detector is best changes from source to source.
"""

from __future__ import annotations

import numpy as np

from tonegraph.tools import pseudolabel as pl

from . import mir

SETTINGS = [(k, tol) for k in (2, 3, 4) for tol in (0.02, 0.03, 0.05)]


def scores() -> dict[str, dict[str, float]]:
    """Per source: mean onset F of each detector and each agreement setting."""
    dets = pl.detectors()
    rows: dict[str, list[dict[str, float]]] = {}
    for clip in (c for c in mir.clips() if c.onsets is not None):
        x, sr = pl.mono(clip.audio)
        found = pl.detect_all(x, sr, dets)
        row = {name: mir.onset_f(clip.onsets, times) for name, times in found.items()}
        for k, tol in SETTINGS:
            row[f"{k} of {len(dets)}, {tol * 1000:.0f} ms"] = mir.onset_f(
                clip.onsets, pl.agree(found.values(), k, tol))
        rows.setdefault(clip.source, []).append(row)
    return {source: {col: float(np.mean([r[col] for r in rs])) for col in rs[0]}
            for source, rs in rows.items()}


def evaluate(table) -> dict[str, float]:
    per = scores()
    real = [s for s in per if s not in mir.RENDERED]
    cols = list(per[real[0]])
    mean = {col: float(np.mean([per[s][col] for s in real])) for col in cols}
    shown = [c for c in cols if " of " not in c] + [c for c in cols if c.endswith("50 ms")]
    table("Onset labels by agreement of detectors (tools/pseudolabel.py) against the human "
          "annotations: mean F (50 ms) per source; the mean is over real sources",
          ["source", *shown],
          [[s, *(f"{per[s][c]:.3f}" for c in shown)] for s in real]
          + [[f"mean of {len(real)} real sources", *(f"{mean[c]:.3f}" for c in shown)]])
    worst = {c: min(per[s][c] - max(per[s][d] for d in cols if " of " not in d) for s in real)
             for c in cols}
    table("The same: each setting's mean, and its worst shortfall from the best single detector "
          "on any source", ["labels", "mean F", "worst shortfall"],
          [[c, f"{mean[c]:.3f}", f"{worst[c]:+.3f}"] for c in cols])
    return mean
