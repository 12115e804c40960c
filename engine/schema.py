"""JSON Schema for patch files, generated from the registry.

Editors with a YAML language server (VS Code's YAML extension, Neovim's yamlls) use it
to complete node types and params and to flag bad values while the artist types.
"""

from __future__ import annotations

from typing import Any

from .params import Param
from .registry import Registry

WIRE = {
    "oneOf": [
        {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_/][A-Za-z0-9_\-/{}]*)?$",
         "description": "'node.port', or 'node' for its default output"},
        {"type": "object", "additionalProperties": False, "required": ["from"],
         "properties": {"from": {"type": "string"},
                        "delay": {"enum": [0, 1, True, False],
                                  "description": "1: read last tick's value (allows feedback)"}}},
    ]
}


def param_schema(p: Param) -> dict[str, Any]:
    s: dict[str, Any] = {"description": p.description + (f" [{p.unit}]" if p.unit else "")}
    if p.default is not None:
        s["default"] = p.default
    if p.kind == "float":
        s["type"] = "number"
    elif p.kind == "int":
        s["type"] = "integer"
    elif p.kind == "bool":
        s["type"] = "boolean"
    elif p.kind == "choice":
        s["enum"] = list(p.choices)
    elif p.kind == "mapping":
        s["type"] = "object"
        if "keys" in p.extra:
            s["propertyNames"] = p.extra["keys"]
        if "values" in p.extra:
            s["additionalProperties"] = p.extra["values"]
        return s
    elif p.kind == "strings":
        s["type"] = ["array", "string"]
        s["items"] = {"type": "string"}
        return s
    elif p.kind == "floats":
        item: dict[str, Any] = {"type": "number"}
        if p.min is not None:
            item["minimum"] = p.min
        if p.max is not None:
            item["maximum"] = p.max
        s["type"] = "array"
        s["items"] = item
        if p.length is not None:
            s["minItems"] = s["maxItems"] = p.length
        return s
    else:
        s["type"] = ["string", "null"] if p.nullable else "string"
    if p.kind in ("float", "int"):
        if p.min is not None:
            s["minimum"] = p.min
        if p.max is not None:
            s["maximum"] = p.max
    return s


def patch_schema(registry: Registry) -> dict[str, Any]:
    cases = []
    for name in registry.names():
        cls = registry[name]
        in_props = {n: {**WIRE, "description": f"{pt.type.value}: {pt.description}"}
                    for n, pt in cls.inputs.items()}
        cases.append({
            "if": {"properties": {"type": {"const": name}}},
            "then": {"properties": {
                "params": {"type": ["object", "null"], "additionalProperties": False,
                           "properties": {k: param_schema(p) for k, p in cls.params.items()}},
                "in": {"type": ["object", "null"], "properties": in_props,
                       "additionalProperties": WIRE if cls.variadic is not None else False},
            }},
        })
    node = {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {"enum": registry.names(),
                     "description": "Node type; 'tonegraph nodes' lists them"},
            "params": {"type": ["object", "null"]},
            "in": {"type": ["object", "null"], "additionalProperties": WIRE},
            "description": {"type": "string"},
        },
        "allOf": cases,
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "tonegraph patch",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "patch": {"type": "object", "additionalProperties": False, "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000,
                        "description": "Frame rate [Hz]"},
                "samplerate": {"type": "integer", "minimum": 8000, "maximum": 384000},
                "hop": {"type": "integer", "minimum": 16, "maximum": 65536,
                        "description": "Audio hop size [samples]"},
            }},
            "include": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                        "description": "Patch files to merge in, relative to this file"},
            "nodes": {"type": "object",
                      "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_\-]*$"},
                      "additionalProperties": node},
        },
    }
