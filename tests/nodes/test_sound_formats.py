"""Songs in formats libsndfile does not read (M4A/AAC, Opus in Matroska) play through
ffmpeg, in every place that reads a song; an unreadable file is one plain line."""

from __future__ import annotations

import subprocess

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from tonegraph.nodes.audio.sound import open_sound

from ..conftest import ROOT, tonegraph

GROOVE = ROOT / "graphs" / "media" / "groove.flac"


def encode(src, out, *codec: str):
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), *codec,
                    str(out)], check=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    clip = folder / "clip.flac"
    data, rate = sf.read(GROOVE, frames=6 * 22050, dtype="float32")
    sf.write(clip, data, rate)
    return clip, {"m4a": encode(clip, folder / "clip.m4a", "-c:a", "aac", "-b:a", "128k"),
                  "mka": encode(clip, folder / "clip.mka", "-c:a", "libopus", "-b:a", "96k")}


@pytest.mark.parametrize("kind", ["m4a", "mka"])
def test_a_song_libsndfile_cannot_read_is_decoded_by_ffmpeg_to_the_same_sound(songs, kind):
    clip, encoded = songs
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(encoded[kind]))                     # what made such songs fail before
    ref, rate = sf.read(clip, dtype="float32")
    with open_sound(encoded[kind]) as f:
        got = f.read(dtype="float32")
        assert f.samplerate in (rate, 48000)            # Opus decodes at 48 kHz
    if len(got) != len(ref):                            # another rate: compare loudness only
        assert abs(np.sqrt(np.mean(got ** 2)) / np.sqrt(np.mean(ref ** 2)) - 1) < 0.1
        return
    noise = np.mean((got - ref) ** 2) / np.mean(ref ** 2)
    assert 10 * np.log10(1 / noise) > 15, f"decoded {kind} differs from the original by {noise:.3f}"


def test_a_patch_a_render_check_and_an_analysis_take_an_m4a(songs, tmp_path):
    _, encoded = songs
    m4a = encoded["m4a"]
    res = tonegraph("run", "graphs/file-features.yaml", "--offline", "--duration", "3",
                    "--set", f"song.path={m4a}", "--set", f"rec.path={tmp_path / 'f.jsonl'}")
    assert res.returncode == 0, res.stderr
    assert "beat" in (tmp_path / "f.jsonl").read_text()
    res = tonegraph("analyze", str(m4a), "-o", str(tmp_path / "map"), timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "map.json").is_file()


def test_a_file_that_is_no_sound_says_so_in_one_line_naming_both_readers(tmp_path):
    junk = tmp_path / "junk.m4a"
    junk.write_bytes(b"\x00\x01not a song" * 100)
    res = tonegraph("run", "graphs/file-features.yaml", "--offline", "--set", f"song.path={junk}")
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "junk.m4a" in lines[0] and "ffmpeg cannot read it either" in lines[0], lines[0]


def test_a_playlist_naming_a_url_is_refused_not_fetched(tmp_path):
    playlist = tmp_path / "list.m3u8"
    playlist.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n"
                        "#EXT-X-ENDLIST\n")
    res = tonegraph("run", "graphs/file-features.yaml", "--offline", "--set", f"song.path={playlist}")
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert "list.m3u8" in res.stderr and "ffmpeg cannot read it either" in res.stderr, res.stderr


def test_a_decoding_longer_than_the_bound_is_refused(songs, monkeypatch, tmp_path):
    """ffmpeg's WAV is read up to MAX_BYTES and no further: a longer song is one line."""
    from tonegraph.nodes.audio import sound

    _, encoded = songs
    copy = tmp_path / "long.m4a"
    copy.write_bytes(encoded["m4a"].read_bytes())
    monkeypatch.setattr(sound, "MAX_BYTES", 10_000)
    with pytest.raises(sound.SoundError, match="cut it shorter"):
        open_sound(copy)
