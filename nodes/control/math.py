"""control.math: combine several numbers, by a fixed operation or a safe expression.

Inputs are named by the patch (``in: {a: lfo.out, b: level.rms}``).  ``op: expr``
evaluates ``expr`` over those names with :mod:`engine.expr` (never Python's ``eval``),
e.g. ``expr: "a * 0.5 + clamp(b * 2)"``.
"""

from __future__ import annotations

import math

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.expr import ExprError, compile_expr
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import PortType

OPS = ("add", "multiply", "min", "max", "mix", "expr")


class Math(Node):
    type_name = "control.math"
    description = "Add, multiply, min, max or mix several inputs, or evaluate a safe expression."
    params = {
        "op": P.choice("add", OPS, "Operation over all inputs (in name order)."),
        "expr": P.text("", "Expression over the input names when op is expr, e.g. 'a * 2 + sin(b)'."),
        "weights": P.numbers([], "Weights for mix, one per input in name order; empty is equal."),
        "scale": P.number(1.0, "Multiplies the result."),
        "offset": P.number(0.0, "Added to the result after scaling."),
    }
    variadic = ports.number("Any number of named numeric inputs.")
    outputs = {"out": ports.number("The result.")}

    @classmethod
    def check(cls, params, wired, ctx):
        problems = []
        names = sorted(wired)
        if params["op"] == "expr":
            if not params["expr"].strip():
                problems.append(("expr", "op is expr but 'expr' is empty"))
            else:
                bad = [n for n in names if not n.isidentifier()]
                if bad:
                    problems.append(("", f"input names used in an expression must be identifiers: {bad}"))
                try:
                    compile_expr(params["expr"], set(names))
                except ExprError as exc:
                    problems.append(("expr", f"{exc} (at character {exc.col} of the expression)"))
        elif not names:
            problems.append(("", f"control.math with op {params['op']} needs at least one input"))
        if params["op"] == "mix" and params["weights"] and len(params["weights"]) != len(names):
            problems.append(("weights", f"weights has {len(params['weights'])} values for "
                                        f"{len(names)} inputs ({', '.join(names)})"))
        for n, t in wired.items():
            if t not in (PortType.NUMBER, PortType.ANY):
                problems.append(("", f"input '{n}' of control.math must be a number, not {t.value}"))
        return problems

    def configure(self) -> None:
        self.names = sorted(self.wired)
        self._compile()

    def params_changed(self, changed: set[str]) -> None:
        self._compile()

    def _compile(self) -> None:
        self.fn = compile_expr(self.p.expr, set(self.names))[0] if self.p.op == "expr" else None
        w = self.p.weights or [1.0] * len(self.names)
        total = sum(w) or 1.0
        self.w = [x / total for x in w]

    def process(self, tick: Tick) -> None:
        p = self.p
        vals = [self.inp[n] for n in self.names]
        op = p.op
        if op == "add":
            r = math.fsum(vals)
        elif op == "multiply":
            r = math.prod(vals)
        elif op == "min":
            r = min(vals)
        elif op == "max":
            r = max(vals)
        elif op == "mix":
            r = math.fsum(v * w for v, w in zip(vals, self.w))
        else:
            r = self.fn(self.inp)
        self.out["out"] = r * p.scale + p.offset
