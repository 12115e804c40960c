"""Files that nodes read are bounded before they are parsed: fixture files, learned
detector weights, torch model files, chunk maps.  Each refusal is one line naming the
file, and the patch is refused at validation, never a node taking the show down."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile

import numpy as np
import pytest

from tonegraph.engine.graph import load_graph
from tonegraph.nodes.audio import learned
from tonegraph.nodes.dmx import fixtures as fx

from ..conftest import tonegraph


def _fixture_errors(write_patch, registry, tmp_path, text: str | None = None) -> list[str]:
    if text is not None:
        (tmp_path / "rig.yaml").write_text(text)
    patch = write_patch("nodes:\n  dmx: {type: dmx.out, params: {fixtures: rig.yaml}}\n")
    return [str(e) for e in load_graph(patch, registry)[1]]


def test_a_full_universe_of_fixtures_still_reads(tmp_path):
    """512 one-channel fixtures and a few wide types: well inside the bounds."""
    types = "".join(f"  t{i}: [{', '.join(f'c{k}' for k in range(40))}]\n" for i in range(50))
    lights = "".join(f"  f{i}: {{type: dim, address: {i + 1}}}\n" for i in range(512))
    path = tmp_path / "rig.yaml"
    path.write_text("types:\n  dim: [dimmer]\n" + types + "fixtures:\n" + lights)
    attrs = fx.read(path)
    assert len(attrs) == 512 and attrs["f511/dimmer"].channels == ((511,),)


def test_a_megabyte_of_fixtures_is_refused_at_once(write_patch, registry, tmp_path):
    """A fixture file of 1 MiB (28,000 fixtures; 512 is a full universe) is refused by
    its count of values after reading a fraction of it: pure-Python YAML took about 5 s
    a MiB here, 26 s for the 5 MB file that kept validate busy past a minute."""
    lines = "".join(f"  f{i}: {{type: par, address: {1 + i % 500}}}\n" for i in range(28_000))
    t0 = time.perf_counter()
    errors = _fixture_errors(write_patch, registry, tmp_path, "types:\n  par: [dimmer]\nfixtures:\n" + lines)
    took = time.perf_counter() - t0
    assert len(errors) == 1 and "rig.yaml: cannot read it: line " in errors[0], errors
    assert errors[0].endswith(f"more than {fx.MAX_VALUES} values")
    assert took < 5.0, took        # about 0.1 s; only a gross regression crosses this
    errors = _fixture_errors(write_patch, registry, tmp_path, "fixtures: {}\n" + "#" * (1 << 20) + "\n")
    assert len(errors) == 1 and "larger than the 1 MiB a fixture file may be" in errors[0], errors


def test_a_fixture_file_linked_to_dev_zero_is_one_line(write_patch, registry, tmp_path):
    (tmp_path / "rig.yaml").symlink_to("/dev/zero")
    errors = _fixture_errors(write_patch, registry, tmp_path)
    assert len(errors) == 1 and errors[0].endswith(
        "rig.yaml: cannot read it: not a regular file (a character device); a fixture file must be one")


def test_a_type_wider_than_a_universe_is_refused(write_patch, registry, tmp_path):
    chans = ", ".join(f"c{k}" for k in range(600))
    errors = _fixture_errors(write_patch, registry, tmp_path,
                             f"types:\n  wall: [{chans}]\nfixtures:\n  w: {{type: wall, address: 1}}\n")
    assert len(errors) == 1 and "type 'wall' has 600 channels; a universe has 512" in errors[0], errors


# -- learned detector weights ------------------------------------------------------------


def _shipped_with(tmp_path, name: str, **config) -> os.PathLike:
    arrays, cfg = learned.read(learned.SHIPPED)
    path = tmp_path / name
    learned.save(path, arrays, {**cfg, **config})
    return path


@pytest.mark.parametrize("config, words", [
    ({"members": 1e12}, "'members' must be a whole number 0..64, got 1000000000000.0"),
    ({"members": 65}, "'members' must be a whole number 0..64, got 65"),
    ({"lookahead": float("inf")}, "'lookahead' must be a whole number 0..64, got inf"),
    ({"frontend": {**learned.FRONT, "n_fft": 10 ** 12}}, "'n_fft' must be a whole number 16..65536"),
    ({"frontend": {**learned.FRONT, "bands": 32}}, "its networks read (64,) bands, its front end makes 32"),
])
def test_weights_whose_counts_are_out_of_bounds_are_one_line(tmp_path, config, words):
    path = _shipped_with(tmp_path, "bad.npz", **config)
    with pytest.raises(learned.WeightsError) as err:
        learned.Weights.load(path)
    assert "bad.npz is not a learned detector's weights file" in str(err.value)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_an_array_that_would_inflate_past_the_bound_is_refused_from_its_header(write_patch, registry,
                                                                                tmp_path):
    """A compressed 2.8 GB array: its header names its shape, and that is all that is read."""
    path = tmp_path / "huge.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (700_000_000,)})
    zeros = b"\0" * (16 << 20)           # the start of the zeros: it compresses to 16 KB
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.npy", _npy(np.array(json.dumps({"frontend": learned.FRONT, "lookahead": 1}))))
        z.writestr("mean.npy", header.getvalue() + zeros)
    assert path.stat().st_size < 1 << 20
    patch = write_patch(f"""
        nodes:
          s: {{type: audio.synth}}
          o: {{type: audio.onset, params: {{method: learned, model: {path.name}}}, in: {{audio: s}}}}
        """)
    errors = [str(e) for e in load_graph(patch, registry)[1]]
    assert len(errors) == 1, errors
    assert errors[0].endswith(f"{path}: array 'mean' (700000000,) of float32 is larger than a weights "
                              f"file may hold (16777216 elements, 64 MiB)")


def test_a_weights_file_over_64_mib_is_refused_unread(tmp_path):
    path = tmp_path / "big.npz"
    with open(path, "wb") as f:
        f.truncate((64 << 20) + 1)      # sparse: no disk used
    with pytest.raises(learned.WeightsError, match=r"big.npz: 64 MiB, larger than the 64 MiB a weights "
                                                   r"file may be$"):
        learned.Weights.load(path)


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


# -- torch model files ---------------------------------------------------------------------


def test_a_model_config_describing_a_huge_network_is_refused_before_it_is_built(write_patch, tmp_path):
    """A small autoencoder's tensors under a config that would build 10^12 numbers."""
    import torch

    from tonegraph.nodes.ml import models

    module, data = models.load(models.SHIPPED / "autoencoder.pt", "autoencoder")
    path = tmp_path / "huge.pt"
    torch.save({**data, "config": {**data["config"], "input": 10 ** 9, "hidden": [1000]}}, path)
    with pytest.raises(models.ModelError) as err:
        models.load(path, "autoencoder")
    assert str(err.value).startswith(f"{path}: its config describes a network of ")
    assert str(err.value).endswith(f"more than the {models.MAX_PARAMETERS} a model file may")
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:
        f.truncate((64 << 20) + 1)
    with pytest.raises(models.ModelError, match=r"big.pt: 64 MiB, larger than the 64 MiB a model file may be$"):
        models.load(big, "autoencoder")
    zero = tmp_path / "zero.pt"
    zero.symlink_to("/dev/zero")
    with pytest.raises(models.ModelError, match=r"zero.pt: not a regular file \(a character device\)"):
        models.load(zero, "autoencoder")
    # In a show: one line naming the file, no traceback.
    patch = write_patch(f"""
        nodes:
          groove: {{type: audio.synth}}
          ae: {{type: ml.autoencoder, params: {{model: {path.name}}}, in: {{audio: groove}}}}
        """)
    res = tonegraph("run", str(patch), "--offline", "--duration", "0.1")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert f"{path}: its config describes a network of" in res.stderr
    assert len([l for l in res.stderr.splitlines() if "error" in l]) == 1, res.stderr


# -- chunk maps --------------------------------------------------------------------------


def test_a_chunk_map_is_read_within_bounds(tmp_path):
    from tonegraph.nodes.ml.chunks import load_map

    path = tmp_path / "map.json"
    path.symlink_to("/dev/zero")
    with pytest.raises(OSError, match=r"map.json: not a regular file \(a character device\); a map "
                                      r"must be one"):
        load_map(path)
