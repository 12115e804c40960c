"""Batched inference: nodes that share a model run one forward pass per tick together.

A node type opts in by subclassing :class:`Batched`.  Its ``configure`` sets
``self.model`` to an object with ``forward(batch) -> batch`` (numpy in, numpy out, one
row per request), shared by every node that loads the same weights on the same device.
Per tick the node says what it wants computed (:meth:`Batched.requests`: zero or more
input rows, e.g. one latent, or every audio hop that queued up since the last tick) and
takes the results back (:meth:`Batched.deliver`).

The plan (engine/plan.py) puts batched nodes of one domain that do not depend on each
other (same depth in the graph) into one :class:`BatchGroup` step.  Per tick the group collects every member's
requests, runs one forward pass per shared model, and hands each member its rows.  The
model each member uses is looked up when the tick runs, so a member that reloads other
weights (a changed ``model`` param) simply lands in another bucket.

With batching off (``make_plan(..., batching=False)``), each node's own ``process`` runs its
requests one forward pass at a time: the baseline the benchmarks compare against.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .node import Node, Tick


class Batched(Node):
    """A node whose work is a model's forward pass over its requests (see module doc)."""

    #: Set by ``configure``: the shared model, with ``forward(np.ndarray) -> np.ndarray``.
    model: Any = None

    def requests(self, tick: Tick) -> list[np.ndarray]:
        """Input rows to run through the model this tick (often one; may be none)."""
        raise NotImplementedError

    def deliver(self, tick: Tick, rows: np.ndarray | None) -> None:
        """The model's output rows for this tick's requests, in order (None for none)."""
        raise NotImplementedError

    def process(self, tick: Tick) -> None:
        """Unbatched: one forward pass per request."""
        try:
            reqs = self.requests(tick)
        finally:
            send(self.model)                  # rows asked for beside, even by a node that then failed
        if not reqs:
            self.deliver(tick, None)
            return
        forward = self.model.forward
        self.deliver(tick, np.concatenate([forward(r[None]) for r in reqs]))


def send(model: Any) -> None:
    """What the nodes of ``model`` asked to run beside the frame (a runner's ``beside``),
    sent as one batch."""
    sender = getattr(model, "send", None)
    if sender is not None:
        sender()


class BatchGroup:
    """One runner step running several independent :class:`Batched` nodes."""

    def __init__(self, members: list[Batched], fault: Callable[[Node, Exception], None]) -> None:
        self.members = members
        self.fault = fault

    def __call__(self, tick: Tick) -> None:
        fault = self.fault
        buckets: dict[int, tuple[Any, list[tuple[Batched, list[np.ndarray]]]]] = {}
        for node in self.members:
            model = node.model
            try:
                reqs = node.requests(tick)
            except Exception as exc:
                send(model)                   # what it asked for beside before it failed
                fault(node, exc)
                continue
            entry = buckets.get(id(model))
            if entry is None:
                entry = buckets[id(model)] = (model, [])
            entry[1].append((node, reqs))
        for model, items in buckets.values():
            send(model)
            flat = [r for _, reqs in items for r in reqs]
            try:
                out = model.forward(np.stack(flat)) if flat else None
            except Exception as exc:
                for node, _ in items:
                    fault(node, exc)
                continue
            i = 0
            for node, reqs in items:
                n = len(reqs)
                try:
                    node.deliver(tick, out[i:i + n] if n else None)
                except Exception as exc:
                    fault(node, exc)
                i += n
