"""audio.onset: note and hit onsets, as events.

The default is aubio's onset detector with aubio's own defaults (``method: hfc``,
threshold 0.058, log compression 1, onsets at least 50 ms apart, -70 dB silence): on
real recordings held out by source (make eval) no other setting of aubio's and not the
project's learned detector beat it on every source by the gate's margin, and a
default may not lose to aubio anywhere (tests/eval/gate.py; docs/accuracy.md).

``method: learned`` is the project's own detector (nodes/audio/learned.py: a small
causal network trained on rendered MIDI, synthesised grooves and click tracks by
``tonegraph train onsets``), hearing its input levelled (learned.Leveller: the same
onsets at any input level).  Its ``threshold`` is the activation (0..1) an onset must
reach; ``buf_size`` and ``whitening``/``compression`` do not apply; an onset is known
two detector frames (23 ms) after its own analysis frame ends.  Its onsets' strength is
how loud the hit is against the loudest of ``recent``; ``strength`` is the network's
activation every hop.

Any of aubio's detection functions (``method: hfc`` and the rest) runs aubio's onset
detector instead, the same aubio object a whole-file analysis uses, fed the same hops,
so streaming and whole-file results are identical: cheaper, and its onsets leave
earlier.  Its thresholds were chosen at 44,100 Hz with 512-sample hops: a patch at
another rate (an 8 kHz recording, a 48 kHz interface) is resampled to that rate
(soxr, streaming) and analysed in those hops, so the same music is heard alike at any
rate (without it, an 8 kHz mix gave a few onsets where 44.1 kHz gave 72).  Each ``onset`` event then carries aubio's own estimate of the onset's media
time and its strength in 0..1: the detection function's value against the largest of
the last few seconds (``recent``), so a desk or a MIDI velocity can use it as it is on
any material; ``strength`` gives the same scaled value every hop.
"""

from __future__ import annotations

from collections import deque

import aubio
import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick
from tonegraph.engine.ports import Event

from .base import ANALYSIS_HOP, ANALYSIS_RATE, RECENT, AnalysisRate, Analyzer, Strength
from .dsp import rms

METHODS = ("hfc", "energy", "complex", "phase", "specdiff", "kl", "mkl", "specflux", "learned")
#: Each method's threshold when the patch gives none: the learned detector's chosen on
#: `make eval`'s dev set with its input levelled (learned.Leveller): where it gains most
#: there, and it hears a metronome's clicks (docs/accuracy.md); aubio's methods take
#: aubio's own default (0.058), which no other threshold of theirs beat on every source
#: of real recordings.
THRESHOLDS = {"learned": 0.4}
AUBIO_THRESHOLD = 0.058
#: Each method's least time between onsets [s] when the patch gives none (aubio's own
#: default for its methods, the learned detector's 50 ms by the same cross-validation).
MINIOI = {"learned": 0.05}
AUBIO_MINIOI = 0.05
#: Frames of the learned detector's activation an onset must be the largest of.
LEARNED_PRE = 3


class Onset(Analyzer):
    type_name = "audio.onset"
    description = "Onsets (note starts, drum hits) as events, with a learned detector or aubio's."
    default_output = "onset"
    params = {
        "method": P.choice("hfc", METHODS, "Onset detector: one of aubio's detection functions "
                           "(hfc with aubio's defaults is the default), or the project's learned one.",
                           restart=True),
        "buf_size": P.integer(1024, "aubio's methods: analysis window.", unit="samples", min=64, max=16384,
                              restart=True),
        "threshold": P.Param("float", None, "Peak-picking threshold: higher finds fewer onsets; "
                             "none: the method's own (learned 0.4, aubio's 0.058).", "", 0.0, 10.0,
                             nullable=True),
        "silence": P.number(-70.0, "Quieter than this is silence: no onsets.", unit="dB",
                            min=-120.0, max=0.0),
        "minioi": P.Param("float", None, "Least time between two onsets; none: the method's own "
                          "(learned 0.05, aubio's 0.05).", "s", 0.0, 5.0, nullable=True),
        "whitening": P.boolean(False, "aubio's methods: adaptive spectral whitening (helps soft onsets)."),
        "compression": P.number(1.0, "aubio's methods: logarithmic magnitude compression (aubio's "
                                     "default 1); 0 is off.", min=0.0),
        "recent": RECENT,
        "model": P.path(None, "method learned: its weights (.npz from 'tonegraph train onsets'); "
                              "none: the shipped detector."),
    }
    outputs = {
        "onset": ports.event("An onset, at its media time; strength 0..1: how loud it is against the "
                             "recent loudest."),
        "strength": ports.number("Every hop: learned, the network's activation (0..1, how "
                                 "onset-like); aubio's methods, the detection function, 0..1 against "
                                 "the recent loudest."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        if params.get("method") == "learned" and params.get("model"):
            from .learned import Weights, WeightsError

            path = ctx.resolve_input(params["model"])
            try:
                Weights.load(path)
            except WeightsError as exc:
                return [("model", str(exc))]
            return []
        return super().check(params, wired, ctx)

    def setup(self) -> None:
        p = self.p
        self.learned = None
        if p.method == "learned":
            self._setup_learned()
        else:
            self.resampler = None
            self._rate, self._hop = float(self.ctx.samplerate), self.ctx.hop
            if self.ctx.samplerate != ANALYSIS_RATE:
                self.resampler = AnalysisRate(self.ctx.samplerate)
                self._rate, self._hop = float(ANALYSIS_RATE), ANALYSIS_HOP
            self.det = make_onset(p.method, p.buf_size, self._hop, int(self._rate))
            self._descriptor = self.det.get_descriptor
        self.params_changed({"threshold", "silence", "minioi", "whitening", "compression", "recent"})
        self.last = [0.0, 0.0, 0.0]       # the detection function's last three values

    def _setup_learned(self) -> None:
        from .learned import SHIPPED, Leveller, Picker, Stream, Weights

        w = Weights.load(self.ctx.resolve_input(self.p.model) if self.p.model else SHIPPED)
        self.learned = Stream(w)
        self.front = Leveller(w.front, self.ctx.samplerate)
        #: Patch samples per detector frame.
        self.frame_samples = float(w.front["hop"]) / float(w.front["samplerate"]) * self.ctx.samplerate
        self.picker = Picker(0.0, LEARNED_PRE, 1)          # set by params_changed
        self.energies: deque[float] = deque([0.0], maxlen=w.lookahead + 2)
        # Hop levels over what an onset can be behind (its window, the look-ahead, the
        # picking frame): silence is judged there, not in the hop that reports it.
        behind = (w.lookahead + 2) * self.frame_samples + w.front["n_fft"] / w.front["samplerate"] * self.ctx.samplerate
        self.levels: deque[float] = deque(maxlen=max(1, int(np.ceil(behind / self.ctx.hop))))

    def params_changed(self, changed: set[str]) -> None:
        p = self.p
        if "recent" in changed:
            step = (self._hop / self._rate if self.learned is None
                    else self.ctx.hop / self.ctx.samplerate)
            self.scale = Strength(p.recent, step)
        if self.learned is None:
            apply_onset_params(self.det, p)
            return
        frame_rate = self.ctx.samplerate / self.frame_samples
        self.picker.threshold = threshold_of(p)
        self.picker.minioi = max(1, round(minioi_of(p) * frame_rate))
        self.silence = 10 ** (p.silence / 20)

    def process(self, tick: Tick) -> None:
        if self.learned is not None:
            self._process_learned(tick)
            return
        if self.resampler is not None:
            self._process_resampled(tick)
            return
        block = self.inp["audio"]
        if block is not None and block.mono is not None and len(block.mono) == self._hop:
            x = block.mono  # the common case, inlined: this runs every hop
        else:
            x = self.samples(tick)
        onset = self._detect(tick, x)
        if onset is not None:
            self.out["onset"] = (onset,)
        self.fed += self.ctx.hop

    def _process_resampled(self, tick: Tick) -> None:
        """aubio's detector at ANALYSIS_RATE: as many of its hops as the resampled sound
        fills, the rest kept for the next hop."""
        found = (self._detect(tick, h) for h in self.resampler.hops(self.samples(tick)))
        events = tuple(e for e in found if e is not None)
        if events:
            self.out["onset"] = events
        self.fed += self.ctx.hop

    def _detect(self, tick: Tick, x: np.ndarray) -> Event | None:
        """One of aubio's hops: the detection function's value as ``strength``, and the
        onset it completes, if any, at aubio's estimate of its media time."""
        fired = self.det(x)[0]
        value = self._descriptor()
        self.out["strength"] = self.scale(value)
        last = self.last
        last[0], last[1], last[2] = last[1], last[2], value
        if not fired:
            return None
        # aubio fires a hop or two after the detection function's peak: the event's
        # strength is that peak.  ``fed`` counts the patch's samples before this tick.
        t = tick.t + self.det.get_last() / self._rate - self.fed / self.ctx.samplerate
        return Event(t, self.scale.of(max(last)))

    def _process_learned(self, tick: Tick) -> None:
        x = self.samples(tick)
        self.levels.append(rms(x))
        loud = max(self.levels) >= self.silence
        events = []
        for mel, energy in self.front.push(x):        # energy: how loud the frame is
            self.scale(energy)
            a = self.learned.push(mel)
            if a is not None:
                self.out["strength"] = a
                if self.picker(a) and loud:
                    # The frame before this one was an onset.  Its strength: how loud the
                    # hit is (the loudest of its frame and those around it) against the
                    # loudest frame of the last 'recent' seconds.
                    events.append(Event(self.time_of(tick, self.picker.last * self.frame_samples),
                                        self.scale.of(max(max(self.energies), energy))))
            self.energies.append(energy)
        if events:
            self.out["onset"] = tuple(events)
        self.fed += self.ctx.hop


def make_onset(method: str, buf_size: int, hop: int, samplerate: int) -> "aubio.onset":
    return aubio.onset(method, buf_size, hop, samplerate)


def threshold_of(p) -> float:
    """The threshold a params namespace asks for, or its method's own."""
    if p.threshold is not None:
        return float(p.threshold)
    return THRESHOLDS.get(p.method, AUBIO_THRESHOLD)


def learned_onsets(activation: np.ndarray, rate: float, threshold: float | None = None,
                   minioi: float | None = None) -> np.ndarray:
    """Onset times [s] picked from a whole signal's activation (learned.signal_activation)
    as audio.onset picks them live: the method's own threshold and least gap unless given."""
    pick = learned_picker(rate, threshold, minioi)
    return np.array([(k - 1) / rate for k, a in enumerate(activation) if pick(float(a))])


def learned_picker(rate: float, threshold: float | None = None, minioi: float | None = None):
    """A peak picker for the learned detector's activation at ``rate`` frames a second,
    as audio.onset picks: the method's own threshold and least gap unless given."""
    from .learned import Picker

    threshold = THRESHOLDS["learned"] if threshold is None else threshold
    minioi = MINIOI["learned"] if minioi is None else minioi
    return Picker(threshold, LEARNED_PRE, max(1, round(minioi * rate)))


def minioi_of(p) -> float:
    """The least time between onsets a params namespace asks for, or its method's own."""
    if p.minioi is not None:
        return float(p.minioi)
    return MINIOI.get(p.method, AUBIO_MINIOI)


def apply_onset_params(det, p) -> None:
    """Set the tunable parameters of an aubio onset object from a params namespace."""
    det.set_threshold(threshold_of(p))
    det.set_silence(p.silence)
    det.set_minioi_s(minioi_of(p))
    det.set_awhitening(1 if p.whitening else 0)
    det.set_compression(p.compression)
