"""MIDI Time Code (MTC): hours:minutes:seconds:frames between a show and a timeline.

A running timeline sends quarter-frame messages (0xF1), four per frame, each carrying a
nibble of the time: pieces 0-7 are frames low/high, seconds low/high, minutes low/high,
hours low and hours high with the frame rate (bits 1-2 of piece 7: 0 24 fps, 1 25 fps,
2 29.97 fps drop-frame, 3 30 fps).  The time the eight pieces spell is the frame at
which piece 0 was sent, so when piece 7 arrives the timeline is 7/4 of a frame further.
A locate (the timeline jumping while stopped) is a full-frame SysEx,
``F0 7F 7F 01 01 hr mn sc fr F7`` with the rate in bits 5-6 of ``hr``.

Drop-frame time code at 29.97 fps skips frame numbers 0 and 1 at the start of every
minute except each tenth, so that its labels keep to the clock: 1:00:00;00 is 107,892
frames, one hour of 29.97 fps to within 3.6 ms.
"""

from __future__ import annotations

#: Rate code -> frames per second.
RATES = {0: 24.0, 1: 25.0, 2: 30000 / 1001, 3: 30.0}
#: Names a patch gives a rate by -> rate code.
CODES = {"24": 0, "25": 1, "29.97": 2, "30": 3}
DAY = 24 * 3600.0


def frame_count(h: int, m: int, s: int, f: int, code: int) -> int:
    """Frames since 0:00:00:00 of the time code h:m:s:f."""
    nominal = round(RATES[code])
    frames = ((h * 60 + m) * 60 + s) * nominal + f
    if code == 2:                                       # drop-frame labels skip 2 a minute
        minutes = h * 60 + m
        frames -= 2 * (minutes - minutes // 10)
    return frames


def to_seconds(h: int, m: int, s: int, f: int, code: int) -> float:
    return frame_count(h, m, s, f, code) / RATES[code]


def from_seconds(t: float, code: int) -> tuple[int, int, int, int]:
    """The time code (h, m, s, f) of the frame holding ``t`` seconds (wrapping at 24 h)."""
    frames = int((t % DAY) * RATES[code] + 1e-6)
    nominal = round(RATES[code])
    if code == 2:                                       # add back the labels dropped
        per10 = 10 * 60 * 30 - 9 * 2                    # frames in ten drop-frame minutes
        tens, rest = divmod(frames, per10)
        extra = 18 * tens + (2 * ((rest - 2) // (60 * 30 - 2)) if rest > 2 else 0)
        frames += extra
    f = frames % nominal
    s = frames // nominal % 60
    m = frames // (nominal * 60) % 60
    h = frames // (nominal * 3600) % 24
    return h, m, s, f


def quarter_frames(h: int, m: int, s: int, f: int, code: int) -> list[int]:
    """The eight quarter-frame data bytes (piece << 4 | nibble) that spell h:m:s:f."""
    values = (f & 0xF, f >> 4, s & 0xF, s >> 4, m & 0xF, m >> 4, h & 0xF, (h >> 4) | (code << 1))
    return [(piece << 4) | value for piece, value in enumerate(values)]


def full_frame(h: int, m: int, s: int, f: int, code: int) -> list[int]:
    """The data of a full-frame SysEx (without F0 and F7), a locate to h:m:s:f."""
    return [0x7F, 0x7F, 0x01, 0x01, (code << 5) | h, m, s, f]


def parse_full_frame(data) -> tuple[float, int] | None:
    """(seconds, rate code) of a full-frame SysEx's data, or None for another SysEx."""
    data = list(data)
    if len(data) != 8 or data[:4] != [0x7F, 0x7F, 0x01, 0x01]:
        return None
    code, h = (data[4] >> 5) & 3, data[4] & 0x1F
    m, s, f = data[5], data[6], data[7]
    if h > 23 or m > 59 or s > 59 or f >= round(RATES[code]):
        return None
    return to_seconds(h, m, s, f, code), code


class Reader:
    """A timeline's position from the MTC messages it sends, each stamped with when it
    arrived [s].

    Eight quarter frames in order, from piece 0, name a position: the time they spell
    plus the 7/4 frame that passed while they were sent.  Each quarter frame after that
    moves it on a quarter frame, and every eighth sets it anew from what it spells, so
    the position follows the timeline to a quarter frame and never drifts from it.  A
    quarter frame out of order (a message lost) waits for the next piece 0.  Between
    messages the position goes on in real time, up to ``AHEAD`` of a frame past the last
    (a timeline that stopped holds there, with no step back); it counts as running while
    quarter frames come within ``HOLD`` of each other.  A full frame places it at once,
    stopped."""

    HOLD = 0.1     # [s] without a quarter frame, and the timeline counts as stopped
    AHEAD = 0.5    # [frames] the most the position runs on past the last quarter frame

    def __init__(self) -> None:
        self.pieces: list[int | None] = [None] * 8
        self.expect = 0                 # the piece that should come next
        self.position: float | None = None
        self.at = 0.0                   # when ``position`` held [s]
        self.code = 1
        self.last_qf = -1.0

    def quarter(self, byte: int, now: float) -> None:
        piece, value = byte >> 4, byte & 0xF
        if self.position is not None and now - self.last_qf <= self.HOLD:
            self.position += 0.25 / RATES[self.code]          # the timeline ran a quarter frame
            self.at = now
        self.last_qf = now
        if piece != self.expect and piece != 0:
            self.pieces, self.expect = [None] * 8, 0      # out of order: wait for piece 0
            return
        if piece == 0:
            self.pieces = [None] * 8
        self.pieces[piece] = value
        self.expect = (piece + 1) % 8
        if piece == 7 and None not in self.pieces:
            p = self.pieces
            code = (p[7] >> 1) & 3
            h, m, s, f = p[6] | (p[7] & 1) << 4, p[4] | p[5] << 4, p[2] | p[3] << 4, p[0] | p[1] << 4
            if h <= 23 and m <= 59 and s <= 59 and f < round(RATES[code]):
                self.code = code
                self.position, self.at = to_seconds(h, m, s, f, code) + 1.75 / RATES[code], now

    def full(self, data, now: float) -> bool:
        """A SysEx: True if it was a full frame (a locate)."""
        found = parse_full_frame(data)
        if found is None:
            return False
        self.position, self.code = found
        self.at, self.last_qf = now, -1.0
        self.pieces, self.expect = [None] * 8, 0
        return True

    def running(self, now: float) -> bool:
        return self.position is not None and self.last_qf >= 0 and now - self.last_qf <= self.HOLD

    def seconds(self, now: float) -> float | None:
        """The timeline's position at ``now``."""
        if self.position is None:
            return None
        return self.position + min(max(now - self.at, 0.0), self.AHEAD / self.fps)

    @property
    def fps(self) -> float:
        return RATES[self.code]
