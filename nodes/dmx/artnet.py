"""Art-Net on a lighting LAN: where a broadcast goes, and the ArtPollReply by which a
desk finds the node (Art-Net 4, Artistic Licence: ArtPoll, ArtPollReply, Port-Address).

A lighting LAN (2.x.x.x, 10.x.x.x, a console's own switch) often has no default route,
so the limited broadcast 255.255.255.255 cannot leave ("Network is unreachable"):
``broadcast_addresses`` gives the directed broadcast address of every IPv4 network the
machine is on instead, as Art-Net's own documents recommend.  Packets are built here
with ``struct`` (the Art-Net libraries on PyPI build ArtDmx only)."""

from __future__ import annotations

import ipaddress
import socket
import struct

PORT = 6454                       # UDP port of every Art-Net packet
ID = b"Art-Net\x00"
OP_POLL, OP_POLL_REPLY = 0x2000, 0x2100
#: ESTA manufacturer code reserved for prototypes and experiments (0x7FF0-0x7FFF).
ESTA = 0x7FF0
OEM_UNKNOWN = 0x00FF
STYLE_MEDIA = 0x02                # StMedia: a media server
PORT_INPUT = 0x40                 # PortTypes bit 6: the port sends DMX onto Art-Net
GOOD_INPUT_DATA = 0x80            # GoodInput bit 7: data is being sent
STATUS2_15BIT = 0x08              # Status2 bit 3: 15-bit Port-Address
REPLY_SIZE = 239


def broadcast_addresses() -> list[str]:
    """The directed broadcast address of every IPv4 network this machine is on, but
    loopback and point-to-point links (from ``ifaddr``, which zeroconf uses too)."""
    import ifaddr

    found = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not ip.is_IPv4:
                continue
            net = ipaddress.ip_network(f"{ip.ip}/{ip.network_prefix}", strict=False)
            if net.is_loopback or net.prefixlen >= 31:
                continue
            found.add(str(net.broadcast_address))
    return sorted(found)


def is_poll(data: bytes) -> bool:
    """An ArtPoll (a desk asking which nodes are there)."""
    return len(data) >= 12 and data[:8] == ID and struct.unpack_from("<H", data, 8)[0] == OP_POLL


def address_towards(host: str) -> str:
    """This machine's address on the way to ``host`` (the interface a reply leaves by)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((host, PORT))
        return probe.getsockname()[0]
    except OSError:
        return "0.0.0.0"
    finally:
        probe.close()


def poll_reply(ip: str, universe: int, *, short_name: str, long_name: str, report: str,
               rate: float, priority: int = 100) -> bytes:
    """An ArtPollReply for one input port sending ``universe`` (a 15-bit Port-Address:
    net, sub-net, universe) from ``ip``."""
    def text(s: str, size: int) -> bytes:
        return s.encode("ascii", "replace")[:size - 1].ljust(size, b"\x00")

    ports = bytes([PORT_INPUT, 0, 0, 0])
    reply = (ID + struct.pack("<H", OP_POLL_REPLY) + socket.inet_aton(ip) + struct.pack("<H", PORT)
             + struct.pack(">H", 1)                                   # firmware version
             + bytes([(universe >> 8) & 0x7F, (universe >> 4) & 0x0F])  # NetSwitch, SubSwitch
             + struct.pack(">H", OEM_UNKNOWN) + b"\x00"               # Oem, Ubea
             + b"\xd0"                                                # Status1: normal indicators, ports by network
             + struct.pack("<H", ESTA)
             + text(short_name, 18) + text(long_name, 64) + text(report, 64)
             + struct.pack(">H", 1) + ports                            # NumPorts, PortTypes
             + bytes([GOOD_INPUT_DATA, 0, 0, 0]) + bytes(4)           # GoodInput, GoodOutput
             + bytes([universe & 0x0F, 0, 0, 0]) + bytes(4)           # SwIn, SwOut
             + bytes([min(200, priority), 0, 0]) + bytes(3)           # AcnPriority, SwMacro, SwRemote, Spare
             + bytes([STYLE_MEDIA]) + bytes(6)                        # Style, MAC (not known)
             + socket.inet_aton(ip) + b"\x01" + bytes([STATUS2_15BIT])  # BindIp, BindIndex, Status2
             + bytes(4) + b"\x00" + bytes(6)                          # GoodOutputB, Status3, RDM UID
             + struct.pack(">H", 0) + struct.pack(">H", int(round(rate))))  # User, RefreshRate
    return reply.ljust(REPLY_SIZE, b"\x00")


class PollResponder:
    """Answers ArtPoll from any desk on the LAN (listening on UDP 6454 on every
    interface, shared with other Art-Net software on the machine): ``answer`` reads what
    has arrived without blocking and replies to each poll, unicast to the desk."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.bind(("", PORT))
        self.sock.setblocking(False)
        self.polls = 0

    def answer(self, reply_for) -> int:
        """Reply to every ArtPoll waiting; ``reply_for(ip)`` builds the reply for the
        address this machine has towards the desk.  Returns how many were answered."""
        answered = 0
        for _ in range(16):                  # a flood of polls waits for the next send
            try:
                data, (host, _port) = self.sock.recvfrom(1024)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not is_poll(data):
                continue
            self.polls += 1
            try:
                self.sock.sendto(reply_for(address_towards(host)), (host, PORT))
                answered += 1
            except OSError:
                pass
        return answered

    def close(self) -> None:
        self.sock.close()
