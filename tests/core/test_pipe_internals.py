"""torch's DataPipe machinery, as terrapipe.core.pipe uses it: one test per access, and the one-module rule.

Each test here checks one thing terrapipe assumes about torch's internals
(listed in ``terrapipe.core.pipe``'s module doc); when a torch release changes
it, the test names what moved. :func:`test_no_torch_internals_outside_core_pipe`
fails when a module other than ``core/pipe.py`` (DataPipe machinery) or
``_compat.py`` (other private names) reaches a torch internal.
"""

from __future__ import annotations

import ast
import functools
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.utils.data.datapipes._hook_iterator as torch_hook_iterator
from torch.utils.data import IterDataPipe
from torch.utils.data.datapipes.iter.combining import _ChildDataPipe
from torch.utils.data.graph import traverse_dps

import terrapipe as tp
from terrapipe.core.errors import ConcurrentIterationError, TerrapipeError
from terrapipe.core.pipe import (
    TORCH_CHECKED,
    TORCH_MIXING_TYPES,
    TORCH_STATELESS_TYPES,
    Stage,
    is_sharding_filter,
    pipe_graph,
    register,
    registered_class,
    registered_names,
    shard_torch_filters,
    source_pipes,
)


def _parity(x: int) -> int:
    return x % 2


SRC = Path(__file__).resolve().parents[2] / "src" / "terrapipe"

# -- the torch release ---------------------------------------------------------------


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def test_installed_torch_is_one_the_internals_were_checked_with():
    # A new torch release: run this file, then widen TORCH_CHECKED in core/pipe.py (and _compat.py's list).
    low, high = (_minor(v) for v in TORCH_CHECKED)
    assert low <= _minor(torch.__version__) <= high, (
        f"torch {torch.__version__} is outside the checked range {TORCH_CHECKED}"
    )


def test_a_torch_without_a_needed_internal_fails_at_import_with_a_clear_error():
    code = textwrap.dedent(
        """
        import sys, types
        import torch.utils.data.graph_settings  # the real one, then a torch release without apply_sharding
        sys.modules["torch.utils.data.graph_settings"] = types.ModuleType("torch.utils.data.graph_settings")
        try:
            import terrapipe.core.pipe
        except ImportError as err:
            print(type(err).__name__, "|", err)
        else:
            print("imported")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("MissingDependencyError |"), out.stdout + out.stderr
    assert f"torch {torch.__version__}" in line
    assert "apply_sharding" in line
    assert f"{TORCH_CHECKED[0]} to {TORCH_CHECKED[1]}" in line


# -- registry of functional names ------------------------------------------------------


def test_functional_datapipe_is_public_and_fills_iterdatapipe_functions():
    assert "functional_datapipe" in torch.utils.data.__all__
    assert isinstance(IterDataPipe.functions, dict)

    @register("pipe_internals_probe")
    class Probe(Stage[int]):
        def __init__(self, source: IterDataPipe[int]) -> None:
            super().__init__()
            self.source = source

        def __iter__(self):
            yield from self.source

    try:
        entry = IterDataPipe.functions["pipe_internals_probe"]
        assert isinstance(entry, functools.partial)  # registered_class reads the class from its args
        assert entry.args[0] is Probe
        assert registered_class("pipe_internals_probe") is Probe
        assert "pipe_internals_probe" in registered_names()
        assert list(tp.from_items([1, 2]).pipe_internals_probe()) == [1, 2]
    finally:
        del IterDataPipe.functions["pipe_internals_probe"]


def test_registered_class_of_torch_and_terrapipe_names():
    assert registered_class("map") is TORCH_STATELESS_TYPES[0]
    assert registered_class("header") is tp.core.Header
    assert registered_class("no_such_name") is None
    private = [name for name in IterDataPipe.functions if name.startswith("_")]
    assert all(registered_class(name) is None for name in private)
    assert not any(name.startswith("_") for name in registered_names())


# -- classes of torch core's pipes ------------------------------------------------------


def test_stateless_types_are_what_map_filter_zip_build():
    source = tp.from_items([1, 2, 3], shard=False)
    built = [source.map(abs), source.filter(bool), source.zip(tp.from_items([4, 5, 6]))]
    assert [type(p) for p in built] == list(TORCH_STATELESS_TYPES)


def test_mixing_types_cover_every_torch_pipe_that_mixes_elements():
    source = tp.from_items(range(4), shard=False)
    forked = source.fork(2)
    demuxed = tp.from_items(range(4), shard=False).demux(2, _parity)
    mixing = [
        source.batch(2),
        source.concat(tp.from_items([9])),
        source.groupby(_parity),
        source.mux(tp.from_items([9])),
        source.shuffle(),
        source.sharding_filter(),
        source.zip(tp.from_items([9])),
        torch.utils.data.datapipes.iter.Sampler(source),
        *forked,
        *demuxed,
    ]
    for pipe in mixing:
        assert isinstance(pipe, TORCH_MIXING_TYPES), type(pipe)
    assert all(type(child) is _ChildDataPipe for child in (*forked, *demuxed))
    assert not isinstance(source.map(abs), TORCH_MIXING_TYPES)
    assert not isinstance(source.filter(bool), TORCH_MIXING_TYPES)


def test_fork_and_demux_children_name_their_parent_in_an_attribute():
    # source_pipes walks attributes: a fork's child must lead to the Forker, and it to the source.
    source = tp.from_items(range(4), shard=False)
    child = source.fork(2)[1]
    [parent] = source_pipes(child)
    assert type(parent).__name__ == "_ForkerIterDataPipe"
    assert source in source_pipes(parent)
    demux_child = tp.from_items(range(4), shard=False).demux(2, _parity)[0]
    [demux_parent] = source_pipes(demux_child)
    assert type(demux_parent).__name__ == "_DemultiplexerIterDataPipe"


# -- graphs ---------------------------------------------------------------------------


def _shape(graph):
    return {key: (type(dp).__name__, _shape(sub)) for key, (dp, sub) in graph.items()}


def test_pipe_graph_has_traverse_dps_form():
    a = tp.from_items(range(4), shard=False)
    b, c = tp.from_items(range(4), shard=False).map(abs).fork(2)
    pipe = a.zip(b.filter(bool), c).batch(2).shuffle().sharding_filter().header(2)
    assert _shape(pipe_graph(pipe)) == _shape(traverse_dps(pipe))


def test_shard_torch_filters_makes_every_sharding_filter_keep_its_shard():
    pipe = tp.from_items(range(6), shard=False).sharding_filter()
    other = tp.from_items(range(10, 16), shard=False).sharding_filter()
    zipped = pipe.zip(other)
    assert is_sharding_filter(pipe)
    assert not is_sharding_filter(zipped)
    shard_torch_filters(zipped, 3, 2)
    assert list(zipped) == [(2, 12), (5, 15)]
    plain = tp.from_items(range(3), shard=False)
    shard_torch_filters(plain, 3, 2)  # nothing to tell: untouched
    assert list(plain) == [0, 1, 2]


# -- the iterator hook ------------------------------------------------------------------


def test_iterator_hook_asks_for_is_child_datapipe():
    # Stage answers this from its class, so torch's hook never falls into IterDataPipe.__getattr__.
    assert "_is_child_datapipe" in inspect.getsource(torch_hook_iterator)
    assert _ChildDataPipe._is_child_datapipe is True
    assert Stage.__dict__["_is_child_datapipe"] is False
    assert tp.from_items([1])._is_child_datapipe is False


def test_a_newer_iter_invalidates_the_older_iterator_with_runtime_error():
    pipe = tp.from_items(range(3), shard=False).map(abs)
    old = iter(pipe)
    assert next(old) == 0
    new = iter(pipe)
    assert next(new) == 0
    with pytest.raises(RuntimeError) as caught:
        next(old)
    assert not isinstance(caught.value, TerrapipeError)  # torch's own, not ours


def test_a_stage_turns_the_invalidated_iterator_into_concurrent_iteration_error():
    pipe = tp.from_items(range(3), shard=False).header(3)
    old = iter(pipe)
    assert next(old) == 0
    assert next(iter(pipe)) == 0
    with pytest.raises(ConcurrentIterationError, match="iterated again"):
        next(old)


# -- the one-module rule -------------------------------------------------------------------

#: Modules allowed to reach torch internals: DataPipe machinery, and every other private name.
ALLOWED = {"core/pipe.py", "_compat.py"}
#: Files outside ALLOWED allowed anyway (must stay empty).
ALLOWLIST: set[str] = set()
#: torch's DataPipe machinery reached by name (attributes, ``getattr`` strings, imports).
DATAPIPE_NAMES = frozenset(
    {
        "IterDataPipe.functions",
        "MapDataPipe.functions",
        "functional_datapipe",
        "DataChunk",
        "main_datapipe",
        "traverse_dps",
        "apply_sharding",
        "reduce_ex_hook",
        "getstate_hook",
        "set_reduce_ex_hook",
        "set_getstate_hook",
        "register_datapipe_as_function",
        "hook_iterator",
    }
)
#: Private attributes torch's DataPipe machinery keeps on pipes and iterators.
PRIVATE_DATAPIPE_ATTRS = frozenset(
    {
        "_ChildDataPipe",
        "_is_child_datapipe",
        "_valid_iterator_id",
        "_snapshot_state",
        "_number_of_samples_yielded",
        "_fast_forward_iterator",
        "_DataPipeSerializationWrapper",
        "_IterDataPipeSerializationWrapper",
    }
)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Finder(ast.NodeVisitor):
    """Collect the torch internals a module reaches."""

    def __init__(self) -> None:
        self.torch_names: set[str] = set()  # local names bound to torch modules or objects
        self.found: list[str] = []

    def _hit(self, node: ast.AST, what: str) -> None:
        self.found.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "torch" or alias.name.startswith("torch."):
                parts = alias.name.split(".")
                if any(_private(p) for p in parts) or alias.name.startswith("torch.utils.data."):
                    self._hit(node, f"import {alias.name}")
                self.torch_names.add(alias.asname or parts[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0 and (module == "torch" or module.startswith("torch.")):
            if any(_private(p) for p in module.split(".")) or module.startswith("torch.utils.data."):
                self._hit(node, f"from {module} import ...")
            for alias in node.names:
                machinery = module == "torch.utils.data" and alias.name in {"IterDataPipe", "MapDataPipe"}
                if _private(alias.name) or alias.name in DATAPIPE_NAMES or machinery:
                    self._hit(node, f"from {module} import {alias.name}")
                self.torch_names.add(alias.asname or alias.name)
        self.generic_visit(node)

    def _chain(self, node: ast.AST) -> list[str] | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(node.id)
            return parts[::-1]
        return None

    def _internal_chain(self, chain: list[str]) -> bool:
        dotted = ".".join(chain)
        on_torch = chain[0] in self.torch_names
        if on_torch and any(_private(p) for p in chain[1:]):
            return True
        if on_torch and dotted.startswith("torch.utils.data."):
            return chain[3] in {"datapipes", "graph", "graph_settings"} or chain[3] in DATAPIPE_NAMES
        return bool({".".join(chain[-2:]), chain[-1]} & (DATAPIPE_NAMES | PRIVATE_DATAPIPE_ATTRS))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain = self._chain(node)
        if chain is not None:
            dotted = ".".join(chain)
            if self._internal_chain(chain):
                self._hit(node, dotted)
            return  # the chain is judged whole
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in DATAPIPE_NAMES or node.id in PRIVATE_DATAPIPE_ATTRS:
            self._hit(node, node.id)

    def visit_Call(self, node: ast.Call) -> None:
        # getattr(<torch object>, "_private") and getattr(pipe, "main_datapipe")
        if (
            isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"}
            and node.args
        ):
            target = self._chain(node.args[0])
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                on_torch = target is not None and target[0] in self.torch_names
                known = name.value in DATAPIPE_NAMES or name.value in PRIVATE_DATAPIPE_ATTRS
                if (on_torch and _private(name.value)) or known:
                    self._hit(node, f"{node.func.id}(..., {name.value!r})")
        self.generic_visit(node)


def _torch_internals(source: str) -> list[str]:
    finder = _Finder()
    finder.visit(ast.parse(source))
    return finder.found


@pytest.mark.parametrize(
    "snippet",
    [
        "from torch.utils.data.datapipes.iter.combining import _ChildDataPipe",
        "from torch.utils.data.datapipes.iter import Batcher",
        "from torch.utils.data.graph import DataPipeGraph",
        "from torch.utils.data.graph_settings import apply_sharding",
        "import torch.utils.data.graph_settings",
        "from torch.utils.data import IterDataPipe",
        "from torch.utils.data import functional_datapipe",
        "from torch.utils.data import _utils",
        "import torch\nx = torch.utils.data.datapipes.iter.Mapper",
        "import torch\nx = torch.utils.data.graph.traverse_dps",
        "import torch\nx = torch.UntypedStorage._new_shared(8)",
        "import torch as th\nx = th.UntypedStorage._new_shared(8)",
        "from torch import UntypedStorage\nx = UntypedStorage._new_shared(8)",
        "import torch\nx = getattr(torch.UntypedStorage, '_new_shared')",
        "import torch._C",
        "from torch._utils import _rebuild_tensor",
        "x = IterDataPipe.functions",
        "x = pipe.main_datapipe",
        "x = getattr(pipe, '_valid_iterator_id', None)",
        "x = pipe._is_child_datapipe",
    ],
)
def test_the_scan_finds_each_kind_of_torch_internal(snippet):
    assert _torch_internals(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\nw = torch.utils.data.get_worker_info()",
        "from torch.utils.data import DataLoader, IterableDataset, get_worker_info",
        "from terrapipe.core.pipe import IterDataPipe, TORCH_MIXING_TYPES",
        "import torch\nv = torch.__version__\nt = torch.empty(3).share_memory_()",
        "import torch.multiprocessing as mp\nctx = mp.get_context('spawn')",
        "x = self._private_of_ours",
    ],
)
def test_the_scan_passes_public_torch_and_our_own_privates(snippet):
    assert _torch_internals(snippet) == []


def test_no_torch_internals_outside_core_pipe():
    assert not ALLOWLIST, "the allowlist stays empty: move the access into core/pipe.py or _compat.py"
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel in ALLOWED or rel in ALLOWLIST:
            continue
        found = _torch_internals(path.read_text(encoding="utf-8"))
        if found:
            offenders[rel] = found
    assert not offenders, (
        "torch internals outside terrapipe/core/pipe.py (DataPipe machinery) and terrapipe/_compat.py "
        f"(other private names); reach them through a documented function there: {offenders}"
    )
