"""A small, safe expression language for ``control.math``.

Expressions use Python's syntax for arithmetic and comparisons, parsed with :mod:`ast`
and compiled to a tree of closures over a whitelist: numbers, named inputs, ``+ - * /
// % **``, unary ``-``/``+``, comparisons (true is 1.0), ``and``/``or``/``not``,
``a if cond else b``, and the functions in :data:`FUNCTIONS`.  Nothing reaches
Python's ``eval``: attribute access, subscripts, lambdas and every other construct are
rejected when the patch loads, with the column of the offending part.

Sizes are bounded (:data:`MAX_CHARS`, :data:`MAX_DEPTH`, :data:`MAX_PARTS`, finite
literals), so a patch or an OSC message cannot make compiling or evaluating overflow the
stack or the float range: what is too big is an :class:`ExprError` like any other.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from .errors import TonegraphError


class ExprError(TonegraphError):
    """An expression that cannot be compiled; ``col`` is 1-based within the expression."""

    def __init__(self, message: str, col: int = 1) -> None:
        super().__init__(message)
        self.col = col


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo if x < lo else hi if x > hi else x


def _mix(a: float, b: float, t: float) -> float:
    return a + (b - a) * t


def _smoothstep(e0: float, e1: float, x: float) -> float:
    t = _clamp((x - e0) / (e1 - e0)) if e1 != e0 else float(x >= e1)
    return t * t * (3.0 - 2.0 * t)


def _step(edge: float, x: float) -> float:
    return 1.0 if x >= edge else 0.0


def _fract(x: float) -> float:
    return x - math.floor(x)


def _sign(x: float) -> float:
    return (x > 0) - (x < 0)


FUNCTIONS: dict[str, tuple[Callable[..., float], int, int]] = {
    # name: (function, min args, max args)
    "abs": (abs, 1, 1), "sqrt": (math.sqrt, 1, 1), "exp": (math.exp, 1, 1),
    "log": (math.log, 1, 2), "log10": (math.log10, 1, 1), "pow": (math.pow, 2, 2),
    "sin": (math.sin, 1, 1), "cos": (math.cos, 1, 1), "tan": (math.tan, 1, 1),
    "asin": (math.asin, 1, 1), "acos": (math.acos, 1, 1), "atan": (math.atan, 1, 1),
    "atan2": (math.atan2, 2, 2), "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1),
    "round": (round, 1, 1), "fract": (_fract, 1, 1), "sign": (_sign, 1, 1),
    "min": (min, 1, 64), "max": (max, 1, 64), "clamp": (_clamp, 1, 3),
    "mix": (_mix, 3, 3), "smoothstep": (_smoothstep, 3, 3), "step": (_step, 2, 2),
    "hypot": (math.hypot, 1, 64),
}
CONSTANTS = {"pi": math.pi, "tau": math.tau, "e": math.e}

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_CMPOPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
           ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}

#: Longest expression [characters], deepest nesting and most parts (names, numbers,
#: operators, calls) an expression may have.  Evaluation recurses once per level.
MAX_CHARS = 2000
MAX_DEPTH = 100
MAX_PARTS = 500

Env = dict[str, float]
Compiled = Callable[[Env], float]


def compile_expr(text: str, names: set[str] | None = None) -> tuple[Compiled, set[str]]:
    """Compile ``text``; returns an evaluator over a name->value dict and the names used.

    With ``names`` given, a name outside it (and outside :data:`CONSTANTS`) is an error.
    """
    text = text.strip()
    if len(text) > MAX_CHARS:
        raise ExprError(f"expression too long ({len(text)} characters; at most {MAX_CHARS})")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"expression syntax: {exc.msg}", exc.offset or 1) from exc
    except (RecursionError, MemoryError) as exc:
        raise ExprError(f"expression too deeply nested (at most {MAX_DEPTH} levels)") from exc
    _check_size(tree.body)
    used: set[str] = set()
    fn = _compile(tree.body, names, used)
    return fn, used


def _check_size(root: ast.AST) -> None:
    """Refuse trees deeper than MAX_DEPTH or with more than MAX_PARTS parts (iteratively:
    the point is not to recurse into what is too deep)."""
    parts = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExprError(f"expression too deeply nested (at most {MAX_DEPTH} levels)",
                            getattr(node, "col_offset", 0) + 1)
        if not isinstance(node, (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)):
            parts += 1
        if parts > MAX_PARTS:
            raise ExprError(f"expression has too many parts (at most {MAX_PARTS})")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _compile(node: ast.AST, names: set[str] | None, used: set[str]) -> Compiled:
    col = getattr(node, "col_offset", 0) + 1
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExprError(f"only numbers are allowed, not {node.value!r}", col)
        try:
            value = float(node.value)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            raise ExprError("number too large (at most about 1.8e308)", col)
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in CONSTANTS:
            const = CONSTANTS[name]
            return lambda env: const
        if names is not None and name not in names:
            have = ", ".join(sorted(names)) or "none wired"
            raise ExprError(f"unknown name '{name}' (inputs: {have})", col)
        used.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        op = _BINOPS[type(node.op)]
        a, b = _compile(node.left, names, used), _compile(node.right, names, used)
        return lambda env: op(a(env), b(env))
    if isinstance(node, ast.UnaryOp):
        a = _compile(node.operand, names, used)
        if isinstance(node.op, ast.USub):
            return lambda env: -a(env)
        if isinstance(node.op, ast.UAdd):
            return a
        if isinstance(node.op, ast.Not):
            return lambda env: 0.0 if a(env) else 1.0
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, names, used) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda env: 1.0 if all(p(env) for p in parts) else 0.0
        return lambda env: 1.0 if any(p(env) for p in parts) else 0.0
    if isinstance(node, ast.Compare):
        left = _compile(node.left, names, used)
        pairs = []
        for op, right in zip(node.ops, node.comparators):
            if type(op) not in _CMPOPS:
                raise ExprError("only < <= > >= == != comparisons are allowed",
                                getattr(right, "col_offset", 0) + 1)
            pairs.append((_CMPOPS[type(op)], _compile(right, names, used)))

        def compare(env: Env) -> float:
            lhs = left(env)
            for cmp, rhs_fn in pairs:
                rhs = rhs_fn(env)
                if not cmp(lhs, rhs):
                    return 0.0
                lhs = rhs
            return 1.0
        return compare
    if isinstance(node, ast.IfExp):
        test = _compile(node.test, names, used)
        yes, no = _compile(node.body, names, used), _compile(node.orelse, names, used)
        return lambda env: yes(env) if test(env) else no(env)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        fname = node.func.id
        if fname not in FUNCTIONS:
            raise ExprError(f"unknown function '{fname}' (functions: {', '.join(sorted(FUNCTIONS))})", col)
        func, lo, hi = FUNCTIONS[fname]
        if not lo <= len(node.args) <= hi:
            want = str(lo) if lo == hi else f"{lo} to {hi}"
            raise ExprError(f"{fname}() takes {want} argument(s), got {len(node.args)}", col)
        args = [_compile(a, names, used) for a in node.args]
        if len(args) == 1:
            a0 = args[0]
            return lambda env: float(func(a0(env)))
        return lambda env: float(func(*[a(env) for a in args]))
    what = type(node).__name__
    raise ExprError(f"'{what}' is not allowed in an expression (numbers, inputs, arithmetic, "
                    f"comparisons and functions only)", col)
