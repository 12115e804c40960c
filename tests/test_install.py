"""The package as a user installs it: a wheel built from this checkout, installed into a
fresh virtual environment that sees only the core's declared dependencies, runs the demo
patch from another folder and puts nothing at the top level but ``tonegraph``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def core_closure(name: str = "tonegraph") -> list:
    """The distributions a core install pulls in: the project's requirements without
    extras, and theirs, taken from the metadata of what is installed here."""
    seen: dict[str, object] = {}
    todo = [name]
    while todo:
        dist = distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in seen:
            continue
        seen[key] = dist
        for line in dist.requires or ():
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    seen.pop("tonegraph")
    return list(seen.values())


def test_a_wheel_installs_under_one_name_and_the_core_runs_the_demo(tmp_path):
    # Built from a copy of the working tree, so setuptools' build folder stays out of it.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-w", str(wheels), str(source)], check=True, capture_output=True, text=True,
                           timeout=300)
    # No packaging warning on every install (the weights' folder was one: 30 lines of it).
    assert "Warning" not in built.stdout + built.stderr, built.stdout + built.stderr
    (wheel,) = wheels.glob("tonegraph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"tonegraph", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    assert "tonegraph/engine/cli.py" in names and "tonegraph/nodes/ml/models/gan.pt" in names
    # Every node package is in the wheel (a new folder left out of pyproject's list is not).
    for init in list((ROOT / "engine").rglob("__init__.py")) + list((ROOT / "nodes").rglob("__init__.py")):
        assert "tonegraph/" + init.relative_to(ROOT).as_posix() in names

    # A fresh environment: the wheel, and through a .pth only the core's dependencies.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    deps = tmp_path / "deps"
    deps.mkdir()
    for dist in core_closure():
        for top in {Path(str(f)).parts[0] for f in dist.files or ()}:
            source = Path(dist.locate_file(top))
            if source.exists() and top not in ("..", "bin") and not (deps / top).exists():
                (deps / top).symlink_to(source)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "core-deps.pth").write_text(str(deps) + "\n")

    where = subprocess.run([str(py), "-c", "import tonegraph.engine as e; print(e.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0 and where.stdout.startswith(str(site)), where.stdout + where.stderr
    for extra_module in ("torch", "pyglet", "engine", "nodes"):
        res = subprocess.run([str(py), "-c", f"import {extra_module}"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 1 and "No module named" in res.stderr, extra_module

    demo = subprocess.run([str(venv / "bin" / "tonegraph"), "run", str(ROOT / "graphs" / "demo.yaml"),
                           "--offline", "--duration", "2"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert demo.returncode == 0 and "would send" in demo.stdout, demo.stderr
    assert "Traceback" not in demo.stderr


def test_make_demo_installs_the_core_alone_and_make_test_the_rest(tmp_path):
    """`make demo` printed cues after installing torch, JACK, OLA, Pd and a 148 MB
    soundfont; now it installs the core (no Debian package beyond Python's venv) and
    says how to get the rest. Read from make's dry run in a folder with no venv."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)

    def plan(target: str) -> str:
        res = subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    demo, test = plan("demo"), plan("test")
    installs = [line for line in demo.splitlines() if "pip install" in line]
    assert installs[-1].endswith("pip install -q -e .") and "apt-get" not in demo, demo
    assert not [line for line in installs if "torch" in line or "[" in line], installs
    assert "tonegraph run graphs/demo.yaml" in demo and "make setup-all installs the rest" in demo
    assert 'pip install -q "torch==' in test and '-e ".[all,dev,docs]"' in test and "apt-get" in test
    assert "-m pytest" in test
