"""Progress bars with an ETA for the tools' long commands (rich)."""

from __future__ import annotations

#: [s] of progress the ETA is estimated over: steps of a large GAN take longer than
#: rich's default 30 s allows two of, which left no ETA at all.
SPEED_PERIOD = 3600.0


def progress(total: int, label: str, quiet: bool, get_time=None):
    """A bar labelled ``label``: done/total, time taken and the time left (none if ``quiet``)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn(f"[bold]{label}[/] {{task.description}}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), disable=quiet, transient=False,
                    speed_estimate_period=SPEED_PERIOD, get_time=get_time)
