"""Every kind of patch problem is reported, all in one run, at the right line and column."""

from __future__ import annotations

import pytest

from tonegraph.engine.graph import load_graph

from ..conftest import tonegraph


def errors_of(path, registry) -> list[str]:
    graph, errors = load_graph(path, registry)
    assert graph is None
    return [str(e) for e in errors]


def test_every_problem_in_one_run_with_positions(write_patch, registry):
    path = write_patch("""
        patch: {name: broken, fps: 60}
        nodes:
          osc1: {type: control.lfoo}
          lfo:  {type: control.lfo, params: {frequncy: 2, shape: sinus, amplitude: loud}}
          fast: {type: control.lfo, params: {frequency: 5000}}
          m:    {type: control.map, in: {valu: lfo.out}}
          m2:   {type: control.map, in: {value: ghost.out}}
          m3:   {type: control.map, in: {value: lfo.outt}}
          env:  {type: control.envelope, in: {trigger: lfo.out}}
          a:    {type: control.map, in: {value: b.out}}
          b:    {type: control.map, in: {value: a.out}}
          lfo:  {type: control.constant}
        """)
    errors = errors_of(path, registry)
    text = "\n".join(errors)
    f = path.name
    expect = [
        (3, 16, "unknown node type 'control.lfoo' (did you mean 'control.lfo'?)"),
        (4, 38, "unknown param 'frequncy' for control.lfo (did you mean 'frequency'?)"),
        (4, 58, "param 'shape' must be one of sine, triangle, saw, square, random-smooth; got 'sinus'"),
        (4, 76, "param 'amplitude' must be a number, got 'loud'"),
        (5, 49, "param 'frequency' = 5000 is outside its range 0..1000 Hz"),
        (6, 34, "unknown input port 'valu' on control.map (did you mean 'value'?)"),
        (7, 41, "no node 'ghost' to wire from"),
        (8, 41, "unknown output port 'outt' on node 'lfo' (control.lfo) (did you mean 'out'?)"),
        (9, 48, "cannot wire number output 'lfo.out' to event input 'trigger' of 'env'"),
        (10, 41, "cycle a -> b -> a"),
        (12, 3, "duplicate node id 'lfo' (first defined at"),
    ]
    for line, col, fragment in expect:
        prefix = f"{f}:{line}:{col}: error: "
        assert any(e.endswith(prefix + fragment) or (prefix + fragment) in e for e in errors), (
            f"missing {prefix}{fragment!r} in:\n{text}")
    assert len(errors) == len(expect), text
    cycle = next(e for e in errors if "cycle" in e)
    assert "{from: b.out, delay: 1}" in cycle


def test_yaml_syntax_error_position(write_patch, registry):
    path = write_patch("""
        nodes:
          lfo: {type: control.lfo
          m: {type: control.map}
        """)
    errors = errors_of(path, registry)
    assert len(errors) == 1
    # Where the unclosed '{' opened (the parser notices on the next line).
    assert f"{path.name}:2:8: error: YAML syntax: a '{{' opened here is never closed" in errors[0], errors


def test_python_tags_are_refused(write_patch, registry):
    path = write_patch("""
        nodes:
          c: {type: control.constant, params: {value: !!python/object/apply:os.system [echo hi]}}
        """)
    errors = errors_of(path, registry)
    assert any(":2:47: error: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system'" in e
               for e in errors), errors


def test_unknown_keys_and_header_checks(write_patch, registry):
    path = write_patch("""
        patch: {name: x, fps: 0, speed: 2}
        nodez: {}
        nodes:
          c: {type: control.constant, parms: {value: 1}}
        """)
    errors = errors_of(path, registry)
    assert any(":1:23: error: patch fps = 0 is outside its range" in e for e in errors), errors
    assert any(":1:26: error: unknown patch header key 'speed'" in e for e in errors), errors
    assert any(":2:1: error: unknown top-level key 'nodez' (did you mean 'nodes'?" in e for e in errors)
    assert any("4:31: error: unknown key in node 'c' 'parms' (did you mean 'params'?" in e
               for e in errors), errors


def test_include_problems(write_patch, registry, tmp_path):
    write_patch("nodes: {c: {type: control.constant}}\n", name="show/part.yaml")
    (tmp_path / "outside.yaml").write_text("nodes: {}\n")
    path = write_patch("""
        include:
          - part.yaml
          - ../outside.yaml
          - missing.yaml
          - /etc/passwd
        nodes:
          m: {type: control.map, in: {value: c}}
        """, name="show/main.yaml")
    errors = errors_of(path, registry)
    assert any("main.yaml:3:5: error: include '../outside.yaml' is outside the patch's folder" in e
               for e in errors), errors
    assert any("main.yaml:4:5: error: include 'missing.yaml' does not exist" in e for e in errors)
    assert any("main.yaml:5:5: error: include '/etc/passwd' is outside" in e for e in errors)
    assert len(errors) == 3, errors


def test_include_merges_nodes_and_reports_in_included_file(write_patch, registry):
    write_patch("""
        nodes:
          c: {type: control.constant, params: {value: 2}}
          bad: {type: control.map, params: {step: -1}}
        """, name="parts/a.yaml")
    path = write_patch("""
        include: parts/a.yaml
        nodes:
          m: {type: control.map, in: {value: c}}
        """)
    errors = errors_of(path, registry)
    assert len(errors) == 1
    assert "a.yaml:3:43: error: param 'step' = -1 is outside its range 0..inf" in errors[0]


def test_include_cycle(write_patch, registry):
    write_patch("include: main.yaml\nnodes: {}\n", name="other.yaml")
    path = write_patch("include: other.yaml\nnodes: {}\n", name="main.yaml")
    errors = errors_of(path, registry)
    assert any("other.yaml:1:10: error: include 'main.yaml' includes itself" in e for e in errors)


def test_delayed_edge_allows_feedback(write_patch, registry):
    path = write_patch("""
        nodes:
          a: {type: control.math, params: {op: add}, in: {x: {from: b.out, delay: 1}}}
          b: {type: control.map, in: {value: a}}
        """)
    graph, errors = load_graph(path, registry)
    assert not errors, errors
    assert graph.order == ["a", "b"]


def test_cli_validate_exit_codes_and_no_traceback(write_patch, registry):
    good = write_patch("nodes: {c: {type: control.constant}}\n", name="good.yaml")
    bad = write_patch("nodes: {c: {type: control.nope}}\n", name="bad.yaml")
    ok = tonegraph("validate", str(good))
    assert ok.returncode == 0, ok.stderr
    res = tonegraph("validate", str(good), str(bad))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "bad.yaml:1:19: error: unknown node type 'control.nope'" in lines[0]
    assert lines[0].endswith("'tonegraph nodes' lists them")
    assert "Traceback" not in res.stderr


def test_cli_run_refuses_invalid_patch(write_patch):
    bad = write_patch("nodes: {c: {type: control.constant, params: {value: high}}}\n")
    res = tonegraph("run", str(bad), "--offline", "--duration", "1")
    assert res.returncode == 1
    assert "patch.yaml:1:53: error: param 'value' must be a number, got 'high'" in res.stderr
    assert "Traceback" not in res.stderr


def test_cli_missing_file_and_binary_junk(tmp_path):
    res = tonegraph("validate", str(tmp_path / "nope.yaml"))
    assert res.returncode == 1 and "error: no such patch file" in res.stderr
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(b"nodes:\n  \xff\xfe\x00\x01 garbage")
    res = tonegraph("validate", str(junk))
    assert res.returncode == 1 and "junk.yaml:2:3: error: file is not UTF-8 text" in res.stderr
    assert "Traceback" not in res.stderr


def test_reader_and_graph_problems_are_reported_together(write_patch):
    path = write_patch("""
        nodez: {}
        nodes:
          lfo: {type: control.lfo, params: {frequency: -1}}
          m: {type: control.map, in: {value: nope}}
        """)
    res = tonegraph("validate", str(path))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 3, res.stderr
    assert ":1:1: error: unknown top-level key 'nodez'" in lines[0]
    assert ":3:48: error: param 'frequency' = -1 is outside its range 0..1000 Hz" in lines[1]
    assert ":4:38: error: no node 'nope' to wire from" in lines[2]


def test_fuzzed_patches_never_raise(registry, tmp_path):
    """Truncations, byte flips, dropped lines and junk: always a list of errors or a graph."""
    import random

    from ..conftest import ROOT

    source = (ROOT / "graphs" / "demo.yaml").read_bytes()
    rng = random.Random(1234)
    path = tmp_path / "fuzz.yaml"
    outcomes = {"ok": 0, "errors": 0}
    for i in range(400):
        data = bytearray(source)
        kind = i % 4
        if kind == 0:
            data = data[: rng.randrange(len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.choice(b"{}[]:,'\\\"!&*|>-#\x00\xff 0a")
        elif kind == 2:
            lines = data.split(b"\n")
            del lines[rng.randrange(len(lines))]
            data = bytearray(b"\n".join(lines))
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 300)))
        path.write_bytes(bytes(data))
        graph, errors = load_graph(path, registry)
        assert (graph is None) == bool(errors)
        for e in errors:
            assert e.loc is not None and e.loc.line >= 1 and e.loc.col >= 1
        outcomes["ok" if graph else "errors"] += 1
    assert outcomes["errors"] > 200


def test_names_are_taken_as_written_not_as_yaml_booleans(write_patch, registry):
    # YAML 1.1 reads a bare on/off/yes/no as a boolean; ids, keys and wires are names.
    path = write_patch("""
        nodes:
          on: {type: control.constant, params: {value: 1}}
          no: {type: control.map, in: {value: on}}
        """)
    graph, errors = load_graph(path, registry)
    assert not errors, errors
    assert set(graph.nodes) == {"on", "no"}


def test_empty_patch_and_patch_without_nodes_are_errors(write_patch, registry):
    for text, fragment in [("", "the patch is empty"), ("# only a comment\n", "the patch is empty"),
                           ("patch: {name: x}\n", "the patch has no nodes"),
                           ("nodes: {}\n", "the patch has no nodes")]:
        path = write_patch(text)
        errors = errors_of(path, registry)
        assert len(errors) == 1 and f"{path.name}:1:1: error: {fragment}" in errors[0], errors
    res = tonegraph("validate", str(write_patch("")))
    assert res.returncode == 1 and "the patch is empty" in res.stderr


def test_alias_bombs_and_recursion_are_errors_with_positions(write_patch, registry):
    # The "billion laughs": nine levels of ten aliases each (657 bytes, 10^9 values).
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    bomb = write_patch("nodes:\n  c: {type: control.constant}\njunk:\n" +
                       "".join(f"  {line}\n" for line in levels), name="bomb.yaml")
    errors = errors_of(bomb, registry)
    assert any("bomb.yaml:" in e and "aliases expand to more than" in e for e in errors), errors
    loop = write_patch("nodes:\n  c: {type: control.constant, params: {value: &v [1, *v]}}\n",
                       name="loop.yaml")
    errors = errors_of(loop, registry)
    assert any("loop.yaml:2:54: error: alias 'v' refers to itself" in e for e in errors), errors


def test_nesting_depth_is_bounded(write_patch, registry):
    deep = write_patch("nodes:\n  c: {type: control.constant, params: {value: " + "[" * 5000 +
                       "]" * 5000 + "}}\n", name="deep.yaml")
    errors = errors_of(deep, registry)
    assert len(errors) == 1 and "deep.yaml:2:" in errors[0] and "nested deeper than" in errors[0]


def test_huge_numbers_are_errors_not_crashes(write_patch, registry):
    path = write_patch(f"""
        nodes:
          a: {{type: control.constant, params: {{value: {"9" * 400}}}}}
          m: {{type: control.math, params: {{op: expr, expr: "x * {"1" * 400}"}}, in: {{x: a}}}}
        """)
    errors = errors_of(path, registry)
    assert any(":2:" in e and "param 'value'" in e and "too large" in e for e in errors), errors
    assert any(":3:" in e and "number too large" in e for e in errors), errors


def test_cli_validate_never_prints_a_traceback(write_patch):
    files = [write_patch("", name="empty.yaml"),
             write_patch("nodes:\n  c: {type: control.constant, params: {value: &v [1, *v]}}\n",
                         name="loop.yaml"),
             write_patch("nodes: {c: {type: control.constant, params: {value: " + "[" * 3000 +
                         "]" * 3000 + "}}}\n", name="deep.yaml"),
             write_patch("nodes:\n  a: {type: control.constant}\n  m: {type: control.math, params: "
                         "{op: expr, expr: '" + "+".join(["a"] * 3000) + "'}, in: {a: a}}\n",
                         name="long.yaml")]
    res = tonegraph("validate", *map(str, files))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 4 and all(": error: " in line for line in lines), res.stderr


def test_osc_in_mappings_of_the_wrong_shape_are_named(write_patch, registry):
    path = write_patch("nodes:\n  in: {type: osc.in, params: {addresses: "
                       "{x: {address: 5}, y: {address: /y, type: [1]}, z: 7}}}\n")
    errors = errors_of(path, registry)
    assert any("address of 'x' must start with '/', got 5" in e for e in errors), errors
    assert any("type of 'y' must be one of number, vector, event, text" in e for e in errors), errors
    assert any("'z' needs an address pattern" in e for e in errors), errors
    assert not any("could not check" in e for e in errors), errors


@pytest.mark.parametrize("text,where,words", [
    ("nodes:\n  a: {type: control.lfo}\n   b: {type: control.lfo}\n", "3:4",
     "this line is indented more than the lines it belongs with"),
    ("nodes:\n\ta: {type: control.lfo}\n", "2:1", "a tab: YAML indents with spaces only"),
    ("nodes:\n  a: {type: control.lfo\n", "2:6", "a '{' opened here is never closed with '}'"),
    ("nodes:\n  a: \"control.lfo\n", "2:6", "a quote opened here is never closed"),
    ("nodes:\n  a: {type: x}\n  b: c: 1\n", "3:7", "a ':' where none can be"),
])
def test_yaml_mistakes_are_said_in_plain_words_where_they_are(tmp_path, registry, text, where, words):
    """PyYAML's words ('expected <block end>, but found <block mapping start>') become
    what to fix; an unclosed bracket or quote is shown where it was opened."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    errors = errors_of(path, registry)
    assert len(errors) == 1 and f"p.yaml:{where}: error: YAML syntax: {words}" in errors[0], errors
    assert "<block" not in errors[0]


def test_a_sound_file_given_as_the_patch_says_what_it_is_and_how_to_play_it(registry):
    from ..conftest import ROOT

    errors = errors_of(ROOT / "graphs" / "media" / "groove.flac", registry)
    assert len(errors) == 1 and "this is a FLAC sound file, not a patch" in errors[0]
    assert "--set song.path=" in errors[0]


def test_a_whole_song_given_as_the_patch_is_named_a_song_not_a_big_patch(registry, tmp_path):
    """A real song is over the 1 MiB a patch may be: it was refused by its size alone.
    `render SONG` said so with 'error:' twice."""
    song = tmp_path / "song.flac"
    song.write_bytes(b"fLaC" + bytes(2 << 20))
    errors = errors_of(song, registry)
    assert len(errors) == 1 and "this is a FLAC sound file, not a patch" in errors[0], errors
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(b"x: " + b"1" * (2 << 20))
    assert "larger than the 1 MiB a patch file may be" in errors_of(junk, registry)[0]
    res = tonegraph("render", str(song), "-o", str(tmp_path / "x.mp4"))
    assert res.returncode == 1 and res.stderr.count("error:") == 1, res.stderr
    assert res.stderr.startswith(f"{song}:1:1: error: this is a FLAC sound file"), res.stderr
