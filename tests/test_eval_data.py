"""The evaluation pipeline on a few of the annotated recordings in ../shared/data/mir
(referenced in place; the data is not shipped with the project)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.eval import mir
from tonegraph.tools import fofcharts
from tonegraph.nodes.audio.learned import signal_activation
from tonegraph.nodes.audio.onset import THRESHOLDS, learned_onsets

needs_data = pytest.mark.skipif(
    not mir.DATA.is_dir(), reason=f"annotated recordings not found at {mir.DATA} "
                                  f"(../shared/data is not shipped with the project)")


def test_lock_counts_the_beats_before_four_in_a_row_match_and_offsets_pair_events():
    import numpy as np

    ref = np.arange(10) * 0.5
    est = np.concatenate([[0.1, 0.83], ref[3:] + 0.02])         # wrong, wrong, then held
    assert mir.lock(ref, est) == 3 and mir.lock(ref, est + 0.2) is None and mir.lock(ref, ref) == 0
    assert np.allclose(mir.offsets(ref, ref[3:] + 0.02), 0.02) and len(mir.offsets(ref, np.zeros(0))) == 0
    assert mir.kind_of("mdb_drums", "MusicDelta_Rock_drum") == "drums"
    assert mir.kind_of("mdb_drums", "MusicDelta_Rock_mix") == "full mix"


def test_metrical_level_names_octave_and_triple_time_errors():
    import numpy as np

    ref = np.arange(40) * 0.6                                     # 100 BPM
    assert mir.metrical_level(ref, ref + 0.01) == "right"
    assert mir.metrical_level(ref, np.arange(80) * 0.3) == "double"  # heard at 200
    assert mir.metrical_level(ref, np.arange(20) * 1.2) == "half"
    assert mir.metrical_level(ref, np.arange(60) * 0.4) == "3/2"
    assert mir.metrical_level(ref, np.arange(40) * 0.47) == "other"


@pytest.mark.parametrize("source, name, kind", [
    ("ssvd", "ssvd_test_101552", "singing"),
    ("guitarset", "00_BN1-129-Eb_comp_mic", "solo guitar"),
    ("hainsworth", "hains001", "full mix"),
    ("simac", "simac_001", "full mix"),
    ("bock_onsets", "ah_test_guitar_guitar2", "solo guitar"),
    ("bock_onsets", "SoundCheck2_64_Instrumental_Acoustic_steel_strung_guitar_finger_style",
     "solo guitar"),
    ("bock_onsets", "SoundCheck2_61_Vocal_Soprano_opera", "singing"),
    ("bock_onsets", "jpb_tabla", "drums"),
    ("bock_onsets", "ah_development_percussion_conga1", "drums"),
    ("bock_onsets", "ff123_DaFunk", "full mix"),
    ("bock_onsets", "api_3-long_gone", "full mix"),
    ("bock_onsets", "ah_test_clarinet_clarinet1", "solo instrument"),
    ("bock_onsets", "ah_test_tanburpluck_ta_1eb06", "solo instrument"),
])
def test_every_source_of_real_recordings_has_its_kind(source, name, kind):
    assert mir.kind_of(source, name) == kind


@needs_data
def test_no_clip_in_the_data_falls_to_a_guessed_kind():
    """Every source folder is named in kind_of: a new one must be mapped, not counted
    as a full mix by default."""
    sources = {c.source for c in mir.clips()}
    assert sources <= set(mir.SOURCE_KINDS), sources - set(mir.SOURCE_KINDS)


def test_cross_validation_chooses_the_setting_whose_worst_kind_gains_most():
    """Each fold's setting is the one whose worst kind among the others gains most over
    the baseline (aubio's defaults): a setting far ahead on one kind and behind on
    another loses to one a little ahead on both."""
    import numpy as np

    from tests.eval.__main__ import cross_validate

    kinds = ["a", "a", "b", "c"]
    baseline = np.array([0.5, 0.5, 0.5, 0.5])
    grid = np.array([[0.9, 0.9, 0.4, 0.51],      # a +0.4, b -0.1, c +0.01 (the best mean)
                     [0.55, 0.55, 0.55, 0.52],   # a +0.05, b +0.05, c +0.02 (never behind)
                     [0.3, 0.3, 0.6, 0.6]])      # a -0.2, b +0.1, c +0.1
    cv = cross_validate(kinds, grid, baseline)
    assert cv.chosen == {"a": 2, "b": 1, "c": 1} and cv.best_overall == 1
    assert np.allclose(cv.held_out, [0.3, 0.3, 0.55, 0.52])
    by_mean = cross_validate(kinds, grid)
    assert by_mean.chosen == {"a": 2, "b": 0, "c": 0} and by_mean.best_overall == 0


def test_leave_one_source_out_rows_score_each_source_on_the_setting_the_others_chose():
    import numpy as np

    from tests.eval.__main__ import held_out_rows

    sources = ["x", "x", "y", "z"]
    baseline = np.array([0.5, 0.7, 0.5, 0.5])
    grid = np.array([[0.9, 0.9, 0.4, 0.6], [0.55, 0.75, 0.55, 0.52]])
    families = {"fam": (["first", "second"], str)}
    rows = held_out_rows(sources, "sources", families, {"fam": grid}, baseline)
    assert [r[:2] for r in rows[:3]] == [["x (2)", "second"], ["y (1)", "first"], ["z (1)", "second"]]
    assert rows[0][2:] == ["0.650", "0.600", "+0.050"] and rows[1][2:] == ["0.400", "0.500", "-0.100"]
    assert rows[3] == ["fam: mean of sources", "", "0.523", "0.533", "-0.010"]


@needs_data
def test_clips_are_found_with_their_annotations():
    clips = mir.clips()
    names = {(c.source, c.name) for c in clips}
    assert ("gtzan", "country.00000") in names          # a name with dots in it
    assert sum(c.onsets is not None for c in clips) >= 60
    assert sum(c.beats is not None for c in clips) >= 30


@needs_data
@pytest.mark.parametrize("source,name", [("madmom", "sample"), ("midi_render", "groove_funk138")])
def test_engine_streaming_equals_aubio_and_scores(source, name):
    clip = next(c for c in mir.clips() if (c.source, c.name) == (source, name))
    x, sr = mir.load_mono(clip.audio)
    onset_p, tempo_p = mir.node_defaults("audio.onset"), mir.node_defaults("audio.tempo")
    assert onset_p["method"] == "hfc"
    # The learned detector streamed equals its whole-file activation picked alike.
    ours_on, ours_beat = mir.engine_events(clip, sr, onset_p | {"method": "learned"}, tempo_p)
    activation, rate = signal_activation(x, sr)
    want = learned_onsets(activation, rate, THRESHOLDS["learned"])
    assert abs(len(ours_on) - len(want)) <= 1
    n = min(len(ours_on), len(want))
    assert list(ours_on[:n]) == pytest.approx(list(want[:n]), abs=1e-6)
    # aubio's detectors stream as aubio runs over the whole file.
    hfc = onset_p | {"method": "hfc"}
    hfc_on, _ = mir.engine_events(clip, sr, hfc, tempo_p)
    assert list(hfc_on) == pytest.approx(list(mir.aubio_onsets(x, sr, hfc)), abs=1e-9)
    # The dbn tracker fed hop by hop (reporting beats once heard) equals it fed the
    # whole file; aubio's tracker in the node equals aubio over the whole file.
    _, heard = mir.engine_events(clip, sr, None, tempo_p | {"early": False})
    assert list(heard) == pytest.approx(list(mir.dbn_beats(x, sr, tempo_p)), abs=1e-6)
    _, aubio_beat = mir.engine_events(clip, sr, None, tempo_p | {"tracker": "aubio"})
    assert list(aubio_beat) == pytest.approx(list(mir.aubio_beats(x, sr, tempo_p)), abs=1e-9)
    assert mir.onset_f(clip.onsets, ours_on) > 0.6
    if clip.beats is not None:
        assert mir.beat_f(clip.beats, ours_beat) > 0.4


def test_the_default_gate_asks_a_margin_on_every_source_or_aubios_own_defaults():
    import numpy as np

    from tests.eval.gate import judge

    sources = ["a", "a", "b", "c"]
    aubio = np.array([0.5, 0.5, 0.6, 0.7])
    ahead = judge(sources, aubio + 0.03, aubio, is_aubio_default=False)
    assert ahead.passed and ahead.rows[-1][-1] == "+0.030"
    one_behind = judge(sources, aubio + np.array([0.2, 0.2, 0.2, 0.01]), aubio, False)
    assert not one_behind.passed and "+0.010 on c" in one_behind.why      # a big mean is not enough
    assert judge(sources, aubio - 0.003, aubio, is_aubio_default=True).passed
    assert not judge(sources, aubio - np.array([0, 0, 0.02, 0]), aubio, True).passed


def test_the_shipped_onset_default_is_one_the_gate_can_pass():
    """The gate allows aubio's own defaults, or a method measured past them by its
    margin on every source; audio.onset ships the first (make eval checks either on the
    data)."""
    from tests.eval.gate import is_aubios_default

    assert is_aubios_default(mir.node_defaults("audio.onset"))
    assert is_aubios_default({"method": "hfc", "threshold": 0.058, "compression": 1.0,
                              "minioi": 0.05, "silence": -70.0, "whitening": False})
    assert not is_aubios_default({"method": "hfc", "threshold": 0.15, "compression": 0.0,
                                  "minioi": 0.02, "silence": -70.0, "whitening": False})
    assert not is_aubios_default(mir.node_defaults("audio.onset") | {"method": "learned"})


def test_a_frets_on_fire_chart_gives_the_hardest_notes_and_the_tempo_maps_beats(tmp_path):
    """The held-out songs' annotations (tests/eval/charts.py): a chord is one onset,
    easier difficulties are left out, and beats follow a change of tempo."""
    import mido

    from tonegraph.tools.fofcharts import read_chart, songs

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))       # 120 BPM
    for note in (96, 97):                                                    # a chord at 0 s
        track.append(mido.Message("note_on", note=note, velocity=100, time=0))
    track.append(mido.Message("note_on", note=60, velocity=100, time=480))  # easy: not counted
    track.append(mido.Message("note_on", note=98, velocity=100, time=480))  # 1.0 s
    track.append(mido.Message("note_on", note=98, velocity=0, time=240))
    track.append(mido.MetaMessage("set_tempo", tempo=1_000_000, time=720))  # 60 BPM from 2 s
    track.append(mido.Message("note_on", note=100, velocity=100, time=480))  # 3.0 s
    track.append(mido.Message("note_on", note=100, velocity=0, time=480))
    folder = tmp_path / "usr/share/games/fretsonfire/data/songs/band/song one"
    folder.mkdir(parents=True)
    midi.save(str(folder / "notes.mid"))
    notes, beats = read_chart(folder / "notes.mid")
    np.testing.assert_allclose(notes, [0.0, 1.0, 3.0])
    np.testing.assert_allclose(beats, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0])
    assert songs(tmp_path) == []                                  # no stems beside the chart
    for stem in ("guitar.ogg", "song.ogg"):
        sf.write(folder / stem, np.zeros(44100, np.float32), 44100, format="OGG")
    (found,) = songs(tmp_path)
    assert (found.pack, found.name) == ("band", "song one")
    np.testing.assert_allclose(found.beats, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0])   # first to last note
    from tonegraph.tools.fofcharts import write_labels
    from tonegraph.tools.onsettrain import real_pieces

    for beats, want in ((False, [[0.0], []]), (True, [[0.0], [0.0]])):     # the 1 s note: past the end
        out = tmp_path / f"labels-{beats}"
        summary = write_labels(tmp_path, out, beats=beats)
        (song,) = summary["songs"]
        assert isinstance(song["file"], list) == beats            # the band: both stems, mixed
        pieces = real_pieces(out, 0.5, 22050)                      # 1 s of sound: two pieces
        assert [len(x) for x, _ in pieces] == [11025, 11025]
        assert [list(events) for _, events in pieces] == want


def test_chart_notes_are_snapped_onto_the_stems_hits_within_the_window():
    from tonegraph.tools.fofcharts import snapped

    sr = 44100
    hits = np.array([0.5, 1.0, 1.52, 2.0])
    rng = np.random.default_rng(0)
    x = rng.standard_normal(3 * sr).astype(np.float32) * 0.001
    for t in hits:
        i = int(t * sr)
        x[i:i + 2000] += np.sin(2 * np.pi * 330 * np.arange(2000) / sr) * np.exp(-np.arange(2000) / 400)
    chart = np.array([0.48, 1.01, 1.5])            # on the grid, off the hits
    got = snapped(chart, x, sr, 0.035)
    np.testing.assert_allclose(got[:3], hits[:3], atol=0.004)


def _chart_song(folder, pack: str, name: str, note_beats: list[int], seconds: float = 8.0) -> None:
    """A Frets on Fire song folder: notes.mid at 120 BPM with expert notes (MIDI 96) on
    the given beats, and two stems of ``seconds`` of noise."""
    import mido

    d = folder / fofcharts.SONGS / pack / name
    d.mkdir(parents=True)
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500_000, time=0))
    last = 0
    for b in note_beats:
        track.append(mido.Message("note_on", note=96, velocity=100, time=b * 480 - last))
        track.append(mido.Message("note_off", note=96, velocity=0, time=60))
        last = b * 480 + 60
    midi.save(str(d / "notes.mid"))
    rng = np.random.default_rng(0)
    for stem in ("guitar.ogg", "song.ogg"):
        sf.write(d / stem, 0.1 * rng.standard_normal((int(seconds * 22050), 2)).astype(np.float32), 22050)


def test_the_dev_packs_chart_songs_are_onset_clips_cut_from_a_second_before_their_first_note(tmp_path):
    """The Muldjord songs' guitar stems join the dev set (the eighth source of onsets),
    cut to an excerpt with their chart's notes moved to it; Sectoid's stay held out."""
    _chart_song(tmp_path, "muldjord", "riff", [4, 5, 6, 12])           # notes at 2.0, 2.5, 3.0, 6.0 s
    _chart_song(tmp_path, "sectoid", "held", [2, 3, 4])
    (tmp_path / fofcharts.SONGS / "muldjord" / "riff" / "song.ini").write_text("[song]\nname = The Riff\n")
    assert [s.title for s in fofcharts.songs(tmp_path)] == ["The Riff", "held"]   # song.ini's, or the folder's
    found = mir.chart_clips(tmp_path, seconds=4.0)
    assert [(c.source, c.name, c.kind) for c in found] == [("muldjord", "muldjord_riff", "solo guitar")]
    clip = found[0]
    assert clip.onsets == pytest.approx([1.0, 1.5, 2.0]) and clip.beats is None   # from 1.0 s, 4 s long
    x, sr = mir.load_mono(clip.audio)
    assert sr == 22050 and len(x) == 4 * 22050 and clip.audio.parent == tmp_path / "excerpts"
    again = mir.chart_clips(tmp_path, seconds=4.0)                     # the excerpt is kept
    assert again[0].audio.stat().st_mtime_ns == clip.audio.stat().st_mtime_ns
    with_data = mir.clips(tmp_path / "no data", charts=tmp_path)
    assert [c.name for c in with_data] == ["muldjord_riff"]
    assert mir.clips(tmp_path / "no data", charts=None) == []


def test_the_dev_set_says_how_many_sources_and_which_kinds_are_thin():
    """make eval prints the dev set's reach: its sources of real onsets against the aim
    of 8, and each kind with fewer than 5 clips or from one source only."""
    from tests.eval.__main__ import coverage

    clips = [("a", "piano"), ("b", "drums"), ("b", "drums"), ("c", "drums"), ("c", "drums"),
             ("c", "drums"), ("b", "winds"), ("b", "winds"), ("b", "winds"), ("b", "winds"), ("b", "winds")]
    said = coverage([s for s, _ in clips], [k for _, k in clips])
    assert said == ("3 real sources of onsets (aim: at least 8); kinds short of 5 clips from 2 sources: "
                    "piano (1 clip, from a), winds (5 clips, all from b)")
    assert coverage(["a", "b"] * 5, ["drums"] * 10, aim=2).endswith("every kind has 5 clips from 2 sources")


@pytest.mark.parametrize("setting,node", [("CHOSEN", "audio.onset"), ("FAST", "audio.tempo")])
def test_the_settings_scored_beside_the_defaults_on_held_out_songs_are_ones_the_nodes_take(
        setting, node, write_patch):
    """tests/eval/charts.CHOSEN runs through audio.onset and charts.FAST through
    audio.tempo in make eval: a patch with the node at that setting loads (a renamed
    param, a value out of range or a rule between params would otherwise fail only
    minutes into an eval run), and the node keeps each value as given."""
    import json

    from tonegraph.engine.graph import load_graph
    from tonegraph.engine.registry import default_registry

    from tests.eval import charts

    chosen = getattr(charts, setting)
    params = default_registry(plugins=False)[node].params
    assert chosen and all(params[k].coerce(v, k) == v for k, v in chosen.items() if k in params)
    path = write_patch(f"""
        nodes:
          s: {{type: audio.synth}}
          n: {{type: {node}, params: {json.dumps(chosen)}, in: {{audio: s}}}}
        """)
    _, errors = load_graph(path, default_registry(plugins=False))
    assert not errors, errors
