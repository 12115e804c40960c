"""The default gate: ``audio.onset``'s shipped default against aubio's own defaults, per
source of real recordings (renders left out).

A method may be the default only when, on every source, it scores at least ``MARGIN``
onset F above aubio's defaults, and above them on the mean of sources; the one other
default allowed is aubio's own defaults themselves (what every user of aubio gets), which
may then trail them by no more than the engine's streaming costs (``TIE``).  ``make
eval`` prints this table and fails when the shipped default breaks the gate;
``python -m tests.eval.gate`` runs it alone (a few minutes).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from . import mir

MARGIN = 0.02    # [F] a default's least gain over aubio's defaults, on every source
TIE = 0.005      # [F] how far aubio's own defaults, run by the engine, may trail aubio


@dataclass
class Gate:
    rows: list[list[str]]
    passed: bool
    why: str


def judge(sources: list[str], default: np.ndarray, aubio: np.ndarray, is_aubio_default: bool) -> Gate:
    """Per clip: its source, the shipped default's F and aubio's defaults' F."""
    names = sorted(set(sources))
    rows, gains = [], []
    for s in names:
        mask = np.array([x == s for x in sources])
        d, a = float(default[mask].mean()), float(aubio[mask].mean())
        gains.append(d - a)
        rows.append([f"{s} ({int(mask.sum())})", f"{d:.3f}", f"{a:.3f}", f"{d - a:+.3f}"])
    mean_d = float(np.mean([float(default[np.array([x == s for x in sources])].mean()) for s in names]))
    mean_a = float(np.mean([float(aubio[np.array([x == s for x in sources])].mean()) for s in names]))
    rows.append(["mean of sources", f"{mean_d:.3f}", f"{mean_a:.3f}", f"{mean_d - mean_a:+.3f}"])
    worst = min(gains)
    worst_source = names[int(np.argmin(gains))]
    if is_aubio_default:
        passed = worst >= -TIE
        why = (f"aubio's own defaults, within {TIE} of aubio on every source" if passed else
               f"aubio's own defaults, but {worst:+.3f} on {worst_source} (more than {TIE} behind)")
    else:
        passed = worst >= MARGIN and mean_d > mean_a
        why = (f"at least +{MARGIN} on every source (worst {worst:+.3f}, {worst_source})" if passed
               else f"{worst:+.3f} on {worst_source}, where the gate asks +{MARGIN} on every source"
               + ("" if mean_d > mean_a else " and a gain on the mean"))
    return Gate(rows, passed, why)


def is_aubios_default(params: dict) -> bool:
    """Whether audio.onset's params are aubio's own defaults (hfc at 0.058, compression 1,
    50 ms apart, -70 dB, no whitening, a 1024-sample window)."""
    from tonegraph.nodes.audio.onset import minioi_of, threshold_of

    p = mir.as_params({"threshold": None, "minioi": None, "silence": -70.0, "whitening": False,
                       "compression": 1.0, "buf_size": 1024} | params)
    return (p.method == "hfc" and abs(threshold_of(p) - 0.058) < 1e-9 and p.compression == 1.0
            and abs(minioi_of(p) - 0.05) < 1e-9 and p.silence == -70.0 and not p.whitening
            and p.buf_size == 1024)


def evaluate(table, clips: list | None = None, ours: dict | None = None,
             aubio: np.ndarray | None = None) -> Gate:
    """Print the gate for the shipped default (``ours``: its onsets per clip name, when
    make eval has them; ``aubio``: aubio's defaults' F per clip) and return it."""
    params = mir.node_defaults("audio.onset")
    clips = [c for c in (clips or mir.clips()) if c.onsets is not None and c.source not in mir.RENDERED]
    if ours is None:
        ours = {}
        for c in clips:
            _, sr = mir.load_mono(c.audio)
            ours[c.name] = mir.engine_events(c, sr, params, mir.node_defaults("audio.tempo"))[0]
    default = np.array([mir.onset_f(c.onsets, ours[c.name]) for c in clips])
    if aubio is None:
        aubio = np.array([mir.onset_f(c.onsets, mir.aubio_onsets(*mir.load_mono(c.audio), None))
                          for c in clips])
    gate = judge([c.source for c in clips], default, aubio, is_aubios_default(params))
    from .__main__ import describe

    table(f"The default gate: audio.onset's default ({describe(params)}) against aubio's defaults, "
          f"per source of real recordings, onset F", ["source (clips)", "default", "aubio defaults", "gain"],
          gate.rows)
    print(f"\nGate {'PASSED' if gate.passed else 'FAILED'}: {gate.why}")
    return gate


def main() -> int:
    from .__main__ import table

    if not mir.DATA.is_dir():
        print(f"the gate needs the annotated recordings in {mir.DATA}", file=sys.stderr)
        return 2
    return 0 if evaluate(table).passed else 1


if __name__ == "__main__":
    sys.exit(main())
