"""Files read within bounds, and files written whole or not at all.

Every file a patch or a node reads (patches and their includes, fixture files, presets
and mappings, maps, weights) goes through :func:`read_bounded` before anything parses
it.  It must be a regular file: a device such as ``/dev/zero``, a FIFO or a folder is
refused before a byte is read (the file is opened non-blocking, so a FIFO never waits
for a writer).  It must be no larger than its limit, and at most ``limit + 1`` bytes
are ever read, so a file that grows while it is read is refused too.  YAML and JSON are
at most :data:`TEXT_LIMIT`, weights and maps :data:`DATA_LIMIT`.

What a file holds is bounded as well, before it is built: :func:`yaml_bounds` walks a
YAML text's parser events and stops at the first value past a count (an alias counts
as all the values it stands for, so a "billion laughs" file stops at once) or the first
collection nested too deep, so the time a YAML file takes is bounded by its values, not
its bytes; :func:`read_npz` reads each array's header (shape and type) and refuses an
array of more than :data:`MAX_ELEMENTS` elements or :data:`DATA_LIMIT` bytes before
anything is inflated, however well it compresses.

A refusal is a :class:`FileError`: an ``OSError`` whose message is one line naming the
file (its ``strerror`` is the reason alone, as every OSError's is).
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

TEXT_LIMIT = 1 << 20        # [bytes] a YAML or JSON file a patch or a node reads
DATA_LIMIT = 64 << 20       # [bytes] a weights file, a map, one array in an .npz
MAX_ELEMENTS = 16 << 20     # elements of one array in an .npz
MAX_DEPTH = 64              # deepest nesting of a YAML file's mappings and lists

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


class FileError(OSError):
    """A file refused before it is parsed (see the module docstring)."""

    def __init__(self, path: str | Path, reason: str, head: bytes = b"") -> None:
        super().__init__(None, reason, str(path))
        self.head = head            # the file's first bytes, when it was read (what kind it is)

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


def size_text(n: int) -> str:
    """A byte count as people read it (``1 MiB``, ``5.2 MiB``, ``300 KiB``)."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, of at most ``limit`` bytes; ``what`` names
    it in the error (``"fixture file"``).  Raises FileError for anything else (see the
    module docstring), or the OSError of a file that cannot be opened."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
            raise FileError(path, f"not a regular file ({kind}); a {what} must be one")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        size = f"{size_text(st.st_size)}, " if st.st_size > limit else ""
        raise FileError(path, f"{size}larger than the {size_text(limit)} a {what} may be", data[:16])
    return data


def yaml_bounds(source: str | bytes, max_values: int, max_depth: int = MAX_DEPTH,
                loader: type = yaml.SafeLoader) -> tuple[str, yaml.Mark] | None:
    """The first bound a YAML text crosses (see the module docstring), as a message and
    the mark of where; None when within them.  An alias inside its own anchor is
    refused too.  Walks the parser's events, which needs no recursion however deep the
    text nests; raises yaml.YAMLError for text that is not YAML."""
    open_: list[tuple[str | None, int]] = []   # (anchor, values before it) per open collection
    sizes: dict[str, int] = {}                 # values an anchor expands to
    total = 0
    aliased = False
    for ev in yaml.parse(source, Loader=loader):
        if isinstance(ev, yaml.AliasEvent):
            if any(anchor == ev.anchor for anchor, _ in open_):
                return f"alias '{ev.anchor}' refers to itself (a recursive alias)", ev.start_mark
            total += sizes.get(ev.anchor, 1)
            aliased = True
        elif isinstance(ev, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            total += 1
            if isinstance(ev, yaml.CollectionStartEvent):
                if len(open_) >= max_depth:
                    return f"nested deeper than {max_depth} levels", ev.start_mark
                open_.append((ev.anchor, total - 1))
            elif ev.anchor:
                sizes[ev.anchor] = 1
        elif isinstance(ev, yaml.CollectionEndEvent) and open_:
            anchor, before = open_.pop()
            if anchor:
                sizes[anchor] = total - before
        if total > max_values:
            return f"{'aliases expand to ' * aliased}more than {max_values} values", ev.start_mark
    return None


#: libyaml's loader where PyYAML was built with it (several times faster), else PyYAML's.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: str | Path, what: str, max_values: int, limit: int = TEXT_LIMIT) -> Any:
    """A YAML file's plain data (safe tags only), within ``limit`` bytes, ``max_values``
    values and :data:`MAX_DEPTH` levels.  Raises FileError past a bound, and
    yaml.YAMLError for text that is not YAML."""
    data = read_bounded(path, limit, what)
    problem = yaml_bounds(data, max_values, loader=_FAST_LOADER)
    if problem is not None:
        message, mark = problem
        raise FileError(path, f"line {mark.line + 1}: {message}")
    return yaml.load(data, Loader=_FAST_LOADER)  # noqa: S506 (a safe loader)


def read_json(path: str | Path, what: str, limit: int = TEXT_LIMIT) -> Any:
    """A JSON file's data, within ``limit`` bytes.  Raises FileError past the bound, and
    ValueError (one line) for text that is not JSON, nesting too deep included."""
    return parse_json(read_bounded(path, limit, what))


def parse_json(data: str | bytes) -> Any:
    """JSON text's data; ValueError (one line) for text that is not JSON, nesting too
    deep for the parser included."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("not JSON: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def read_npz(path: str | Path, what: str, limit: int = DATA_LIMIT,
             max_elements: int = MAX_ELEMENTS) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (no pickles), each checked by its header before it
    is read: at most ``max_elements`` elements and ``limit`` bytes.  Raises FileError
    past a bound, and ValueError or OSError for a file that is not an ``.npz``."""
    data = read_bounded(path, limit, what)
    fmt = np.lib.format
    arrays = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in z.namelist():
                with z.open(name) as f:
                    major, _ = fmt.read_magic(f)
                    header = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
                    shape, _, dtype = header(f)
                    count = int(np.prod(shape, dtype=np.float64))
                    key = name.removesuffix(".npy")
                    if count > max_elements or count * dtype.itemsize > limit:
                        raise FileError(path, f"array '{key}' {tuple(shape)} of {dtype} is larger than a "
                                              f"{what} may hold ({max_elements} elements, {size_text(limit)})")
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ValueError(f"not an .npz file ({exc})") from None
    return arrays


@contextmanager
def written_whole(path: Path, suffix: str = ".part") -> Iterator[Path]:
    """A name beside ``path`` to write to; when the block ends it becomes ``path`` in one
    rename, and if the block fails (an error, Ctrl-C) what was written is removed, so no
    reader ever finds half a file under ``path``.  ``suffix`` must keep any ending the
    writer insists on (``np.savez`` adds ``.npz`` to a name without it)."""
    path = Path(path)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(path)
