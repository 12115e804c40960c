"""The JSON schema and node reference come from the declarations and stay in sync."""

from __future__ import annotations

import json

import jsonschema
import yaml

from engine.reference import reference_markdown
from engine.schema import patch_schema

from ..conftest import ROOT, tonegraph


def test_schema_accepts_shipped_patches_and_rejects_bad_ones(registry):
    schema = patch_schema(registry)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for path in sorted((ROOT / "graphs").glob("*.yaml")):
        errs = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errs, f"{path}: {[e.message for e in errs]}"
    bad = {"nodes": {
        "a": {"type": "control.lfo", "params": {"shape": "sinus"}},
        "b": {"type": "control.lfo", "params": {"frequency": 5000}},
        "c": {"type": "control.map", "params": {"in_range": [0]}},
        "d": {"type": "control.nope"},
        "e": {"type": "control.map", "in": {"valu": "a.out"}},
    }}
    messages = [e.message for e in validator.iter_errors(bad)]
    found = " | ".join(messages)
    assert "'sinus' is not one of" in found
    assert "5000 is greater than the maximum of 1000" in found
    assert "is too short" in found
    assert "'control.nope' is not one of" in found
    assert "'valu' was unexpected" in found


def test_schema_command_prints_json():
    res = tonegraph("schema")
    assert res.returncode == 0
    schema = json.loads(res.stdout)
    assert "control.lfo" in schema["properties"]["nodes"]["additionalProperties"]["properties"]["type"]["enum"]


def test_committed_reference_and_schema_are_up_to_date(registry):
    assert (ROOT / "docs" / "nodes.md").read_text() == reference_markdown(registry), (
        "docs/nodes.md is stale: run 'make docs'")
    committed = json.loads((ROOT / "docs" / "patch.schema.json").read_text())
    assert committed == patch_schema(registry), "docs/patch.schema.json is stale: run 'make docs'"


def test_nodes_command_lists_and_shows(registry):
    res = tonegraph("nodes")
    assert res.returncode == 0
    lines = res.stdout.strip().splitlines()
    assert len(lines) == len(registry.names())
    assert any(l.startswith("control.map ") and "clamp" in l for l in lines)
    one = tonegraph("nodes", "control.map")
    assert "| `fps` | number | `0.0` | 0..1000 Hz |" in one.stdout
    assert "| in | `value` | number |" in one.stdout
    miss = tonegraph("nodes", "control.mapp")
    assert miss.returncode == 1 and "did you mean 'control.map'" in miss.stderr
