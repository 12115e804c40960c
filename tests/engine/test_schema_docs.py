"""The JSON schema and node reference come from the declarations and stay in sync."""

from __future__ import annotations

import json

import jsonschema
import yaml

from tonegraph.engine.reference import reference_markdown
from tonegraph.engine.schema import patch_schema

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
    # Mapping params have a shape too: osc.in's outputs, osc.out's per-address settings,
    # and wires are 'node' or 'node.port'.
    for node, fragment in [
        ({"type": "osc.in", "params": {"addresses": {"x": {"address": 5}}}}, "is not valid under any"),
        ({"type": "osc.in", "params": {"addresses": {"x": {"address": "/x", "type": "colour"}}}},
         "is not valid under any"),
        ({"type": "osc.in", "params": {"addresses": {"x": "no-slash"}}}, "is not valid under any"),
        ({"type": "osc.out", "params": {"addresses": {"/a": {"polcy": "always"}}}}, "'polcy' was unexpected"),
        ({"type": "osc.out", "params": {"addresses": {"/a": {"max_rate": -1}}}}, "less than the minimum"),
        ({"type": "osc.out", "params": {"addresses": {"a": {}}}}, "does not match '^/'"),
        ({"type": "control.map", "in": {"value": "a b"}}, "is not valid under any"),
    ]:
        msgs = " | ".join(e.message for e in validator.iter_errors({"nodes": {"n": node}}))
        assert fragment in msgs, (node, msgs)
    good = {"type": "osc.in", "params": {"addresses": {"x": "/fader/1", "y": {"address": "/xy", "type": "vector"}}}}
    assert not list(validator.iter_errors({"nodes": {"n": good}}))


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


def test_every_shipped_patch_names_the_schema_for_editors():
    schema = (ROOT / "docs" / "patch.schema.json").resolve()
    patches = sorted(ROOT.glob("graphs/**/*.yaml")) + sorted(ROOT.glob("examples/**/*.yaml"))
    assert len(patches) >= 15
    for path in patches:
        first = path.read_text().splitlines()[0]
        prefix = "# yaml-language-server: $schema="
        assert first.startswith(prefix), path
        assert (path.parent / first[len(prefix):]).resolve() == schema, path
    settings = json.loads((ROOT / ".vscode" / "settings.json").read_text())
    assert set(settings["yaml.schemas"]["./docs/patch.schema.json"]) >= {"graphs/**/*.yaml", "examples/**/*.yaml"}
