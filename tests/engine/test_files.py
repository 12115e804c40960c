"""engine/files.py: a file is written whole or not at all."""

from __future__ import annotations

import pytest

from tonegraph.engine.files import written_whole


def test_a_file_appears_whole_and_a_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"the last good one")
    with pytest.raises(KeyboardInterrupt):
        with written_whole(path) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"the last good one"      # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"]
    with written_whole(path, ".part.npz") as tmp:
        assert tmp.name == "weights.bin.part.npz" and not tmp.exists()
        tmp.write_bytes(b"new")
        assert path.read_bytes() == b"the last good one"  # not until the block ends
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.bin"]
