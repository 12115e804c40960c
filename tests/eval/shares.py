"""``python -m tests.eval.shares``: the dbn tracker with each share of the learned beat
activation (audio.tempo's ``learned``, the node's other defaults), over the annotated
beat clips and the hard cuts between them that ``make eval`` uses, beats reported once
heard (``mir.dbn_beats``: the whole file at once, which equals the node fed hop by hop
with ``early: false``).

Per share: beat F per kind of material and their mean, the country clip's F and CMLt
(the clip every tracker here hears at twice its tempo), and how many annotated beats pass
after a cut before the tracker holds again (median, 90th percentile, cuts where it
holds).  ``--model PATH`` scores other weights (``tonegraph train beats``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tonegraph.nodes.audio.learned import WeightsError
from tonegraph.nodes.audio.tempo import BEATS, beat_weights

from . import mir

SHARES = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 1.0)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.eval.shares", description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=BEATS, help="beat activation weights (default: shipped)")
    ap.add_argument("--shares", type=lambda v: [float(s) for s in v.split(",")], default=list(SHARES))
    args = ap.parse_args(argv)
    clips = [c for c in mir.clips() if c.beats is not None]
    if not clips:
        print(f"no annotated beat clips under {mir.DATA}", file=sys.stderr)
        return 1
    try:
        beat_weights(args.model)
    except WeightsError as exc:
        print(f"error: --model: {exc}", file=sys.stderr)
        return 2
    audio = {c.name: mir.load_mono(c.audio) for c in clips}
    cuts = list(mir.spliced(clips))
    kinds = [k for k in mir.KINDS if any(c.kind == k for c in clips)]
    print(f"{len(clips)} clips, {len(cuts)} cuts; weights {args.model}")
    print("| share | " + " | ".join(f"{k} F" for k in kinds) + " | mean of kinds | country F / CMLt "
          "| beats to hold after a cut: median / p90 | cuts held |")
    print("|" + " --- |" * (len(kinds) + 5))
    defaults = mir.node_defaults("audio.tempo") | {"beat_model": str(args.model)}
    for share in args.shares:
        params = defaults | {"learned": share}
        scores = {c.name: mir.beat_scores(c.beats, mir.dbn_beats(*audio[c.name], params)) for c in clips}
        per_kind = [np.mean([scores[c.name][0] for c in clips if c.kind == k]) for k in kinds]
        country = next((scores[c.name] for c in clips if c.name.startswith("country")), (np.nan,) * 3)
        held = []
        for _, x, sr, cut, ref in cuts:
            est = mir.dbn_beats(x, sr, params)
            held.append(mir.lock(ref, est[est > cut - 0.05]))
        ok = [h for h in held if h is not None]
        print(f"| {share:g} | " + " | ".join(f"{f:.3f}" for f in per_kind) + f" | {np.mean(per_kind):.3f} "
              f"| {country[0]:.2f} / {country[1]:.2f} | {np.median(ok):.1f} / {np.percentile(ok, 90):.0f} "
              f"| {len(ok)} of {len(held)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
