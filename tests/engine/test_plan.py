"""The plan, as plain data: domains, schedules, how inputs are fed, and the reload diff.
No node object, thread or clock is involved: make_plan is a pure function."""

from __future__ import annotations

from tonegraph.engine.plan import AUDIO, CONTROL, RENDER, make_plan

from ..conftest import load_ok, tonegraph

SHOW = """
patch: {{fps: {fps}, samplerate: 48000, hop: {hop}}}
nodes:
  mic:    {{type: audio.synth}}
  onsets: {{type: audio.onset, in: {{audio: mic}}}}
  spec:   {{type: audio.spectrum, params: {{size: {size}}}, in: {{audio: mic}}}}
  strobe: {{type: control.envelope, params: {{decay: {decay}}}, in: {{trigger: onsets}}}}
  acc:    {{type: control.math, params: {{op: add}}, in: {{a: strobe, b: {{from: acc.out, delay: 1}}}}}}
  desk:   {{type: osc.out, in: {{/hit: onsets, /dim: strobe}}}}
  look:   {{type: gl.shader, params: {{source: "void main() {{ color = vec4(level); }}"}},
           in: {{level: strobe, onset: onsets}}}}
  out:    {{type: gl.window, in: {{image: look}}}}
{extra}"""


def plan_of(write_patch, registry, previous=None, name="show.yaml", fps=60, hop=512, size=2048,
            decay=0.1, extra="", **kw):
    path = write_patch(SHOW.format(fps=fps, hop=hop, size=size, decay=decay, extra=extra), name=name)
    return make_plan(load_ok(path, registry), registry, previous, **kw)


def calls(plan, domain):
    return [(c.node, c.method) for step in plan.schedules[domain] for c in step.calls]


def inputs(plan, node, method="process"):
    for steps in plan.schedules.values():
        for step in steps:
            for c in step.calls:
                if c.node == node and c.method == method:
                    return {i.port: (i.kind, i.src, i.src_port) for i in c.inputs}
    raise KeyError(node)


def test_domains_and_schedules(write_patch, registry):
    plan = plan_of(write_patch, registry)
    assert calls(plan, AUDIO) == [("mic", "process"), ("onsets", "process"), ("spec", "process"),
                                  ("desk", "process_audio")]
    assert calls(plan, CONTROL) == [("strobe", "process"), ("acc", "process"), ("desk", "process")]
    assert calls(plan, RENDER) == [("look", "process"), ("out", "process")]
    assert plan.nodes["desk"].audio_side and plan.nodes["desk"].audio_inputs == {"/hit"}
    assert plan.nodes["look"].domain == RENDER and plan.nodes["strobe"].domain == CONTROL


def test_how_each_input_is_fed(write_patch, registry):
    plan = plan_of(write_patch, registry)
    # Events crossing domains go through a queue of their own per wire.
    kind, key, _ = inputs(plan, "strobe")["trigger"]
    assert kind == "drain" and key == "onsets.onset>strobe.trigger"
    assert inputs(plan, "look")["onset"][:2] == ("drain", "onsets.onset>look.onset")
    assert set(plan.queues()) == {"onsets.onset>strobe.trigger", "onsets.onset>look.onset"}
    # Values crossing domains are copies of the latest; audio events reach osc.out's audio side.
    assert inputs(plan, "look")["level"] == ("copy", "strobe", "out")
    assert inputs(plan, "desk", "process_audio") == {"/hit": ("copy", "onsets", "onset")}
    assert inputs(plan, "desk") == {"/dim": ("copy", "strobe", "out")}
    # A feedback wire reads a buffer refreshed at the end of its source's domain tick.
    kind, key, _ = inputs(plan, "acc")["b"]
    assert kind == "delayed" and [(d.key, d.domain) for d in plan.delays] == [(key, CONTROL)]
    # Event outputs are emptied before each call, except on an audio side.
    step = {c.node: c for s in plan.schedules[CONTROL] for c in s.calls}
    assert step["strobe"].clears == ("done",)
    onset_call = plan.schedules[AUDIO][1].calls[0]
    assert onset_call.posts == (("onset", "onsets.onset>strobe.trigger"),
                                ("onset", "onsets.onset>look.onset"))


def test_plans_are_plain_data_and_repeatable(write_patch, registry):
    a = plan_of(write_patch, registry)
    b = plan_of(write_patch, registry)
    assert a == b and a is not b
    assert "control (60 Hz, never waits for pictures)" in a.describe()
    assert "trigger <- onsets.onset  [queued across domains]" in a.describe()


def test_diff_kept_changed_new_removed(write_patch, registry):
    first = plan_of(write_patch, registry)
    assert first.diff.new == first.order and not first.diff.kept
    second = plan_of(write_patch, registry, first, decay=0.3,
                     extra="  c: {type: control.constant}\n")
    d = second.diff
    assert d.new == ("c",) and not d.removed and not d.restarted and not d.replaced
    assert set(d.kept) == set(first.order) and dict(d.changed) == {"strobe": ("decay",)}
    third = make_plan(load_ok(write_patch("nodes: {c: {type: control.constant}}\n", name="x.yaml"),
                              registry), registry, second)
    assert third.diff.kept == ("c",) and set(third.diff.removed) == set(first.order)


def test_diff_restarts_with_reasons(write_patch, registry):
    first = plan_of(write_patch, registry)
    d = plan_of(write_patch, registry, first, size=1024).diff
    assert dict(d.restarted) == {"spec": "size changed"}
    # A rewired node is built anew; so is one whose outputs change with its params.
    path = write_patch(SHOW.format(fps=60, hop=512, size=2048, decay=0.1, extra="")
                       .replace("in: {level: strobe, onset: onsets}", "in: {level: strobe}"),
                       name="rewired.yaml")
    d = make_plan(load_ok(path, registry), registry, first).diff
    assert dict(d.restarted) == {"look": "wiring changed"}
    a = make_plan(load_ok(write_patch("nodes: {i: {type: osc.in, params: {addresses: {x: /x}}}}\n",
                                      name="i1.yaml"), registry), registry)
    b = make_plan(load_ok(write_patch("nodes: {i: {type: osc.in, params: {addresses: {y: /y}}}}\n",
                                      name="i2.yaml"), registry), registry, a)
    assert dict(b.diff.restarted) == {"i": "outputs changed"}
    # Files changed on disk, a node failing, live overrides.
    d = plan_of(write_patch, registry, first, stale={"mic"}, fresh={"acc"}).diff
    assert d.replaced == ("mic",) and dict(d.restarted) == {"acc": "kept failing"}
    assert d.fresh_start == ("acc",) and d.carried == ("mic",)
    over = plan_of(write_patch, registry, first, overrides={"spec": {"size": 512}})
    assert dict(over.diff.restarted) == {"spec": "size changed"}
    assert over.nodes["spec"].params["size"] == 512


def test_header_changes(write_patch, registry):
    first = plan_of(write_patch, registry)
    faster = plan_of(write_patch, registry, first, fps=30)
    assert dict(faster.diff.header) == {"fps": (60.0, 30.0)} and not faster.diff.restarted
    assert faster.header.fps == 30.0
    # A new hop re-makes the audio side and what takes audio; the rest is kept.
    d = plan_of(write_patch, registry, first, hop=256).diff
    assert dict(d.header) == {"hop": (512, 256)}
    assert set(d.restarted) == {"mic", "onsets", "spec", "desk"}
    assert {"strobe", "acc", "look", "out"} <= set(d.kept)
    # A pinned rate (run --fps) wins over the header.
    assert plan_of(write_patch, registry, fps=60, name="p.yaml").header.fps == 60.0
    assert make_plan(first.graph, registry, fps=25).header.fps == 25.0


def test_cli_prints_the_plan(write_patch):
    path = write_patch(SHOW.format(fps=60, hop=512, size=2048, decay=0.1, extra=""))
    res = tonegraph("graph", str(path), "--plan")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("plan for patch: 60 fps, 48000 Hz, hop 512 (10.7 ms)")
    assert "render (up to 60 fps, late frames dropped):" in res.stdout
