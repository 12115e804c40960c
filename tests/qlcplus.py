"""QLC+ as a real OSC peer: headless, its Virtual Console read back over its web API.

QLC+ 4.12 (Debian package ``qlcplus``) runs without a display as::

    QT_QPA_PLATFORM=offscreen qlcplus --nowm --nogui --operate --web --web-port 9999 --open show.qxw

``--nogui`` needs ``--nowm``; ``--operate`` lets Virtual Console widgets take external
input.  The workspace (``.qxw``, XML) written here patches the OSC plugin's input on
127.0.0.1 to universe 1 (``<PluginParameters inputPort=.../>``; 7700 + universe - 1 is
its default) and lays out one Virtual Console button per OSC address, each running a
Scene on a generic dimmer.  QLC+ maps an OSC address to an input channel by a checksum
of the address (OSCController::getHash, Qt 5's ``qChecksum``: CRC-16/X-25), so
``channel(path)`` binds a button to an address as QLC+'s own "auto detect" would.

A message's first float argument times 255 is the channel value: a Flash button is
down while the value is above 0 and lets go at 0; a Toggle button toggles its Scene on
each value above 0 and ignores 0.

The web interface's WebSocket (``ws://127.0.0.1:PORT/qlcplusWS``) answers
``QLC+API|getWidgetsList`` (``QLC+API|getWidgetsList|ID|caption|ID|caption...``) and
``QLC+API|getWidgetStatus|ID`` (``QLC+API|getWidgetStatus|255``: down, ``0``: up).  Once
its Virtual Console page has been asked for (``GET /``), it also pushes every button's
change of state to each WebSocket as ``ID|BUTTON|255`` or ``ID|BUTTON|0``; ``changes``
keeps those in order of arrival.  QLC+ listens for web clients on every interface (it
cannot be told otherwise); the tests only ever talk to it on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from xml.sax.saxutils import quoteattr

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tonegraph.engine.osc import encode

from .osc_peers import _wait, end, free_port, need

PROBE = "/tonegraph/test/probe"  # a Flash button the harness presses to see the OSC input is open
START_TIMEOUT = 30.0  # [s] for QLC+ to load the workspace and answer on its WebSocket
ANSWER_TIMEOUT = 5.0  # [s] for one web API answer

APPEARANCE = ("<Appearance><FrameStyle>None</FrameStyle><ForegroundColor>Default</ForegroundColor>"
              "<BackgroundColor>Default</BackgroundColor><BackgroundImage>None</BackgroundImage>"
              "<Font>Default</Font></Appearance>")


def channel(path: str) -> int:
    """The input channel QLC+'s OSC plugin gives ``path``: Qt 5's qChecksum (ISO 3309,
    i.e. CRC-16/X-25: reflected polynomial 0x8408, initial 0xFFFF, inverted) of its bytes."""
    crc = 0xFFFF
    for byte in path.encode():
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def workspace(osc_port: int, buttons: dict[str, str]) -> str:
    """A QLC+ workspace: OSC input on 127.0.0.1:``osc_port`` patched to universe 1, and a
    Virtual Console button for each ``{osc path: action}`` (Flash or Toggle), IDs from 0 in
    order, captioned with its path, running a Scene of its own (one dimmer channel full)."""
    scenes, widgets = [], []
    for i, (path, action) in enumerate(buttons.items()):
        scenes.append(f'<Function Type="Scene" Name={quoteattr(path)} ID="{i}">'
                      f'<Speed FadeIn="0" FadeOut="0" Duration="0"/>'
                      f'<FixtureVal ID="0">{i},255</FixtureVal></Function>')
        widgets.append(f'<Button Caption={quoteattr(path)} ID="{i}" Icon="">'
                       f'<WindowState Visible="True" X="{10 + 90 * i}" Y="10" Width="80" Height="80"/>'
                       f'{APPEARANCE}<Function ID="{i}"/><Action>{action}</Action>'
                       f'<Intensity Adjust="False">100</Intensity>'
                       f'<Input Universe="0" Channel="{channel(path)}"/></Button>')
    newline = "\n  "
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE Workspace>
<Workspace xmlns="http://www.qlcplus.org/Workspace" CurrentWindow="VirtualConsole">
 <Creator><Name>Q Light Controller Plus</Name><Version>4.12.6</Version><Author>tonegraph tests</Author></Creator>
 <Engine>
  <InputOutputMap>
   <Universe Name="Universe 1" ID="0">
    <Input Plugin="OSC" UID="127.0.0.1" Line="0"><PluginParameters inputPort="{osc_port}"/></Input>
   </Universe>
  </InputOutputMap>
  <Fixture><Manufacturer>Generic</Manufacturer><Model>Generic</Model><Mode>{len(buttons)} Channel</Mode>
   <ID>0</ID><Name>Dimmers</Name><Universe>0</Universe><Address>0</Address><Channels>{len(buttons)}</Channels>
  </Fixture>
  {newline.join(scenes)}
 </Engine>
 <VirtualConsole>
  <Frame Caption="">{APPEARANCE}
  {newline.join(widgets)}
  </Frame>
 </VirtualConsole>
</Workspace>
"""


class Qlcplus:
    """QLC+ headless with a Flash or Toggle button per OSC address (``{path: action}``);
    ``osc_port`` is its OSC input, ``status(path)`` a button's state now (255 down, 0 up),
    ``pressed(path)`` every change pushed so far (True: down) and ``changes`` all of them
    as (monotonic time, path, down)."""

    def __init__(self, buttons: dict[str, str]) -> None:
        need("qlcplus", "qlcplus")
        self.paths = [*buttons, PROBE]
        self.dir = Path(tempfile.mkdtemp(prefix="tonegraph-qlcplus-"))
        self.osc_port, self.web_port = free_port(), free_port(socket.SOCK_STREAM)
        show = self.dir / "show.qxw"
        show.write_text(workspace(self.osc_port, {**buttons, PROBE: "Flash"}))
        home = self.dir / "home"   # QLC+ keeps its settings under $HOME/.config
        home.mkdir(mode=0o700)
        self.log = self.dir / "qlcplus.log"
        env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(home), "QT_QPA_PLATFORM": "offscreen"}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                ["qlcplus", "--nowm", "--nogui", "--operate", "--web", "--web-port", str(self.web_port),
                 "--open", str(show)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.dir)
        self.changes: list[tuple[float, str, bool]] = []
        self._answers: queue.Queue[str] = queue.Queue()
        self._ask_lock = threading.Lock()
        self.ws = None
        self._open = contextlib.ExitStack()
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while self.ws is None:
                try:
                    self.ws = self._open.enter_context(
                        connect(f"ws://127.0.0.1:{self.web_port}/qlcplusWS", open_timeout=2))
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise AssertionError(f"QLC+ did not open its web interface:\n{self.output()}")
                    time.sleep(0.1)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
            # The workspace is loaded once the Virtual Console lists its buttons.
            want = "|".join(f"{i}|{p}" for i, p in enumerate(self.paths))
            if not _wait(lambda: self.ask("getWidgetsList") == want, START_TIMEOUT):
                raise AssertionError(f"QLC+ did not load the workspace: {self.ask('getWidgetsList')!r}\n"
                                     f"{self.output()}")
            # Asking for the Virtual Console page makes QLC+ push button changes (once: each
            # request connects them again).
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/", timeout=ANSWER_TIMEOUT) as r:
                r.read()
            self._probe()
        except BaseException:
            self.stop()
            raise

    def _probe(self) -> None:
        """Press and release the probe button over OSC until QLC+ pushes both: its OSC
        input is open and changes come back."""
        deadline = time.monotonic() + START_TIMEOUT
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:
                for value in (1.0, 0.0):
                    s.sendto(encode.message(PROBE, [("f", value)]), ("127.0.0.1", self.osc_port))
                if _wait(lambda: self.pressed(PROBE)[-2:] == [True, False], 0.5):
                    return
        raise AssertionError(f"QLC+ did not take OSC input on port {self.osc_port}: {self.changes}\n"
                             f"{self.output()}")

    def _read(self) -> None:
        try:
            for text in self.ws:
                if text.startswith("QLC+API|"):
                    self._answers.put(text)
                    continue
                wid, kind, state = (text.split("|") + ["", ""])[:3]
                if kind == "BUTTON" and wid.isdigit() and int(wid) < len(self.paths):
                    self.changes.append((time.monotonic(), self.paths[int(wid)], state != "0"))
        except ConnectionClosed:
            pass

    def ask(self, command: str, *args: object) -> str:
        """One web API call (``QLC+API|command|args...``); the answer after the command's name."""
        with self._ask_lock:
            while not self._answers.empty():    # late answers to calls that timed out
                self._answers.get()
            self.ws.send("|".join(["QLC+API", command, *map(str, args)]))
            try:
                answer = self._answers.get(timeout=ANSWER_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"QLC+ did not answer {command} {args} over its web API:\n"
                                     f"{self.output()}") from None
        head = f"QLC+API|{command}"
        assert answer.split("|")[:2] == head.split("|"), (command, answer)
        return answer[len(head) + 1:]   # an empty list comes without its separator

    def status(self, path: str) -> int:
        """The button's state as the web API reads it: 255 down, 0 up (127: its Scene runs,
        started by something else)."""
        return int(self.ask("getWidgetStatus", self.paths.index(path)))

    def pressed(self, path: str) -> list[bool]:
        """The button's changes of state pushed so far, in order: True down, False up."""
        return [down for _, p, down in list(self.changes) if p == path]

    def output(self) -> str:
        """The last lines QLC+ printed."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:]) if self.log.exists() else ""

    def stop(self) -> None:
        # QLC+ first: it never answers a WebSocket's closing handshake, which the client
        # would wait out; a connection it dropped closes at once.
        end(self.proc)
        self._open.close()
        shutil.rmtree(self.dir, ignore_errors=True)
