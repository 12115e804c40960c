"""dmx.out: the frame it builds (channels, fixtures, 16-bit), and for real against OLA's
E1.31 and Art-Net inputs, read back over OLA's HTTP API.

OLA listens only on a real interface (never loopback), so the real test makes two
network namespaces of its own joined by a veth pair (10.99.0.1 for OLA, 10.99.0.2 for
tonegraph): nothing leaves them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from ..conftest import ROOT, run_offline
from ..osc_peers import OLA_PLUGINS

FIXTURES = """
types:
  par:   [dimmer, red, green, blue, strobe]
  mover: [pan, pan_fine, tilt, tilt_fine, dimmer]
fixtures:
  front: {type: par, address: 1}
  spot:  {type: mover, address: 10}
"""


def test_channels_fixtures_and_16_bit_make_the_frame(write_patch, registry, tmp_path):
    (tmp_path / "rig.yaml").write_text(FIXTURES)
    patch = write_patch("""
        nodes:
          half: {type: control.constant, params: {value: 0.5}}
          full: {type: control.constant, params: {value: 1.0}}
          over: {type: control.constant, params: {value: 7}}
          dmx:  {type: dmx.out, params: {fixtures: rig.yaml},
                 in: {front/dimmer: full, spot/pan: half, spot/dimmer: over, ch100: half, ch512: full}}
        """, name="show.yaml")
    rt = run_offline(patch, registry, duration=0.1)
    frame = rt.runner.nodes["dmx"].out["frame"]
    assert frame[0] == 255                                   # front/dimmer, channel 1
    assert (frame[9], frame[10]) == (128, 0)                 # spot/pan 0.5 as 16-bit: 32768
    assert frame[13] == 255                                  # spot/dimmer, clamped
    assert frame[99] == 128 and frame[511] == 255            # raw channels
    assert frame[1:9].sum() == 0


def test_bad_fixture_files_and_names_are_patch_errors(write_patch, registry, tmp_path):
    from tonegraph.engine.graph import load_graph

    (tmp_path / "rig.yaml").write_text(FIXTURES.replace("address: 10", "address: 3"))
    patch = write_patch("nodes:\n  dmx: {type: dmx.out, params: {fixtures: rig.yaml}}\n")
    _, errors = load_graph(patch, registry)
    assert "fixture 'spot' overlaps 'front' at channel 3" in str(errors[0])
    (tmp_path / "rig.yaml").write_text(FIXTURES)
    patch = write_patch("""
        nodes:
          c:   {type: control.constant}
          dmx: {type: dmx.out, params: {fixtures: rig.yaml}, in: {front/rgb: c, back/dimmer: c, ch600: c}}
        """)
    errors = " | ".join(str(e) for e in load_graph(patch, registry)[1])
    assert "input 'front/rgb' takes a vector of 3, not number" in errors
    assert "input 'back/dimmer' is no channel or fixture attribute" in errors
    assert "input 'ch600': channels are ch1-ch512" in errors


#: Namespace A (this shell): OLA on tg0, 10.99.0.1.  Namespace B: tonegraph on tg1,
#: 10.99.0.2, running the patch given, then stopping (its blackout goes out).
HARNESS = r"""
set -e
ip link set lo up
ip link add tg0 type veth peer name tg1
ip addr add 10.99.0.1/24 dev tg0
ip link set tg0 up
ip route add 224.0.0.0/4 dev tg0
unshare -n sh -c 'ip link set lo up; touch "$DIR/ns-ready"
  while ! ip link show tg1 >/dev/null 2>&1; do sleep 0.05; done
  ip addr add 10.99.0.2/24 dev tg1; ip link set tg1 up; ip route add 224.0.0.0/4 dev tg1
  while [ ! -e "$DIR/go" ]; do sleep 0.05; done
  cd "$ROOT" && "$PY" -m tonegraph.engine.cli run "$DIR/patch.yaml" --headless --no-osc --duration 3 2> "$DIR/engine.log"
  touch "$DIR/done"' &
B=$!
while [ ! -e "$DIR/ns-ready" ]; do sleep 0.05; done
ip link set tg1 netns $B        # unshare runs the shell itself: $B is in the new namespace
runuser -u nobody -- olad -c "$DIR/ola" --http-port 9191 --rpc-port 9192 --no-register-with-dns-sd -l 1 &
OLA=$!
until curl -s localhost:9191/json/universe_plugin_list >/dev/null; do sleep 0.1; done
sleep 1
touch "$DIR/go"
while [ ! -e "$DIR/done" ] && [ ! -e "$DIR/playing" ]; do
  if curl -s "localhost:9191/get_dmx?u=$U" | grep -q '"dmx": \[[1-9]'; then
    curl -s "localhost:9191/get_dmx?u=$U" > "$DIR/playing"; fi
  sleep 0.1
done
wait $B
sleep 0.5
curl -s "localhost:9191/get_dmx?u=$U" > "$DIR/after"
kill $OLA
"""


def ola_config(folder: Path, protocol: str) -> int:
    """OLA with only the one input plugin on, its port 0 patched to an OLA universe;
    returns that universe."""
    ola = folder / "ola"
    ola.mkdir()
    for name in OLA_PLUGINS + ("osc",):
        (ola / f"ola-{name}.conf").write_text("enabled = false\n")
    if protocol == "sacn":
        (ola / "ola-e131.conf").write_text("enabled = true\ninput_ports = 1\noutput_ports = 0\n"
                                           "ignore_preview = true\n")
        (ola / "ola-port.conf").write_text("11-1-I-0 = 7\n")       # listens to sACN universe 7
        universe = 7
    else:
        (ola / "ola-artnet.conf").write_text("enabled = true\nnet = 0\nsubnet = 0\noutput_ports = 0\n")
        (ola / "ola-port.conf").write_text("2-1-I-0 = 3\n")         # Art-Net universe 3 (0:0:3)
        universe = 3
    for path in [folder, ola, *ola.iterdir()]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return universe


@pytest.mark.parametrize("protocol,host", [("sacn", "10.99.0.1"), ("sacn", ""), ("artnet", "10.99.0.1")],
                         ids=["sacn-unicast", "sacn-multicast", "artnet"])
def test_ola_receives_the_lights_and_the_blackout(protocol, host):
    if shutil.which("olad") is None:
        pytest.fail("olad is missing: 'make setup' installs the Debian package ola")
    folder = Path(tempfile.mkdtemp(prefix="tonegraph-dmx-"))     # olad runs as nobody
    try:
        universe = ola_config(folder, protocol)
        (folder / "rig.yaml").write_text(FIXTURES)
        (folder / "patch.yaml").write_text(textwrap.dedent(f"""
            nodes:
              half: {{type: control.constant, params: {{value: 0.5}}}}
              full: {{type: control.constant, params: {{value: 1.0}}}}
              dmx:  {{type: dmx.out, params: {{protocol: {protocol}, host: "{host}", universe: {universe},
                                              fixtures: rig.yaml}},
                      in: {{front/dimmer: full, front/red: half, spot/pan: half, ch20: full}}}}
            """))
        env = {"DIR": str(folder), "ROOT": str(ROOT), "PY": sys.executable, "U": str(universe),
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        res = subprocess.run(["unshare", "-n", "sh", "-c", HARNESS], env=env, capture_output=True,
                             text=True, timeout=90)
        log = (folder / "engine.log").read_text() if (folder / "engine.log").exists() else ""
        assert res.returncode == 0, (res.stderr[-2000:], log)
        assert (folder / "playing").exists(), ("OLA saw no DMX", log)
        playing = json.loads((folder / "playing").read_text())["dmx"]
        after = json.loads((folder / "after").read_text())["dmx"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert playing[0] == 255 and playing[1] == 128                       # front: dimmer, red
    assert (playing[9], playing[10]) == (128, 0) and playing[19] == 255  # 16-bit pan, ch20
    assert "Traceback" not in log
    assert not any(after[:20]), after[:20]                               # blackout on stop
