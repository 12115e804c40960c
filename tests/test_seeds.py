"""The five seed pipelines, as the patches in graphs/ run them, on audio the project makes.

The built-in groove (graphs/media/groove.flac, 120 BPM) alternates quiet and loud
sections every 4 bars: quiet 0-8 s, loud 8-16 s, and so on."""

from __future__ import annotations

import json
import socket
import subprocess
import threading

import numpy as np
import pytest

from tonegraph.engine.runtime import OscOptions, Runtime
from tonegraph.nodes.audio.synth import Timbre

from .conftest import ROOT, load_ok, tonegraph, wait_for

GRAPHS = ROOT / "graphs"


def run_patch(name, registry, duration, sets=(), size=(160, 90), **kw):
    """Run a seed patch offline, its window at a small size; returns (frames, runtime)."""
    from tonegraph.engine.graph import load_graph

    graph, errors = load_graph(GRAPHS / name, registry, [f"out.size=[{size[0]}, {size[1]}]", *sets])
    assert not errors, errors
    rt = Runtime(graph, registry, offline=True, duration=duration, **kw)
    frames = []
    rt.runner.nodes["out"].sink = lambda px: frames.append(px.copy())
    rt.report = rt.run()
    assert rt.report.faults == 0, rt.runner.faults
    return np.array(frames, dtype=np.float32), rt


def run_patch_file(path, registry, duration=0.2):
    rt = Runtime(load_ok(path, registry), registry, offline=True, duration=duration)
    frames = []
    rt.runner.nodes["out"].sink = lambda px: frames.append(px.copy())
    rt.run()
    return np.array(frames), rt


def motion(frames):
    return np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))


def test_seed_002_code_drives_the_preset_and_is_exported(registry, tmp_path):
    code = tmp_path / "code.jsonl"
    frames, rt = run_patch("seed-002-deep-visualisation.yaml", registry, 16.0,
                           [f"export.path={json.dumps(str(code))}"])
    rows = [json.loads(line) for line in code.read_text().splitlines()]
    codes = np.array([r["value"] for r in rows if r["name"] == "code"])
    t = np.array([r["t"] for r in rows if r["name"] == "code"])
    assert codes.shape[1] == 10 and len(codes) > 400 and codes.min() >= 0 and codes.max() <= 1
    quiet, loud = codes[(t > 1) & (t < 7.5)].mean(axis=0), codes[(t > 9) & (t < 15.5)].mean(axis=0)
    assert np.abs(loud - quiet).max() > 0.05
    # The seed's parameters file: swirl in steps of 0.5 within 0..3, hue at most once per
    # 10 s, and the parameters move with the code.
    drawn = [r for r in rows if r["name"] == "parameters" and any(r["value"])]  # after frame 0
    t_par = np.array([r["t"] for r in drawn])
    par = np.array([r["value"] for r in drawn])
    swirl, size, hue, spread = par.T
    assert len(set(swirl)) >= 2 and all(v in np.arange(0, 3.01, 0.5) for v in swirl)
    assert all(v in np.round(np.arange(0.3, 1.01, 0.1), 6) for v in np.round(spread, 6))
    hue_changes = t_par[1:][np.diff(hue) != 0]
    assert len(hue_changes) <= 2 and all(b - a >= 10 - 1e-6 for a, b in zip(hue_changes, hue_changes[1:]))
    assert len(set(np.round(size, 6))) > 50
    assert motion(frames).mean() > 0.1                               # the particles move
    # Steps held with hysteresis on a smoothed code: swirl changes step rarely, and the
    # particles turn by its integral, so the picture never jumps (what changes much from
    # one frame to the next does so on a beat or an onset).
    assert np.count_nonzero(np.diff(swirl)) < 40
    import soundfile as sf

    from tonegraph.nodes.audio.synth import render_groove
    from tests.looks import metrics

    x, sr = sf.read(str(GRAPHS / "media" / "groove.flac"), dtype="float32")
    times = np.arange(len(frames)) / rt.fps
    beats = np.asarray(render_groove(22050, 120.0, 16, 1)[2])
    change = metrics.structural_change(frames.astype(np.uint8))
    onset = metrics.onset_strength(x, sr, times)
    assert metrics.teleports(change, onset, metrics.near_beats(times, beats), window=20) <= 0.01


def test_seed_002_presets_load_and_a_broken_save_keeps_the_last_good_one(registry, tmp_path):
    import shutil

    for name in ("particles", "rings", "waves"):
        frames, _ = run_patch("seed-002-deep-visualisation.yaml", registry, 3.0,
                              [f"preset.path={GRAPHS / 'presets' / (name + '.json')}",
                               f"export.path={json.dumps(str(tmp_path / (name + '.jsonl')))}"])
        assert frames[-30:].std() > 5, name                          # a picture, not black
    folder = tmp_path / "show"
    shutil.copytree(GRAPHS / "presets", folder / "presets")
    from tonegraph.engine.graph import load_graph

    patch = folder / "p.yaml"
    patch.write_text("nodes:\n  p: {type: gl.preset, params: {path: presets/rings.json}}\n"
                     "  out: {type: gl.window, params: {size: [32, 32]}, in: {image: p}}\n")
    (folder / "presets" / "rings.json").write_text('{"shader": "rings.frag", "update": [{"name": 5}]}')
    graph, errors = load_graph(patch, registry)
    assert graph is None and "update[0] needs a 'name' that is a uniform name" in str(errors[0])
    for sprites, said in (('"many"', "'sprites' names 'many', which is neither in 'init' nor in 'update'"),
                          ("-1", "'sprites' is a count (0 to 1000000) or the name of a value")):
        (folder / "presets" / "rings.json").write_text('{"shader": "rings.frag", "sprites": %s}' % sprites)
        graph, errors = load_graph(patch, registry)
        assert graph is None and said in str(errors[0])


def test_seed_002_a_separate_parameters_file_replaces_the_presets_update(registry, tmp_path):
    import shutil

    from tonegraph.engine.graph import load_graph

    folder = tmp_path / "show"
    shutil.copytree(GRAPHS / "presets", folder / "presets")
    mapping = folder / "calm.json"          # the seed's parameters file, on its own
    mapping.write_text(json.dumps({"parameters": [
        {"name": "rings", "feature": 0, "min": 5, "max": 5, "step": 1, "FPS": 60},
        {"name": "turning", "feature": 1, "min": 0.25, "max": 0.75, "step": 0.25, "FPS": 60,
         "phase": "turn"}]}))
    patch = folder / "p.yaml"
    patch.write_text("nodes:\n"              # no features wired: every feature reads 0.5
                     "  p: {type: gl.preset, params: {path: presets/rings.json, mapping: calm.json}}\n"
                     "  out: {type: gl.window, params: {size: [32, 32]}, in: {image: p}}\n")
    frames, rt = run_patch_file(patch, registry, duration=0.5)
    node = rt.runner.nodes["p"]
    assert list(node.out["values"]) == [5.0, 0.5]           # the file's two, not the preset's four
    assert node.phases["turn"] == pytest.approx(0.5 * 0.5, abs=0.05)
    assert frames[-1].std() > 5
    mapping.write_text('[{"name": "rings", "feature": 0, "min": 1, "max": 2, "FPS": 2000}]')
    graph, errors = load_graph(patch, registry)
    assert graph is None and "calm.json: parameters[0] (rings): 'FPS' must be a number in 0..1000" in str(errors[0])
    (folder / "calm.json").unlink()
    graph, errors = load_graph(patch, registry)
    assert graph is None and "no such parameters file" in str(errors[0])


def test_seed_001_louder_music_moves_the_image_more_and_every_beat_kicks_it(registry):
    from tonegraph.nodes.audio.synth import render_groove
    from tests.looks import metrics

    frames, rt = run_patch("seed-001-audio-to-image.yaml", registry, 16.0, size=(96, 54))
    m = motion(frames)
    n = len(m)
    quiet, loud = m[n // 16:n * 7 // 16].mean(), m[n * 9 // 16:n * 15 // 16].mean()
    assert loud > 1.3 * quiet, (quiet, loud)
    assert frames.std() > 10                                          # a picture, not a flat field
    assert not (frames[:, :, :2] < 3).all()                           # filled: no pillarbox bars
    times = np.arange(len(frames)) / rt.fps
    beats = np.asarray(render_groove(22050, 120.0, 16, 1)[2])
    late = times > 3.0                                                # the tracker has locked
    contrast = metrics.beat_contrast(metrics.brightness(frames.astype(np.uint8))[late],
                                     times[late], beats)
    assert contrast > 1.3, contrast


@pytest.mark.parametrize("shader", ["kick.frag", "tint.frag"])
def test_a_square_image_fills_a_wide_frame_without_stretching(registry, write_patch, shader):
    """seed 001's and 004's shaders on a 16:9 window: a disc stays round."""
    path = write_patch(f"""
        patch: {{fps: 30}}
        nodes:
          img:  {{type: gl.shader, params: {{size: [64, 64], source: "void mainImage(out vec4 c, in vec2 f)
                  {{ c = vec4(vec3(step(length(f / 64.0 - 0.5), 0.3)), 1.0); }}"}}}}
          fx:   {{type: gl.shader, params: {{path: "{GRAPHS / 'shaders' / shader}"}}, in: {{image: img}}}}
          out:  {{type: gl.window, params: {{size: [160, 90]}}, in: {{image: fx}}}}
        """, name="disc.yaml")
    frames, _ = run_patch_file(path, registry)
    lit = frames[-1].astype(float).mean(axis=2) > 0.5 * frames[-1].max()
    rows, cols = np.nonzero(lit)
    width, height = np.ptp(cols) + 1, np.ptp(rows) + 1
    assert width == pytest.approx(height, rel=0.1), (width, height)
    assert height > 0.8 * 0.6 * 160              # filled: the disc spans the frame's width, cropped


def test_seed_001_harsh_sound_turns_the_picture_cold_and_spiky(registry, write_patch):
    """The kick shader on the same image, a mellow and a harsh sound."""
    got = {}
    for harsh in (0.0, 1.0):
        path = write_patch(f"""
            patch: {{fps: 30}}
            nodes:
              img:  {{type: gl.shader, params: {{size: [64, 64], source: "void mainImage(out vec4 c, in vec2 f)
                      {{ float s = step(0.5, fract(f.x / 8.0)) * step(0.5, fract(f.y / 8.0));
                         c = vec4(0.6 * s + 0.2, 0.5 * s + 0.2, 0.4 * s + 0.2, 1.0); }}"}}}}
              h:    {{type: control.constant, params: {{value: {harsh}}}}}
              kick: {{type: gl.shader, params: {{path: "{GRAPHS / 'shaders' / 'kick.frag'}"}},
                      in: {{image: img, harsh: h}}}}
              out:  {{type: gl.window, params: {{size: [64, 64]}}, in: {{image: kick}}}}
            """, name=f"h{harsh}.yaml")
        frames, _ = run_patch_file(path, registry)
        got[harsh] = frames[-1][16:48, 16:48].astype(np.float32)
    mellow, harsh = got[0.0], got[1.0]
    ratio = lambda a: a[:, :, 2].mean() / a[:, :, 0].mean()  # noqa: E731  blue over red
    assert ratio(harsh) > 1.2 and ratio(mellow) < 0.9
    edges = lambda a: np.abs(np.diff(a.mean(axis=2), axis=1)).mean()  # noqa: E731
    assert edges(harsh) > 1.3 * edges(mellow)


def test_seed_004_renders_a_beat_synced_video_coloured_by_the_chords(tmp_path):
    import imageio_ffmpeg
    from PIL import Image

    out = tmp_path / "video.mp4"
    res = tonegraph("render", "graphs/seed-004-beat-sync.yaml", "--audio",
                    str(GRAPHS / "media" / "groove.flac"), "-o", str(out), "--size", "128x72",
                    "--fps", "15", "--end", "16", "--frames", str(tmp_path / "f"), "-q", timeout=600)
    assert res.returncode == 0, res.stderr
    n, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert n == 240 and abs(secs - 16.0) < 0.1
    frames = np.array([np.asarray(Image.open(p), dtype=np.float32)
                       for p in sorted((tmp_path / "f").glob("*.png"))])
    m = motion(frames)
    # Keyframes slerp with the beat phase: motion is smooth (no frame jumps far more than
    # the typical one), and it never stops for long.
    assert np.percentile(m, 99) < 8 * np.median(m) and np.median(m) > 0.05
    # The chord changes every bar (2 s): the mean colour follows it.
    hue = frames[:, :, :, 0].mean(axis=(1, 2)) - frames[:, :, :, 2].mean(axis=(1, 2))
    per_bar = [hue[i * 30:(i + 1) * 30].mean() for i in range(8)]
    assert np.std(per_bar) > 2.0, per_bar


def test_seed_003_analyze_maps_the_song_and_live_chunks_land_near_themselves(registry, tmp_path):
    res = tonegraph("analyze", str(GRAPHS / "media" / "groove.flac"), "-o", str(tmp_path / "map"))
    assert res.returncode == 0, res.stderr
    doc = json.loads((tmp_path / "map.json").read_text())
    from PIL import Image

    assert Image.open(tmp_path / "map.png").size[0] > 500
    chunks = doc["chunks"]
    assert len(chunks) > 60 and len(chunks[0]["features"]) == 34
    assert all(len(c["xy"]) == 2 and "xyz" not in c for c in chunks)   # 2-D unless asked
    starts = np.array([c["start"] for c in chunks])
    assert np.all(np.diff(starts) > 0)
    # The groove changes between quiet and loud every 8 s: those are its sections.
    assert sum(any(abs(s - b) < 0.6 for s in doc["sections"]) for b in (8.0, 16.0, 24.0)) >= 2
    res3 = tonegraph("analyze", str(GRAPHS / "media" / "groove.flac"), "-o", str(tmp_path / "m3"),
                     "--dims", "3", "-q")
    assert res3.returncode == 0, res3.stderr
    assert all(len(c["xyz"]) == 3 for c in json.loads((tmp_path / "m3.json").read_text())["chunks"])
    # The shipped map is what the command makes.
    shipped = json.loads((GRAPHS / "media" / "groove-map.json").read_text())
    assert [c["start"] for c in shipped["chunks"]] == [c["start"] for c in chunks]
    assert np.allclose([c["xy"] for c in shipped["chunks"]], [c["xy"] for c in chunks], atol=1e-3)
    # Live, the same song: each chunk's nearest analysed chunk is mostly itself.
    log = tmp_path / "chunks.jsonl"
    _, rt = run_patch("seed-003-machines-see-music.yaml", registry, 30.0,
                      [f"map.map={json.dumps(str(tmp_path / 'map.json'))}", f"log.path={json.dumps(str(log))}"])
    node = rt.runner.nodes["map"]
    assert node.out["nearest"] > 20                                  # it followed the song to the end
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    events = [r for r in rows if r["name"] == "chunk"]
    assert len(events) > 50
    # The live picture: the whole map, not a black screen with one dot.
    picture = node.out["picture"]
    assert picture.shape == (270, 480, 3) and (picture.max(axis=2) > 0.2).mean() > 0.02


def test_seed_003_live_placement_matches_the_analysis(tmp_path):
    from tonegraph.nodes.ml.chunks import Chunker, load_map, place, read_mono

    doc = load_map(GRAPHS / "media" / "groove-map.json")
    x = read_mono(GRAPHS / "media" / "groove.flac")
    chunker = Chunker()
    hits = total = 0
    for i in range(0, len(x), 512):                                   # hop by hop, as live
        for chunk in chunker.push(x[i:i + 512]):
            _, _, nearest = place(doc, chunk.features)
            hits += abs(doc["chunks"][nearest]["start"] - chunk.start) < 0.02
            total += 1
    assert total > 60 and hits / total > 0.9, (hits, total)


def test_seed_000_live_world_lights_the_desk_and_bends_to_the_audience(registry, tmp_path, monkeypatch):
    """Live for real: a JACK dummy server with jack_metro clicks as the input, liblo's
    oscdump as the lighting desk, and liblo's oscsend as the pose tracker."""
    from .jack import JackServer
    from .osc_peers import OscDump

    jack = JackServer()
    jack.start()
    desk = OscDump()
    for k, v in jack.env.items():
        monkeypatch.setenv(k, v)
    from tonegraph.engine.graph import load_graph

    graph, errors = load_graph(GRAPHS / "seed-000-live-world.yaml", registry,
                               ["out.size=[160, 90]", "mic.device=system", f"desk.port={desk.port}",
                                "crowd.timeout=60"])
    assert not errors, errors
    rt = Runtime(graph, registry, duration=60, headless=True, osc=OscOptions(port=0, query_port=0))
    frames: list = []
    rt.runner.nodes["out"].sink = lambda px: frames.append(px.copy())
    th = threading.Thread(target=rt.run, daemon=True)
    th.start()
    try:
        jack.wait_for_port("PortAudio:in_0")
        jack.connect(jack.metro(120), "PortAudio:in_0")
        assert wait_for(lambda: rt.server is not None and len(frames) > 60, 20)
        flashes = lambda: [m for m in desk.messages if m[1] == "/dmx/universe/0/2"]   # noqa: E731
        assert wait_for(lambda: any(float(m[3][0]) > 100 for m in flashes()), 15), desk.raw[-5:]
        before = np.array(frames[-30:], dtype=np.float32).mean(axis=0)
        # A person's hand at (0.75, 0.5): the land rises under it and glows there.
        subprocess.run(["oscsend", "localhost", str(rt.server.port), "/pose/ana/left_wrist", "ff",
                        "0.75", "0.5"], check=True)
        n = len(frames)
        assert wait_for(lambda: len(frames) > n + 30, 10)
        after = np.array(frames[-30:], dtype=np.float32).mean(axis=0)
        spot = (slice(40, 50), slice(115, 125))                     # around x 0.75, y 0.5
        assert after[spot].mean() > before[spot].mean() + 20
        assert rt.runner.fault_count() == 0
    finally:
        rt.request_stop()
        th.join(15)
        desk.stop()
        jack.stop()


def _library(folder, songs):
    """Songs of the built-in groove at other tempi and in other timbres."""
    import soundfile as sf

    from tonegraph.nodes.audio.synth import render_groove

    folder.mkdir(parents=True, exist_ok=True)
    for name, (bpm, timbre, seed) in songs.items():
        x, _, _ = render_groove(22050, bpm, 4, seed, timbre)
        sf.write(folder / name, x, 22050)


SONGS = {
    "deep.flac": (90, Timbre(kick_hz=40, pad_wave="sine", lowpass_hz=900, hat_gain=0.05), 1),
    "bright.flac": (128, Timbre(snare_hz=320, hat_gain=0.9, pad_wave="saw", pad_gain=0.2), 2),
    "square.flac": (150, Timbre(kick_hz=60, pad_wave="square", pad_gain=0.25, drive=0.8), 3),
    "plain.flac": (110, Timbre(), 4),
}


def test_seed_003_maps_a_library_on_a_local_dask_cluster_and_caches_each_song(tmp_path):
    """`tonegraph analyze DIR` on a LocalCluster of 2 workers: every chunk of every song
    in one map, the songs apart from each other, the map loadable by ml.chunkmap; a
    re-run analyses only what is new or changed; a file that is not sound is skipped."""
    from tonegraph.nodes.ml.chunks import load_map

    lib, out = tmp_path / "library", tmp_path / "lib"
    _library(lib, SONGS)
    res = tonegraph("analyze", str(lib), "-o", str(out), "--workers", "2", "-q", timeout=300)
    assert res.returncode == 0, res.stderr
    assert "(4 analysed, 0 from the cache" in res.stdout and "Traceback" not in res.stderr
    doc = json.loads((tmp_path / "lib.json").read_text())
    assert [s["audio"] for s in doc["songs"]] == sorted(SONGS)
    song = np.array([c["song"] for c in doc["chunks"]])
    xy = np.array([c["xy"] for c in doc["chunks"]])
    assert all((song == i).sum() >= 10 for i in range(4)) and len(xy) == sum(s["chunks"] for s in doc["songs"])
    # Chunks of one song lie together: a chunk's nearest neighbour on the map is mostly
    # from its own song (chance would be a quarter).
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d, np.inf)
    assert (song[d.argmin(axis=1)] == song).mean() > 0.6
    assert len(list((tmp_path / "lib.cache").glob("*.npz"))) == 4
    assert load_map(tmp_path / "lib.json")["_xy"].shape == (len(xy), 2)

    _library(lib, {"new.flac": (100, Timbre(pad_wave="saw"), 5), "plain.flac": (112, Timbre(), 6)})
    (lib / "notes.wav").write_bytes(b"not a sound")
    res = tonegraph("analyze", str(lib), "-o", str(out), "--workers", "2", "-q", timeout=300)
    assert res.returncode == 0, res.stderr
    assert "(3 analysed, 3 from the cache" in res.stdout     # new, changed, and the bad file
    assert "skipped" in res.stderr and "notes.wav: cannot read it as sound" in res.stderr
    assert len(json.loads((tmp_path / "lib.json").read_text())["songs"]) == 5


def test_a_library_is_analysed_on_a_cluster_of_worker_processes(tmp_path):
    """A Dask cluster as it runs across machines, here on 127.0.0.1: ``dask scheduler``
    and two ``dask worker`` processes started apart from tonegraph; ``analyze
    --scheduler`` sends it the songs, each worker process describes some of them, and
    the map has every song."""
    import sys
    from pathlib import Path

    from distributed import Client

    lib = tmp_path / "library"
    _library(lib, SONGS)
    dask, ready = str(Path(sys.executable).parent / "dask"), tmp_path / "scheduler.json"
    common = ["--no-dashboard", "--host", "127.0.0.1"]
    procs = [subprocess.Popen([dask, "scheduler", "--port", "0", "--scheduler-file", str(ready), *common],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        assert wait_for(lambda: ready.exists() and "address" in ready.read_text(), 60)
        address = json.loads(ready.read_text())["address"]
        procs += [subprocess.Popen([dask, "worker", "--scheduler-file", str(ready), "--nthreads", "1",
                                    "--no-nanny", "--name", f"w{i}", *common],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(2)]
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            res = tonegraph("analyze", str(lib), "-o", str(tmp_path / "m"), "--scheduler", address, "-q",
                            timeout=300)
            assert res.returncode == 0, res.stderr
            assert f"({len(SONGS)} analysed, 0 from the cache" in res.stdout

            def described(dask_worker) -> int:
                return sum(1 for e in dask_worker.state.log
                           if str(e[0]).startswith("describe_song") and e[2] == "memory")
            done = client.run(described)
            client.shutdown()                     # the scheduler and its workers, as an operator would
        assert len(done) == 2 and all(n >= 1 for n in done.values()) and sum(done.values()) == len(SONGS), done
        assert len(json.loads((tmp_path / "m.json").read_text())["songs"]) == len(SONGS)
    finally:
        for p in procs:                           # shut down above; else stopped here
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


def test_a_library_is_analysed_on_an_existing_dask_cluster(tmp_path):
    """--scheduler ADDRESS: the songs go to a cluster that was already running (here one
    of this test's own, on 127.0.0.1); an address nobody answers is one line."""
    from distributed import LocalCluster

    lib = tmp_path / "library"
    _library(lib, dict(list(SONGS.items())[:2]))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None, scheduler_kwargs={"dashboard": False}) as cluster:
        res = tonegraph("analyze", str(lib), "-o", str(tmp_path / "m"), "--scheduler",
                        cluster.scheduler_address, "-q", timeout=300)
        assert res.returncode == 0, res.stderr
        assert "(2 analysed, 0 from the cache" in res.stdout
        assert cluster.scheduler.task_prefixes.keys() & {"describe_song"}    # it ran there
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                 # a port nothing listens on
    res = tonegraph("analyze", str(lib), "-o", str(tmp_path / "x"), "--cache", str(tmp_path / "empty"),
                    "--scheduler", f"tcp://127.0.0.1:{port}", "-q", timeout=120)
    assert res.returncode == 1 and res.stderr.startswith("error:") and res.stderr.count("\n") == 1, res.stderr
