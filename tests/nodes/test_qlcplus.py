"""osc.out's events as desk buttons, against QLC+ itself: the beat of a patch pressed on
a Virtual Console's Flash and Toggle buttons, their state read back over QLC+'s web API.

Every message osc.out sends also goes to liblo's oscdump, so each test knows exactly how
many presses left; QLC+ pushes each change of a button's state over its WebSocket, so
each press and release it acted on is counted, in order.
"""

from __future__ import annotations

import subprocess
import sys

from ..conftest import ROOT, wait_for
from ..osc_peers import OscDump
from ..qlcplus import Qlcplus

FLASH, TOGGLE = "/button/flash", "/button/toggle"
SECONDS = 6.0  # [s] of show: about 10 beats at 120 BPM once the tempo has locked


def show(write_patch, qlc: Qlcplus, dump: OscDump, release: bool) -> tuple[int, bool]:
    """Run a patch whose beat presses both buttons; the number of presses sent, and
    whether the Flash button was seen to let go while the show still ran."""
    patch = write_patch(f"""
        nodes:
          groove: {{type: audio.synth, params: {{bpm: 120}}}}
          tempo:  {{type: audio.tempo, in: {{audio: groove}}}}
          desk:   {{type: osc.out, params: {{profile: qlcplus, port: {qlc.osc_port}, release: {str(release).lower()},
                    destinations: ["127.0.0.1:{dump.port}"]}},
                    in: {{{FLASH}: tempo.beat, {TOGGLE}: tempo.beat}}}}
        """)
    engine = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless",
                               "--no-osc", "--duration", str(SECONDS)], cwd=ROOT, stderr=subprocess.PIPE, text=True)

    def let_go_or_ended() -> bool:
        seq = qlc.pressed(FLASH)
        return engine.poll() is not None or (True in seq and False in seq[seq.index(True):])
    wait_for(let_go_or_ended, SECONDS + 30)
    let_go_live = engine.poll() is None
    _, err = engine.communicate(timeout=60)
    assert engine.returncode == 0, err
    dump.sync()
    sent = {path: [float(args[0]) for _, p, _, args in dump.messages if p == path] for path in (FLASH, TOGGLE)}
    presses = [v for v in sent[FLASH] if v > 0]
    assert presses and sent[FLASH] == sent[TOGGLE], sent   # one beat stream, to both buttons
    assert set(presses) == {1.0}, sent                      # the qlcplus profile's press
    return len(presses), let_go_live


def test_qlcplus_flash_lets_go_and_toggle_toggles_once_per_beat(write_patch):
    """The Flash button is down for each beat and up again between beats, while the show
    runs and after it; the Toggle button toggles once per beat, not at its release."""
    qlc, dump = Qlcplus({FLASH: "Flash", TOGGLE: "Toggle"}), OscDump()
    try:
        beats, let_go_live = show(write_patch, qlc, dump, release=True)
        assert beats >= 4, qlc.changes
        # QLC+ acted on every press and release sent: each arrived as it left.
        wait_for(lambda: len(qlc.pressed(FLASH)) >= 2 * beats and len(qlc.pressed(TOGGLE)) >= beats, 10)
        flash, toggle = qlc.pressed(FLASH), qlc.pressed(TOGGLE)
        flash_now, toggle_now = qlc.status(FLASH), qlc.status(TOGGLE)
    finally:
        qlc.stop()
        dump.stop()
    assert let_go_live, flash
    assert flash == [True, False] * beats                          # down, up, once per beat
    assert flash_now == 0                                          # not latched at the end
    assert toggle == [i % 2 == 0 for i in range(beats)]            # on, off, ... once per beat
    assert toggle_now == (255 if beats % 2 else 0)


def test_qlcplus_flash_latches_without_release(write_patch):
    """``release: false`` sends presses only: QLC+'s Flash button goes down at the first
    beat and never lets go (what desks saw before events were buttons)."""
    qlc, dump = Qlcplus({FLASH: "Flash", TOGGLE: "Toggle"}), OscDump()
    try:
        beats, let_go_live = show(write_patch, qlc, dump, release=False)
        assert beats >= 4
        wait_for(lambda: len(qlc.pressed(TOGGLE)) >= beats, 10)
        flash, toggle = qlc.pressed(FLASH), qlc.pressed(TOGGLE)
        flash_now = qlc.status(FLASH)
    finally:
        qlc.stop()
        dump.stop()
    assert not let_go_live and flash == [True] and flash_now == 255   # latched for good
    assert toggle == [i % 2 == 0 for i in range(beats)]                # a Toggle still toggles per press
