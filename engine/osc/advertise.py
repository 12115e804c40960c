"""Zeroconf (mDNS/DNS-SD): OSC apps on the network find tonegraph without typing a port.

When OSC listens beyond loopback (``--osc-host 0.0.0.0`` or an interface address), the
engine advertises ``_osc._udp`` (its control port) and ``_oscjson._tcp`` (its OSCQuery
server), as the OSCQuery proposal asks; TouchOSC, Chataigne, ossia score and
python-oscquery list it by the patch's name.  On 127.0.0.1 nothing is advertised: a
loopback service is no use to another machine, and a show stays quiet on the network
unless asked.  Advertising is best effort: a network without multicast logs one
warning and the show runs on.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

log = logging.getLogger("tonegraph.osc")

EVERYWHERE = ("0.0.0.0", "::", "")


def beyond_loopback(host: str) -> bool:
    if host in EVERYWHERE:
        return True
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:          # a host name: whatever it resolves to is reachable
        return host != "localhost"


def _addresses(host: str) -> list[str]:
    """IPv4 addresses to announce: the interface's own, or every interface's."""
    if host not in EVERYWHERE:
        try:
            return [socket.gethostbyname(host)]
        except OSError:
            return []
    import ifaddr

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                out.append(ip.ip)
    non_loop = [a for a in out if not ipaddress.ip_address(a).is_loopback]
    return non_loop or out


class Advertiser:
    """Registers the two services while the engine runs (``start``/``stop``)."""

    def __init__(self, name: str, host: str, osc_port: int, query_port: int | None) -> None:
        self.name, self.host, self.osc_port, self.query_port = name, host, osc_port, query_port
        self.zeroconf = None
        self.services: list = []

    def start(self) -> bool:
        """Advertise; False (and nothing on the network) when OSC is on loopback only or
        the network does not allow it."""
        if not beyond_loopback(self.host):
            return False
        try:
            from zeroconf import InterfaceChoice, IPVersion, ServiceInfo, Zeroconf

            addresses = _addresses(self.host)
            if not addresses:
                raise OSError(f"no IPv4 address for {self.host}")
            interfaces = InterfaceChoice.All if self.host in EVERYWHERE else addresses
            self.zeroconf = Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
            label = _label(self.name)
            server = f"{label}-{socket.gethostname().split('.')[0]}.local."
            packed = [socket.inet_aton(a) for a in addresses]
            kinds = [("_osc._udp.local.", self.osc_port)]
            if self.query_port:
                kinds.append(("_oscjson._tcp.local.", self.query_port))
            for kind, port in kinds:
                info = ServiceInfo(kind, f"{label}.{kind}", addresses=packed, port=port, server=server,
                                   properties={"txtvers": "1"})
                self.zeroconf.register_service(info, allow_name_change=True)
                self.services.append(info)
        except Exception as exc:  # noqa: BLE001 - discovery is a convenience, never a stop
            log.warning("cannot advertise over zeroconf (%s); apps can still connect to port %d",
                        exc, self.osc_port)
            self.stop()
            return False
        log.info("advertised over zeroconf as '%s' (_osc._udp, _oscjson._tcp)", _label(self.name))
        return True

    def stop(self) -> None:
        if self.zeroconf is not None:
            try:
                self.zeroconf.unregister_all_services()
                self.zeroconf.close()
            except Exception:  # noqa: BLE001 - leaving the network quietly
                pass
        self.zeroconf = None
        self.services = []


def _label(name: str) -> str:
    """A DNS-SD instance name from the patch's name (no dots, at most 63 bytes)."""
    text = f"tonegraph {name}".replace(".", " ").strip()
    return text.encode()[:63].decode(errors="ignore") or "tonegraph"
