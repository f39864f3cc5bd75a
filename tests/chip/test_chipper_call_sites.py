"""Our own code, docs, examples and benchmarks call chip/sample_windows with the new forms only (#21 item 5).

A test that uses an old keyword fails on its warning (pyproject turns
``TerrapipeDeprecationWarning`` into an error), but documentation, examples
and benchmarks are not all run by the suite: this reads every call of
``chip(...)``, ``Chip(...)``, ``sample_windows(...)`` and ``SampleWindows(...)``
in them (Python files, and Python blocks of Markdown files) and refuses the
old keywords.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from terrapipe.chip.deprecated import OLD_KEYWORDS

ROOT = Path(__file__).resolve().parents[2]
#: Files that use the old keywords on purpose (they test that they still work).
ON_PURPOSE = {
    "tests/chip/test_chipper_options.py",
    "tests/adapters/test_lightning_split_subset.py",
    "src/terrapipe/chip/deprecated.py",
}
CALLS = {
    "chip": "chip",
    "Chip": "chip",
    "sample_windows": "sample_windows",
    "SampleWindows": "sample_windows",
}
BLOCK = re.compile(r"```(?:python|py|\{code-cell\} ipython3)[^\n]*\n(.*?)```", re.S)


def old_keywords(text: str) -> list[tuple[int, str]]:
    """``(line, keyword)`` of every old keyword given to a chipping stage in Python source ``text``."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        stage = CALLS.get(str(name))
        if stage is not None:
            found += [(node.lineno, k.arg) for k in node.keywords if k.arg in OLD_KEYWORDS[stage]]
    return found


def test_the_scan_finds_old_keywords() -> None:
    assert old_keywords("pipe.chip(4, shuffle=True, seed=3)\ntp.chip.SampleWindows(p, 4, subset='a')") == [
        (1, "seed"),
        (2, "subset"),
    ]
    assert old_keywords("pipe.chip(4, shuffle=tp.chip.WindowShuffle(seed=3))") == []


def test_no_call_site_of_ours_uses_an_old_keyword() -> None:
    files = [ROOT / "README.md"]
    for top in ("src", "tests", "docs", "examples", "benchmarks"):
        files += [
            p
            for p in sorted((ROOT / top).rglob("*"))
            if p.suffix in {".py", ".md"} and "_build" not in p.parts
        ]
    found = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if rel in ON_PURPOSE or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            found += [f"{rel}:{line}: {key}=" for line, key in old_keywords(text)]
            continue
        for block in BLOCK.finditer(text):
            first = text[: block.start(1)].count("\n")
            found += [f"{rel}:{first + line}: {key}=" for line, key in old_keywords(block.group(1))]
    assert not found, found
