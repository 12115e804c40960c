"""osc.out's buttons keep their order across threads: a press sent from the audio thread
leaves before the release the control tick sends for it, however the threads interleave."""

from __future__ import annotations

import threading

from tonegraph.engine import ports
from tonegraph.engine.node import Tick
from tonegraph.engine.osc import encode
from tonegraph.engine.ports import PortType
from tonegraph.nodes.osc.out import OscOut

from ..conftest import NodeDriver

STALL = 1.0  # [s] at most that the audio thread is held up just before its press leaves


def test_release_never_overtakes_its_press():
    """The audio thread is held up after it decided on a press and before the packet
    left, while the next control tick runs (whose release is then due): the desk must
    still get the press first, else a Flash button stays down until the next beat."""
    d = NodeDriver(OscOut, {"profile": "qlcplus", "port": 9}, wired={"/b": PortType.EVENT})
    node = d.node
    node.audio_inputs = {"/b"}
    [dest] = node.dests
    sent: list[float] = []
    stalling, ticked = threading.Event(), threading.Event()

    def send(packet: bytes) -> bool:
        if threading.current_thread().name == "audio" and not stalling.is_set():
            stalling.set()
            ticked.wait(STALL)      # a control tick may run meanwhile, or wait for this press
        [(_, msg)] = encode.decode(packet)
        sent.append(msg.params[0])
        return True
    dest.send = send
    d.tick()

    def audio() -> None:
        node.inp["/b"] = (ports.Event(d.t, 1.0),)
        node.process_audio(Tick(d.t, d.period, d.index))
    press = threading.Thread(target=audio, name="audio")
    press.start()
    assert stalling.wait(10)
    control = threading.Thread(target=lambda: (d.tick(**{"/b": ()}), ticked.set()))
    control.start()
    press.join(10)
    control.join(10)
    node.close()
    assert sent == [1.0, 0.0]
