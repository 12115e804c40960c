"""audio.onset's learned detector: trained for real (FluidSynth renders, a short run),
run hop by hop in numpy, and checked against the torch network it came from."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tonegraph.nodes.audio import learned
from tonegraph.nodes.audio.learned import signal_activation
from tonegraph.nodes.audio.onset import learned_onsets

from ..conftest import load_ok

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A detector trained briefly (what `make models` does at full length)."""
    d = tmp_path_factory.mktemp("onsets")
    out = d / "onsets.npz"
    res = subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", "train", "onsets", "-o", str(out),
                          "--clips", "4", "--seconds", "4", "--steps", "40", "--checkpoint-every", "20",
                          "--soundfont", SOUNDFONT, "--members", "1", "-q"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "trained on 4 clips" in res.stdout
    from tonegraph.tools.onsettrain import heard_clicks

    heard, total = heard_clicks(learned.Weights.load(out))
    assert f"it hears {heard} of the {total} clicks of a click track at 10 a second\n" in res.stdout
    return out


def test_training_writes_weights_a_plot_and_resumes_to_the_same_bytes(trained, tmp_path):
    assert trained.with_name("onsets.loss.png").is_file()
    w = learned.Weights.load(trained)
    assert w.lookahead == 1 and w.front["hop"] == 256 and w.config["trained"]["soundfont"] == "TimGM6mb.sf2"
    with np.load(trained, allow_pickle=False) as z:           # arrays only, no pickles
        assert "config" in z.files and all(z[k].dtype != object for k in z.files)
    # The same run in two halves (stopped after 20 steps, resumed to 40) gives the same weights.
    half = tmp_path / "half.npz"
    base = [sys.executable, "-m", "tonegraph.engine.cli", "train", "onsets", "-o", str(half), "--clips", "4",
            "--seconds", "4", "--checkpoint-every", "20", "--soundfont", SOUNDFONT, "--members", "1", "-q"]
    assert subprocess.run(base + ["--steps", "20"], capture_output=True, timeout=600).returncode == 0
    assert subprocess.run(base + ["--steps", "40", "--resume"], capture_output=True, timeout=600).returncode == 0
    with np.load(trained) as a, np.load(half) as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files if k != "config")


def test_an_ensemble_holds_each_seeds_network_and_resumes_network_by_network(trained, tmp_path):
    """--members 2 trains the networks --seed 0 and --seed 1 would (the fixture is the
    first), stopped after 20 steps and resumed to 40, into one file."""
    out = tmp_path / "two.npz"
    base = [sys.executable, "-m", "tonegraph.engine.cli", "train", "onsets", "--clips", "4", "--seconds", "4",
            "--checkpoint-every", "20", "--soundfont", SOUNDFONT, "-q"]
    assert subprocess.run(base + ["-o", str(out), "--members", "2", "--steps", "20"],
                          capture_output=True, timeout=600).returncode == 0
    res = subprocess.run(base + ["-o", str(out), "--members", "2", "--steps", "40", "--resume"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and "trained on 8 clips" in res.stdout, res.stderr
    assert "clicks of a click track at 10 a second (its networks alone: " in res.stdout
    single = tmp_path / "seed1.npz"
    assert subprocess.run(base + ["-o", str(single), "--members", "1", "--steps", "40", "--seed", "1"],
                          capture_output=True, timeout=600).returncode == 0
    arrays, config = learned.read(out)
    assert config["members"] == 2 and [t["seed"] for t in config["trained"]] == [0, 1]
    for i, path in enumerate((trained, single)):
        want, _ = learned.read(path)
        assert all(np.array_equal(arrays[f"m{i}_{k}"], v) for k, v in want.items())
    assert not np.array_equal(arrays["m0_out_w"], arrays["m1_out_w"])
    # The members' own files are gone once the ensemble is written; the plot is there.
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".npz") == ["seed1.npz", "two.npz"]
    assert (tmp_path / "two.loss.png").is_file()


def test_an_ensembles_activation_is_the_mean_of_its_networks(tmp_path):
    import torch

    from tonegraph.tools.onsettrain import OnsetNet, features

    rng = np.random.default_rng(1)
    mel = rng.standard_normal((200, 64)).astype(np.float32)
    members, want = [], []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        net = OnsetNet(128, 16).eval()
        mean, std = rng.random(64).astype(np.float32), (rng.random(64) + 0.5).astype(np.float32)
        members.append(({"mean": mean, "std": std, **net.arrays()}, {"frontend": learned.FRONT, "lookahead": 1}))
        with torch.no_grad():
            want.append(torch.sigmoid(net(torch.from_numpy(features(mel, mean, std))[None]))[0].numpy())
    path = tmp_path / "three.npz"
    learned.save_ensemble(path, members)
    w = learned.Weights.load(path)
    assert len(w.nets) == 3 and w.config["members"] == 3
    got = learned.activations(w, mel)
    assert np.abs(got[:-1] - np.mean(want, axis=0)[1:]).max() < 1e-5
    # Networks of different shapes are not one detector.
    odd = OnsetNet(128, 8)
    learned.save_ensemble(tmp_path / "odd.npz", members[:1] + [({**members[0][0], **odd.arrays()}, members[0][1])])
    with pytest.raises(learned.WeightsError, match="odd.npz is not a learned detector's weights file"):
        learned.Weights.load(tmp_path / "odd.npz")


def test_the_training_click_check_tells_a_detector_that_hears_clicks_from_one_that_does_not(tmp_path):
    import torch

    from tonegraph.tools.onsettrain import OnsetNet, heard_clicks

    assert heard_clicks(learned.Weights.load(learned.SHIPPED)) == (57, 57)
    torch.manual_seed(0)
    path = tmp_path / "untrained.npz"
    learned.save(path, {"mean": np.zeros(64), "std": np.ones(64), **OnsetNet(128, 64).arrays()},
                 {"frontend": learned.FRONT, "lookahead": 1})
    heard, total = heard_clicks(learned.Weights.load(path))
    assert total == 57 and heard < 10
    # Each network of an ensemble alone: the shipped one and the untrained one.
    both = tmp_path / "both.npz"
    learned.save_ensemble(both, [learned.read(learned.SHIPPED), learned.read(path)])
    w = learned.Weights.load(both)
    assert [heard_clicks(w.network(i)) for i in (0, 1)] == [(57, 57), (heard, total)]


def test_numpy_stream_equals_the_torch_network_and_is_causal(tmp_path):
    import torch

    from tonegraph.tools.onsettrain import OnsetNet, features

    torch.manual_seed(0)
    net = OnsetNet(128, 32).eval()
    rng = np.random.default_rng(0)
    mean, std = rng.random(64).astype(np.float32), (rng.random(64) + 0.5).astype(np.float32)
    path = tmp_path / "w.npz"
    learned.save(path, {"mean": mean, "std": std, **net.arrays()}, {"frontend": learned.FRONT, "lookahead": 1})
    w = learned.Weights.load(path)
    mel = rng.standard_normal((300, 64)).astype(np.float32)
    with torch.no_grad():
        want = torch.sigmoid(net(torch.from_numpy(features(mel, mean, std))[None]))[0].numpy()
    got = learned.activations(w, mel)
    # After frame t the network answers for frame t - 1 (its look-ahead).
    assert np.abs(got[:-1] - want[1:]).max() < 1e-5
    # Frames after t + look-ahead change nothing about frame t.
    other = mel.copy()
    other[200:] = rng.standard_normal((100, 64))
    assert np.array_equal(learned.activations(w, other)[:199], got[:199])
    assert not np.allclose(learned.activations(w, other)[199:], got[199:])


def test_the_node_streams_what_the_whole_file_gives_at_another_samplerate(trained, write_patch, registry, tmp_path):
    """audio.onset method learned in a real patch at 44.1 kHz (the detector resamples to
    its 22,050 Hz) gives the onsets picked from the whole file's activation."""
    from tonegraph.engine.runtime import Runtime
    from tonegraph.nodes.audio.synth import render_groove

    x, hits, _ = render_groove(44100, 120.0, 4, seed=5)
    song = tmp_path / "groove.wav"
    sf.write(song, x, 44100, subtype="FLOAT")
    out = tmp_path / "on.jsonl"
    path = write_patch(f"""
patch: {{samplerate: 44100, hop: 512}}
nodes:
  f: {{type: audio.file, params: {{path: "{song}"}}}}
  o: {{type: audio.onset, params: {{method: learned, model: "{trained}", threshold: 0.3, silence: -120}}, in: {{audio: f}}}}
  r: {{type: io.record, params: {{path: "{out}"}}, in: {{onset: o}}}}
""")
    Runtime(load_ok(path, registry), registry, offline=True).run()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    got = np.array([r["t"] for r in rows])
    activation, rate = signal_activation(x, 44100, trained)
    want = learned_onsets(activation, rate, 0.3)
    assert len(got) > 0 and all(0.0 <= r["value"] <= 1.0 for r in rows)
    n = min(len(got), len(want))
    assert abs(len(got) - len(want)) <= 1 and np.abs(got[:n] - want[:n]).max() < 1e-6


def test_a_bad_weights_file_is_a_patch_error_in_one_line(write_patch, tmp_path, registry):
    from tonegraph.engine.graph import load_graph

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    path = write_patch(f"""
nodes:
  s: {{type: audio.synth}}
  o: {{type: audio.onset, params: {{method: learned, model: "{bad}"}}, in: {{audio: s}}}}
""")
    graph, errors = load_graph(path, registry)
    assert graph is None and len(errors) == 1
    assert "bad.npz is not a learned detector's weights file" in str(errors[0]) and "\n" not in str(errors[0])


def test_training_input_problems_are_one_line(tmp_path):
    from ..conftest import tonegraph

    out = str(tmp_path / "o.npz")
    for args, said in ((["--soundfont", "/nonexistent.sf2"], "error: --soundfont: no such file: /nonexistent.sf2"),
                       (["--clips", "2"], "argument --clips: 2 is outside 4..1000000")):
        res = tonegraph("train", "onsets", "-o", out, "-q", *args)
        assert res.returncode in (1, 2) and said in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("every", [0.5, 0.15, 0.1])
def test_the_shipped_detector_hears_every_click_of_a_metronome_in_digital_silence(every):
    """A click track (1 kHz, 30 ms, as jack_metro makes it) in digital silence, 48 kHz,
    256-sample hops, 2, about 7 and 10 clicks a second (jack_metro's at 600 BPM, as make
    bench's live overhead plays them): the shipped detector reports every click, where
    it is, loud.  (At 12 a second too; at 8, 44 of 46; at 13 about half, at 15 almost
    none.)"""
    from tests.eval import mir

    from tonegraph.engine.node import Context, Tick
    from tonegraph.engine.ports import AudioBlock, PortType
    from tonegraph.nodes.audio.onset import Onset
    from tonegraph.tools.onsettrain import click_track

    sr, hop = 48000, 256
    x, clicks = click_track(sr, 1.0 / every)
    node = Onset("o", {"method": "learned"}, Context(samplerate=sr, hop=hop, offline=True),
                 {"audio": PortType.AUDIO})
    node.configure()
    events = []
    for i, h in enumerate(mir.hops_of(x, hop)):
        node.inp["audio"] = AudioBlock(h[:, None], i * hop / sr, sr, h)
        node.out["onset"] = ()
        node.process(Tick(i * hop / sr, hop / sr, i))
        events += node.out["onset"]
    assert len(events) == len(clicks)
    assert np.abs(np.array([e.t for e in events]) - clicks).max() < 0.015
    assert min(e.value for e in events) > 0.8


def test_params_changed_live_reach_the_learned_detector():
    """threshold, minioi and recent set while it runs reach the learned path (its
    picker keeps its place; 'recent' makes a new loudness window)."""
    from types import SimpleNamespace

    from tonegraph.engine.node import Context
    from tonegraph.engine.ports import PortType
    from tonegraph.nodes.audio.onset import Onset

    node = Onset("o", {"method": "learned"}, Context(samplerate=22050, hop=256, offline=True),
                 {"audio": PortType.AUDIO})
    node.configure()
    picker, scale = node.picker, node.scale
    # The method's own threshold and least gap (50 ms: 4 frames at 86 frames/s).
    assert picker.threshold == 0.4 and picker.minioi == 4
    picker.index = 41
    node.p = SimpleNamespace(**{**vars(node.p), "threshold": 0.7, "minioi": 0.1, "recent": 2.0})
    node.params_changed({"threshold", "minioi", "recent"})
    assert node.picker is picker and picker.index == 41
    assert picker.threshold == 0.7 and picker.minioi == 9 and node.scale is not scale
    assert node.scale.part == round(2.0 / (256 / 22050) / 8)


def test_rock_bands_are_written_as_a_clean_part_and_a_distorted_guitar_part():
    from tonegraph.tools.onsettrain import random_song

    rng = np.random.default_rng(3)
    songs = [random_song(rng, 8.0) for _ in range(60)]
    rock = [s for s in songs if len(s) == 2]
    assert rock and len(rock) < len(songs)                 # some songs are rock bands, not all
    for (rest, rest_on, rest_drive), (guitars, guitar_on, drive) in rock:
        assert rest_drive == 0.0 and drive >= 5.0
        channels = lambda mid: {m.channel for m in mid.tracks[0] if m.type == "note_on"}  # noqa: E731
        assert 9 in channels(rest) and 9 not in channels(guitars)  # drums stay clean
        programs = {m.program for m in guitars.tracks[0] if m.type == "program_change"}
        assert programs & {25, 27, 29, 30}                 # a guitar plays the riff
        assert len(guitar_on) > 8 and np.all(guitar_on < 8.0) and np.all(np.diff(guitar_on) > 0)
    assert all(s[0][2] == 0.0 for s in songs if len(s) == 1)           # one part: clean


def test_the_mastering_compressor_flattens_hits_and_keeps_the_peak():
    from tonegraph.tools.onsettrain import overdrive, squash

    sr = 22050
    rng = np.random.default_rng(0)
    t = np.arange(2 * sr) / sr
    hits = np.zeros_like(t)
    for at in np.arange(0.1, 2.0, 0.25):                  # decaying noise bursts over a quiet drone
        k = int(at * sr)
        hits[k:k + 2000] += rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
    x = (0.6 * hits / np.abs(hits).max() + 0.05 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)
    y = squash(np.random.default_rng(1), x, sr)
    crest = lambda v: np.abs(v).max() / np.sqrt(np.mean(v ** 2))  # noqa: E731
    assert np.isclose(np.abs(y).max(), np.abs(x).max(), rtol=1e-5)
    assert crest(y) < 0.7 * crest(x)
    d = overdrive(x, 20.0)
    assert np.isclose(np.abs(d).max(), 1.0, rtol=1e-5) and crest(d) < crest(x)


def test_each_method_has_its_own_least_gap_unless_the_patch_gives_one():
    from tonegraph.engine.node import Context
    from tonegraph.engine.ports import PortType
    from tonegraph.nodes.audio.onset import Onset

    def node(params):
        n = Onset("o", params, Context(samplerate=22050, hop=256, offline=True), {"audio": PortType.AUDIO})
        n.configure()
        return n
    assert node({}).det.get_minioi_ms() == pytest.approx(50.0, abs=0.5)     # hfc, aubio's default
    assert node({"method": "hfc", "minioi": 0.1}).det.get_minioi_ms() == pytest.approx(100.0, abs=0.5)
    assert node({"method": "learned"}).picker.minioi == 4    # its own: 50 ms
    assert node({"method": "learned", "minioi": 0.02}).picker.minioi == 2


def _labelled(tmp_path, seconds=10.0, rate=44100):
    """A stereo song at ``rate`` with a click every 0.5 s, labelled as the pseudolabel
    tool labels songs (its summary.json naming the songs' folder)."""
    songs, labels = tmp_path / "songs" / "band", tmp_path / "labels"
    songs.mkdir(parents=True)
    labels.mkdir()
    x = np.zeros((int(seconds * rate), 2), np.float32)
    times = np.arange(0.25, seconds, 0.5)
    for t in times:
        x[int(t * rate):int(t * rate) + 200] = 0.5
    sf.write(songs / "take.wav", x, rate)
    (labels / "band__take.onsets").write_text("".join(f"{t:.4f}\n" for t in times))
    (labels / "summary.json").write_text(json.dumps({
        "folder": str(tmp_path / "songs"), "songs": [{"file": "band/take.wav", "labels": "band__take.onsets"}]}))
    return labels, times


def test_labelled_real_songs_are_cut_into_pieces_at_the_training_rate_with_their_onsets(tmp_path):
    from tonegraph.tools.onsettrain import real_pieces, with_real

    labels, times = _labelled(tmp_path)
    pieces = real_pieces(labels, 4.0, 22050)
    assert len(pieces) == 2                                  # 10 s: two whole 4 s pieces
    for i, (x, onsets) in enumerate(pieces):
        assert x.shape == (4 * 22050,) and x.dtype == np.float32
        want = times[(times >= 4 * i) & (times < 4 * i + 3.95)] - 4 * i
        np.testing.assert_allclose(onsets, want, atol=1e-4)
        loud = np.flatnonzero(np.abs(x) > 0.1)              # the clicks are where the labels say
        assert abs(loud[0] / 22050 - onsets[0]) < 0.002
    summary = json.loads((labels / "summary.json").read_text())
    summary["songs"][0]["span"] = [3.0, 9.0]             # labelled from 3 s to 9 s only
    (labels / "summary.json").write_text(json.dumps(summary))
    (inside,) = real_pieces(labels, 4.0, 22050)          # 0-4 s starts before the span
    np.testing.assert_allclose(inside[1], pieces[1][1])
    summary["songs"][0].pop("span")
    (labels / "summary.json").write_text(json.dumps(summary))
    rendered = [(np.zeros(10, np.float32), np.zeros(0))]
    both = with_real(lambda *a, **k: rendered, labels)(1, 4.0, 0, None, 22050)
    assert len(both) == 3 and both[0] is rendered[0]
    for (x, onsets), (y, want) in zip(both[1:], pieces):
        assert len(x) == len(y) and np.array_equal(onsets, want)


def test_training_on_real_songs_refuses_a_folder_without_labels_before_rendering(tmp_path):
    labels, _ = _labelled(tmp_path)
    (tmp_path / "songs" / "band" / "take.wav").unlink()
    for folder, said in ((tmp_path / "nowhere", "not a folder of labels"), (labels, "take.wav is missing")):
        res = subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", "train", "onsets", "-o",
                              str(tmp_path / "o.npz"), "--real", str(folder), "--soundfont", SOUNDFONT, "-q"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode != 0 and said in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_a_label_file_that_is_not_times_is_named_in_one_line(tmp_path):
    from tonegraph.tools.onsettrain import real_pieces
    from tonegraph.tools.train import TrainError

    labels, _ = _labelled(tmp_path)
    (labels / "band__take.onsets").write_text("0.25\nsnare\n")
    with pytest.raises(TrainError, match=r"band__take.onsets: not one time \[s\] a line"):
        real_pieces(labels, 4.0, 22050)


def _click(sr: int, n: int, at: int) -> np.ndarray:
    x = np.zeros(n, dtype=np.float32)
    x[at:at + 40] = np.hanning(40)
    return x


@pytest.mark.parametrize("codec", [("MP3", "MPEG_LAYER_III"), ("OGG", "VORBIS")])
def test_the_training_codecs_keep_a_click_in_place_and_the_clip_its_length(codec):
    """Training clips heard through a lossy codec keep their labels: the click is where
    it was (within a sample) and the clip as long as it was."""
    from tonegraph.tools import onsettrain

    assert codec in onsettrain.CODECS
    sr, n = 22050, 44100
    for level in (0.5, 0.9):
        y = onsettrain.encoded(_click(sr, n, 10000), sr, codec, level)
        assert len(y) == n and y.dtype == np.float32
        assert abs(int(np.argmax(np.abs(y))) - 10019) <= 1
        assert np.max(np.abs(y)) > 0.5


def test_a_training_clip_at_a_lower_rate_keeps_its_click_and_loses_its_treble():
    from tonegraph.tools import onsettrain

    sr, n = 22050, 44100
    y = onsettrain.low_rate(_click(sr, n, 10000), sr, 8000)
    assert len(y) == n and abs(int(np.argmax(np.abs(y))) - 10019) <= 1
    t = np.arange(n) / sr
    treble = (0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)     # above 8 kHz's 4 kHz
    assert np.std(onsettrain.low_rate(treble, sr, 8000)) < 0.01 * np.std(treble)
    mid = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    assert np.std(onsettrain.low_rate(mid, sr, 8000)) > 0.9 * np.std(mid)


def test_with_lossy_some_onset_clips_go_through_a_low_rate_or_a_codec_and_without_none(monkeypatch):
    """make_clips (the onset detector's data) ends with the recording step only when
    asked (train onsets --lossy); the beat activation's training never takes it, so
    make models still makes onsets.npz and beats.npz as shipped."""
    from tonegraph.tools import beattrain, onsettrain

    seen = []
    monkeypatch.setattr(onsettrain, "low_rate", lambda x, sr, rate: seen.append(("rate", rate)) or x)
    monkeypatch.setattr(onsettrain, "encoded", lambda x, sr, c, lv: seen.append(("codec", c)) or x)
    onsettrain.make_clips(60, 1.0, 0, None, 22050)
    assert seen == []
    onsettrain.make_clips(60, 1.0, 0, None, 22050, lossy=True)
    assert {k for k, _ in seen} == {"rate", "codec"}
    assert {v for k, v in seen if k == "rate"} <= set(onsettrain.LOW_RATES)
    seen.clear()
    beattrain.make_beat_clips(3, 4.0, 0, Path(SOUNDFONT), 22050)
    assert seen == []


def test_train_onsets_lossy_reaches_the_clips_and_the_record_of_how_it_was_trained(monkeypatch, tmp_path):
    """--lossy is handed to make_clips and to the ``trained`` record every weights file
    carries (train_network writes ``extra`` there); without it, neither says lossy."""
    from tonegraph.engine import cli
    from tonegraph.tools import onsettrain

    asked = {}

    def detector(kind, make, front, output, **settings):
        asked["make"], asked["extra"] = make, settings["extra"]
        raise onsettrain.TrainError("stopped here")

    monkeypatch.setattr(onsettrain, "train_detector", detector)
    out = tmp_path / "o.npz"
    assert cli.main(["train", "onsets", "-o", str(out), "--lossy", "-q"]) == 1
    assert asked["make"].keywords == {"lossy": True} and asked["extra"] == {"lossy": True}
    assert cli.main(["train", "onsets", "-o", str(out), "-q"]) == 1
    assert asked["make"].keywords == {"lossy": False} and asked["extra"] is None


def test_the_learned_detector_hears_a_groove_alike_at_any_level():
    """The same groove at full scale and 26 dB down (a line input against a quiet
    microphone): the learned detector reports the same onsets at the same strengths, as
    it hears every input levelled (learned.Leveller); its activations differ by rounding."""
    from tonegraph.nodes.audio.synth import render_groove

    x, hits, _ = render_groove(44100, 120.0, 4, seed=5)
    x = (x / np.abs(x).max()).astype(np.float32)
    loud, rate = signal_activation(x, 44100)
    quiet, _ = signal_activation(x * 0.05, 44100)
    assert np.abs(loud - quiet).max() < 1e-3
    found = learned_onsets(loud, rate)
    assert len(found) >= 0.9 * len(hits)
    assert np.array_equal(found, learned_onsets(quiet, rate))


def test_the_leveller_sets_the_loudest_recent_frame_to_its_level_and_lets_it_go():
    """A frame as loud as a full-scale 1 kHz sine is heard LEVEL_DB below it; after that
    burst, a frame 40 dB quieter is lifted back at the release time's pace (e**2 in two
    release times); a near-silent frame is lifted by LEVEL_MOST_DB at most."""
    from tonegraph.nodes.ml.frontend import FLOOR, MelFrontEnd

    w = learned.Weights.load(learned.SHIPPED)
    sr = int(w.front["samplerate"])
    sine = np.sin(2 * np.pi * 1000 * np.arange(sr) / sr).astype(np.float32)
    burst = MelFrontEnd(w.front, sr, log=False).push(sine)[20]
    assert abs(float(burst.sum()) / learned.full_scale(w.front) - 1.0) < 0.02

    def gain(lev, mag):
        heard = np.exp(lev.level(mag)[0].astype(np.float64)) - FLOOR
        return float(heard.sum() / mag.sum())

    level = 10 ** (learned.LEVEL_DB / 20)
    lev = learned.Leveller(w.front)
    assert abs(gain(lev, burst) / level - 1.0) < 0.01
    fps = sr / float(w.front["hop"])
    quiet = burst * 0.01                                       # 40 dB down
    gains = [gain(lev, quiet) for _ in range(int(2 * learned.LEVEL_RELEASE_S * fps))]
    assert abs(gains[0] / level - 1.0) < 0.02                   # still held down by the burst
    assert abs(gains[-1] / gains[0] / np.e ** 2 - 1.0) < 0.02
    assert gain(learned.Leveller(w.front), burst * 1e-6) == pytest.approx(10 ** (learned.LEVEL_MOST_DB / 20), rel=1e-3)
