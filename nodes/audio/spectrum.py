"""audio.spectrum: windowed FFT (aubio's phase vocoder) to magnitudes, bands and summaries.

Per hop: the magnitude spectrum; ``bands`` energies on a mel or log scale (aubio's
filterbank); ``bass``/``mid``/``high`` energies split at ``split`` [Hz]; the spectral
centroid [Hz] and flux (how much the spectrum grew since the last hop).  With ``agc``
the band, bass/mid/high and flux values are divided by their own slowly decaying peak,
so they hover in 0..1 whatever the input level.
"""

from __future__ import annotations

import math

import aubio
import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick

from .base import Analyzer
from .dsp import WINDOWS, bin_ranges, centroid, log_band_edges


class Spectrum(Analyzer):
    type_name = "audio.spectrum"
    description = "FFT magnitudes, mel/log bands, bass/mid/high, centroid and flux, with auto gain."
    default_output = "bands"
    window = "size"
    params = {
        "size": P.integer(2048, "FFT size (window length).", unit="samples", min=64, max=65536,
                          restart=True),
        "window": P.choice("hanning", WINDOWS, "Window function.", restart=True),
        "scale": P.choice("mel", ("mel", "log"), "Band spacing.", restart=True),
        "bands": P.integer(24, "Number of bands.", min=1, max=256, restart=True),
        "fmin": P.number(30.0, "Lowest band frequency.", unit="Hz", min=0.0, restart=True),
        "fmax": P.number(16000.0, "Highest band frequency.", unit="Hz", min=1.0, restart=True),
        "split": P.numbers([250.0, 4000.0], "Edges between bass, mid and high.", length=2,
                           unit="Hz", min=1.0, restart=True),
        "agc": P.boolean(True, "Normalise by a slowly decaying peak so values stay near 0..1."),
        "agc_time": P.number(10.0, "Time for the AGC peak to fall by half.", unit="s", min=0.1),
    }
    outputs = {
        "bands": ports.vector("Band energies (normalised with agc)."),
        "spectrum": ports.vector("Magnitude spectrum, size/2 + 1 bins."),
        "bass": ports.number("Amplitude below split[0] (a full-scale sine reads 1)."),
        "mid": ports.number("Amplitude between split[0] and split[1]."),
        "high": ports.number("Amplitude above split[1]."),
        "centroid": ports.number("Spectral centroid [Hz]."),
        "flux": ports.number("Positive spectral change since the last hop."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        problems = super().check(params, wired, ctx)
        nyq = ctx.samplerate / 2
        if not params["fmin"] < params["fmax"] <= nyq:
            problems.append(("fmax", f"need fmin < fmax <= {nyq:g} Hz (half the patch's samplerate)"))
        lo, hi = params["split"]
        if not lo < hi < nyq:
            problems.append(("split", f"split edges must rise and stay below {nyq:g} Hz"))
        return problems

    def setup(self) -> None:
        p, sr = self.p, self.ctx.samplerate
        self.pv = aubio.pvoc(p.size, self.ctx.hop)
        self.pv.set_window(p.window)
        self.fb = aubio.filterbank(p.bands, p.size)
        if p.scale == "mel":
            self.fb.set_mel_coeffs(float(sr), p.fmin, p.fmax)
        else:
            self.fb.set_triangle_bands(aubio.fvec(log_band_edges(p.bands, p.fmin, p.fmax)), float(sr))
        self.freqs = (np.arange(p.size // 2 + 1) * sr / p.size).astype(np.float32)
        self.ranges = bin_ranges(list(p.split), p.size, sr)
        self.prev = np.zeros(p.size // 2 + 1, dtype=np.float32)
        # By Parseval, a sine of amplitude A puts A^2 * N * sum(w^2) / 4 into the
        # positive-frequency bins: this scale makes a band's value read A.
        w = np.asarray(aubio.window(p.window, p.size), dtype=np.float64)
        self.scale = 2.0 / math.sqrt(p.size * float(np.sum(w * w)))
        self.peaks = np.full(p.bands + 4, 1e-6, dtype=np.float64)  # bands, bass, mid, high, flux

    def process(self, tick: Tick) -> None:
        spec = self.pv(self.samples(tick))
        mag = np.array(spec.norm, dtype=np.float32)
        bands = np.array(self.fb(spec), dtype=np.float32)
        # Amplitude per region: a sine of amplitude A in the region reads A.
        scale = self.scale
        summary = [math.sqrt(float(mag[a:b] @ mag[a:b])) * scale for a, b in self.ranges]
        diff = mag - self.prev
        flux = float(np.sum(diff[diff > 0])) * scale
        self.prev = mag
        out = self.out
        if self.p.agc:
            vals = np.concatenate([bands, summary, [flux]])
            decay = 0.5 ** (tick.dt / self.p.agc_time) if tick.dt > 0 else 1.0
            self.peaks = np.maximum(self.peaks * decay, vals)
            norm = vals / np.maximum(self.peaks, 1e-6)
            bands = norm[: len(bands)].astype(np.float32)
            summary = [float(v) for v in norm[len(bands):len(bands) + 3]]
            flux = float(norm[-1])
        out["spectrum"] = mag
        out["bands"] = bands
        out["bass"], out["mid"], out["high"] = summary
        out["centroid"] = centroid(mag, self.freqs)
        out["flux"] = flux

    def state(self) -> dict:
        return {"peaks": self.peaks.copy()}

    def restore(self, state: dict) -> None:
        peaks = state.get("peaks")
        if peaks is not None and len(peaks) == len(self.peaks):
            self.peaks = peaks
