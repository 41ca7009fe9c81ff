"""The ```python code blocks of README.md and docs/*.md run as written.

A file's blocks run in order in one namespace (a page may build on its earlier blocks),
in a temporary working directory. A block preceded by a line ``<!-- no-test -->`` is
skipped (for code that needs a network, a browser or minutes of compute).
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_MARKER = "<!-- no-test -->"
_FENCE_OPEN = re.compile(r"^```python\s*$")
_FENCE_CLOSE = re.compile(r"^```\s*$")


@dataclass(frozen=True)
class Snippet:
    """One fenced python block: its first code line (1-based) and its source."""

    line: int
    source: str
    skipped: bool


def python_snippets(text: str) -> list[Snippet]:
    """The ```python blocks of a Markdown text, in order, marking skipped ones."""
    lines = text.splitlines()
    snippets = []
    i = 0
    while i < len(lines):
        if _FENCE_OPEN.match(lines[i]):
            previous = next((lines[j].strip() for j in range(i - 1, -1, -1)
                             if lines[j].strip()), "")
            start = i + 1
            end = start
            while end < len(lines) and not _FENCE_CLOSE.match(lines[end]):
                end += 1
            if end == len(lines):
                raise ValueError(f"line {i + 1}: ```python block is never closed")
            snippets.append(Snippet(line=start + 1, source="\n".join(lines[start:end]) + "\n",
                                    skipped=previous == SKIP_MARKER))
            i = end + 1
        else:
            i += 1
    return snippets


def test_snippet_parser_reads_blocks_and_skip_markers():
    text = ("intro\n```python\nx = 1\n```\n\n<!-- no-test -->\n```python\nraise SystemExit\n```\n"
            "```bash\nls\n```\n```python\ny = x + 1\n```\n")
    found = python_snippets(text)
    assert [(s.line, s.source, s.skipped) for s in found] == [
        (3, "x = 1\n", False), (8, "raise SystemExit\n", True), (14, "y = x + 1\n", False)]
    with pytest.raises(ValueError, match="never closed"):
        python_snippets("```python\nx = 1\n")


def test_the_docs_have_snippets_to_run():
    runnable = [s for doc in DOCUMENTS for s in python_snippets(doc.read_text("utf-8"))
                if not s.skipped]
    assert len(runnable) >= 5


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_snippets_run(document, tmp_path, monkeypatch):
    snippets = [s for s in python_snippets(document.read_text("utf-8")) if not s.skipped]
    if not snippets:
        pytest.skip(f"{document.name} has no ```python blocks")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{document.stem}"}
    name = document.relative_to(ROOT)
    for snippet in snippets:
        code = compile(snippet.source, f"{name}:{snippet.line}", "exec")
        try:
            exec(code, namespace)
        except Exception:
            pytest.fail(f"{name}, block at line {snippet.line} failed:\n"
                        f"{traceback.format_exc()}", pytrace=False)
