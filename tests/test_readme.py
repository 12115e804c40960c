"""Every command the README and the manual show, pasted as it is into a fresh copy of the project.

The shell blocks of README.md and of each page of docs/ are run in order, each file in
a copy of the working tree of its own (two files at a time), with the virtual
environment on PATH as `. .venv/bin/activate` puts it.  What a user brings is
stood in for: `song.flac` is the built-in groove, `~/drawings` a few drawn squiggles,
`~/music/set` two short synthetic clips, and the models a user would wait hours to
train are trained for a few steps beforehand.  A command that ends by itself (an
analysis, a version) must succeed within `FINITE` seconds; one that runs until stopped
or for minutes (a show, a training, a render, making a training set: `LONG`) is stopped
with Ctrl-C (SIGINT) after `STARTED` seconds if it is still running, and must stop
cleanly.  Either way it must print no traceback and no error line.  `make ...`, the activation line and `oscsend` (which
talks to a running engine; examples/osc has its own tests) are not run here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STARTED = 6.0     # [s] a long command must have started without error by then
FINITE = 300.0    # [s] a command that ends by itself must have ended by then
LONG = ("tonegraph run ", "tonegraph train ", "tonegraph render ", "tonegraph sounds -o build/",
        "tonegraph draw -o build/")
SKIP = ("make ", ". .venv/bin/activate", "oscsend ")
#: The README, then the manual's pages (the node reference is generated and shows none).
DOCUMENTS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "nodes.md")]
WORKERS = 2       # files run at a time


def readme_commands() -> list[str]:
    """Every documented command, README first."""
    return list(dict.fromkeys(c for doc in DOCUMENTS for c in documented_commands(doc)))


def documented_commands(doc: Path) -> list[str]:
    """A file's shell blocks' commands, and the "run it" column of a table of patches."""
    text = doc.read_text()
    commands = [m for row in text.splitlines() if row.startswith("| [graphs/")
                for m in re.findall(r"`(tonegraph [^`]+)`", row)]
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#\s", " " + line.strip() + " ")[0].strip()
            if line and not line.startswith("#") and not line.startswith(SKIP):
                commands.append(line)
    return list(dict.fromkeys(commands))          # a command shown twice is run once


def run_as_pasted(command: str, cwd: Path, env: dict) -> tuple[int, str, bool]:
    """(exit code, stderr and stdout, whether it was stopped with Ctrl-C)."""
    # Ctrl-C as a terminal delivers it: SIGINT at its default even when the suite was
    # started in the background, whose children inherit it ignored.
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    long = command.startswith(LONG) and "--duration" not in command
    try:
        out, _ = proc.communicate(timeout=STARTED if long else FINITE)
        return proc.returncode, out, False
    except subprocess.TimeoutExpired:
        if not long:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return -9, out + f"\n[still running after {FINITE:g} s]", False
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)        # its children too (a Dask cluster)
            out, _ = proc.communicate()
            return -9, out + "\n[did not stop within 60 s of Ctrl-C]", True
        return proc.returncode, out, True


def test_every_readme_command_runs_as_pasted(tmp_path):
    base = tmp_path / "base"
    shutil.copytree(ROOT, base / "tonegraph", symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "*.jsonl", "*.ckpt"))
    (base / "home").mkdir()

    def environment(where: Path) -> dict:
        env = {**os.environ, "HOME": str(where / "home"),
               "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "VIRTUAL_ENV": str(ROOT / ".venv")}
        env.pop("DISPLAY", None)
        return env

    def prepare(command: str) -> None:
        res = subprocess.run(["bash", "-c", command], cwd=base / "tonegraph", env=environment(base),
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, f"stand-in {command!r}: {res.stdout}{res.stderr}"
    prepare("tonegraph synth -o song.flac --bars 8")
    prepare("tonegraph draw -o ~/drawings --count 8 --mkdir")
    prepare("tonegraph sounds -o ~/music/set --count 2 --seconds 2 --mkdir")
    prepare("tonegraph train gan --images ~/drawings -o drawings.pt --size 64 --steps 2 -q")
    prepare("mkdir -p models && cp drawings.pt models/drawings.pt && "
            "tonegraph train autoencoder --audio ~/music/set -o models/set.pt --epochs 1 -q")

    def run_document(doc: Path) -> list[str]:
        where = tmp_path / doc.stem
        shutil.copytree(base, where, symlinks=True)
        failures = []
        for command in documented_commands(doc):
            code, out, stopped = run_as_pasted(command, where / "tonegraph", environment(where))
            bad = [line for line in out.splitlines()
                   if "Traceback" in line or re.search(r"(^|: )error:", line)]
            # After Ctrl-C: stopped cleanly (0), interrupted (130), or ended by the signal
            # itself (-2) when it came as the command was exiting anyway.
            if bad or code not in ((0, 130, -signal.SIGINT) if stopped else (0,)):
                failures.append(f"{doc.name}: {command}\n    exit {code}{' after Ctrl-C' if stopped else ''}: "
                                + "\n    ".join((bad or out.strip().splitlines() or ["(no output)"])[-3:]))
        return failures

    assert len(documented_commands(DOCUMENTS[0])) >= 15
    assert len(readme_commands()) >= 30
    with_commands = [doc for doc in DOCUMENTS if documented_commands(doc)]
    with ThreadPoolExecutor(WORKERS) as pool:
        failures = [f for found in pool.map(run_document, with_commands) for f in found]
    assert not failures, "documented commands that fail as pasted:\n" + "\n".join(failures)
