"""MkDocs hooks that make the manual a site whole in itself (mkdocs.yml names them).

The manual's pages link to the project's own files (``../graphs/tunnel.yaml``,
``../examples/osc``), which are outside docs/ and so outside a built site.  These hooks
copy each such file into the site under ``repo/`` (a folder as a small page listing its
files), point the links there, and add the README as the site's "Start here" page, its
links turned the same way.  Opened from disk (``build/site/index.html``) or served, no
link leads nowhere; tests/test_docs.py follows every one in the built site.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
#: Links of a page: the target of ``[text](target)`` and ``![alt](target)``.
LINK = re.compile(r"(\]\()([^)\s#]+)((?:#[^)\s]*)?\))")
README = "start.md"
SKIP = {".git", ".venv", "build", "__pycache__", ".pytest_cache"}


def _repo_target(target: str, base: Path) -> Path | None:
    """The project file or folder a relative link names, if it lies outside docs/."""
    if re.match(r"[a-z]+:", target):
        return None
    where = (base / target).resolve()
    docs = ROOT / "docs"
    if not where.exists() or where.is_relative_to(docs) or not where.is_relative_to(ROOT):
        return None
    return where


def _site_path(where: Path) -> str:
    """Where a project file is in the site: a folder as its listing, Markdown as text
    (so it is shown as it is, not made a page of the manual)."""
    rel = where.relative_to(ROOT).as_posix()
    if where.is_dir():
        return f"repo/{rel}/index.html"
    return f"repo/{rel}.txt" if where.suffix == ".md" else f"repo/{rel}"


def _rewrite(markdown: str, base: Path, wanted: set[Path]) -> str:
    def turn(m: re.Match) -> str:
        target = m.group(2)
        where = _repo_target(target, base)
        if where == ROOT / "README.md":
            return m.group(1) + README + m.group(3)
        if where is None:
            if base == ROOT and target.startswith("docs/"):
                return m.group(1) + target.removeprefix("docs/") + m.group(3)
            return m.group(0)
        wanted.add(where)
        return m.group(1) + _site_path(where) + m.group(3)
    return LINK.sub(turn, markdown)


def _listing(folder: Path) -> str:
    rows = "".join(f'<li><a href="{html.escape(Path(_site_path(p)).relative_to(_site_path(folder).rsplit("/", 1)[0]).as_posix())}">'
                   f"{html.escape(p.name)}{'/' if p.is_dir() else ''}</a></li>"
                   for p in sorted(folder.iterdir()) if _shown(p))
    name = html.escape(folder.relative_to(ROOT).as_posix())
    return f"<!doctype html><meta charset=utf-8><title>{name}</title><h1>{name}/</h1><ul>{rows}</ul>"


def _shown(path: Path) -> bool:
    return path.name not in SKIP and not path.name.endswith(".egg-info") and not path.name.startswith(".")


def _add(files: Files, config, where: Path, seen: set[Path]) -> None:
    if where in seen:
        return
    seen.add(where)
    if where.is_dir():
        files.append(File.generated(config, _site_path(where), content=_listing(where)))
        for child in where.iterdir():
            if _shown(child):
                _add(files, config, child, seen)
    else:
        files.append(File.generated(config, _site_path(where), abs_src_path=str(where)))


def on_files(files: Files, config) -> Files:
    wanted: set[Path] = set()
    for page in (ROOT / "docs").glob("*.md"):
        _rewrite(page.read_text(), ROOT / "docs", wanted)
    start = _rewrite((ROOT / "README.md").read_text(), ROOT, wanted)
    files.append(File.generated(config, README, content=start))
    seen: set[Path] = set()
    for where in sorted(wanted):
        _add(files, config, where, seen)
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == README:
        return markdown
    return _rewrite(markdown, ROOT / "docs", set())
