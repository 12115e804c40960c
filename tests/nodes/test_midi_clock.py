"""MIDI clock in and out on injected time: the tempo midi.in reads from pulses that
arrive late, and the pulses midi.out sends after its thread was held up."""

from __future__ import annotations

import math

import mido
import numpy as np
import pytest

from tonegraph.nodes.midi.inp import MidiIn

from ..conftest import NodeDriver

#: JACK's delivery grid on the test server: 256 frames at 48 kHz [s].
JACK_PERIOD = 256 / 48000


def arrivals(bpm: float, pulses: int, stall_at: float, stall: float, resumes: str) -> list[float]:
    """When each clock pulse of a steady ``bpm`` arrives [s], on JACK's delivery grid,
    when delivery stops for ``stall`` seconds at ``stall_at``.  ``resumes``: "burst",
    the pulses held up arrive together at the end of the stall and the rest on time; or
    "late", the sender itself was held and goes on from where it was, ``stall`` later."""
    step, shift, out = 60.0 / (24 * bpm), 0.0, []
    for k in range(pulses):
        t = k * step + shift
        if stall_at <= t < stall_at + stall:
            if resumes == "late":
                shift += stall_at + stall - t
            t = stall_at + stall
        out.append(math.ceil(t / JACK_PERIOD) * JACK_PERIOD)
    return out


@pytest.mark.parametrize("bpm", [60.0, 90.0, 140.0, 180.0, 240.0, 300.0])
@pytest.mark.parametrize("resumes", ["burst", "late"])
def test_clock_tempo_holds_through_a_delivery_stall(bpm, resumes):
    """A 30 ms stall 8 beats in: once four beats have come, every tempo midi.in gives is
    within 1 BPM (a line through the last beat's pulses dipped 9-14 BPM at 140)."""
    d = NodeDriver(MidiIn, {"api": "jack"}, fps=60)
    times = arrivals(bpm, 24 * 16, 8 * 60.0 / bpm, 0.030, resumes)
    read = []
    i = 0
    for k in range(int(times[-1] * 60) + 1):          # the ticks that read them
        while i < len(times) and times[i] <= k / 60:
            d.node.queue.append((times[i], mido.Message("clock")))
            i += 1
        bpm_out = d.tick()["bpm"]
        if i > 4 * 24:
            read.append(bpm_out)
    assert len(read) > 60 * 11 * 60 / bpm
    assert np.abs(np.array(read) - bpm).max() < 1.0, (min(read), max(read))


def test_clock_tempo_follows_a_change_of_tempo():
    """The fit is over the last beats only: 120 then 130 BPM reads 130 within 4 beats."""
    d = NodeDriver(MidiIn, {"api": "jack"}, fps=60)
    times = [k * 60 / (24 * 120) for k in range(24 * 8)]
    times += [times[-1] + (k + 1) * 60 / (24 * 130) for k in range(24 * 4)]
    for t in times:
        d.node.queue.append((t, mido.Message("clock")))
        d.tick()
    assert d.node.out["bpm"] == pytest.approx(130.0, abs=0.1)
