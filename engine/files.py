"""Files written whole or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
