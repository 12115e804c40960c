"""Small edits to YAML text that keep everything else as it was written.

A patch file is the truth, and its author's layout and comments are part of it, so a
tool that writes to it (``tonegraph learn``) changes only the characters it must: the
text is composed with PyYAML, whose nodes know where they start and end, and the new
entry is spliced in there.

* In a flow mapping (``{type: x, in: {a: b}}``) an entry is added after the last one,
  before the closing brace: ``, key: value``.
* In a block mapping an entry is a new line after the mapping's last entry (after any
  comment on that line), indented as the mapping's keys are, with the file's own line
  ending.
* A key already there keeps its place and gets the new value in place of the old.
* Mappings missing on the way are written as one flow value (``in: {key: value}``),
  as is a key whose value is empty (``in:``).

Values are passed as YAML text: :func:`flow` writes a plain value as such.  An alias
(``*common``) on the way is refused, since editing it would change every place that
shares it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from tonegraph.engine.errors import TonegraphError


class EditError(TonegraphError):
    """The text cannot be edited there (not a mapping, an alias)."""


def flow(value: Any) -> str:
    """A plain value as YAML flow text: ``nanoPAD``, ``'yes'``, ``[0, 255]``, ``{a: 1}``."""
    text = yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=1 << 30)
    return text.strip()[1:-1]


def set_entry(text: str, path: Sequence[str], key: str, value: str) -> tuple[str, int]:
    """``text`` with ``key: value`` in the mapping reached by the keys ``path`` from the
    top; returns the new text and the line (1-based) the key is on."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise EditError(f"not YAML: {exc}") from exc
    if node is None:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [])
    where: list[str] = []
    for i, name in enumerate((*path, key)):
        if not isinstance(node, yaml.MappingNode):
            raise EditError(f"'{'.'.join(where) or 'the file'}' is not a mapping")
        entry = _entry(node, name)
        rest = _nested((*path, key)[i + 1:], value)
        if entry is None:
            return _add(text, node, name, rest)
        knode, vnode = entry
        if vnode.start_mark.index < knode.end_mark.index:
            raise EditError(f"'{'.'.join((*where, name))}' is a YAML alias; edit it by hand")
        where.append(name)
        if i == len(path) or _empty(vnode):
            return _replace(text, knode, vnode, rest)
        node = vnode
    raise AssertionError("unreachable")


def _nested(keys: Sequence[str], value: str) -> str:
    """``value`` inside flow mappings for ``keys``: ``{a: {b: value}}``."""
    for k in reversed(keys):
        value = f"{{{k}: {value}}}"
    return value


def _entry(mapping: yaml.MappingNode, name: str) -> tuple[yaml.Node, yaml.Node] | None:
    for knode, vnode in mapping.value:
        if isinstance(knode, yaml.ScalarNode) and knode.value == name:
            return knode, vnode
    return None


def _empty(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")


def _end(text: str, node: yaml.Node) -> int:
    """Where a node's own text ends: a block collection ends with its last item (PyYAML's
    end mark lies past the comments and blank lines after it), and trailing white space
    is not part of it."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    end = node.end_mark.index
    while end > node.start_mark.index and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _add(text: str, mapping: yaml.MappingNode, key: str, value: str) -> tuple[str, int]:
    entry = f"{key}: {value}"
    if mapping.flow_style:
        at = _end(text, mapping.value[-1][1]) if mapping.value else mapping.start_mark.index + 1
        new = f", {entry}" if mapping.value else entry
        return text[:at] + new + text[at:], _line(text, at)
    if not mapping.value:   # an empty document
        sep = "" if not text or text.endswith("\n") else "\n"
        return text + sep + entry + "\n", _line(text + sep, len(text + sep))
    newline = "\r\n" if "\r\n" in text else "\n"
    indent = " " * mapping.value[0][0].start_mark.column
    at = text.find("\n", _end(text, mapping.value[-1][1]))
    if at < 0:
        at = len(text)
    elif text[at - 1] == "\r":
        at -= 1
    return text[:at] + newline + indent + entry + text[at:], _line(text, at) + 1


def _replace(text: str, knode: yaml.Node, vnode: yaml.Node, value: str) -> tuple[str, int]:
    start, end = vnode.start_mark.index, _end(text, vnode)
    if start == end and text[start - 1:start] == ":":
        value = " " + value
    return text[:start] + value + text[end:], _line(text, knode.start_mark.index)
