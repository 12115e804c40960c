"""The evaluation pipeline on a few of the annotated recordings in ../shared/data/mir
(referenced in place; the data is not shipped with the project)."""

from __future__ import annotations

import pytest

from tests.eval import mir

pytestmark = pytest.mark.skipif(
    not mir.DATA.is_dir(), reason=f"annotated recordings not found at {mir.DATA} "
                                  f"(../shared/data is not shipped with the project)")


def test_clips_are_found_with_their_annotations():
    clips = mir.clips()
    names = {(c.source, c.name) for c in clips}
    assert ("gtzan", "country.00000") in names          # a name with dots in it
    assert sum(c.onsets is not None for c in clips) >= 60
    assert sum(c.beats is not None for c in clips) >= 30


@pytest.mark.parametrize("source,name", [("madmom", "sample"), ("midi_render", "groove_funk138")])
def test_engine_streaming_equals_aubio_and_scores(source, name):
    clip = next(c for c in mir.clips() if (c.source, c.name) == (source, name))
    x, sr = mir.load_mono(clip.audio)
    onset_p, tempo_p = mir.node_defaults("audio.onset"), mir.node_defaults("audio.tempo")
    ours_on, ours_beat = mir.engine_events(clip, sr, onset_p, tempo_p)
    assert list(ours_on) == pytest.approx(list(mir.aubio_onsets(x, sr, onset_p)), abs=1e-9)
    assert list(ours_beat) == pytest.approx(list(mir.aubio_beats(x, sr, tempo_p)), abs=1e-9)
    assert mir.onset_f(clip.onsets, ours_on) > 0.6
    if clip.beats is not None:
        assert mir.beat_f(clip.beats, ours_beat) > 0.4
