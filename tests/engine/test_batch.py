"""Batch groups in the runner, with stand-in models (no torch): which nodes share a
forward pass, and that every schedule keeps each node after what feeds it."""

from __future__ import annotations

import numpy as np
import pytest

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.batch import Batched
from tonegraph.engine.node import Tick
from tonegraph.engine.registry import default_registry

from ..conftest import load_ok, make_runner


class Scale:
    """A model that multiplies rows by ``k`` and counts its forward passes."""

    def __init__(self, k: float) -> None:
        self.k = k
        self.calls: list[int] = []

    def forward(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        return batch * self.k


MODELS: dict[str, Scale] = {}


class Twice(Batched):
    type_name = "test.twice"
    params = {"model": P.text("two", "Which stand-in model.")}
    inputs = {"value": ports.number()}
    outputs = {"out": ports.number()}

    def configure(self) -> None:
        self.model = MODELS[self.p.model]

    def requests(self, tick: Tick) -> list[np.ndarray]:
        return [np.array([float(self.inp["value"])])]

    def deliver(self, tick: Tick, rows) -> None:
        self.out["out"] = float(rows[0][0])


class Thrice(Twice):
    type_name = "test.thrice"
    params = {"model": P.text("three", "Which stand-in model.")}


@pytest.fixture
def reg():
    MODELS.clear()
    MODELS.update(two=Scale(2.0), three=Scale(3.0), other=Scale(2.0))
    r = default_registry(plugins=False)
    r.add(Twice, __name__)
    r.add(Thrice, __name__)
    return r


def run_frame(path, reg, batching=True):
    ex = make_runner(load_ok(path, reg), reg, batching)
    ex.frame(Tick(0.0, 0.0, 0))
    assert ex.fault_count() == 0
    return ex


def test_independent_nodes_on_one_model_share_a_pass_and_others_do_not(write_patch, reg):
    path = write_patch("""
        nodes:
          c: {type: control.constant, params: {value: 1.5}}
          a: {type: test.twice, in: {value: c}}
          b: {type: test.twice, in: {value: c}}
          o: {type: test.twice, params: {model: other}, in: {value: c}}
          d: {type: test.twice, in: {value: a}}
        """)
    ex = run_frame(path, reg)
    assert [ex.nodes[n].out["out"] for n in "abod"] == [3.0, 3.0, 3.0, 6.0]
    assert MODELS["two"].calls == [2, 1]          # a and b together; d after a
    assert MODELS["other"].calls == [1]
    MODELS["two"].calls.clear()
    run_frame(path, reg, batching=False)
    assert MODELS["two"].calls == [1, 1, 1]


def test_types_feeding_each_other_crosswise_still_run_in_order(write_patch, reg):
    """a1 -> b1 and b2 -> a2: grouping by type alone would need a before b and b before
    a; the plan then counts levels over both types, and every node still sees its
    input of the same frame."""
    path = write_patch("""
        nodes:
          c1: {type: control.constant, params: {value: 1}}
          c2: {type: control.constant, params: {value: 5}}
          a1: {type: test.twice, in: {value: c1}}
          b1: {type: test.thrice, in: {value: a1}}
          b2: {type: test.thrice, in: {value: c2}}
          a2: {type: test.twice, in: {value: b2}}
        """)
    ex = run_frame(path, reg)
    assert [ex.nodes[n].out["out"] for n in ("a1", "b1", "b2", "a2")] == [2.0, 6.0, 15.0, 30.0]


class Held(Scale):
    """A model whose rows asked for beside the frame wait for ``send`` (as a runner's)."""

    def __init__(self, k: float) -> None:
        super().__init__(k)
        self.held = self.sent = 0

    def send(self) -> None:
        self.sent += self.held
        self.held = 0


class AsksThenFails(Twice):
    type_name = "test.asks_then_fails"

    def requests(self, tick: Tick) -> list[np.ndarray]:
        self.model.held += 1                  # a row asked for beside, then a failure
        raise RuntimeError("broken after asking")


@pytest.mark.parametrize("batching", [True, False])
def test_rows_asked_beside_are_sent_even_when_the_node_then_fails(write_patch, reg, batching):
    """A node that asks for a row beside the frame and then fails still has it sent: an
    offline run would otherwise wait on it for ever."""
    MODELS["other"] = Held(2.0)
    reg.add(AsksThenFails, __name__)
    path = write_patch("""
        nodes:
          c: {type: control.constant, params: {value: 1.5}}
          a: {type: test.asks_then_fails, params: {model: other}, in: {value: c}}
          b: {type: test.twice, in: {value: c}}
        """)
    ex = make_runner(load_ok(path, reg), reg, batching)
    ex.frame(Tick(0.0, 0.0, 0))
    assert ex.fault_count() == 1 and ex.nodes["b"].out["out"] == 3.0
    assert MODELS["other"].held == 0 and MODELS["other"].sent == 1
