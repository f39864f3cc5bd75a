"""``pipe_fingerprint``: a digest of a pipeline's configuration, to refuse resuming into the wrong store.

A store records the fingerprint of the pipeline that wrote it; resuming a
materialize with a pipeline whose fingerprint differs would mix samples of
two pipelines, so it is refused. The fingerprint digests the stages' classes
in graph order and each stage's configuration as the cache layer describes
it (:func:`~terrapipe.cache.segment.describe_stage`, through
:func:`~terrapipe.cache.canonical.canonical`): its options, function bodies,
input files' sizes and modification times, arrays, tables and geometries by
a digest of their content. Everything in it is plain JSON, so the
fingerprint is the same in every process (no ``hash()``, no object ids).

A stage whose attributes hold objects with no stable description (an open
backend, a spatial index, a settings object) describes itself with a
``cache_config()`` method instead: ``search_stac`` by its backend kind, the
location it searches (credentials removed: see
:meth:`~terrapipe.stac.search.SearchSTAC.cache_config`) and its search
parameters; ``rasterize`` by the content of its vector layer (WKB, CRS and
burnt values) and its options; ``clip_vector`` by its layer's content (WKB,
CRS, kept columns with their values and row index) and ``name``;
``to_tensor`` by its conversion options.
Headers, tokens and other credentials never enter the fingerprint, and
changing them does not change it. A stage that still cannot be described
counts by its class only, so changing its options is not detected (pass
``version=`` to say that the configuration changed).

Examples
--------
>>> import terrapipe as tp
>>> a = pipe_fingerprint(tp.from_items([1, 2]).map(abs))
>>> a == pipe_fingerprint(tp.from_items([1, 2]).map(abs))
True
>>> a == pipe_fingerprint(tp.from_items([1, 3]).map(abs)), a == pipe_fingerprint(tp.from_items([1, 2]), epoch=1)
(False, False)
"""

from __future__ import annotations

from typing import Any

from terrapipe.cache.canonical import Json, digest_json
from terrapipe.cache.segment import describe_stage
from terrapipe.core.pipe import IterDataPipe, iter_graph

__all__ = ["pipe_fingerprint"]


def _describe(stage: IterDataPipe[Any]) -> Json:
    cls = type(stage)
    try:
        return describe_stage(stage)
    except Exception:  # an option with no stable description: the class stands for it
        return {"stage": f"{cls.__module__}.{cls.__qualname__}", "config": None}


def pipe_fingerprint(pipe: IterDataPipe[Any], *, epoch: int = 0, version: str | None = None) -> str:
    """Return a hex digest of ``pipe``'s stages, their configuration and the epoch.

    Parameters
    ----------
    pipe
        The pipeline.
    epoch
        The epoch it runs (seeded shuffles depend on it).
    version
        A label of your own that is mixed in (change it when you change a
        stage that cannot be described).

    Returns
    -------
    str
        The digest.
    """
    stages = [_describe(stage) for stage in iter_graph(pipe)]
    return digest_json({"stages": stages, "epoch": epoch, "version": version})
