"""The autoencoder's code on real songs: ``python -m tests.looks.codes``.

For each of the look songs (or the built-in groove when ../shared/data is not there),
runs ml.autoencoder's model over the whole recording and reports how much of the
training-range code (``raw``) sits pinned at 0 or 1 (saturated: a mapping driven by it
stops moving) and how much of its range each dimension spans.  Draws the code over time
per song to docs/models/autoencoder-songs.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .__main__ import DATA, GROOVE, ROOT, SONGS

MODEL = ROOT / "nodes" / "ml" / "models" / "autoencoder.pt"
#: A value within this of 0 or 1 counts as saturated.
EDGE = 0.01


def codes(model: Path, path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(codes in 0..1 per frame, reconstruction error per frame, frames per second)."""
    from tonegraph.nodes.ml.frontend import file_frames, windows
    from tonegraph.nodes.ml.models import shared

    runner = shared("autoencoder", model, "cpu", "float32")
    rows = runner.forward(windows(file_frames(path, runner.front), runner.context))
    front = runner.front
    return rows[:, :-1], rows[:, -1], float(front["samplerate"]) / float(front["hop"])


def summary(code: np.ndarray) -> dict[str, float]:
    pinned = (code <= EDGE) | (code >= 1 - EDGE)
    span = np.percentile(code, 95, axis=0) - np.percentile(code, 5, axis=0)
    return {"saturated": float(pinned.mean()), "worst_dim": float(pinned.mean(axis=0).max()),
            "span": float(span.mean())}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.looks.codes", description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "models" / "autoencoder-songs.png")
    args = ap.parse_args(argv)
    songs = [(name, DATA / rel) for name, rel, _ in SONGS] if DATA.is_dir() else [("built-in groove", GROOVE)]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(songs), 1, figsize=(10, 2.4 * len(songs)), squeeze=False)
    worst = 0.0
    for ax, (name, path) in zip(axes[:, 0], songs):
        code, err, fps = codes(args.model, path)
        s = summary(code)
        worst = max(worst, s["saturated"])
        print(f"{name:24s} {len(code):5d} frames: saturated {100 * s['saturated']:5.1f} % "
              f"(worst dimension {100 * s['worst_dim']:5.1f} %), mean 5-95 % span {s['span']:.2f}")
        ax.imshow(code.T, aspect="auto", origin="lower", cmap="magma", vmin=0, vmax=1,
                  extent=(0, len(code) / fps, -0.5, code.shape[1] - 0.5), interpolation="nearest")
        ax.set_ylabel("code dim")
        ax.set_title(f"{name}: {100 * s['saturated']:.1f} % of values at 0 or 1, mean span "
                     f"{s['span']:.2f}", fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    fig.suptitle(f"ml.autoencoder raw code on real recordings ({args.model.name})", fontsize=10)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=80)
    print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
