"""The README stays a front door and the manual in docs/ builds, with no broken link.

Every relative link of README.md and docs/*.md must name a file or folder of the
project, and a link with an anchor a heading of that page; `mkdocs build --strict`
(what `make docs` runs) checks the links between the manual's pages once more, and
that every page is in its navigation.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRONT_DOOR = 300   # [lines] the most the README may have
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """A heading's anchor, as GitHub and MkDocs' toc extension make it for plain ASCII."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return re.sub(r"\s+", "-", text)


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def broken_links(doc: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue                                  # a web address: not checked offline
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{doc.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{doc.name}: {target} (no such heading)")
    return broken


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= FRONT_DOOR, f"README.md has {len(lines)} lines; move detail into docs/"
    text = "\n".join(lines)
    assert text.index("make demo") < text.index("\n## "), "the two set-up commands come first"
    for part in ("## Recipes", "## Patches to start from", "## Commands", "## Troubleshooting",
                 "docs/index.md"):
        assert part in text


def test_every_link_of_the_readme_and_the_manual_leads_somewhere():
    broken = [b for doc in DOCUMENTS for b in broken_links(doc)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_check_catches_a_missing_file_and_heading(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## A part\n")
    page.write_text("[a](other.md#a-part) [b](missing.md) [c](other.md#nothing) [d](https://x.org)\n")
    assert broken_links(page) == ["page.md: missing.md (no such file)",
                                  "page.md: other.md#nothing (no such heading)"]


def test_the_manual_builds_as_a_site_with_every_page_linked(tmp_path):
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                          str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stdout + res.stderr
    site = tmp_path / "site"
    for page in [*(ROOT / "docs").glob("*.md"), ROOT / "docs" / "start.md"]:
        assert (site / f"{page.stem}.html").is_file(), f"{page.name} is not in the built site"
    assert "make demo" in (site / "start.html").read_text()          # the README, first
    dead = []
    for page in site.rglob("*.html"):
        for target in re.findall(r'(?:href|src)="([^"#?]+)', page.read_text()):
            if re.match(r"[a-z]+:|/", target) or target.startswith("data:"):
                continue
            if not (page.parent / target).resolve().exists():
                dead.append(f"{page.relative_to(site)}: {target}")
    assert not dead, "links that lead nowhere in the built site:\n" + "\n".join(sorted(set(dead))[:30])
