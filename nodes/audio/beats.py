"""A causal beat tracker: a bar-pointer model filtered forward over spectral flux.

The sound becomes an activation 100 times a second: the rectified rise of log-mel band
magnitudes from one frame to the next, each band compared with the loudest of its
neighbours in the frame before (SuperFlux, Böck & Widmer 2013), scaled 0..1 against the
loudest of the last few seconds.  A hidden Markov model then keeps a belief over every
(tempo, position in the beat) pair: the position advances one frame at a time, the tempo
may change only at a beat and then mostly to a close one, and the activation is the
likelihood of "a beat now" (Krebs, Böck & Widmer 2015, the bar-pointer model of madmom's
``DBNBeatTrackingProcessor``).  Filtering forward only (no look-ahead), the most likely
state (the likeliest position of the tempo holding the most belief) entering its beat
region is a beat: the model's sense of the tempo carries it
through a bar without hits, and a new tempo takes over within a few beats.

The front end hears a frame about 35 ms after its sound arrives (the resampler, the
analysis window, the hop).  Once the model is sure of the tempo, a beat it expects
before the end of the samples just pushed is reported then, at the frame it is
expected (``push(..., until)``): it leaves as its sound arrives.

The front end is the autoencoder's (``nodes/ml/frontend.py``): aubio's phase vocoder and
mel filterbank at 22,050 Hz, the patch's sound resampled to that rate, so the tracker
hears the same at any patch samplerate or hop.  Flux rises on every hit, eighth notes
and fills as much as beats; a learned beat activation (a small causal network over the
same frames, trained by ``tonegraph train beats`` on where the beats of rendered songs
are, tools/beattrain.py) can take a share of the activation (audio.tempo's
``learned``), which says which hits are beats.  ``make eval`` compares a share with
flux alone, and with aubio's tracker, on annotated recordings.
"""

from __future__ import annotations

import numpy as np

from .base import Strength

#: The front end: 100 frames a second (hop 220 at 22,050 Hz), 64 mel bands.
FRONT = {"samplerate": 22050, "n_fft": 1024, "hop": 220, "bands": 64, "fmin": 30.0,
         "fmax": 11000.0}
#: Band magnitudes are compressed as log(1 + GAMMA * m) before their rise is taken.
GAMMA = 10.0
#: Activations are scaled against the loudest of the last NORM_S seconds, but never
#: against less than FLOOR of the loudest of the last LONG_S seconds (so a near-silent
#: stretch's noise is not blown up to full beats).
NORM_S, LONG_S, FLOOR = 3.0, 20.0, 0.1
#: The front end's band magnitudes of a full-scale 440 Hz sine, added up (0 dB).
FULL_SCALE = 17.3
#: Beats are reported ahead of their analysis only while the model's confidence is
#: at least this (0.3 and 0 placed beats a little worse on the annotated recordings).
EARLY_CONFIDENCE = 0.5
#: After an early beat, a beat the model finds more than MISPLACED of a beat from it is
#: reported as well (the early one was misplaced, after a change of tempo mostly), and
#: no beat leaves early again until the model has met the last early one or heard one.
#: Early beats that went on leaving at the old tempo after a hard cut hid the new
#: tempo's beats: the tracker held it a median of 5 beats after make eval's cuts, 4
#: since (and 5 with beats reported once heard); 0.15-0.25 measured alike.
MISPLACED = 0.2
#: The activation the model sees stays inside (LOW, HIGH): no observation is certain.
LOW, HIGH = 1e-3, 0.999
#: Downbeats: each beat's evidence of starting a bar is averaged, per place in the bar,
#: over about METER_BARS bars; another place becomes "one" when its average is
#: METER_MARGIN times the current one's (a margin of 1.2, with all 64 bands heard,
#: moved a right "one" on about half the band recordings heard from their first beat).
METER_BARS, METER_MARGIN = 8.0, 1.5
#: The bands whose change is the harmony's: the lowest 20, below about 1 kHz (bass,
#: chords); above them cymbals and voices change on any beat (all 64 bands placed
#: bars worse on every set make eval measures).
HARMONY_BANDS = 20
#: The metrical level: every LEVEL_EVERY seconds the last LEVEL_S seconds of activation
#: name a tempo by their autocorrelation (with half its value at twice the lag, as a bar
#: repeats its beats), weighted by a log-normal preference for tempi people tap
#: (LEVEL_BPM, LEVEL_WIDTH octaves wide).  When the filter's tempo is twice that, every
#: other beat of it is reported: off-beat eighths light the flux as much as the beats,
#: so the filter alone cannot tell a song from its double.  (A filter at half the named
#: tempo is left as it is: no clip of the dev set was heard at half.)
LEVEL_S, LEVEL_EVERY, LEVEL_BPM, LEVEL_WIDTH = 12.0, 0.5, 110.0, 0.4
#: How far (relative) a tempo may be from twice or half the other's to count as it.
LEVEL_TOLERANCE = 0.08
#: While halved, which beats of the filter's pairs are the song's: those whose strongest
#: activation within PAIR_FRAMES frames is higher on average, PAIR_MARGIN times the other's.
PAIR_FRAMES, PAIR_MARGIN = 3, 1.2


class BarPointer:
    """The forward filter of the bar-pointer model over one beat.

    States are (interval, position) pairs: for each beat interval ``n`` frames long,
    positions 0..n-1.  Each frame every state moves one position on; from the last
    position of an interval the next state is position 0 of an interval close to it
    (``exp(-transition * |n'/n - 1|)``).  Positions in the first 1/``observation`` of an
    interval are the beat region: there the activation is the observation's likelihood,
    elsewhere (1 - activation) / (``observation`` - 1).
    """

    def __init__(self, fps: float, min_bpm: float = 55.0, max_bpm: float = 215.0,
                 tempi: int = 60, transition: float = 100.0, observation: int = 16) -> None:
        self.fps = fps
        lo, hi = 60.0 * fps / max_bpm, 60.0 * fps / min_bpm
        grid = np.exp(np.linspace(np.log(lo), np.log(hi), tempi))
        self.intervals = np.unique(np.round(grid).astype(int))
        iv = self.intervals
        self.first = np.concatenate([[0], np.cumsum(iv)[:-1]])
        self.last = self.first + iv - 1
        self.size = int(iv.sum())
        self.previous = np.arange(self.size) - 1      # where each state's mass comes from
        self.previous[self.first] = 0                  # (position 0 is filled separately)
        self.tempo = np.repeat(np.arange(len(iv)), iv)
        self.position = np.concatenate([np.arange(n) / n for n in iv])
        self.beat = np.concatenate([np.arange(n) < max(1.0, n / observation) for n in iv])
        self.beat_mask = self.beat.astype(np.float64)
        self.log_interval = np.log(iv.astype(np.float64))[self.tempo]    # per state
        ratio = iv[None, :] / iv[:, None]
        t = np.exp(-transition * np.abs(ratio - 1.0))
        self.transition = t / t.sum(axis=1, keepdims=True)
        self.observation = observation
        self.forward = np.full(self.size, 1.0 / self.size)

    def step(self, activation: float) -> int:
        """Take one frame's activation (0..1); return the most likely state."""
        f = self.forward
        new = f[self.previous]
        new[self.first] = f[self.last] @ self.transition
        a = min(HIGH, max(LOW, activation))
        off = (1.0 - a) / (self.observation - 1)
        new *= off + (a - off) * self.beat_mask
        total = new.sum()
        self.forward = new / total if total > 0 else np.full(self.size, 1.0 / self.size)
        # The tempo holding the most belief, then its likeliest position: a single
        # state of a stray tempo never wins over a tempo whose belief is spread.
        tempo = int(np.add.reduceat(self.forward, self.first).argmax())
        start = self.first[tempo]
        return int(start + self.forward[start:start + self.intervals[tempo]].argmax())

    def bpm(self, state: int) -> float:
        return 60.0 * self.fps / float(self.intervals[self.tempo[state]])

    def confidence(self, state: int, tempo_tol: float = 0.04, phase_tol: float = 0.08) -> float:
        """The belief held by states that agree with ``state``: tempo within
        ``tempo_tol`` (relative) and position within ``phase_tol`` of a beat."""
        near = np.abs(self.log_interval - self.log_interval[state]) < tempo_tol
        d = np.abs(self.position - self.position[state])
        d = np.minimum(d, 1.0 - d)
        return float(self.forward[near & (d < phase_tol)].sum())


class Flux:
    """Streaming activation: push samples at ``input_rate``, get one value per frame.

    With ``beats`` (a learned beat activation's weights, nodes/audio/learned.py, trained
    by ``tonegraph train beats`` on this front end) and ``share`` above 0, the
    activation is ``share`` of the network's and the rest spectral flux; the network
    answers for a frame one frame later, so each frame then comes out a frame (10 ms)
    later too."""

    def __init__(self, input_rate: int, beats=None, share: float = 0.0) -> None:
        from tonegraph.nodes.ml.frontend import FLOOR as LOG_FLOOR
        from tonegraph.nodes.ml.frontend import MelFrontEnd

        from .learned import Stream

        self.front = MelFrontEnd(FRONT, input_rate, log=False)
        self.fps = FRONT["samplerate"] / FRONT["hop"]
        self.before: np.ndarray | None = None      # the last frame, widened over neighbours
        self.recent = Strength(NORM_S, 1.0 / self.fps)
        self.longer = Strength(LONG_S, 1.0 / self.fps)
        self.share = share if beats is not None else 0.0
        self.stream = Stream(beats) if self.share > 0 else None
        self.waiting: list[tuple[float, float, np.ndarray]] = []   # frames the network owes
        self.log_floor = LOG_FLOOR      # under the magnitudes, as the network's front end

    def push(self, samples: np.ndarray) -> list[tuple[float, float, np.ndarray]]:
        """(activation 0..1, band energy, the bands' compressed levels) of each frame the
        samples complete."""
        out = []
        for mag in self.front.push(samples):
            level = np.log1p(GAMMA * mag.astype(np.float64))
            widened = level.copy()                 # each band at least its neighbours
            np.maximum(widened[1:], level[:-1], out=widened[1:])
            np.maximum(widened[:-1], level[1:], out=widened[:-1])
            rise = 0.0 if self.before is None else float(np.maximum(level - self.before, 0.0).sum())
            self.before = widened
            self.recent(rise)
            self.longer(rise)
            peak = max(self.recent.peak, FLOOR * self.longer.peak)
            frame = (rise / peak if peak > 1e-9 else 0.0, float(mag.sum()), level)
            if self.stream is None:
                out.append(frame)
                continue
            self.waiting.append(frame)
            beat = self.stream.push(np.log(mag + self.log_floor))
            if beat is not None:
                flux, energy, lvl = self.waiting.pop(0)
                out.append(((1.0 - self.share) * flux + self.share * beat, energy, lvl))
        return out


class Meter:
    """Which beat of the bar is its first, heard from the sound.

    A bar most often starts where the harmony changes.  Each beat's evidence is how
    much the sound over the half bar it starts differs from the half bar before it
    (the mean absolute difference of the compressed levels of the bands below about
    1 kHz): halves of a bar hold the same drums, a backbeat's snare on 2 and 4 in
    each, so what differs is the harmony.  The evidence is averaged per place in the
    bar over about METER_BARS bars, and the place with the most is "one".  It starts
    as the first beat heard (a song mostly starts on its "one") and moves only when
    another place has clearly more.  A beat's evidence is complete half a bar later, so where "one" is comes
    from the bars before: a count that started mid-bar finds it after a few bars.
    (The bass's hits at the beat were tried as a second cue and placed bars worse.)

    Feed it every beat as it is reported (:meth:`beat`, which says the beat's place)
    and every analysed frame in order (:meth:`frame`).
    """

    def __init__(self, beats_per_bar: int = 4) -> None:
        self.reported = 0                    # beats reported so far
        self.waiting: list[float] = []       # their frames, not yet reached by the analysis
        self.index = -1                      # the beat whose span the frames now sum into
        self.sum = np.zeros(HARMONY_BANDS)  # the levels of the beat's frames so far
        self.frames = 0
        self.n = 0
        self.set_beats_per_bar(beats_per_bar)

    def set_beats_per_bar(self, n: int) -> None:
        if n != self.n:
            self.n = n
            self.half = max(1, n // 2)
            self.spans: list[np.ndarray] = []  # the last beats' mean levels
            self.score = np.zeros(n)           # per place: its recent evidence
            self.visits = np.zeros(n)
            self.one = self.reported % n       # the place (beat number mod n) that is "one"

    def beat(self, frame: float) -> int:
        """A beat reported at ``frame``: its place in the bar, 0 for "one"."""
        k = self.reported
        self.reported += 1
        self.waiting.append(frame)
        return (k - self.one) % self.n

    def frame(self, index: int, level: np.ndarray) -> None:
        """Frame ``index`` analysed: its bands' compressed levels (see :class:`Flux`)."""
        while self.waiting and index >= self.waiting[0]:
            self.waiting.pop(0)
            self._close()
            self.index += 1
            self.sum[:], self.frames = 0.0, 0
        if self.index < 0:
            return
        self.sum += level[:HARMONY_BANDS]
        self.frames += 1

    def _close(self) -> None:
        """The span of beat ``index`` is complete: score the beat half a bar before."""
        if self.index < 0 or not self.frames:
            return
        h = self.half
        self.spans.append(self.sum / self.frames)
        del self.spans[:-2 * h]
        if len(self.spans) < 2 * h:
            return
        change = float(np.abs(np.mean(self.spans[h:], axis=0) - np.mean(self.spans[:h], axis=0)).mean())
        place = (self.index - h + 1) % self.n
        self.visits[place] += 1
        a = max(1.0 / METER_BARS, 1.0 / self.visits[place])    # a plain mean at first
        self.score[place] += a * (change - self.score[place])
        if self.visits.min() < 1:
            return
        best = int(self.score.argmax())
        if self.score[best] > METER_MARGIN * self.score[self.one]:
            self.one = best


class Level:
    """The tempo a stretch of activation names: its autocorrelation at each beat's lag,
    plus half of it at twice the lag, weighted by the preference for tempi people tap
    (LEVEL_BPM, LEVEL_WIDTH).  Push one activation a frame; every LEVEL_EVERY seconds
    (once LEVEL_S / 2 are heard) ``push`` answers a tempo [BPM], otherwise None."""

    def __init__(self, fps: float, min_bpm: float, max_bpm: float) -> None:
        self.fps = fps
        self.size = round(LEVEL_S * fps)
        self.every = max(1, round(LEVEL_EVERY * fps))
        self.heard = np.zeros(self.size)
        self.count = 0
        self.lags = np.arange(max(1, int(60.0 * fps / max_bpm)), int(np.ceil(60.0 * fps / min_bpm)) + 1)
        tempi = 60.0 * fps / self.lags
        self.prior = np.exp(-0.5 * (np.log2(tempi / LEVEL_BPM) / LEVEL_WIDTH) ** 2)
        self.nfft = 1 << int(np.ceil(np.log2(2 * self.size)))

    def push(self, activation: float) -> float | None:
        self.heard[self.count % self.size] = activation
        self.count += 1
        if self.count < self.size // 2 or self.count % self.every:
            return None
        n = min(self.count, self.size)
        x = np.roll(self.heard, -self.count) if self.count >= self.size else self.heard[:n]
        x = x - x.mean()
        spectrum = np.fft.rfft(x, self.nfft)
        ac = np.fft.irfft(spectrum * np.conj(spectrum), self.nfft)[:n] / (n - np.arange(n))
        lags = self.lags[2 * self.lags < n]
        score = np.maximum(ac[lags] + 0.5 * ac[2 * lags], 0.0) * self.prior[:len(lags)]
        if not len(lags) or score.max() <= 0.0:
            return None
        return 60.0 * self.fps / float(lags[score.argmax()])


class BeatTracker:
    """Flux and the bar-pointer filter together, fed hop by hop.

    ``push`` returns the beats found in the samples, as frame numbers (frame ``k``
    starts ``k`` front-end hops after the first sample).  ``silence`` [dB]: frames whose
    mel energy is below it count as silence (activation 0), and no beat is reported
    after ``hold`` seconds of silence, so a finished song stops beating while a break
    of a bar or two keeps its pulse.
    """

    def __init__(self, input_rate: int, min_bpm: float = 55.0, max_bpm: float = 215.0,
                 silence: float = -70.0, hold: float = 2.0, beats=None, share: float = 0.0) -> None:
        self.flux = Flux(input_rate, beats, share)
        self.fps = self.flux.fps
        self.model = BarPointer(self.fps, min_bpm, max_bpm)
        self.level = Level(self.fps, min_bpm, max_bpm)
        # The weights object itself: Weights.load hands out one object per file version.
        self.config = (input_rate, min_bpm, max_bpm, beats if self.flux.share else None, self.flux.share)
        self.set_silence(silence)
        self.hold = round(hold * self.fps)
        self.frame = 0                   # frames analysed so far
        self.quiet = self.hold + 1       # frames of silence in a row (silent at the start)
        self.last_beat = -10**9          # frame of the filter's last beat
        self.early = False               # the last beat reported left early
        self.unheard = False             # the model has not met it (or it was misplaced)
        self.state = 0
        #: The model's belief in its best state (0 in silence), as of the last frame.
        self.confidence = 0.0
        self.meter = Meter()
        self.halved: float | None = None  # the filter's tempo when it was found twice the song's
        self.pulses = 0                  # the filter's beats so far (their pair: pulses % 2)
        self.weighing: list[tuple[float, int]] = []   # beats whose strength is still coming
        self.recent_activation: list[float] = []
        self.pairs = [0.0, 0.0]          # each pair's recent strength
        self.strong = 0                  # the pair that is reported while halved
        self.last_kept = 0.0             # frame of the last beat reported
        #: The place in its bar of each beat the last ``push`` returned (0: "one"); None
        #: for the beat before placed anew (an early beat the model then found
        #: elsewhere: the same beat of the bar, in the same place).
        self.places: list[int | None] = []

    def set_silence(self, db: float) -> None:
        self.silence = FULL_SCALE * 10 ** (db / 20.0)

    def push(self, samples: np.ndarray, until: float | None = None) -> list[float]:
        """The beats in ``samples``, as frame numbers.  With ``until`` (the frame number
        where the samples end), a beat the model expects before then is reported now,
        at the frame it is expected, rather than when its sound has been analysed (the
        front end hears a frame about 35 ms after its sound arrives); the beat the model
        then finds there is not reported twice, but one it finds more than MISPLACED of
        a beat from the early one is, and no beat leaves early again until the model
        has met the last early one or heard a beat.  Only while the model is sure
        enough (``confidence`` >= EARLY_CONFIDENCE): a cold start waits to hear its
        beats.
        ``confidence`` is computed here once per push, for this and for the node."""
        beats: list[float] = []
        model, meter = self.model, self.meter
        self.places = places = []
        frames = self.flux.push(samples)
        for activation, energy, level in frames:
            self.quiet = self.quiet + 1 if energy < self.silence else 0
            heard = activation if self.quiet == 0 else 0.0
            self._weigh(heard)
            named = self.level.push(heard)
            if named is not None:
                self._follow_level(named)
            state = model.step(heard)
            self.state = state
            interval = model.intervals[model.tempo[state]]
            if self.halved and abs(np.log(model.bpm(state) / self.halved)) > np.log(1.0 + 2 * LEVEL_TOLERANCE):
                self.halved = None               # the filter has moved to another tempo
            if model.beat[state] and self.quiet <= self.hold:
                gap = self.frame - self.last_beat
                heard_it = gap > 0.6 * interval
                if heard_it or (self.early and gap > MISPLACED * interval):
                    if heard_it:
                        self._pulse(self.frame)
                    if self._kept():
                        beats.append(self.frame)
                        self.last_kept = self.frame
                        places.append(meter.beat(self.frame) if heard_it else None)
                    self.last_beat = self.frame
                    self.early = False
                    if heard_it:
                        self.unheard = False
                elif self.early:                  # the model meets the early beat
                    self.unheard = False
            meter.frame(self.frame, level)
            self.frame += 1
        if frames:
            self.confidence = model.confidence(self.state) if self.quiet <= self.hold else 0.0
        if until is not None and self.confidence >= EARLY_CONFIDENCE and not self.unheard:
            interval = model.intervals[model.tempo[self.state]]
            ahead = self.frame - 1 + interval * (1.0 - model.position[self.state])
            if ahead < until and ahead - self.last_beat > 0.6 * interval:
                self._pulse(ahead)
                if self._kept():
                    beats.append(ahead)
                    self.last_kept = ahead
                    places.append(meter.beat(ahead))
                self.last_beat = ahead
                self.early = self.unheard = True
        return beats

    def _follow_level(self, named: float) -> None:
        """Follow every other beat of the filter while the activation names half its
        tempo; every beat again once it names the filter's own."""
        free = self.model.bpm(self.state)
        if abs(free / (2.0 * named) - 1.0) < LEVEL_TOLERANCE:
            self.halved = self.halved or free
        elif abs(free / named - 1.0) < LEVEL_TOLERANCE:
            self.halved = None

    def _pulse(self, frame: float) -> None:
        """A new beat of the filter at ``frame``: the other of the pair from the last."""
        self.pulses += 1
        self.weighing.append((frame, self.pulses % 2))

    def _kept(self) -> bool:
        """Whether the filter's last beat is reported: all are, unless halved, when
        those of the pair whose sound is the stronger are."""
        return self.halved is None or self.pulses % 2 == self.strong

    def _weigh(self, activation: float) -> None:
        """Each beat of the filter weighs its pair: the strongest activation within
        PAIR_FRAMES frames of it, averaged over the last beats of the same pair."""
        self.recent_activation.append(activation)
        del self.recent_activation[:-(2 * PAIR_FRAMES + 1)]
        while self.weighing and self.weighing[0][0] + PAIR_FRAMES <= self.frame:
            frame, pair = self.weighing.pop(0)
            if frame + PAIR_FRAMES < self.frame:
                continue                         # its frames are gone (a silence, a jump)
            self.pairs[pair] += 0.125 * (max(self.recent_activation) - self.pairs[pair])
            if self.pairs[1 - self.strong] > PAIR_MARGIN * self.pairs[self.strong]:
                self.strong = 1 - self.strong

    @property
    def bpm(self) -> float:
        return self.model.bpm(self.state) / (2.0 if self.halved else 1.0)

    def phase_at(self, frame: float | None = None) -> float:
        """Where the most likely state is in its beat, 0..1: at the last frame heard, or
        carried on at the current tempo to ``frame`` (the present, which the front end
        has not heard yet).  While halved, the place between the song's beats."""
        model, state = self.model, self.state
        ahead = 0.0 if frame is None else frame - (self.frame - 1)
        interval = model.intervals[model.tempo[state]]
        if self.halved:           # from the last beat reported, at the song's tempo
            return float(((self.frame - 1 + ahead - self.last_kept) / (2.0 * interval)) % 1.0)
        return float((model.position[state] + ahead / interval) % 1.0)
