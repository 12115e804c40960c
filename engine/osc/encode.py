"""OSC encoding and decoding as pure functions over bytes (python-osc underneath).

Kept apart from sockets so that what goes on the wire can be tested byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from pythonosc import slip
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.parsing import osc_types

Arg = tuple[str, Any]  # (OSC type tag, value)

BUNDLE_HEAD = b"#bundle\x00"


def _padded(text: str) -> bytes:
    raw = text.encode()
    return raw + b"\0" * (4 - len(raw) % 4)


def message(address: str, args: Sequence[Arg] = ()) -> bytes:
    """One OSC message. Type tags: f float, i int, T/F bool, s string, b blob.  Floats
    alone (a spectrum, a vector) are packed in one go: the bytes python-osc makes,
    without its per-argument work."""
    if args and address.startswith("/") and all(tag == "f" for tag, _ in args):
        return (_padded(address) + _padded("," + "f" * len(args))
                + struct.pack(f">{len(args)}f", *(v for _, v in args)))
    builder = OscMessageBuilder(address=address)
    for tag, value in args:
        if tag in ("T", "F"):
            builder.add_arg(bool(value))
        else:
            builder.add_arg(value, tag)
    return builder.build().dgram


def bundle(timetag: float, messages: Iterable[bytes]) -> bytes:
    """A bundle of encoded messages. ``timetag`` is Unix time [s], or 0 for immediately."""
    parts = [BUNDLE_HEAD, osc_types.write_date(timetag)]
    for m in messages:
        parts.append(struct.pack(">i", len(m)))
        parts.append(m)
    return b"".join(parts)


def slip_frame(packet: bytes) -> bytes:
    """OSC 1.1 stream framing for TCP (SLIP, double END)."""
    return slip.encode(packet)


#: Type tags python-osc reads; others it skips with a warning of its own on the root
#: logger (past every rate limit), so such packets are refused here first.
KNOWN_TAGS = frozenset("ifdsbrmtTFNh[]")
MAX_NESTING = 8  # bundles within bundles


def _check(packet: bytes, depth: int = 0) -> None:
    """Raise ValueError for what python-osc would warn about instead of refusing:
    unknown type tags, bundle elements that are neither message nor bundle."""
    if packet.startswith(BUNDLE_HEAD):
        if depth >= MAX_NESTING:
            raise ValueError(f"bundles nested deeper than {MAX_NESTING}")
        i = 16
        while i < len(packet):
            if i + 4 > len(packet):
                raise ValueError("truncated bundle element")
            (size,) = struct.unpack_from(">i", packet, i)
            element = packet[i + 4:i + 4 + size]
            if size < 0 or len(element) < size:
                raise ValueError("truncated bundle element")
            _check(element, depth + 1)
            i += 4 + size
        return
    if not packet.startswith(b"/"):
        raise ValueError("neither a message nor a bundle")
    end = packet.find(b"\x00")
    tags_at = (end // 4 + 1) * 4 if end >= 0 else len(packet)
    if packet[tags_at:tags_at + 1] == b",":
        tags_end = packet.find(b"\x00", tags_at)
        tags = packet[tags_at + 1:tags_end if tags_end >= 0 else len(packet)]
        unknown = set(tags.decode("latin-1")) - KNOWN_TAGS
        if unknown:
            raise ValueError(f"unknown type tag(s) {''.join(sorted(unknown))!r}")


def decode(packet: bytes) -> list[tuple[float | None, OscMessage]]:
    """Messages in a datagram with the timetag (Unix time, 0 for immediately) of the
    bundle holding them, or None when not in a bundle, exactly as on the wire.
    Raises ``ValueError`` for anything that is not valid OSC."""
    _check(packet)
    try:
        if packet.startswith(BUNDLE_HEAD):
            return _bundle_messages(OscBundle(packet))
        return [(None, OscMessage(packet))]
    except Exception as exc:  # python-osc raises its own ParseError and others
        raise ValueError(f"not an OSC packet: {exc}") from exc


def _bundle_messages(b: OscBundle) -> list[tuple[float | None, OscMessage]]:
    out: list[tuple[float | None, OscMessage]] = []
    for content in b:
        if isinstance(content, OscBundle):
            out += _bundle_messages(content)
        else:
            out.append((float(b.timestamp), content))
    return out
