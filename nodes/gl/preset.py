"""gl.preset: seed 002's presets, a shader with a parameters file mapping features to it.

A preset is a JSON file, read and checked when the patch loads and again whenever it
is saved (a broken save keeps the last good preset)::

    {
      "shader": "particles.frag",
      "init": {"count": 24, "palette": 0.6},
      "update": [
        {"name": "swirl", "feature": 0, "min": 0, "max": 3, "step": 0.5, "FPS": 60,
         "phase": "spin"},
        {"name": "hue", "feature": 2, "min": 0, "max": 1, "step": 0, "FPS": 0.1}
      ]
    }

``shader`` is found next to the preset and must lie inside the patch's folder (as a
patch's includes must); a preset the user names outside that folder may name files in
its own folder, no further.  A preset or parameters file is at most 1 MiB
(:func:`engine.files.read_json`), checked before it is parsed.

``sprites`` (optional) is how many sprites a shader with a ``sprite()`` function draws
(see gl.shader): a count, or the name of a value in ``init`` or ``update``.

``init`` sets uniforms once (what the seed's ``init()`` set up: counts, palettes);
``update`` is the seed's parameters file (or, with ``mapping``, a separate JSON file
holding that list, so one preset can be played by several mappings), one entry per
animation parameter, applied every frame (the seed's ``update(timeDelta, parameters)``): element ``feature`` of the
``features`` input (0..1, e.g. ml.autoencoder's code) scaled to ``min``..``max``,
quantised to ``step`` (0: continuous) with ``hysteresis`` (a fraction of a step,
default 0.25) so it does not flicker at an edge, and updated at most ``FPS`` times a
second.  An entry with ``phase`` also integrates its value over time into the uniform
of that name: a shader that turns by ``spin`` instead of ``time * swirl`` keeps
turning smoothly when the speed changes, where the product jumps.

The node draws like gl.shader (the shader file is found next to the preset and
reloaded on save; every other input reaches it as a uniform by name) and outputs the
mapped values in file order as ``values``, for recording as the seed exported them.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import display_path
from tonegraph.engine.files import FileError, read_json
from tonegraph.engine.node import Tick
from tonegraph.engine.params import shown
from tonegraph.nodes.control.curves import quantise

from .shader import Shader

log = logging.getLogger("tonegraph.gl")

ENTRY_KEYS = {"name", "feature", "min", "max", "step", "FPS", "hysteresis", "phase"}


class PresetError(ValueError):
    """A preset file that cannot be used (one line)."""


def read_preset(path: Path, patch_dir: Path) -> dict:
    """The preset at ``path``, checked, its files confined (see the module doc) for a
    patch in ``patch_dir``; raises PresetError naming what is wrong."""
    doc = _read_json(path, "preset file")
    if not isinstance(doc, dict) or not isinstance(doc.get("shader"), str):
        raise PresetError("a preset is an object with 'shader', 'init' and 'update'")
    _confined(path, patch_dir, "shader", doc["shader"])
    init = doc.get("init", {})
    if not isinstance(init, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in init.values()):
        raise PresetError("'init' maps uniform names to numbers")
    update = check_entries(doc.get("update", []), "update")
    sprites = doc.get("sprites", 64)
    if isinstance(sprites, str):
        if sprites not in init and sprites not in {e["name"] for e in update}:
            raise PresetError(f"'sprites' names '{sprites}', which is neither in 'init' nor in 'update'")
    elif not (isinstance(sprites, int) and not isinstance(sprites, bool) and 0 <= sprites <= 1_000_000):
        raise PresetError("'sprites' is a count (0 to 1000000) or the name of a value in 'init' or 'update'")
    return {"shader": doc["shader"], "init": dict(init), "update": update, "sprites": sprites}


def _confined(path: Path, patch_dir: Path, key: str, name: str) -> None:
    """Raise PresetError unless the file ``name`` that a preset at ``path`` gives as
    ``key`` lies where the preset may name files."""
    root = patch_dir.resolve()
    where = "the patch's folder"
    try:
        if not path.resolve().is_relative_to(root):
            root, where = path.resolve().parent, "the preset's folder"
        inside = (path.parent / name).resolve().is_relative_to(root)
    except (OSError, ValueError):     # a NUL in the name, a symlink loop
        inside = False
    if not inside:
        raise PresetError(f"'{key}' names {shown(name, 200)}, which is outside {where} "
                          f"{display_path(root)}; a preset names files inside it")


def read_mapping(path: Path) -> list[dict]:
    """A parameters file on its own (the ``mapping`` param): a JSON list of entries as
    in a preset's ``update``, or an object holding that list under ``parameters``."""
    doc = _read_json(path, "parameters file")
    if isinstance(doc, dict) and "parameters" in doc:
        doc = doc["parameters"]
    if not isinstance(doc, list):
        raise PresetError("a parameters file is a list of entries (name, feature, min, max, step, FPS)")
    return check_entries(doc, "parameters")


def _read_json(path: Path, what: str):
    try:
        return read_json(path, what)
    except FileError as exc:     # its strerror is the reason alone
        raise PresetError(exc.strerror) from None
    except OSError as exc:
        raise PresetError(f"cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PresetError(str(exc)) from None


def check_entries(update, label: str) -> list[dict]:
    """The entries of a parameters list, checked; raises PresetError naming the entry."""
    if not isinstance(update, list):
        raise PresetError(f"'{label}' is a list of parameters")
    names = set()
    for i, e in enumerate(update):
        where = f"{label}[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not e["name"].isidentifier():
            raise PresetError(f"{where} needs a 'name' that is a uniform name")
        extra = set(e) - ENTRY_KEYS
        if extra:
            raise PresetError(f"{where} ({e['name']}): unknown key(s) {sorted(extra)}; keys: "
                              f"{', '.join(sorted(ENTRY_KEYS))}")
        for key in ("feature", "min", "max"):
            if not isinstance(e.get(key), (int, float)) or isinstance(e.get(key), bool):
                raise PresetError(f"{where} ({e['name']}) needs a number '{key}'")
        if not (isinstance(e["feature"], int) and e["feature"] >= 0):
            raise PresetError(f"{where} ({e['name']}): 'feature' is an index (0, 1, ...)")
        for key, lo, hi in (("step", 0.0, math.inf), ("FPS", 0.0, 1000.0), ("hysteresis", 0.0, 0.5)):
            v = e.get(key, 0.0)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
                raise PresetError(f"{where} ({e['name']}): '{key}' must be a number in {lo:g}..{hi:g}")
        if "phase" in e and not (isinstance(e["phase"], str) and e["phase"].isidentifier()):
            raise PresetError(f"{where} ({e['name']}): 'phase' names the uniform it integrates into")
        if e["name"] in names:
            raise PresetError(f"{where}: '{e['name']}' is mapped twice")
        names.add(e["name"])
    return list(update)


class Preset(Shader):
    type_name = "gl.preset"
    description = "A preset (seed 002): a shader and a parameters file mapping features to it."
    params = {
        "path": P.path(None, "The preset file (JSON: shader, init, update), relative to the patch."),
        "mapping": P.path(None, "A parameters file (JSON list of name, feature, min, max, step, FPS) "
                                "used instead of the preset's 'update'."),
        "size": Shader.params["size"],
        "pulse_decay": Shader.params["pulse_decay"],
        "strengths": Shader.params["strengths"],
    }
    inputs = {
        **Shader.inputs,
        "features": ports.vector("Features 0..1 that 'update' maps by index (ml.autoencoder's code)."),
    }
    outputs = {
        "out": ports.image("The drawn frame (a GPU texture)."),
        "values": ports.vector("The mapped parameters, in the file's order."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        if not params.get("path"):
            return [("", "gl.preset needs the 'path' of its preset file")]
        path = ctx.resolve_input(params["path"])
        if not path.is_file():
            return [("path", f"no such preset file: {display_path(path)}")]
        try:
            doc = read_preset(path, ctx.patch_dir)
        except PresetError as exc:
            return [("path", f"{display_path(path)}: {exc}")]
        shader = path.parent / doc["shader"]
        if not shader.is_file():
            return [("path", f"{display_path(path)}: no such shader file: {display_path(shader)}")]
        if params.get("mapping"):
            mapping = ctx.resolve_input(params["mapping"])
            if not mapping.is_file():
                return [("mapping", f"no such parameters file: {display_path(mapping)}")]
            try:
                read_mapping(mapping)
            except PresetError as exc:
                return [("mapping", f"{display_path(mapping)}: {exc}")]
        return []

    def setup(self) -> None:
        self.preset_path = self.ctx.resolve_input(self.p.path)
        self.file_stamps: dict[str, int] = {}
        self._saved(self.preset_path, "preset")
        self.preset = read_preset(self.preset_path, self.ctx.patch_dir)
        self.mapping_path = self.ctx.resolve_input(self.p.mapping) if self.p.mapping else None
        if self.mapping_path is not None:
            self._saved(self.mapping_path, "mapping")
            self.preset["update"] = read_mapping(self.mapping_path)
        self.mapped: dict[str, float] = {}       # the value of each parameter now
        self.next_update: dict[str, float] = {}
        self.phases: dict[str, float] = {}
        self.out["values"] = np.zeros(len(self.preset["update"]), dtype=np.float32)
        super().setup()       # the shader's state, its source from the preset (_load_shader)

    def _load_shader(self) -> None:
        self.path = self.preset_path.parent / self.preset["shader"]
        self.stamp = None
        self.source = self._read()

    def files(self) -> list[Path]:
        if not getattr(self, "path", None):
            return []
        return [self.preset_path, self.path] + ([self.mapping_path] if self.mapping_path else [])

    def _saved(self, path: Path, key: str) -> bool:
        """Whether ``path`` was saved since the last look (a file being written is
        looked at again next frame)."""
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            return False
        if stamp == self.file_stamps.get(key):
            return False
        self.file_stamps[key] = stamp
        return True

    def _poll_mapping(self) -> None:
        if not self._saved(self.mapping_path, "mapping"):
            return
        try:
            update = read_mapping(self.mapping_path)
        except PresetError as exc:
            log.error("%s: %s; the last good parameters keep running", display_path(self.mapping_path), exc)
            return
        self.preset["update"] = update
        self.out["values"] = np.zeros(len(update), dtype=np.float32)
        log.info("%s: parameters reloaded", display_path(self.mapping_path))

    def _poll_preset(self) -> None:
        if not self._saved(self.preset_path, "preset"):
            return
        try:
            doc = read_preset(self.preset_path, self.ctx.patch_dir)
        except PresetError as exc:
            log.error("%s: %s; the last good preset keeps running", display_path(self.preset_path), exc)
            return
        shader_changed = doc["shader"] != self.preset["shader"]
        if self.mapping_path is not None:
            doc["update"] = self.preset["update"]
        self.preset = doc
        self.out["values"] = np.zeros(len(doc["update"]), dtype=np.float32)
        if shader_changed:
            try:
                self._load_shader()
            except OSError as exc:
                log.error("%s: %s", display_path(self.preset_path), exc.strerror or exc)
                return
            self._compile(self.source)
        log.info("%s: preset reloaded", display_path(self.preset_path))

    def _update(self, tick: Tick) -> None:
        """The seed's update(timeDelta, parameters): map every parameter for this frame."""
        features = np.asarray(self.inp["features"], dtype=np.float64)
        values = self.out["values"]
        for i, e in enumerate(self.preset["update"]):
            name = e["name"]
            k = e["feature"]
            x = float(features[k]) if k < len(features) else 0.5
            x = 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
            lo, hi, step = float(e["min"]), float(e["max"]), float(e.get("step", 0.0))
            y = lo + (hi - lo) * x
            if step > 0:
                y = quantise(y, lo, step, self.mapped.get(name), float(e.get("hysteresis", 0.25)))
                y = min(max(y, min(lo, hi)), max(lo, hi))
            fps = float(e.get("FPS", 0.0))
            if name in self.mapped and fps > 0 and tick.t + 1e-9 < self.next_update.get(name, -1.0):
                y = self.mapped[name]
            elif fps > 0:
                self.next_update[name] = tick.t + 1.0 / fps
            self.mapped[name] = y
            values[i] = y
            if "phase" in e:
                self.phases[e["phase"]] = self.phases.get(e["phase"], 0.0) + y * tick.dt

    def draw(self, tick: Tick) -> None:
        self._poll_preset()
        if self.mapping_path is not None:
            self._poll_mapping()
        self._update(tick)
        super().draw(tick)

    def sprite_count(self) -> int:
        n = self.preset["sprites"]
        if isinstance(n, str):
            n = self.mapped.get(n, self.preset["init"].get(n, 0.0))
        return max(0, min(1_000_000, math.ceil(n)))

    def _bind(self, prog, tick: Tick, prev) -> None:
        super()._bind(prog, tick, prev)
        u = self.uniforms_of(prog)
        for source in (self.preset["init"], self.mapped, self.phases):
            for name, value in source.items():
                if name in u:
                    prog[name] = float(value)

    def state(self) -> dict:
        return {"mapped": dict(self.mapped), "phases": dict(self.phases)}

    def restore(self, state: dict) -> None:
        self.mapped = dict(state.get("mapped", {}))
        self.phases = dict(state.get("phases", {}))
