"""Param declarations: one declaration feeds validation, docs, JSON schema and OSC control.

Each node type declares its params as a mapping of name to :class:`Param`.  ``coerce``
checks a value exactly the same way whether it comes from a patch file, the command
line (``--set``) or, later, OSC; a bad value raises :class:`ParamError` with a message
that names the range or the valid choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .errors import ParamError, did_you_mean

#: Largest integer a param takes (beyond it, floats lose whole numbers).
MAX_INT = 2 ** 53

KINDS = ("float", "int", "bool", "choice", "str", "floats", "path", "outpath", "expr", "mapping",
         "strings")


@dataclass(frozen=True, slots=True)
class Param:
    """A declared param of a node type.

    ``kind`` is one of :data:`KINDS`.  ``floats`` is a list of numbers (``length`` fixes
    how many); ``path`` is an input file resolved against the patch's folder;
    ``outpath`` an output file resolved against the working directory; ``expr`` a
    :mod:`engine.expr` expression.  ``restart`` marks a param whose change needs the
    node to be configured again (an FFT size) instead of being applied in place.
    ``route`` marks a param that says where the node's output goes (a host, a port, a
    universe, a file format): only the patch and the command line set those, never OSC,
    so no datagram can turn a show's cues away from its desk.
    """

    kind: str
    default: Any
    description: str = ""
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    length: int | None = None
    restart: bool = False
    nullable: bool = False
    route: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def range_text(self) -> str:
        """The range as a human reads it, e.g. ``0..1000 Hz``."""
        lo = "-inf" if self.min is None else _fmt(self.min)
        hi = "inf" if self.max is None else _fmt(self.max)
        unit = f" {self.unit}" if self.unit else ""
        return f"{lo}..{hi}{unit}"

    def coerce(self, value: Any, name: str = "value") -> Any:
        """Return ``value`` converted to this param's type, or raise :class:`ParamError`."""
        if value is None:
            if self.nullable:
                return None
            raise ParamError(f"param '{name}' needs a value ({self.kind_text()})")
        kind = self.kind
        if kind == "float":
            return self._check_range(name, _as_float(name, value))
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ParamError(f"param '{name}' must be an integer, got {shown(value)}")
            if abs(value) > MAX_INT:
                raise ParamError(f"param '{name}' = {shown(value)} is too large")
            self._check_range(name, value)
            return int(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise ParamError(f"param '{name}' must be true or false, got {shown(value)}")
            return value
        if kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                hint = did_you_mean(value, self.choices) if isinstance(value, str) else ""
                raise ParamError(
                    f"param '{name}' must be one of {', '.join(self.choices)}; got {shown(value)}{hint}"
                )
            return value
        if kind in ("str", "path", "outpath", "expr"):
            if not isinstance(value, str):
                raise ParamError(f"param '{name}' must be a string, got {shown(value)}")
            if kind in ("path", "outpath", "expr") and not value.strip():
                raise ParamError(f"param '{name}' must not be empty")
            return value
        if kind == "mapping":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ParamError(f"param '{name}' must be a mapping of names to settings, got {shown(value)}")
            return value
        if kind == "strings":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ParamError(f"param '{name}' must be a list of strings, got {shown(value)}")
            return list(value)
        if kind == "floats":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise ParamError(f"param '{name}' must be a list of numbers, got {shown(value)}")
            if self.length is not None and len(value) != self.length:
                raise ParamError(
                    f"param '{name}' must be a list of {self.length} numbers, got {len(value)}"
                )
            return [self._check_range(name, _as_float(name, v)) for v in value]
        raise AssertionError(f"unknown param kind {kind!r}")

    def kind_text(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "floats":
            n = f"{self.length} " if self.length else ""
            return f"list of {n}numbers"
        return {"float": "number", "int": "integer", "bool": "true/false", "str": "string",
                "path": "file path", "outpath": "output file path", "expr": "expression",
                "mapping": "mapping", "strings": "list of strings"}[self.kind]

    def _check_range(self, name: str, value: float) -> float:
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise ParamError(
                f"param '{name}' = {_fmt(value)} is outside its range {self.range_text()}"
            )
        return value


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParamError(f"param '{name}' must be a number, got {shown(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise ParamError(f"param '{name}' = {shown(value)} is too large") from None
    if not math.isfinite(value):
        raise ParamError(f"param '{name}' must be a finite number, got {shown(value)}")
    return value


def _fmt(x: float) -> str:
    return f"{x:g}"


def shown(value: Any, limit: int = 60) -> str:
    """A value as an error message quotes it: its repr, cut short (a fuzzer's megabyte
    string or a 400-digit number must not become a megabyte of log)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# Constructors that read like the declaration they make.

def number(default: float, description: str = "", *, unit: str = "", min: float | None = None,
           max: float | None = None, restart: bool = False) -> Param:
    return Param("float", float(default), description, unit, min, max, restart=restart)


def integer(default: int, description: str = "", *, unit: str = "", min: int | None = None,
            max: int | None = None, restart: bool = False, route: bool = False) -> Param:
    return Param("int", int(default), description, unit, min, max, restart=restart, route=route)


def boolean(default: bool, description: str = "", *, restart: bool = False,
            route: bool = False) -> Param:
    return Param("bool", bool(default), description, restart=restart, route=route)


def choice(default: str, choices: tuple[str, ...] | list[str], description: str = "", *,
           restart: bool = False, route: bool = False) -> Param:
    assert default in choices
    return Param("choice", default, description, choices=tuple(choices), restart=restart,
                 route=route)


def text(default: str, description: str = "", *, restart: bool = False,
         route: bool = False) -> Param:
    return Param("str", default, description, restart=restart, route=route)


def numbers(default: list[float], description: str = "", *, length: int | None = None,
            unit: str = "", min: float | None = None, max: float | None = None,
            restart: bool = False) -> Param:
    return Param("floats", [float(v) for v in default], description, unit, min, max,
                 length=length, restart=restart)


def path(default: str | None, description: str = "", *, restart: bool = True) -> Param:
    return Param("path", default, description, restart=restart, nullable=default is None)


def outpath(default: str | None, description: str = "", *, restart: bool = True) -> Param:
    return Param("outpath", default, description, restart=restart, nullable=default is None)


def expr(default: str, description: str = "", *, restart: bool = False) -> Param:
    return Param("expr", default, description, restart=restart)


def mapping(default: dict | None = None, description: str = "", *, restart: bool = False,
            keys: dict | None = None, values: dict | None = None) -> Param:
    """Settings by name; the node's ``check`` validates their contents.  ``keys`` and
    ``values`` are JSON Schemas of the names and of each value, for editors."""
    extra = {k: v for k, v in (("keys", keys), ("values", values)) if v is not None}
    return Param("mapping", dict(default or {}), description, restart=restart, extra=extra)


def strings(default: list[str] | None = None, description: str = "", *,
            restart: bool = False, route: bool = False) -> Param:
    return Param("strings", list(default or []), description, restart=restart, route=route)
