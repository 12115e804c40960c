"""Where node types come from: the ``nodes`` package, installed plugins (entry-point
group ``tonegraph.nodes``) and folders given with ``--nodes-path``.

A module contributes every :class:`engine.node.Node` subclass it defines with a
``type_name``.  Node modules must not import heavy libraries (torch, GL) at module
level: the registry imports all of them to list types, and a patch that does not use
such a node must not pay for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from .errors import TonegraphError
from .node import Node

ENTRY_POINT_GROUP = "tonegraph.nodes"


class RegistryError(TonegraphError):
    """A node module that cannot be loaded, or two node types with the same name."""


class Registry:
    """Node types by name."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._origin: dict[str, str] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._types

    def __getitem__(self, name: str) -> type[Node]:
        return self._types[name]

    def get(self, name: str) -> type[Node] | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)

    def origin(self, name: str) -> str:
        return self._origin[name]

    def add(self, cls: type[Node], origin: str) -> None:
        name = cls.type_name
        if not name or "." not in name:
            raise RegistryError(f"{origin}: node class {cls.__name__} needs a type_name 'family.name'")
        if name in self._types and self._types[name] is not cls:
            raise RegistryError(
                f"{origin}: node type '{name}' is already defined by {self._origin[name]}"
            )
        self._types[name] = cls
        self._origin[name] = origin

    def add_module(self, module: ModuleType, origin: str | None = None) -> None:
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (issubclass(obj, Node) and obj is not Node and obj.__module__ == module.__name__
                    and obj.type_name):
                self.add(obj, origin or module.__name__)

    def add_package(self, package: str) -> None:
        """Every node type in a package and its subpackages.  A package lists modules that
        hold no node types and are costly to import (torch) in ``NOT_NODE_MODULES``."""
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
            parent, _, leaf = info.name.rpartition(".")
            if leaf in getattr(sys.modules.get(parent), "NOT_NODE_MODULES", ()):
                continue
            self.add_module(importlib.import_module(info.name))

    def add_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not hide the others
                raise RegistryError(
                    f"plugin '{ep.name}' ({ep.value}) failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            origin = f"plugin {ep.name}"
            if inspect.ismodule(obj):
                self.add_module(obj, origin)
            elif inspect.isclass(obj) and issubclass(obj, Node):
                self.add(obj, origin)
            else:
                raise RegistryError(
                    f"plugin '{ep.name}' ({ep.value}) is neither a module nor a Node class"
                )

    def add_path(self, folder: Path) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise RegistryError(f"--nodes-path {folder}: no such folder")
        for file in sorted(folder.glob("*.py")):
            name = f"tonegraph_local_nodes.{file.stem}"
            spec = importlib.util.spec_from_file_location(name, file)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise RegistryError(f"{file}: failed to load: {type(exc).__name__}: {exc}") from exc
            self.add_module(module, str(file))


def default_registry(nodes_paths: list[Path] | tuple[Path, ...] = (), plugins: bool = True) -> Registry:
    """The built-in node types, plus plugins and extra folders."""
    reg = Registry()
    reg.add_package("tonegraph.nodes")
    if plugins:
        reg.add_entry_points()
    for folder in nodes_paths:
        reg.add_path(folder)
    return reg
