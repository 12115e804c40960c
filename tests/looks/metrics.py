"""How well a patch's pictures follow the music, as numbers (pure functions over arrays).

Frames are uint8 arrays (N x H x W x 3) drawn at known times; the sound is a mono float
array.  Every figure compares what the picture does with what the music does:

* ``beat contrast``: how much brighter (or livelier) the frames just after a beat are
  than the frames late in the beat (first 20 % of each beat period against its last
  40 %); 1.0 means the beat cannot be seen.
* ``onset r``: Pearson correlation of per-frame brightness (or motion) with the
  music's onset strength, at the best lag of 0-3 frames (pictures follow sound).
* ``blank``: the share of frames that are black or flat, and the longest run of them
  while the music plays.
* ``teleports``: the share of frames whose change from the previous frame exceeds 2.5x
  the median change with nothing in the music to cause it: jumps rather than motion.
  The change measured is of the picture's structure (one minus the correlation of two
  frames' normalised luminance), so a flash that brightens a picture without
  rearranging it is not one, and of its amount (the light that moves, as ``motion``),
  so a faint mark on a dim picture is not one either; and a frame within a third of a
  second after an onset (strength >= 0.3) or a beat, or up to 70 ms before one (a
  tracker that predicts beats flashes on time, a frame before the annotation), is the
  picture answering the music, not a jump.
"""

from __future__ import annotations

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def luma(frames: np.ndarray) -> np.ndarray:
    """Per-pixel luminance 0..1, N x H x W."""
    return (frames.astype(np.float32) @ LUMA) / 255.0


def brightness(frames: np.ndarray) -> np.ndarray:
    return luma(frames).mean(axis=(1, 2))


def motion(frames: np.ndarray) -> np.ndarray:
    """Mean absolute luminance change from the previous frame (0 for the first)."""
    y = luma(frames)
    out = np.zeros(len(y), dtype=np.float32)
    if len(y) > 1:
        out[1:] = np.abs(np.diff(y, axis=0)).mean(axis=(1, 2))
    return out


def onset_strength(x: np.ndarray, sr: int, times: np.ndarray, n_fft: int = 1024,
                   hop: int = 256) -> np.ndarray:
    """Spectral flux (log magnitude, rectified) of ``x``, its peak within each frame's
    interval (t - 1/fps, t], scaled to 0..1."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < n_fft:
        return np.zeros(len(times), dtype=np.float32)
    win = np.hanning(n_fft).astype(np.float32)
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    mag = np.log1p(100.0 * np.abs(np.fft.rfft(x[idx] * win, axis=1)))
    flux = np.concatenate([[0.0], np.maximum(np.diff(mag, axis=0), 0.0).sum(axis=1)])
    t_flux = (np.arange(n) * hop + n_fft / 2) / sr
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    out = np.zeros(len(times), dtype=np.float32)
    for i, t in enumerate(times):
        sel = flux[(t_flux > t - step) & (t_flux <= t)]
        out[i] = sel.max() if len(sel) else 0.0
    top = np.percentile(out, 99) if len(out) else 0.0
    return np.clip(out / top, 0.0, 1.0) if top > 0 else out


def beat_contrast(values: np.ndarray, times: np.ndarray, beats: np.ndarray) -> float:
    """Mean of ``values`` in the first 20 % of each beat period over the mean in its last
    40 % (nan when there are no whole beats)."""
    beats = np.asarray(beats, dtype=float)
    early, late = [], []
    for a, b in zip(beats, beats[1:]):
        period = b - a
        if period <= 0:
            continue
        phase = (times - a) / period
        inside = (phase >= 0) & (phase < 1)
        early += list(values[inside & (phase < 0.2)])
        late += list(values[inside & (phase >= 0.6)])
    if not early or not late:
        return float("nan")
    lo = float(np.mean(late))
    return float(np.mean(early)) / lo if lo > 1e-6 else float("inf") if np.mean(early) > 1e-6 else 1.0


def lagged_r(picture: np.ndarray, sound: np.ndarray, max_lag: int = 3) -> float:
    """The best Pearson r of ``picture[k]`` with ``sound[k - lag]``, lag 0..max_lag."""
    best = float("nan")
    for lag in range(max_lag + 1):
        a, b = picture[lag:], sound[:len(sound) - lag]
        if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        if np.isnan(best) or r > best:
            best = r
    return best


def blank(frames: np.ndarray, fps: float, audible: np.ndarray) -> tuple[float, float]:
    """(share of blank frames, longest run [s] of blank frames while ``audible``)."""
    y = luma(frames)
    empty = (y.mean(axis=(1, 2)) < 0.02) | (y.std(axis=(1, 2)) < 0.004)
    run = longest = 0
    for e, a in zip(empty, audible):
        run = run + 1 if (e and a) else 0
        longest = max(longest, run)
    return float(empty.mean()) if len(empty) else 0.0, longest / fps


def structural_change(frames: np.ndarray) -> np.ndarray:
    """Per frame, one minus the correlation of its normalised luminance with the
    previous frame's (0 for the first frame, and between two flat frames)."""
    y = luma(frames).reshape(len(frames), -1)
    y = y - y.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(y, axis=1)
    out = np.zeros(len(y), dtype=np.float32)
    for k in range(1, len(y)):
        if norm[k] > 1e-6 and norm[k - 1] > 1e-6:
            out[k] = 1.0 - float(y[k] @ y[k - 1]) / (norm[k] * norm[k - 1])
        elif norm[k] > 1e-6 or norm[k - 1] > 1e-6:
            out[k] = 1.0
    return out


def teleports(change: np.ndarray, onset: np.ndarray | None = None,
              beats_near: np.ndarray | None = None, floor: float = 0.05,
              window: int = 10, lead: int = 0, amount: np.ndarray | None = None) -> float:
    """Share of frames that jump with nothing in the music to explain it.

    A jump: the frame's change exceeds 2.5x the median change (and ``floor``: a still
    picture's noise is not a jump) and, given the ``amount`` of light each frame moves
    (:func:`motion`), it also moves more than 2.5x the median amount (on a dim picture
    a faint new mark rearranges the normalised picture without being seen as a jump).
    Explained: an onset (strength >= 0.3) or a beat (``beats_near``) in the last
    ``window`` frames (a third of a second at 30 fps: a ring that spreads after a hit,
    or a punch that settles, answers it) or the next ``lead`` frames (a tracker that
    predicts beats shows one a frame or two before its annotated time, inside
    mir_eval's 70 ms).  Nothing wraps around the clip's ends."""
    moving = change[1:]
    if len(moving) == 0:
        return 0.0
    med = float(np.median(moving))
    jumps = (moving > 2.5 * med) & (moving > floor)
    if amount is not None:
        jumps &= amount[1:] > 2.5 * float(np.median(amount[1:]))
    for cause in (onset, None if beats_near is None else beats_near.astype(float)):
        if cause is not None:
            # Frame i's causes are frames i - window + 1 .. i + lead.
            padded = np.concatenate([np.zeros(window - 1), cause, np.zeros(lead)])
            near = np.lib.stride_tricks.sliding_window_view(padded, window + lead).max(axis=1)
            jumps &= near[1:] < 0.3
    return float(jumps.mean())


def near_beats(times: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Per frame: whether a beat fell since the previous frame."""
    idx = np.searchsorted(times, beats)
    out = np.zeros(len(times), dtype=bool)
    out[idx[(idx >= 0) & (idx < len(times))]] = True
    return out


def audible(x: np.ndarray, sr: int, times: np.ndarray, threshold_db: float = -45.0) -> np.ndarray:
    """Whether the music is playing at each frame time (RMS over the previous 100 ms)."""
    out = np.zeros(len(times), dtype=bool)
    w = int(0.1 * sr)
    for i, t in enumerate(times):
        seg = x[max(0, int(t * sr) - w):int(t * sr)]
        if len(seg):
            out[i] = 20 * np.log10(np.sqrt(np.mean(seg ** 2)) + 1e-12) > threshold_db
    return out
