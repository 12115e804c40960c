"""systemd's notify protocol, without a dependency: readiness, watchdog pings, reloads.

With ``Type=notify`` in the unit, systemd sets ``$NOTIFY_SOCKET``; the engine sends
``READY=1`` once it runs, ``RELOADING=1``/``READY=1`` around a hot reload,
``STOPPING=1`` on the way out, and, when the unit sets ``WatchdogSec``, ``WATCHDOG=1``
at half that interval from the frame loop, so a loop that hangs gets the service
restarted.
"""

from __future__ import annotations

import os
import socket
import time


def notify(state: str) -> bool:
    """Send a state line to systemd; False when not started by systemd (or it failed)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    addr = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(state.encode(), addr)
        return True
    except OSError:
        return False


class Watchdog:
    """Pings ``WATCHDOG=1`` at half the interval systemd asked for, if it asked."""

    def __init__(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.interval = int(usec) / 2e6 if wanted else 0.0
        self.next = 0.0

    def ping(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.interval
            notify("WATCHDOG=1")
