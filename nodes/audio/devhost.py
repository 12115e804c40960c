"""The device host: one PortAudio input stream in a child process of the engine.

Run as ``python -m tonegraph.nodes.audio.devhost DEVICE CHANNELS SAMPLERATE BLOCKSIZE LATENCY``.
It opens the stream, then writes messages to stdout until stdin closes (the engine
went away) or the stream dies.  Keeping PortAudio out of the engine's process means a
device or server that crashes its host API (PortAudio's JACK host asserts when its
server vanishes) takes down only this process; the engine starts a new one to reopen
the device.

The PortAudio callback never waits for the engine: when the pipe to it has no room
for a block (the engine is stopped or stalled), the block is dropped and the next one
is flagged as after an overflow, so a stalled engine never stalls the audio server and
every other client on it.

Each message is a header ``<BIId``: kind, length, channels, time.perf_counter() at the
callback (the same monotonic clock in every process), followed by ``length`` bytes:

- ``DATA`` / ``DATA_OVERFLOW``: float32 frames x channels (the latter after an overflow)
- ``READY``: UTF-8 name of the opened device
- ``ERROR``: UTF-8 one-line reason the device could not be opened
"""

from __future__ import annotations

import array
import fcntl
import os
import struct
import sys
import termios
import time

HEADER = struct.Struct("<BIId")
DATA, DATA_OVERFLOW, READY, ERROR = 1, 2, 3, 4
PIPE_SIZE = 1 << 20  # [bytes] asked of the kernel for the pipe to the engine (~5 s of audio)


def input_devices(sd) -> list[str]:
    return [f"{i} '{d['name']}' ({d['max_input_channels']} in)"
            for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]


def find_device(sd, spec: str) -> int | None:
    """Index of the input device named by ``spec`` (index or case-insensitive name
    substring); None for the default.  LookupError lists the inputs that exist."""
    devices = sd.query_devices()
    if not spec:
        if sd.default.device[0] is None or sd.default.device[0] < 0:
            have = ", ".join(input_devices(sd)) or "none"
            raise LookupError(f"there is no default input device (inputs: {have}): set the "
                              f"node's device")
        return None
    if spec.isdigit() and int(spec) < len(devices) and devices[int(spec)]["max_input_channels"] > 0:
        return int(spec)
    for i, d in enumerate(devices):
        if spec.lower() in d["name"].lower() and d["max_input_channels"] > 0:
            return i
    have = ", ".join(input_devices(sd)) or "none"
    raise LookupError(f"no input device matches '{spec}' (inputs: {have})")


def _send(kind: int, payload: bytes, channels: int = 0, stamp: float = 0.0) -> None:
    os.write(1, HEADER.pack(kind, len(payload), channels, stamp) + payload)


def _pipe_room():
    """A function giving the free bytes in the pipe on stdout, or None when stdout is
    not a pipe (then writes simply block)."""
    try:
        try:
            fcntl.fcntl(1, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:  # above the system's limit: keep the default size
            pass
        size = fcntl.fcntl(1, fcntl.F_GETPIPE_SZ)
        queued = array.array("i", [0])
        fcntl.ioctl(1, termios.FIONREAD, queued)
    except (OSError, AttributeError):
        return None

    def room() -> int:
        fcntl.ioctl(1, termios.FIONREAD, queued)
        return size - queued[0]
    return room


def main(argv: list[str]) -> int:
    device, channels, samplerate, blocksize, latency = (
        argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4])
    try:
        import sounddevice as sd

        index = find_device(sd, device)
        room = _pipe_room()
        dropped = [False]

        def callback(indata, frames, time_info, status) -> None:  # PortAudio thread
            data = indata.tobytes()
            if room is not None and room() < HEADER.size + len(data):
                dropped[0] = True       # the engine is not reading: never wait for it here
                return
            kind = DATA_OVERFLOW if status.input_overflow or dropped[0] else DATA
            dropped[0] = False
            _send(kind, data, channels, time.perf_counter())

        stream = sd.InputStream(device=index, channels=channels, samplerate=samplerate,
                                blocksize=blocksize, dtype="float32", latency=latency,
                                callback=callback)
        stream.start()
        name = sd.query_devices(stream.device)["name"]
    except Exception as exc:  # every failure becomes one line for the engine to report
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "PortAudio library not found" in reason:
            reason += " (install it: sudo apt-get install libportaudio2)"
        _send(ERROR, reason.encode())
        return 1
    _send(READY, name.encode())
    while sys.stdin.buffer.read(1):  # returns b"" when the engine closes the pipe
        pass
    # Exit without closing the stream: after a server crash, closing would abort.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
