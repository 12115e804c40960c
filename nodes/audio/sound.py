"""Sound files: WAV, FLAC, OGG and MP3 through soundfile, anything else through ffmpeg.

soundfile (libsndfile) reads the common lossless formats, Ogg Vorbis/Opus and MP3. A song
from a phone or a shop is often M4A (AAC), or Opus or Vorbis in another container; with
the ``gl`` extra installed, imageio-ffmpeg's ffmpeg decodes such a file once into 16-bit
WAV in memory, and it is read from there like any other. ffmpeg may only open local files
(``-protocol_whitelist file``), so a playlist that names a URL is refused rather than
fetched. Without ffmpeg the error says how to convert the file.
"""

from __future__ import annotations

import functools
import io
import subprocess
import tempfile
import threading
from pathlib import Path

import soundfile as sf

READ = "WAV, FLAC, OGG and MP3"
#: What a folder of songs is searched for (the last ones decoded through ffmpeg).
SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".m4a", ".aac", ".opus", ".wma")
DECODE_S = 600.0      # [s] the longest an ffmpeg decode may take
MAX_BYTES = 1 << 31   # decoded WAV larger than this (3.4 h of 44.1 kHz stereo) is refused
CHUNK = 1 << 24       # [bytes] read from ffmpeg at a time


class SoundError(Exception):
    """A file that cannot be read as sound; the message says why and what reads."""


def open_sound(path: str | Path) -> sf.SoundFile:
    """An open, seekable sf.SoundFile of ``path`` (close it, or use it in a ``with``)."""
    path = Path(path)
    try:
        return sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises several types for unreadable files
        first = _reason(exc)
    try:
        stamp = _stamp(path)
    except OSError as exc:
        raise SoundError(exc.strerror or str(exc)) from None
    data = _decoded(str(path), *stamp, first_error=first)
    try:
        return sf.SoundFile(io.BytesIO(data))
    except Exception as exc:  # what ffmpeg wrote is not sound after all
        raise SoundError(f"{first}; ffmpeg's decoding is unreadable ({_reason(exc)})") from None


def read_sound(path: str | Path) -> tuple:
    """(frames x channels float32 samples, sample rate) of a whole file."""
    with open_sound(path) as f:
        return f.read(dtype="float32", always_2d=True), f.samplerate


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=2)
def _decoded(path: str, mtime_ns: int, size: int, first_error: str) -> bytearray:
    """The file as WAV bytes, decoded by ffmpeg (kept for the file's check and its node)."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform
        raise SoundError(f"{first_error}; {READ} are read (install the gl extra for other "
                         f"formats, or convert it: ffmpeg -i IN OUT.flac)") from None
    cmd = [exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-protocol_whitelist", "file",
           "-i", path, "-vn", "-map", "0:a:0", "-c:a", "pcm_s16le", "-f", "wav", "-"]
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL)

        def expire() -> None:                            # the read below ends with the process
            timed_out.set()
            proc.kill()
        timer = threading.Timer(DECODE_S, expire)
        timer.start()
        try:
            data = bytearray()                           # no more than the bound is ever held
            while len(data) <= MAX_BYTES:
                chunk = proc.stdout.read1(CHUNK)         # read(n) would allocate n bytes at once
                if not chunk:
                    break
                data += chunk
            if len(data) > MAX_BYTES:
                proc.kill()
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        err.seek(0)
        said = err.read().decode(errors="replace").strip().splitlines()
    if timed_out.is_set() and code != 0:                 # a timer firing after a good decode is no error
        raise SoundError(f"ffmpeg took over {DECODE_S:g} s to decode it")
    if len(data) > MAX_BYTES:
        raise SoundError(f"decoded, it is over {MAX_BYTES >> 30} GiB; cut it shorter")
    if code != 0 or len(data) < 44:
        why = said[-1].split(": ")[-1] if said else "no sound in it"
        raise SoundError(f"{first_error}; ffmpeg cannot read it either ({why})")
    return data


def _reason(exc: Exception) -> str:
    """soundfile's message without the repeated path."""
    text = str(exc)
    return (text.rsplit(": ", 1)[-1] if ": " in text else text).strip().rstrip(".")
