"""Every command refuses bad arguments in one line (exit 2 from argparse, 1 from the
command), never with a traceback and never by running on with a nonsense value."""

from __future__ import annotations

import argparse

import pytest

from tonegraph.engine import cli

from ..conftest import ROOT, tonegraph

PATCH = str(ROOT / "graphs" / "demo.yaml")
TUNNEL = str(ROOT / "graphs" / "tunnel.yaml")

BAD = [
    ["run", PATCH, "--fps", "-10"],
    ["run", PATCH, "--fps", "0"],
    ["run", PATCH, "--fps", "abc"],
    ["run", PATCH, "--duration", "nan"],
    ["run", PATCH, "--duration", "-5"],
    ["run", PATCH, "--duration", "inf"],
    ["run", PATCH, "--osc-port", "99999"],
    ["run", PATCH, "--osc-port", "70000"],
    ["run", PATCH, "--osc-port", "-1"],
    ["run", PATCH, "--oscquery-port", "65536"],
    ["run", PATCH, "--restart-failing", "-2"],
    ["run", PATCH, "--status-interval", "0"],
    ["synth", "-o", "{tmp}/x.wav", "--bars", "0"],
    ["synth", "-o", "{tmp}/x.wav", "--bpm", "-5"],
    ["synth", "-o", "{tmp}/x.wav", "--samplerate", "0"],
    ["synth", "-o", "{tmp}/missing/x.wav"],
    ["schema", "-o", "{tmp}/missing_dir/x.json"],
    ["docs", "-o", "{tmp}/missing_dir/x.md"],
    ["graph", PATCH, "-o", "{tmp}/missing_dir/x.dot"],
    ["render", TUNNEL, "-o", "{tmp}/missing/x.mp4"],
    ["render", TUNNEL, "-o", "{tmp}/x.mp4", "--size", "0x0"],
    ["render", TUNNEL, "-o", "{tmp}/x.mp4", "--size", "big"],
    ["render", TUNNEL, "-o", "{tmp}/x.mp4", "--fps", "-1"],
    ["render", TUNNEL, "-o", "{tmp}/x.mp4", "--start", "-3"],
    ["render", TUNNEL, "-o", "{tmp}/x.mp4", "--end", "nan"],
    ["render", TUNNEL, "-o", "{tmp}/x.mp4", "--preroll", "-1"],
    ["render", TUNNEL, "-o", "{tmp}/x.mp4", "--crf", "99"],
    ["train", "gan", "--images", "{tmp}", "-o", "{tmp}/g.pt", "--steps", "0"],
    ["train", "gan", "--images", "{tmp}", "-o", "{tmp}/g.pt", "--lr", "-1"],
    ["train", "gan", "--images", "{tmp}", "-o", "{tmp}/g.pt", "--ema", "1.5"],
    ["train", "gan", "--images", "{tmp}", "-o", "{tmp}/g.pt", "--size", "3"],
    ["train", "gan", "--images", "{tmp}", "-o", "{tmp}/g.pt", "--temperature", "0"],
    ["train", "gan", "--images", "{tmp}", "-o", "{tmp}/g.pt", "--temperature", "0.5"],   # not a palette
    ["train", "gan", "--images", "{tmp}", "-o", "{tmp}/missing/g.pt"],
    ["train", "autoencoder", "--audio", "{tmp}", "-o", "{tmp}/a.pt", "--epochs", "0"],
    ["train", "autoencoder", "--audio", "{tmp}", "-o", "{tmp}/a.pt", "--seed", "-1"],
    ["train", "autoencoder", "--audio", "{tmp}", "-o", "{tmp}/a.pt", "--hidden", "0,3"],
    ["draw", "-o", "{tmp}/d", "--count", "0"],
    ["draw", "-o", "{tmp}/d", "--size", "2"],
    ["draw", "-o", "{tmp}/missing/d"],
    ["sounds", "-o", "{tmp}/s", "--count", "0"],
    ["sounds", "-o", "{tmp}/s", "--seconds", "1e9"],
    ["analyze", str(ROOT / "graphs" / "media" / "groove.flac"), "-o", "{tmp}/missing/map"],
    ["analyze", str(ROOT / "graphs" / "media" / "groove.flac"), "-o", "{tmp}/map", "--dims", "4"],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a[:1] + a[2:] if a[0] in ("run", "render", "graph")
                                                      else a).replace(str(ROOT), "") for a in BAD])
def test_a_bad_argument_is_one_line(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code in (1, 2), (code, err)
    assert len(errors) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "missing").exists()             # nothing made unasked


def test_the_real_command_line_says_so_without_a_traceback():
    res = tonegraph("run", PATCH, "--duration", "nan")
    assert res.returncode == 2 and "--duration: expected a finite number, got 'nan'" in res.stderr
    assert "Traceback" not in res.stderr


def test_mkdir_makes_the_output_folder(tmp_path):
    out = tmp_path / "new" / "deeper" / "groove.wav"
    assert cli.main(["synth", "-o", str(out), "--bars", "1", "--samplerate", "8000", "--mkdir"]) == 0
    assert out.is_file()


def _commands(parser: argparse.ArgumentParser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))
            return
    yield path, parser


def test_every_command_takes_nodes_path_and_every_number_is_checked():
    commands = list(_commands(cli.build_parser()))
    assert len(commands) >= 12
    for path, parser in commands:
        options = {s for a in parser._actions for s in a.option_strings}
        assert "--nodes-path" in options, path
        for action in parser._actions:
            # No bare int/float: every number goes through a range-checked type (or choices).
            assert action.type not in (int, float) or action.choices, (path, action.option_strings)


def test_one_version_and_a_licence():
    from importlib.metadata import metadata, version

    from tonegraph import engine

    assert version("tonegraph") == engine.__version__
    assert "version" in (ROOT / "pyproject.toml").read_text().split("dynamic = ")[1].split("\n")[0]
    assert metadata("tonegraph")["License-Expression"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


WITHOUT_EXTRAS = r"""
import sys
# The extras' libraries made unimportable in this process, as in a core-only install
# (pip install tonegraph): a stand-in for a second virtual environment.
for m in ("torch", "pyglet", "sklearn", "matplotlib", "imageio_ffmpeg", "PIL", "aalink", "mido",
          "rtmidi", "sacn", "stupidArtnet"):
    sys.modules[m] = None
from tonegraph.engine.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.exit(code)
"""


def test_the_core_without_extras_runs_the_demo_and_names_what_to_install():
    import subprocess
    import sys

    def run(*argv):
        return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, *argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    demo = run("run", "graphs/demo.yaml", "--offline", "--duration", "2")
    assert demo.returncode == 0 and "would send" in demo.stdout, demo.stderr
    listed = run("nodes")
    assert "ml.gan" in listed.stdout and "[needs: pip install 'tonegraph[ml]']" in listed.stdout
    assert "gl.shader" in listed.stdout and "tonegraph[gl]" in listed.stdout
    core = next(line for line in listed.stdout.splitlines() if line.startswith("control.map "))
    assert "[needs" not in core
    learned = run("validate", "graphs/learned.yaml")
    assert learned.returncode == 1
    assert "node 'code' (ml.autoencoder) needs the 'ml' extra (torch is not installed)" in learned.stderr
    assert "Traceback" not in learned.stderr
    # One line per extra, however many nodes need it (the tunnel's three gl nodes gave three).
    assert learned.stderr.count("\n") == 1 and "(so do 'walker', 'coded')" in learned.stderr, learned.stderr
    tunnel = run("run", "graphs/tunnel.yaml", "--headless", "--duration", "1")
    assert tunnel.returncode == 1 and tunnel.stderr.count("pip install 'tonegraph[gl]'") == 1, tunnel.stderr
    for argv, extra in ((["render", "graphs/tunnel.yaml", "-o", "x.mp4"], "gl"),
                        (["analyze", "graphs/media/groove.flac", "-o", "map"], "analyze"),
                        (["draw", "-o", "squiggles"], "ml")):
        res = run(*argv)
        assert res.returncode == 1 and f"pip install 'tonegraph[{extra}]'" in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1


def test_every_tonegraph_command_in_the_readme_parses():
    """Each `tonegraph ...` command the README and the manual show is a command line the parser
    accepts (options renamed or removed would break pasting them); tests/test_readme.py
    runs them, this checks them in a second."""
    import shlex

    from ..test_readme import readme_commands

    commands = [c for c in readme_commands() if c.startswith("tonegraph ")]
    assert len(commands) >= 15
    for line in commands:
        argv = shlex.split(line)[1:]
        if argv == ["--version"]:
            continue
        try:
            cli.build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"documented command: {line}")


def test_a_mistyped_option_is_refused_by_its_command_with_the_nearest_option():
    """`run --duraton` printed the top level's usage; now run's error, with the option
    meant, in one line (a usage block before it hid the answer); a misspelt command
    gets the nearest one, and an option is never guessed from its first letters."""
    res = tonegraph("run", "graphs/demo.yaml", "--duraton", "2")
    assert res.returncode == 2
    assert "tonegraph run: error: unrecognized arguments: --duraton 2 (did you mean --duration?)" in res.stderr
    assert res.stderr.count("\n") == 1 and "'tonegraph run --help' lists what it takes" in res.stderr
    res = tonegraph("rnu", "graphs/demo.yaml")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "tonegraph: error: no command 'rnu' (did you mean 'run'?)" in res.stderr
    res = tonegraph("zzzzzz")
    assert res.returncode == 2 and "no command 'zzzzzz'; commands: validate, run, learn" in res.stderr
    res = tonegraph("run", "graphs/demo.yaml", "--headles", "--duration", "0.1")
    assert res.returncode == 2 and "(did you mean --headless?)" in res.stderr
    res = tonegraph("train", "onsets", "-o", "x.npz", "--stepz", "3")
    assert res.returncode == 2 and "tonegraph train onsets: error:" in res.stderr and "--steps?" in res.stderr
