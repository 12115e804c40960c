"""`make looks`: does every shipped patch visibly play the music?

Every patch in graphs/ that has a window is rendered offline, at a small size, over a
few real recordings with annotated beats (from ../shared/data/mir when it is there,
else the built-in groove), each from a few seconds in with the render's pre-roll.
Per patch and song it prints (tests/looks/metrics.py says how each is measured):

- beat contrast of brightness and of motion (after the beat against late in it),
- correlation of brightness and of motion with the music's onset strength,
- blank frames and the longest blank stretch while the music plays,
- teleports (frames that jump rather than move),

and writes a contact sheet per patch (frames on beats above frames between beats, on
the first song) to docs/looks/<patch>.png and every number to docs/looks/looks.json.

The aims: each patch shows the beat (brightness contrast >= 1.3) or the onsets
(brightness or motion r >= 0.3), has no blank stretch over 1 s with music playing, and
teleports on at most 1 % of frames.

``python -m tests.looks --quick`` renders 4 s of the groove at a tiny size (a smoke
run, in the test suite); ``--patch NAME`` renders one patch.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import metrics

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "mir"
GROOVE = ROOT / "graphs" / "media" / "groove.flac"

#: (name, file under DATA, seconds from): a rock mix, country and a pop arrangement,
#: at 95-138 BPM.  The contact sheets use the Slakh arrangement (CC BY 4.0).
SONGS = [("slakh pop, 80 BPM", "midi_render/slakh_track00001_first45s.flac", 8.0),
         ("rock mix, 80s", "mdb_drums/MusicDelta_80sRock_rawmix.flac", 6.0),
         ("country", "gtzan/country.00000.wav", 6.0)]
AIM_CONTRAST, AIM_R, AIM_BLANK_S, AIM_TELEPORTS = 1.3, 0.3, 1.0, 0.01


@dataclass
class Song:
    name: str
    path: Path
    beats: np.ndarray
    start: float
    end: float


@dataclass
class Look:
    patch: str
    song: str
    contrast_brightness: float
    contrast_motion: float
    r_brightness: float
    r_motion: float
    blank_share: float
    blank_run: float
    teleports: float
    frames: int
    sheet: list = field(default_factory=list, repr=False)

    @property
    def shows_music(self) -> bool:
        """The beat in its brightness, or the onsets in its brightness or motion.  (Motion
        contrast is printed but not an aim: a picture still late in the beat makes any
        movement on it look large.)"""
        r = np.nanmax([self.r_brightness, self.r_motion, -1.0])
        return bool(self.contrast_brightness >= AIM_CONTRAST or r >= AIM_R)

    @property
    def meets_aims(self) -> bool:
        return self.shows_music and self.blank_run <= AIM_BLANK_S and self.teleports <= AIM_TELEPORTS


def songs(quick: bool, seconds: float) -> list[Song]:
    import soundfile as sf

    if quick or not DATA.is_dir():
        from tonegraph.nodes.audio.synth import render_groove

        _, _, beats = render_groove(22050, 120.0, 16, 1)    # the groove as graphs/media has it
        length = 4.0 if quick else seconds
        return [Song("built-in groove, 120 BPM", GROOVE, np.asarray(beats, float), 6.0, 6.0 + length)]
    out = []
    for name, rel, start in SONGS:
        path = DATA / rel
        beats = np.loadtxt(path.with_suffix(".beats"), ndmin=1)
        total = sf.info(str(path)).duration
        out.append(Song(name, path, beats, start, min(total, start + seconds)))
    return out


def look(patch: Path, song: Song, size: tuple[int, int], fps: float, registry) -> Look:
    import soundfile as sf

    from tonegraph.tools.render import prepare

    job = prepare(patch, registry, song.path, size, fps, song.start, song.end)
    frames: list[np.ndarray] = []
    job.runtime.runner.nodes[job.window].sink = lambda px: frames.append(px.copy())
    job.runtime.run()
    f = np.array(frames)
    times = song.start + np.arange(len(f)) / fps
    x, sr = sf.read(str(song.path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    onset = metrics.onset_strength(x, sr, times)
    b, m = metrics.brightness(f), metrics.motion(f)
    beats = song.beats[(song.beats >= song.start) & (song.beats <= song.end)]
    share, run = metrics.blank(f, fps, metrics.audible(x, sr, times))
    result = Look(patch.stem, song.name, metrics.beat_contrast(b, times, beats),
                  metrics.beat_contrast(m, times, beats), metrics.lagged_r(b, onset),
                  metrics.lagged_r(m, onset), share, run,
                  metrics.teleports(metrics.structural_change(f), onset,
                                    metrics.near_beats(times, beats), window=round(fps / 3),
                                    lead=round(0.07 * fps), amount=m),
                  len(f))
    result.sheet = contact(f, times, beats, fps)
    return result


def contact(frames: np.ndarray, times: np.ndarray, beats: np.ndarray, fps: float, n: int = 6) -> list:
    """Frames one frame after each of ``n`` beats from the middle of the clip, and the
    frames halfway to the next beat."""
    middle = beats[len(beats) // 2 - n // 2:][:n + 1]
    on, between = [], []
    for a, b in zip(middle, middle[1:]):
        i = int(np.searchsorted(times, a)) + 1
        j = int(np.searchsorted(times, (a + b) / 2))
        if i < len(frames) and j < len(frames):
            on.append(frames[i])
            between.append(frames[j])
    return [on, between]


def save_sheet(rows: list, path: Path, title: str) -> None:
    from PIL import Image, ImageDraw

    on, between = rows
    if not on:
        return
    h, w = on[0].shape[:2]
    pad, label = 4, 16
    sheet = Image.new("RGB", (len(on) * (w + pad) + pad + 70, 2 * (h + pad) + pad + label), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 2), title, fill=(220, 220, 220))
    for r, (name, row) in enumerate((("on beat", on), ("between", between))):
        y = label + pad + r * (h + pad)
        draw.text((pad, y + h // 2 - 5), name, fill=(200, 200, 200))
        for c, frame in enumerate(row):
            sheet.paste(Image.fromarray(frame), (70 + c * (w + pad), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def fmt(x: float, pct: bool = False) -> str:
    if x != x:
        return "-"
    return f"{100 * x:.1f} %" if pct else f"{x:.2f}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.looks", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 s of the groove, tiny frames")
    ap.add_argument("--patch", action="append", metavar="NAME", help="only this patch (repeatable)")
    ap.add_argument("--seconds", type=float, default=24.0, help="seconds of each song (default 24)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "looks", metavar="DIR")
    args = ap.parse_args(argv)
    from tonegraph.engine.graph import load_graph
    from tonegraph.engine.registry import default_registry

    registry = default_registry(plugins=False)
    size, fps = ((64, 36), 15.0) if args.quick else ((192, 108), 30.0)
    patches = []
    for path in sorted((ROOT / "graphs").glob("*.yaml")):
        graph, _ = load_graph(path, registry)
        if graph is not None and any(n.type == "gl.window" for n in graph.nodes.values()):
            if not args.patch or path.stem in args.patch:
                patches.append(path)
    tracks = songs(args.quick, args.seconds)
    print(f"{len(patches)} patches over {len(tracks)} song(s): " + ", ".join(
        f"{s.name} ({s.start:g}-{s.end:g} s)" for s in tracks))
    looks: list[Look] = []
    header = ["patch", "song", "beat contrast b/m", "onset r b/m", "blank", "blank run",
              "teleports", "aims"]
    rows = []
    for patch in patches:
        for song in tracks:
            lk = look(patch, song, size, fps, registry)
            looks.append(lk)
            rows.append([lk.patch, song.name, f"{fmt(lk.contrast_brightness)} / {fmt(lk.contrast_motion)}",
                         f"{fmt(lk.r_brightness)} / {fmt(lk.r_motion)}", fmt(lk.blank_share, True),
                         f"{lk.blank_run:.1f} s", fmt(lk.teleports, True),
                         "meets" if lk.meets_aims else "misses"])
            print("  " + "  ".join(str(c) for c in rows[-1]), flush=True)
        first = next(lk for lk in looks if lk.patch == patch.stem)
        if not args.quick:
            save_sheet(first.sheet, args.out / f"{patch.stem}.png", f"{patch.stem} on {tracks[0].name}")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("\n| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
    met = sum(lk.meets_aims for lk in looks)
    print(f"\n{met} of {len(looks)} renders meet the aims (beat contrast >= {AIM_CONTRAST} or "
          f"onset r >= {AIM_R}; no blank stretch over {AIM_BLANK_S:g} s; teleports <= "
          f"{100 * AIM_TELEPORTS:g} %)")
    if not args.quick:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "looks.json"
        rows = [{k: v for k, v in vars(lk).items() if k != "sheet"} for lk in looks]
        if args.patch and path.is_file():        # one patch again: keep the others' numbers
            done = {r["patch"] for r in rows}
            rows = sorted([r for r in json.loads(path.read_text()) if r["patch"] not in done] + rows,
                          key=lambda r: r["patch"])
        path.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
