"""DDP, the Distributed Display Protocol (http://www.3waylabs.com/ddp/): pixel data to
LED controllers (WLED, ESPixelStick, Falcon, xLights' own) over UDP port 4048.

A frame is the controller's pixel buffer, sent in packets of at most 1440 bytes of data
(480 RGB pixels, 360 RGBW: no pixel is split), each after a 10-byte header:

=========  ==================================================================
byte 0     flags: version 1 (0x40); PUSH (0x01) on the frame's last packet, so the
           controller shows the whole frame at once
byte 1     sequence number: 1-15, round and round, one per packet (0 means none)
byte 2     data type, bits C R TTT SSS: 0x0B RGB or 0x1B RGBW at 8 bits a channel
byte 3     destination: 1, the controller's display
bytes 4-7  where the packet's data goes in the buffer [bytes], 32 bits, MSB first
bytes 8-9  the data's length [bytes], 16 bits, MSB first
=========  ==================================================================

No timecode (flag 0x10 clear, so the header is 10 bytes), no query, reply or storage.
"""

from __future__ import annotations

import struct

PORT = 4048               # UDP port DDP controllers listen on
MAX_DATA = 1440           # [bytes] of data in one packet (divisible by 3 and 4)
VERSION_1 = 0x40          # flags: protocol version 1 (bits 7-6: 01)
PUSH = 0x01               # flags: show the data now (the frame's last packet)
DISPLAY = 1               # destination id: the controller's default output
HEADER = struct.Struct(">BBBBIH")     # flags, sequence, type, destination, offset, length
LAST_SEQUENCE = 15


def packets(frame: bytes, sequence: int, data_type: int) -> tuple[list[bytes], int]:
    """One frame's packets, numbered from ``sequence`` (1-15), and the number the next
    packet takes."""
    out = []
    for offset in range(0, len(frame), MAX_DATA):
        data = frame[offset:offset + MAX_DATA]
        flags = VERSION_1 | (PUSH if offset + MAX_DATA >= len(frame) else 0)
        out.append(HEADER.pack(flags, sequence, data_type, DISPLAY, offset, len(data)) + data)
        sequence = sequence % LAST_SEQUENCE + 1
    return out, sequence
