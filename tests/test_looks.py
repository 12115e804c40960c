"""The look check: its measures on pictures made to order, and a short run over every
shipped patch (the whole check is `make looks`)."""

from __future__ import annotations

import numpy as np

from .looks import metrics
from .looks.__main__ import main

FPS = 30.0


def frames_of(n: int, draw) -> np.ndarray:
    """n frames of 36 x 64, each drawn by ``draw(k, luma_image)``."""
    out = np.zeros((n, 36, 64, 3), dtype=np.uint8)
    for k in range(n):
        y = np.full((36, 64), 40.0)
        draw(k, y)
        out[k] = np.clip(y, 0, 255).astype(np.uint8)[:, :, None]
    return out


def leaping(k: int, y: np.ndarray) -> None:
    """A bright block that glides a pixel a frame and leaps 15 pixels every 40 frames."""
    x = (k % 40) + (15 if (k // 40) % 2 else 0)
    y[10:26, x:x + 8] = 220


def test_a_flash_on_each_beat_shows_the_beat_and_is_no_teleport():
    beats = np.arange(0, 10, 0.5)
    times = np.arange(300) / FPS

    def flash(k, y):
        y[8:28, 20:44] = 200
        phase = (times[k] % 0.5) / 0.5
        y *= 1.5 if phase < 0.15 else 1.0
    f = frames_of(300, flash)
    assert metrics.beat_contrast(metrics.brightness(f), times, beats) > 1.3
    assert metrics.teleports(metrics.structural_change(f)) == 0.0
    still = frames_of(300, lambda k, y: y.__setitem__((slice(8, 28), slice(20, 44)), 200))
    assert abs(metrics.beat_contrast(metrics.brightness(still), times, beats) - 1.0) < 1e-6


def test_a_shape_that_jumps_is_a_teleport_unless_an_onset_explains_it():
    f = frames_of(400, leaping)
    change = metrics.structural_change(f)
    assert 0.015 < metrics.teleports(change) < 0.05
    onsets = np.zeros(400)
    onsets[::40] = 1.0                                 # the music hit each time it jumped
    assert metrics.teleports(change, onsets) == 0.0


def test_a_faint_mark_on_a_dim_picture_rearranges_it_but_is_no_jump():
    """A faint square appearing on a dim, slowly drifting picture changes its structure
    (normalised, a dim picture's every mark is large) but moves no more light than the
    drift does: not a jump.  A shape leaping across the frame is both."""
    xs = np.arange(64)[None, :]

    def faint(k, y):
        y += 8.0 * np.sin(xs / 10.0 + 0.2 * k)
        if k % 40 >= 30:
            y[10:22, 40:52] += 10.0
    f = frames_of(400, faint)
    change, amount = metrics.structural_change(f), metrics.motion(f)
    assert metrics.teleports(change) > 0.015                  # structure alone calls it a jump
    assert metrics.teleports(change, amount=amount) == 0.0

    f = frames_of(400, leaping)
    assert 0.015 < metrics.teleports(metrics.structural_change(f), amount=metrics.motion(f)) < 0.05


def test_a_jump_just_before_a_beat_is_the_beat_seen_early_not_a_teleport():
    """A tracker that predicts beats flashes a frame or two before the annotated beat
    (within mir_eval's 70 ms): that answers the beat.  Five frames early does not, nor
    does a cause at the far end of the clip."""
    change = metrics.structural_change(frames_of(400, leaping))      # leaps at 40, 80, ...
    for early, explained in ((1, True), (2, True), (5, False)):
        beats = np.zeros(400, dtype=bool)
        beats[early + 40::40] = True                  # the annotated beat comes after the jump
        tele = metrics.teleports(change, beats_near=beats, lead=2)
        assert (tele == 0.0) == explained, (early, tele)
    # A hit near the clip's end explains the jump just after it, not one at the start.
    change = np.full(400, 0.01)
    change[[5, 398]] = 0.5
    hit = np.zeros(400)
    hit[397] = 1.0
    assert metrics.teleports(change, hit, window=10, lead=2) == 1 / 399


def test_onset_correlation_finds_the_picture_a_frame_late():
    rng = np.random.default_rng(0)
    sound = rng.random(300)
    picture = np.concatenate([[0.0], sound[:-1]]) * 0.5 + 0.2
    assert metrics.lagged_r(picture, sound) > 0.99
    assert abs(metrics.lagged_r(rng.random(300), sound)) < 0.2


def test_blank_stretches_count_only_while_music_plays():
    def draw(k, y):
        y[:] = 0 if 30 <= k < 75 else 40
        if not 30 <= k < 75:
            y[10:20, 10:30] = 200
    f = frames_of(90, draw)
    audible = np.ones(90, dtype=bool)
    share, run = metrics.blank(f, FPS, audible)
    assert share == 0.5 and run == 1.5
    audible[30:75] = False
    assert metrics.blank(f, FPS, audible)[1] == 0.0


def test_onset_strength_peaks_at_the_hits():
    sr = 22050
    x = np.zeros(sr * 2, dtype=np.float32)
    for t in (0.5, 1.0, 1.5):
        x[int(t * sr):int(t * sr) + 200] = np.random.default_rng(1).standard_normal(200)
    times = np.arange(60) / FPS
    s = metrics.onset_strength(x, sr, times)
    assert {int(np.argmax(s[i:i + 10])) + i for i in (12, 27, 42)} <= {15, 16, 30, 31, 45, 46}


def test_every_shipped_patch_renders_through_the_look_check(capsys):
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "built-in groove" in line]
    names = {r.split("|")[1].strip() for r in rows}
    assert {"tunnel", "spectrum-bars", "seed-000-live-world", "seed-004-beat-sync"} <= names
    assert "renders meet the aims" in out
