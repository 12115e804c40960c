"""engine/files.py's bounded reading: devices, FIFOs and oversized files are refused
before they are parsed, with one line naming the file; YAML values, .npz arrays and
JSON nesting are bounded before anything is built."""

from __future__ import annotations

import io
import os
import threading
import zipfile

import numpy as np
import pytest

from tonegraph.engine.files import (FileError, read_bounded, read_json, read_npz, read_yaml,
                                    size_text)
from tonegraph.engine.patch import read_patch


def test_a_regular_file_is_read_up_to_its_limit_and_refused_past_it(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_bytes(b"a" * 1024)
    assert read_bounded(path, 1024, "test file") == b"a" * 1024
    path.write_bytes(b"a" * 2048)
    with pytest.raises(FileError) as err:
        read_bounded(path, 1024, "test file")
    assert str(err.value) == f"{path}: 2 KiB, larger than the 1 KiB a test file may be"
    assert "\n" not in str(err.value) and isinstance(err.value, OSError)
    assert size_text(5 << 20) == "5 MiB" and size_text(int(5.25 * 2**20)) == "5.2 MiB"


def test_devices_and_folders_are_refused_before_a_byte_is_read(tmp_path):
    zero = tmp_path / "rig.yaml"
    zero.symlink_to("/dev/zero")
    with pytest.raises(FileError, match=r"rig.yaml: not a regular file \(a character device\); "
                                        r"a fixture file must be one$"):
        read_bounded(zero, 1 << 20, "fixture file")
    with pytest.raises(FileError, match=r"not a regular file \(a folder\)"):
        read_bounded(tmp_path, 1 << 20, "patch file")
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing.yaml", 1 << 20, "patch file")


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    got: list[BaseException] = []

    def read() -> None:
        try:
            read_bounded(fifo, 1 << 20, "patch file")
        except BaseException as exc:  # noqa: BLE001 (the test looks at what it was)
            got.append(exc)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout=10)
    if t.is_alive():                       # blocked in open(): release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join(timeout=10)
        pytest.fail("reading a FIFO waited for a writer")
    assert len(got) == 1 and isinstance(got[0], FileError) and "(a FIFO)" in str(got[0])


def test_a_patch_linked_to_dev_zero_or_too_large_is_one_error(tmp_path):
    zero = tmp_path / "show.yaml"
    zero.symlink_to("/dev/zero")
    _, errors = read_patch(zero)
    assert len(errors) == 1 and "not a regular file (a character device)" in str(errors[0])
    big = tmp_path / "big.yaml"
    big.write_text("nodes: {c: {type: control.constant}}\n" + "#" * 80 + "\n" * (1 << 20))
    _, errors = read_patch(big)
    assert len(errors) == 1 and "big.yaml:1:1: error: cannot read " in str(errors[0])
    assert str(errors[0]).endswith("big.yaml: 1 MiB, larger than the 1 MiB a patch file may be")


def test_yaml_values_and_nesting_are_bounded_before_anything_is_built(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("fixtures:\n" + "".join(f"  f{i}: {{type: par, address: {i + 1}}}\n" for i in range(100)))
    assert len(read_yaml(path, "fixture file", 1000)["fixtures"]) == 100
    with pytest.raises(FileError, match=r"rig.yaml: line \d+: more than 200 values$"):
        read_yaml(path, "fixture file", 200)
    path.write_text("a: &a [x, x, x, x, x, x, x, x]\nb: [*a, *a, *a, *a, *a, *a, *a, *a]\n")
    with pytest.raises(FileError, match=r"line 2: aliases expand to more than 50 values"):
        read_yaml(path, "fixture file", 50)
    path.write_text("a: " + "[" * 100 + "]" * 100 + "\n")
    with pytest.raises(FileError, match=r"line 1: nested deeper than 64 levels"):
        read_yaml(path, "fixture file", 1000)


def test_json_is_bounded_in_bytes_and_nesting(tmp_path):
    path = tmp_path / "map.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match="^not JSON: nested too deeply$"):
        read_json(path, "parameters file")
    path.write_text('{"a": [1, 2]}')
    assert read_json(path, "parameters file") == {"a": [1, 2]}
    with pytest.raises(FileError, match="larger than the 8 bytes a parameters file may be"):
        read_json(path, "parameters file", limit=8)


def _npz_member(name: str, shape: tuple, dtype: str, data: bytes = b"") -> tuple[str, bytes]:
    """One .npy member as its header declares it, with only ``data`` after the header."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": dtype, "fortran_order": False, "shape": shape})
    return name, out.getvalue() + data


def test_npz_arrays_are_checked_by_their_headers_before_they_are_inflated(tmp_path):
    path = tmp_path / "w.npz"
    np.savez(path, a=np.arange(10, dtype=np.float32), config=np.array('{"x": 1}'))
    got = read_npz(path, "weights file")
    assert list(got["a"]) == list(range(10)) and str(got["config"]) == '{"x": 1}'
    # 2.8 GB of float32 declared by a member's header: refused from the header, which is
    # all there is of it here.
    for member, words in [(_npz_member("big.npy", (700_000_000,), "<f4"), "(700000000,) of float32"),
                          (_npz_member("s.npy", (), "<U100000000"), "() of <U100000000")]:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(*member)
        with pytest.raises(FileError) as err:
            read_npz(path, "weights file")
        assert str(err.value).startswith(f"{path}: array '{member[0][:-4]}' {words} is larger than "
                                         f"a weights file may hold")
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not an .npz file"):
        read_npz(path, "weights file")
