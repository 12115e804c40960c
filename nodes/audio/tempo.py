"""audio.tempo: beats, tempo and beat phase.

Two trackers: ``dbn`` (the default) follows a bar-pointer model over spectral flux, or
over flux mixed with a learned beat activation (``learned`` is its share, 0 by default;
nodes/audio/beats.py says how), ``aubio`` is aubio's tracker.  ``make eval`` scores both
on annotated recordings; docs/accuracy.md has the table.

The dbn tracker hears a song at the tempo people tap: when the filter follows the
eighth notes (a strummed guitar lights the flux between the beats as much as on them),
the tempo the last 12 seconds' activation names, weighted by people's preference for
70-160 BPM, says so, and every other beat is reported (``Level`` in beats.py).
``min_bpm`` and ``max_bpm`` bound both; a patch for fast music says ``min_bpm: 120``.

``delay`` (negative) sends beats ahead of their sound: with the dbn tracker, once it is
sure of the tempo, a beat it expects within the next ``-delay`` seconds (at most one
beat) leaves now, timed ``-delay`` before the beat, and ``phase`` keeps time with it;
a tapped tempo's clock does the same.  A fixture that takes 40 ms to respond, sent
beats with ``delay: -0.04``, lights on the beat.

``phase`` rises from 0 at a beat to 1 at the next, so LFOs and latent walks can lock
to the music; between detected beats it runs on at the current tempo.

Bars: every ``beats_per_bar`` beats one is a ``downbeat``.  With the dbn tracker
(``bars: sound``) where a bar starts is heard: the first beat heard is "one", and the
count moves to another beat of the bar when it clearly starts more change of harmony
(``Meter`` in nodes/audio/beats.py); ``bars: count`` only counts.  A tap on ``one`` (a
button on a controller, a MIDI note) says which beat is the bar's first: the beat it
falls nearest; with ``bars: sound`` the tap holds for ``tap_hold`` seconds, then the
sound decides again.  Tapping
(``tap`` events) or a ``bpm`` input above zero overrides the tracker: beats then come
from an internal clock at that tempo, aligned to the last tap.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import aubio

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick
from tonegraph.engine.ports import Event

from .base import ANALYSIS_HOP, ANALYSIS_RATE, RECENT, AnalysisRate, Analyzer, Strength
from .beats import FRONT, BeatTracker
from .dsp import rms


#: The shipped learned beat activation, and its default share of the dbn tracker's
#: activation: none.  A share of 0.7 holds every new tempo after make eval's hard cuts
#: (flux alone loses 4 of 90) and places full mixes' beats a little better, but drum
#: stems' a little worse, costs 1.4 times the work, and the pictures of make looks
#: follow the beat less with it (make eval's and make looks' tables, in docs/accuracy.md and docs/pictures.md).
BEATS = Path(__file__).resolve().parents[1] / "ml" / "models" / "beats.npz"
LEARNED = 0.0


def beat_weights(path: Path):
    """A learned beat activation's weights, checked to fit the tracker's front end."""
    from .learned import Weights, WeightsError

    w = Weights.load(path)
    front = {k: w.front.get(k) for k in FRONT}
    if front != FRONT:
        raise WeightsError(f"{Path(path).name} was trained on another front end than the beat "
                           f"tracker's ({front}, not {FRONT}): train it with 'tonegraph train beats'")
    return w


class Tempo(Analyzer):
    type_name = "audio.tempo"
    description = "Beat events, BPM, confidence and a 0..1 beat phase; tap or set to override."
    default_output = "beat"
    params = {
        "tracker": P.choice("dbn", ("dbn", "aubio"),
                            "dbn: a bar-pointer model over spectral flux (and a share of a learned beat "
                            "activation), 55-215 BPM by default; aubio: aubio's beat tracker.", restart=True),
        "min_bpm": P.number(55.0, "Slowest tempo the dbn tracker considers (raise it for fast music "
                                  "that should not be heard at half its tempo).", unit="BPM",
                            min=20.0, max=400.0, restart=True),
        "max_bpm": P.number(215.0, "Fastest tempo the dbn tracker considers.", unit="BPM",
                            min=20.0, max=400.0, restart=True),
        "delay": P.number(0.0, "dbn and tapped tempo: send beats this much earlier (negative) to "
                               "cover a fixture's or projector's latency, at most one beat ahead.",
                          unit="s", min=-2.0, max=0.0),
        "early": P.boolean(True, "dbn: report a beat when the tracker expects it, as its sound "
                                 "arrives, rather than once the sound is analysed (about 35 ms "
                                 "later); a cold start still waits to hear its beats."),
        "learned": P.number(LEARNED, "dbn: the share of the learned beat activation in what the "
                                     "tracker follows (0: spectral flux alone, 1: the network alone).",
                            min=0.0, max=1.0, restart=True),
        "beat_model": P.path(None, "dbn: the learned beat activation's weights (.npz from 'tonegraph "
                                   "train beats'); the shipped ones if unset.", restart=True),
        "method": P.choice("complex", ("specdiff", "hfc", "complex", "energy", "specflux",
                                        "kl", "mkl", "phase"),
                           "Onset function aubio's tracker follows.", restart=True),
        "buf_size": P.integer(1024, "aubio's analysis window.", unit="samples", min=64, max=16384,
                              restart=True),
        "threshold": P.number(0.02, "Peak-picking threshold of aubio's onset function.",
                              min=0.0, max=10.0),
        "silence": P.number(-60.0, "Quieter than this is silence: no beats after 2 s of it.",
                            unit="dB", min=-120.0, max=0.0),
        "tap_hold": P.number(30.0, "How long tapped tempo (or a tapped 'one') overrides the tracker "
                                   "after the last tap.", unit="s", min=0.0),
        "beats_per_bar": P.integer(4, "Beats in a bar, for downbeat, bar_beat and bar_phase.",
                                   min=1, max=32),
        "bars": P.choice("sound", ("sound", "count"),
                         "dbn: where a bar starts: heard from the sound (the beat of the bar that "
                         "starts the most change of harmony over the last bars; the first beat heard "
                         "until another clearly does), or counted from the first beat. A tap on 'one' "
                         "sets it either way (with sound, for tap_hold seconds)."),
        "recent": RECENT,
    }
    inputs = {
        **Analyzer.inputs,
        "tap": ports.event("Tap tempo: two or more taps set the tempo and the beat."),
        "bpm": ports.number("Tempo override while above 0."),
        "one": ports.event("The bar's first beat: the beat nearest a tap here becomes beat 1."),
    }
    outputs = {
        "beat": ports.event("A beat, at its media time; strength 0..1: the sound's level then "
                            "against the recent loudest."),
        "bpm": ports.number("Tempo of the beats heard [BPM], set at each beat and held between them and "
                            "through quiet; 0 until a beat is heard."),
        "confidence": ports.number("The tracker's confidence, 0..1 (1 when overridden)."),
        "phase": ports.number("Position between beats, 0..1."),
        "downbeat": ports.event("The first beat of each bar (the same event as its beat)."),
        "bar_beat": ports.number("The last beat's place in its bar, 1..beats_per_bar (0 before any)."),
        "bar_phase": ports.number("Position in the bar, 0..1: (bar_beat - 1 + phase) / beats_per_bar."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        errors = super().check(params, wired, ctx)
        if params.get("tracker") == "dbn" and params.get("learned") and params.get("beat_model"):
            from .learned import WeightsError

            try:
                beat_weights(ctx.resolve_input(params["beat_model"]))
            except WeightsError as exc:
                errors.append(("beat_model", str(exc)))
        if params["min_bpm"] * 1.5 > params["max_bpm"]:
            errors.append(("max_bpm", f"max_bpm {params['max_bpm']:g} must be at least 1.5x "
                                      f"min_bpm {params['min_bpm']:g}"))
        return errors

    def setup(self) -> None:
        p = self.p
        self.det = self.tracker = None
        if p.tracker == "aubio":
            self.resampled = None
            if self.ctx.samplerate != ANALYSIS_RATE:       # heard as at 44.1 kHz, any rate
                self.resampled = AnalysisRate(self.ctx.samplerate)
                self.det = aubio.tempo(p.method, p.buf_size, ANALYSIS_HOP, ANALYSIS_RATE)
            else:
                self.det = aubio.tempo(p.method, p.buf_size, self.ctx.hop, self.ctx.samplerate)
        else:
            weights = None
            if p.learned > 0:
                weights = beat_weights(self.ctx.resolve_input(p.beat_model) if p.beat_model else BEATS)
            self.tracker = BeatTracker(self.ctx.samplerate, p.min_bpm, p.max_bpm, p.silence,
                                       beats=weights, share=p.learned)
        self.params_changed({"threshold", "silence", "recent"})
        self.last_beat: float | None = None
        self.period = 0.5
        self.taps: list[float] = []
        self.counted = 0                 # beats counted since the last "one"
        self.last_counted: float | None = None
        self.one_held: float | None = None   # a tap on "one" holds the count until then

    def params_changed(self, changed: set[str]) -> None:
        if self.det is not None:
            self.det.set_threshold(self.p.threshold)
            self.det.set_silence(self.p.silence)
        else:
            self.tracker.set_silence(self.p.silence)
        if "recent" in changed:
            self.scale = Strength(self.p.recent, self.ctx.hop / self.ctx.samplerate)

    def _manual_period(self, t: float) -> float | None:
        override = self.inp["bpm"]
        if override > 0:
            return 60.0 / override
        if len(self.taps) >= 2 and t - self.taps[-1] <= self.p.tap_hold:
            gaps = [b - a for a, b in zip(self.taps, self.taps[1:])]
            return statistics.median(gaps)
        return None

    def _aubio_beats(self, x) -> list[float]:
        """aubio's tracker: the beats in this hop, as patch sample counts."""
        if self.resampled is None:
            return [self.det.get_last()] if self.det(x)[0] else []
        return [self.resampled.patch_samples(self.det.get_last())
                for h in self.resampled.hops(x) if self.det(h)[0]]

    def process(self, tick: Tick) -> None:
        sr = self.ctx.samplerate
        x = self.samples(tick)
        until = None
        ahead = min(-self.p.delay, self.period)   # [s] beats are sent this much early
        if self.tracker is not None:
            meter = self.tracker.meter        # changed here, on the thread that feeds it
            if meter.n != self.p.beats_per_bar:
                meter.set_beats_per_bar(self.p.beats_per_bar)
            if self.p.early or ahead > 0:
                until = (self.fed + len(x)) / sr * self.tracker.fps + ahead * self.tracker.fps
            found = self.tracker.push(x, until)
        else:
            found = self._aubio_beats(x)
        level = self.scale(rms(x))
        t_end = tick.t + self.ctx.hop / sr
        for tap in self.inp["tap"]:
            if self.taps and tap.t - self.taps[-1] > 2.0:
                self.taps = []  # a pause starts a new tapping
            self.taps = (self.taps + [tap.t])[-8:]
            if len(self.taps) >= 2:
                self.last_beat = tap.t
        manual = self._manual_period(tick.t)
        out = self.out
        places: list[int | None] | None = None   # the sound's place in its bar of each beat
        again: list[bool] | None = None    # whether each beat is the one before placed anew
        if manual is not None:
            self.period = manual
            if self.last_beat is None:
                self.last_beat = tick.t
            # Internal clock: emit every beat that falls inside this hop (ahead of it by
            # 'delay'), timed where it falls less that.
            beats = []
            ahead = min(ahead, self.period)
            nxt = self.last_beat + self.period
            while nxt - ahead < t_end:
                if nxt - ahead >= tick.t:
                    beats.append(Event(nxt - ahead, level))
                self.last_beat = nxt
                nxt += self.period
            if beats:
                out["beat"] = tuple(beats)
            out["confidence"] = 1.0
        else:
            tr = self.tracker
            if found:
                # Beats as sample counts of the patch's sound (the tracker's frames are
                # its own 100 a second).
                per = 1.0 if tr is None else sr / tr.fps
                shift = ahead if tr is not None else 0.0
                beats = tuple(Event(self.time_of(tick, n * per) - shift, level) for n in found)
                self.last_beat = beats[-1].t + shift
                out["beat"] = beats
                if tr is not None:
                    again = [p is None for p in tr.places]
                    if self.p.bars == "sound":
                        places = tr.places
            if tr is not None:
                if found:               # the tempo of the beats heard: held between them
                    self.period = 60.0 / tr.bpm
                out["confidence"] = tr.confidence
            else:
                period = self.det.get_period_s()
                if period > 0 and found:
                    self.period = period
                out["confidence"] = float(self.det.get_confidence())
        # No tempo until a beat is heard (a tracker hearing silence still has a most
        # likely tempo, its slowest, which is no tempo to send a desk); then the last
        # one holds through quiet passages.
        heard = self.last_beat is not None
        out["bpm"] = 60.0 / self.period if self.period > 0 and heard else 0.0
        if manual is None and self.tracker is not None:
            # Early beats leave as their sound arrives; the phase keeps time with them.
            tr = self.tracker
            out["phase"] = tr.phase_at(until)
        elif self.last_beat is not None and self.period > 0:
            lead = ahead if manual is not None else 0.0     # a tapped clock's beats leave early
            out["phase"] = ((t_end + lead - self.last_beat) / self.period) % 1.0
        self._count_bars(out, places, again)
        self.fed += self.ctx.hop

    def _count_bars(self, out: dict, places: list[int | None] | None, again: list[bool] | None = None
                    ) -> None:
        """Beats and taps on ``one`` in time order: a tap within half a beat after a beat
        makes that beat "one" (it has gone out already; the count follows it from now
        on), otherwise the next beat will be.  A beat the sound placed in its bar
        (``places``, one per beat) is counted there, unless a tap on ``one`` holds; a
        beat that is the one before placed anew (``again``) is counted as that one, and
        a bar's first beat is not announced twice."""
        n = self.p.beats_per_bar
        beats, ones = out["beat"], self.inp["one"]
        heard = places or [None] * len(beats)
        anew = again or [False] * len(beats)
        marks = (sorted([(b.t, 0, b, (p, a)) for b, p, a in zip(beats, heard, anew)]
                        + [(e.t, 1, e, (None, False)) for e in ones],
                        key=lambda m: (m[0], m[1])) if beats or ones else ())
        downs = []
        for t, is_one, ev, (place, same) in marks:
            if is_one:
                near = self.last_counted is not None and t - self.last_counted < 0.5 * self.period
                self.counted = 1 if near else 0
                self.one_held = t + self.p.tap_hold
            else:
                if same and self.counted > 0:
                    self.counted -= 1
                if place is not None and (self.one_held is None or t > self.one_held):
                    self.counted = place
                if self.counted % n == 0 and not same:
                    downs.append(ev)
                self.counted += 1
                self.last_counted = t
        if downs:
            out["downbeat"] = tuple(downs)
        place = (self.counted - 1) % n + 1 if self.last_counted is not None else 0
        out["bar_beat"] = float(place)
        out["bar_phase"] = (place - 1 + out["phase"]) / n if place else 0.0

    def state(self) -> dict:
        return {"last_beat": self.last_beat, "period": self.period, "taps": list(self.taps),
                "tracker": self.tracker, "fed": self.fed, "counted": self.counted,
                "last_counted": self.last_counted, "one_held": self.one_held}

    def restore(self, state: dict) -> None:
        # A reload that keeps the tracker's settings keeps what it has heard (its belief
        # over tempo and phase), so the beat goes on through an edit.
        old = state.get("tracker")
        if self.tracker is not None and old is not None and old.config == self.tracker.config:
            old.set_silence(self.p.silence)
            self.tracker = old
            self.fed = state.get("fed", 0)     # its frames count from its own start
        self.last_beat = state.get("last_beat")
        self.counted = state.get("counted", 0)
        if self.tracker is not None and self.tracker is not old:
            # A new tracker (other settings) hears the bar from where the count is.
            n = self.p.beats_per_bar
            self.tracker.meter.set_beats_per_bar(n)
            self.tracker.meter.one = -self.counted % n
        self.last_counted = state.get("last_counted")
        self.one_held = state.get("one_held")
        self.period = state.get("period", self.period)
        self.taps = list(state.get("taps", []))
