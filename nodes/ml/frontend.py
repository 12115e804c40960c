"""The autoencoder's front end: log-mel frames of a sound, live or from a file.

One class serves training (a whole file) and the live node (hop by hop), so a model
sees in a show exactly the features it was trained on.  The settings travel inside the
weights file; a patch whose samplerate differs is resampled to the model's rate first
(soxr, streaming), so frames come at the model's own hop whatever the patch uses.
"""

from __future__ import annotations

from pathlib import Path

import aubio
import numpy as np

from tonegraph.nodes.audio.sound import SUFFIXES as AUDIO_SUFFIXES  # the sound files trainers read

#: Settings of the default front end (recorded in every weights file).
DEFAULT = {"samplerate": 22050, "n_fft": 1024, "hop": 512, "bands": 64, "fmin": 30.0,
           "fmax": 11000.0}
#: Floor added before the logarithm (about -80 dB of a full-scale band).
FLOOR = 1e-4


class MelFrontEnd:
    """Streaming log-mel analysis: ``push`` samples at ``input_rate``, get whole frames
    (``log`` False: the mel band magnitudes themselves)."""

    def __init__(self, config: dict, input_rate: int | None = None, log: bool = True) -> None:
        self.config = dict(config)
        self.log = log
        sr, n_fft, hop = int(config["samplerate"]), int(config["n_fft"]), int(config["hop"])
        self.hop = hop
        self.pv = aubio.pvoc(n_fft, hop)
        fb = aubio.filterbank(int(config["bands"]), n_fft)
        fb.set_mel_coeffs(float(sr), float(config["fmin"]), float(config["fmax"]))
        self.coeffs = np.ascontiguousarray(fb.get_coeffs(), dtype=np.float32)
        self.resampler = None
        if input_rate is not None and int(input_rate) != sr:
            import soxr

            self.resampler = soxr.ResampleStream(int(input_rate), sr, 1, dtype="float32")
        self.pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Mono samples in; the log-mel frames (float32, ``bands`` long) they complete."""
        x = np.asarray(samples, dtype=np.float32)
        if self.resampler is not None:
            x = self.resampler.resample_chunk(x)
        if self.pending.size:
            x = np.concatenate([self.pending, x])
        hop = self.hop
        n = len(x) // hop
        frames = []
        for i in range(n):
            # The mel bands as one matrix product over the magnitudes (aubio's own
            # filterbank loops over every coefficient, zeros included, and the result
            # would need copying: aubio hands back the same buffer on every call).
            f = self.coeffs @ self.pv(x[i * hop:(i + 1) * hop]).norm
            if self.log:
                f += FLOOR
                np.log(f, out=f)
            frames.append(f)
        self.pending = x[n * hop:].copy()
        return frames


def windows(frames: np.ndarray, context: int) -> np.ndarray:
    """Rows of ``context`` consecutive frames, oldest first, flattened: the model input."""
    n = len(frames) - context + 1
    if n <= 0:
        return np.zeros((0, frames.shape[1] * context), dtype=np.float32)
    idx = np.arange(n)[:, None] + np.arange(context)[None, :]
    return frames[idx].reshape(n, -1).astype(np.float32)


def file_frames(path: Path, config: dict) -> np.ndarray:
    """Every log-mel frame of a sound file (mixed to mono), as the live node makes them."""
    from tonegraph.nodes.audio.sound import read_sound

    data, rate = read_sound(path)
    front = MelFrontEnd(config, rate)
    frames = front.push(data.mean(axis=1))
    if not frames:
        return np.zeros((0, int(config["bands"])), dtype=np.float32)
    return np.stack(frames)


def audio_files(folder: Path) -> list[Path]:
    """Sound files under a folder, sorted so training sees them in a fixed order."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
