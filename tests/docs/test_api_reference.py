"""The API reference (docs/api.md) lists every public name and every registered functional name."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import terrapipe as tp

API = Path(__file__).resolve().parents[2] / "docs" / "api.md"
DIRECTIVE = re.compile(r"^\.\. (?:auto(?:class|function|exception|data|module)|py:data)::\s+(\S+)", re.M)
TABLE_ROW = re.compile(r"^\| `([a-z_]+)` \|", re.M)


def documented() -> set[str]:
    return set(DIRECTIVE.findall(API.read_text(encoding="utf-8")))


def resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError:
        return getattr(resolve(module), name)


def _package_names() -> list[str]:
    """Functional names registered by terrapipe's or torch's modules (tests register their own too)."""
    from torch.utils.data import IterDataPipe

    names = []
    for name in tp.core.registered_names():
        function = IterDataPipe.functions[name]
        cls = getattr(function, "args", (None,))[0]
        module = getattr(cls, "__module__", "")
        defined_there = getattr(sys.modules.get(module), getattr(cls, "__name__", ""), None) is cls
        if module.split(".")[0] in {"terrapipe", "torch"} and defined_there:  # not a doctest's class
            names.append(name)
    return names


def test_every_public_name_is_in_the_api_reference() -> None:
    names = documented()
    missing = [name for name in tp.__all__ if f"terrapipe.{name}" not in names]
    assert not missing, f"add these to docs/api.md: {missing}"


def test_every_functional_name_is_in_the_api_reference() -> None:
    text = API.read_text(encoding="utf-8")
    ours = set(TABLE_ROW.findall(text))
    torch_core = set(re.findall(r"`([a-z_]+)`", text.split("Torch core's own pipes", 1)[1].split("##", 1)[0]))
    missing = sorted(set(_package_names()) - ours - torch_core)
    assert not missing, f"add these functional names to the table in docs/api.md: {missing}"
    from torch.utils.data import IterDataPipe

    for name in ours:  # every row names a registered stage, and the class it names is its stage
        assert name in IterDataPipe.functions, name
        row = re.search(rf"^\| `{name}` \| {{class}}`(terrapipe\.[\w.]+)`", text, re.M)
        assert row is not None, name
        registered = IterDataPipe.functions[name]
        assert getattr(registered, "args", (None,))[0] is resolve(row.group(1)), (name, row.group(1))


def test_every_documented_name_exists_and_has_a_docstring() -> None:
    for dotted in documented():
        obj = resolve(dotted)
        if dotted != "terrapipe.__version__":
            assert (getattr(obj, "__doc__", None) or "").strip(), f"{dotted} has no docstring"
