"""The README stays a ten-minute read, and every link in it and in docs/ resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation and symbols dropped
    (letters, digits, spaces, hyphens and underscores kept), spaces become hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """Every heading anchor of a Markdown document (fenced code left out)."""
    found, fenced = set(), False
    for line in document.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.*)", line)):
            found.add(slug(heading[1]))
    return found


def test_the_readme_reads_in_ten_minutes() -> None:
    """At most 300 lines: what it is, the two commands, the stack, the basics, links."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300, len(lines)
    for document in ("configuration", "checks", "metrics", "alerts", "deploying"):
        assert f"(docs/{document}.md)" in "\n".join(lines), document
    assert "(docs/troubleshooting.md)" in "\n".join(lines)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document: Path) -> None:
    """A link to a file names one that exists; a link to an anchor names a heading there."""
    broken = []
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not this repository's
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(ROOT)}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    assert broken == []


def test_the_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    """The checker itself: a missing file and a missing anchor are both found."""
    (tmp_path / "a.md").write_text("# Title\n\n[x](b.md) [y](#nope) [z](#title)\n")
    text = (tmp_path / "a.md").read_text()
    targets = LINK.findall(text)
    assert targets == ["b.md", "#nope", "#title"]
    assert anchors(tmp_path / "a.md") == {"title"}
    assert slug("Recovery §3, sized") == "recovery-3-sized"
    assert slug("`_created` series") == "_created-series"
