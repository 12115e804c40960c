"""Pure DSP helpers shared by the audio nodes: no state, no I/O."""

from __future__ import annotations

import math

import numpy as np

from tonegraph.engine.ports import AudioBlock

WINDOWS = ("hanning", "hanningz", "hamming", "blackman", "blackmanharris", "gaussian",
           "welch", "parzen", "rectangle")


def mono(block: AudioBlock | None, n: int) -> np.ndarray:
    """The block's samples mixed to one contiguous float32 channel of length ``n``
    (silence when there is no block yet)."""
    if block is None:
        return np.zeros(n, dtype=np.float32)
    if block.mono is not None:
        return block.mono
    data = block.data
    x = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def pick_channels(data: np.ndarray, channel: int) -> np.ndarray:
    """``channel`` -1: mix all channels down to one; otherwise keep that channel."""
    if data.ndim == 1:
        data = data[:, None]
    if channel < 0:
        return data.mean(axis=1, keepdims=True, dtype=np.float32) if data.shape[1] > 1 else data
    return data[:, channel:channel + 1]


def rms(x: np.ndarray) -> float:
    """Root mean square of a block of samples (0 for none)."""
    return math.sqrt(float(x @ x) / len(x)) if len(x) else 0.0


def db(x: float, floor: float = -120.0) -> float:
    """Amplitude to decibels relative to full scale, never below ``floor``."""
    return 20.0 * math.log10(x) if x > 10 ** (floor / 20.0) else floor


def log_band_edges(n: int, fmin: float, fmax: float) -> np.ndarray:
    """``n + 2`` log-spaced frequencies [Hz]: the corners of ``n`` triangular bands."""
    return np.geomspace(fmin, fmax, n + 2).astype(np.float32)


def bin_ranges(edges_hz: list[float], size: int, samplerate: int) -> list[tuple[int, int]]:
    """FFT bin index ranges ``[lo, hi)`` between consecutive edges (0 and Nyquist added)."""
    nyquist = samplerate / 2
    corners = [0.0, *edges_hz, nyquist]
    nbins = size // 2 + 1
    out = []
    for lo, hi in zip(corners, corners[1:]):
        a = int(round(lo / nyquist * (nbins - 1)))
        b = max(a + 1, int(round(hi / nyquist * (nbins - 1))))
        out.append((a, min(b, nbins)))
    return out


def centroid(mag: np.ndarray, freqs: np.ndarray) -> float:
    total = float(mag.sum())
    return float((mag * freqs).sum() / total) if total > 1e-12 else 0.0


def chroma_matrix(size: int, samplerate: int, fmin: float = 55.0, fmax: float = 5000.0) -> np.ndarray:
    """12 x bins weights folding an FFT power spectrum into pitch classes (C = 0).

    Each bin between ``fmin`` and ``fmax`` is split between its two nearest pitch
    classes, linearly in cents, so a note between bins still lands on one class.
    """
    nbins = size // 2 + 1
    freqs = np.arange(nbins) * samplerate / size
    m = np.zeros((12, nbins), dtype=np.float32)
    for k, f in enumerate(freqs):
        if not fmin <= f <= fmax:
            continue
        pitch = 12.0 * math.log2(f / 440.0) + 69.0  # MIDI number, A4 = 69
        lo = math.floor(pitch)
        frac = pitch - lo
        m[lo % 12, k] += 1.0 - frac
        m[(lo + 1) % 12, k] += frac
    return m


def midi_of(hz: float) -> float:
    return 69.0 + 12.0 * math.log2(hz / 440.0) if hz > 0 else 0.0
