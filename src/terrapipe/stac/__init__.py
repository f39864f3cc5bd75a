"""STAC discovery and datacubes: search, list and read items; stack them into cubes; mosaic.

Importing this package registers the functional names ``search_stac``,
``list_stac_items``, ``read_stac_item``, ``stack_stac`` and ``mosaic``. The
libraries they use (pystac, pystac-client, odc-stac, stac-geoparquet,
requests) are imported only when a stage runs (``pip install 'terrapipe[stac]'``).
How every stage reaches its sources (buckets, HTTP headers, time-outs,
retries, deadline, body cap) is one :class:`~terrapipe.io.storage.Storage`,
``storage=`` (``HttpOptions`` and the loose keywords are deprecated).

- :func:`search_stac` / :class:`SearchSTAC`: items from a STAC API, a static
  catalog or a stac-geoparquet file; lazy, page by page, resumable, with
  bounded retries; what to search is a :class:`STACQuery` (or its parameters
  by name);
- :class:`ListSTACItems`: pystac-client ``ItemSearch`` objects in, items out;
- :func:`open_stac_item` / :class:`ReadSTACItem`: item JSON (path or URL) to ``pystac.Item``;
- :func:`stack_items` / :class:`StackSTAC`: items to a lazy ``(time, band, y, x)`` cube (odc-stac);
- :func:`mosaic_array` / :class:`Mosaic`: nodata-aware reduction along time;
- :func:`serve_stac`: a real STAC API (``rustac serve``) on 127.0.0.1 for a sample world.

Examples
--------
>>> import terrapipe as tp, terrapipe.stac
>>> world = tp.datasets.sample_world()
>>> cube = (
...     terrapipe.stac.search_stac(world.catalog, collections=["demo-s2"], bbox=[5.93, 45.72, 5.95, 45.74])
...     .stack_stac(bands=["red", "nir"])
...     .mosaic(method="first")
... )
>>> [c.dims for c in cube]
[('band', 'y', 'x')]
"""

from terrapipe.core.renamed import renamed_names
from terrapipe.stac.deprecated import HttpOptions  # deprecated: tp.Storage
from terrapipe.stac.list_items import ListSTACItems
from terrapipe.stac.mosaic import Mosaic, mosaic_array
from terrapipe.stac.query import STACQuery
from terrapipe.stac.read_item import ReadSTACItem, open_stac_item
from terrapipe.stac.search import SearchSTAC, search_stac
from terrapipe.stac.server import STACServer, serve_stac, start_stac_server
from terrapipe.stac.stack import StackSTAC, stack_items

__all__ = [
    "HttpOptions",
    "ListSTACItems",
    "Mosaic",
    "ReadSTACItem",
    "STACQuery",
    "STACServer",
    "SearchSTAC",
    "StackSTAC",
    "mosaic_array",
    "open_stac_item",
    "search_stac",
    "serve_stac",
    "stack_items",
    "start_stac_server",
]

__getattr__ = renamed_names(__name__, {"StacServer": "terrapipe.stac.STACServer"})
