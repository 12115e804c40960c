"""Agreement labels (tools/pseudolabel.py) on a groove whose hits are known.

The built-in synth (``tonegraph synth``) renders a groove and returns the time of every
hit, so the labels can be scored exactly: with the shipped detectors they find the hits,
and a label needs as many detectors as asked for (one that says nothing finds less).
"""

from __future__ import annotations

import json

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from tonegraph.nodes.audio.synth import render_groove
from tonegraph.tools import pseudolabel as pl

SR = 44100


@pytest.fixture(scope="module")
def groove():
    x, hits, _ = render_groove(SR, 120.0, 8, seed=1)
    return x.astype(np.float32), np.array(hits)


@pytest.fixture(scope="module")
def found(groove):
    return pl.detect_all(groove[0], SR, pl.detectors())


def f(ref: np.ndarray, est: np.ndarray) -> float:
    return mir_eval.onset.f_measure(ref, est, window=0.05)[0]


def test_agreement_labels_find_the_grooves_hits(groove, found):
    _, hits = groove
    assert set(found) == set(pl.DETECTORS)
    for k in (pl.K, 3):
        assert f(hits, pl.agree(found.values(), k, pl.TOLERANCE)) >= 0.9, k


def test_a_label_needs_k_detectors(groove, found):
    _, hits = groove
    silenced = dict(found) | {"hfc": np.zeros(0)}         # a detector that says nothing
    every = len(found)
    assert len(pl.agree(found.values(), every)) > 0.9 * len(hits)
    assert len(pl.agree(silenced.values(), every)) == 0
    assert len(pl.agree(silenced.values(), 3)) <= len(pl.agree(found.values(), 3))
    # And through label(): a stubbed detector is one voter among the others.
    stubbed = pl.detectors(["complex", "learned"]) | {"silent": lambda x, sr: np.zeros(0)}
    assert len(pl.label(groove[0], SR, stubbed, k=3)) == 0
    assert f(hits, pl.label(groove[0], SR, stubbed, k=2)) >= 0.9


def test_agreeing_times_meet_at_their_median_within_the_tolerance():
    a, b, c = [0.100, 1.000], [0.110, 1.500], [0.130, 2.000]
    assert pl.agree([a, b, c], 3, 0.03).tolist() == pytest.approx([0.110])
    assert pl.agree([a, b, c], 3, 0.02).tolist() == []       # 0.100..0.130 is 30 ms wide
    assert pl.agree([a, b, c], 1, 0.03).tolist() == pytest.approx([0.110, 1.0, 1.5, 2.0])
    assert pl.agree([[0.1, 0.105], [0.1]], 2, 0.03).tolist() == pytest.approx([0.1])   # one vote each


def test_the_command_writes_labels_and_a_summary(tmp_path, groove):
    songs = tmp_path / "songs" / "a band"
    songs.mkdir(parents=True)
    sf.write(songs / "song.wav", groove[0], SR)
    out = tmp_path / "labels"
    assert pl.main([str(tmp_path / "songs"), "-o", str(out)]) == 0
    labels = np.loadtxt(out / "a_band__song.onsets")
    assert f(groove[1], labels) >= 0.9
    summary = json.loads((out / "summary.json").read_text())
    assert summary["k"] == pl.K and summary["songs"][0]["onsets"] == len(labels)
    assert pl.main([str(tmp_path / "songs"), "-o", str(out), "-k", "9"]) == 1
