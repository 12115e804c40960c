"""Memory and file handles stay flat over long runs of a full patch.

CI runs short variants; `make soak` runs 24 hours of media time offline and 10 minutes
in real time (TONEGRAPH_SOAK_HOURS, TONEGRAPH_SOAK_REALTIME).
"""

from __future__ import annotations

import os
import resource
import socket

from tonegraph.engine import params as P
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime

from .conftest import ROOT, load_ok

HOURS = float(os.environ.get("TONEGRAPH_SOAK_HOURS", "0.25"))
REALTIME = float(os.environ.get("TONEGRAPH_SOAK_REALTIME", "15"))


class Probe(Node):
    """Samples this process's resident memory [MB] and open file descriptors."""

    type_name = "test.probe"
    description = "resource probe"
    params = {"every": P.number(10.0, min=0.01)}

    def configure(self) -> None:
        self.samples: list[tuple[float, float, int]] = []
        self.next_t = 0.0

    def process(self, tick: Tick) -> None:
        if tick.t >= self.next_t:
            self.next_t = tick.t + self.p.every
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * resource.getpagesize() / 2**20
            self.samples.append((tick.t, rss, len(os.listdir("/proc/self/fd"))))


def full_patch(tmp_path, port: int, every: float) -> str:
    song = ROOT / "graphs" / "media" / "groove.flac"
    return f"""
patch: {{name: soak, fps: 60}}
nodes:
  song:     {{type: audio.file, params: {{path: "{song}", loop: true}}}}
  spectrum: {{type: audio.spectrum, in: {{audio: song}}}}
  onsets:   {{type: audio.onset, in: {{audio: song}}}}
  tempo:    {{type: audio.tempo, in: {{audio: song}}}}
  hit:      {{type: control.envelope, params: {{decay: 0.2}}, in: {{trigger: onsets}}}}
  dimmer:   {{type: control.map, params: {{out_range: [0, 255], step: 1}}, in: {{value: hit}}}}
  hue:      {{type: control.map, params: {{out_range: [0, 360], fps: 1}}, in: {{value: tempo.phase}}}}
  osc:      {{type: osc.out, params: {{port: {port}}},
              in: {{/dim: dimmer, /hit: onsets, /bands: spectrum.bands}}}}
  rec:      {{type: io.record, params: {{path: "{tmp_path / 'soak.jsonl'}"}},
              in: {{hit: onsets, hue: hue}}}}
  probe:    {{type: test.probe, params: {{every: {every}}}}}
"""


def run_soak(tmp_path, write_patch, seconds: float, offline: bool):
    reg = default_registry(plugins=False)
    reg.add(Probe, __name__)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # bound, never read: it fills up
    sink.bind(("127.0.0.1", 0))
    every = max(1.0, seconds / 50)
    path = write_patch(full_patch(tmp_path, sink.getsockname()[1], every))
    rt = Runtime(load_ok(path, reg), reg, offline=offline, duration=seconds)
    probe = rt.runner.nodes["probe"]
    report = rt.run()
    sink.close()
    return report, probe.samples


def assert_flat(samples, rss_mb: float = 15.0) -> None:
    warm = samples[len(samples) // 5:]            # after the first fifth of the run
    assert len(warm) >= 5, samples
    rss = [s[1] for s in warm]
    fds = [s[2] for s in warm]
    assert max(rss) - rss[0] < rss_mb, f"memory grew: {rss}"
    assert max(fds) - min(fds) <= 1, f"file handles changed: {fds}"


def test_soak_offline(tmp_path, write_patch):
    seconds = HOURS * 3600
    report, samples = run_soak(tmp_path, write_patch, seconds, offline=True)
    assert report.reason == "duration reached" and report.faults == 0
    assert report.media_time >= seconds - 1
    assert_flat(samples)


def test_soak_realtime(tmp_path, write_patch):
    report, samples = run_soak(tmp_path, write_patch, REALTIME, offline=False)
    assert report.faults == 0 and report.skipped_frames < REALTIME * 60 * 0.01
    assert_flat(samples)
