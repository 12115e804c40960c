"""MIDI ports through mido and python-rtmidi, waited for and kept open across a device's loss and return.

A port is chosen by name substring, like audio devices (``port: nanoKONTROL``), or made
virtual (``virtual: true``: other apps connect to it).  ``api`` picks the MIDI system:
``alsa`` (Linux's sequencer: USB devices, other apps), ``jack`` (JACK MIDI), or ``auto``
(ALSA when the machine has a sequencer, else JACK).

A show starts without its MIDI device: a port that matches nothing yet (a controller
not plugged in, a synth not started, even a MIDI system not running yet) is reported
in one line, naming what was asked for and the ports there are, and the node runs on
without it; the port list is looked at every ``RETRY`` seconds (``SYSTEM_RETRY`` while
the MIDI system itself does not answer) and the port is opened, with one more line,
when it appears.  A named port that goes away (a controller unplugged, its app quit) is
reported once and looked for again every ``RETRY`` seconds; when it is back it is
reopened and reported once more.  A look is one listing of the ports from the control
tick, never a wait.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

log = logging.getLogger("tonegraph.midi")

APIS = ("auto", "alsa", "jack")
BACKENDS = {"alsa": "mido.backends.rtmidi/LINUX_ALSA", "jack": "mido.backends.rtmidi/UNIX_JACK"}
#: Seconds between looks for a lost port (and checks that an open one is still there).
RETRY = 1.0
#: Seconds between asking a MIDI system that did not answer again (asking makes a client
#: of it, a few milliseconds with stderr silenced).
SYSTEM_RETRY = 5.0


def _stderr_handlers() -> list[logging.Handler]:
    """The logging handlers on the way from our logger up that write to stderr."""
    found, logger = [], log
    while logger is not None:
        found += [h for h in logger.handlers if getattr(h, "stream", None) is sys.stderr]
        logger = logger.parent if logger.propagate else None
    return found


@contextlib.contextmanager
def _quiet():
    """ALSA and JACK print their own complaints straight to stderr when a system is
    absent; while probing, those go nowhere (the node reports in one line instead).
    Log lines other threads write meanwhile wait for the moment to pass (the stderr
    handlers' locks are held), so none is lost."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    handlers = _stderr_handlers()
    for h in handlers:
        h.acquire()
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
        for h in reversed(handlers):
            h.release()


def backend(api: str):
    """The mido backend for ``api``; ``auto`` takes the first system that answers.
    Raises OSError naming what is missing."""
    import mido

    tried = []
    for name in (("alsa", "jack") if api == "auto" else (api,)):
        b = mido.Backend(BACKENDS[name], load=True)
        try:
            with _quiet():
                b.get_input_names()
            return b
        except Exception as exc:  # noqa: BLE001 - rtmidi raises SystemError for a missing system
            tried.append(f"{name}: {str(exc).split(':')[-1].strip() or type(exc).__name__}")
    raise OSError("no MIDI system answers (" + "; ".join(tried) + ")")


def open_for(node, kind: str, callback=None) -> "Port":
    """The port of a midi.in or midi.out node (its port, api and virtual params), open,
    or waited for when it is not there yet; in an offline run it stays closed (MIDI is
    live only)."""
    p = node.p
    port = Port(node.id, kind, p.port, p.api, p.virtual, callback=callback)
    if node.ctx.offline:
        log.warning("node '%s': MIDI %s is live; an offline run %s none", node.id, kind,
                    "hears" if kind == "input" else "sends")
        return port
    port.start()
    return port


class Port:
    """One input or output port of a node, reopened when it comes back."""

    def __init__(self, node_id: str, kind: str, name: str, api: str, virtual: bool,
                 callback=None) -> None:
        self.node_id, self.kind, self.name, self.api, self.virtual = node_id, kind, name, api, virtual
        self.callback = callback
        self.port = None
        self.opened_name = ""
        self.lost = False
        self.waiting = False          # not opened yet: looked for until it appears
        self.next_look = 0.0
        self.backend = None
        self.scanner = None

    def open(self) -> None:
        """Open it now; raises OSError (one line) when it cannot be."""
        if self.backend is None:
            self.backend = backend(self.api)
        self._open()

    def start(self) -> None:
        """Open it now, or say in one line why it cannot be yet and wait for it (see
        the module docstring)."""
        try:
            self.open()
        except OSError as exc:
            self.waiting = True
            retry = RETRY if self.backend is not None else SYSTEM_RETRY
            self.next_look = time.monotonic() + retry
            what = ("it" if self.backend is not None
                    else f"MIDI {self.kind} '{self.name or f'tonegraph {self.node_id}'}'" if self.virtual
                    else f"MIDI {self.kind} '{self.name}'" if self.name else f"a MIDI {self.kind}")
            log.warning("node '%s': %s; %s is opened when it appears (looked for every %g s)",
                        self.node_id, exc, what, retry)
            return
        log.info("node '%s': MIDI %s '%s'", self.node_id, self.kind, self.opened_name)

    def _names(self) -> list[str]:
        """The ports there are now.  One RtMidi client, made once, lists them: making a
        client per look stalls the whole process under JACK (the new client waits on the
        server while holding the interpreter, and the server waits on our input's
        callback, which waits on the interpreter)."""
        if self.scanner is None:
            import rtmidi

            api = {"LINUX_ALSA": rtmidi.API_LINUX_ALSA, "UNIX_JACK": rtmidi.API_UNIX_JACK}
            with _quiet():
                cls = rtmidi.MidiIn if self.kind == "input" else rtmidi.MidiOut
                self.scanner = cls(api.get(self.backend.api, rtmidi.API_UNSPECIFIED), name="tonegraph scan")
        # Listing is quiet by itself; only making a client prints (and only then is the
        # process's stderr, shared by every thread, briefly silenced).
        return list(self.scanner.get_ports())

    def _open(self) -> None:
        b = self.backend
        with _quiet():
            if self.virtual:
                name = self.name or f"tonegraph {self.node_id}"
                self.port = (b.open_input(name, virtual=True, callback=self.callback) if self.kind == "input"
                             else b.open_output(name, virtual=True))
                self.opened_name = name
                return
            names = self._names()
        want = self.name.lower()
        match = [n for n in names if want in n.lower()] if want else names
        # A port of our own (another node's virtual port) only when asked for by name.
        if "tonegraph" not in want:
            match = [n for n in match if "tonegraph " not in n] or match
        if not match:
            raise OSError(f"no MIDI {self.kind} matches '{self.name}' yet (there are: "
                          f"{', '.join(names) or 'none'})")
        with _quiet():
            self.port = (b.open_input(match[0], callback=self.callback) if self.kind == "input"
                         else b.open_output(match[0]))
        self.opened_name = match[0]

    def keep(self) -> None:
        """Called every tick: open a port waited for once it appears, notice a named
        port gone, and reopen it when it is back."""
        if not self.waiting and (self.virtual or self.backend is None):
            return
        now = time.monotonic()
        if now < self.next_look:
            return
        if self.waiting:
            self._look_for()
            return
        self.next_look = now + RETRY
        try:
            names = self._names()
        except Exception:  # noqa: BLE001 - the MIDI system itself went away (JACK stopped)
            names = []
        if not self.lost and self.opened_name not in names:
            self.lost = True
            self._close_port()
            log.warning("node '%s': MIDI %s '%s' is gone; looking for it again every %g s",
                        self.node_id, self.kind, self.opened_name, RETRY)
        elif self.lost and self.opened_name in names:
            try:
                self._open()
            except OSError:
                return
            self.lost = False
            log.warning("node '%s': MIDI %s '%s' is back", self.node_id, self.kind, self.opened_name)

    def _look_for(self) -> None:
        """One look for a port not opened yet: open it when it is there."""
        try:
            self.open()
        except Exception:  # noqa: BLE001 - not there yet (rtmidi raises its own errors too)
            self.next_look = time.monotonic() + (RETRY if self.backend is not None else SYSTEM_RETRY)
            return
        self.waiting = False
        log.warning("node '%s': MIDI %s '%s' has appeared", self.node_id, self.kind, self.opened_name)

    def send(self, msg) -> bool:
        if self.port is None:
            return False
        try:
            self.port.send(msg)
            return True
        except Exception:  # noqa: BLE001 - a port closing under us; keep() will notice
            return False

    def _close_port(self) -> None:
        port, self.port = self.port, None
        if port is not None:
            try:
                with _quiet():
                    port.close()
            except Exception:  # noqa: BLE001 - closing a port whose device is gone
                pass

    def close(self) -> None:
        self._close_port()
        scanner, self.scanner = self.scanner, None
        if scanner is not None:
            try:
                scanner.delete()
            except Exception:  # noqa: BLE001
                pass
        self.backend = None
