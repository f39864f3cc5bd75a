"""terrapipe: geospatial data to PyTorch tensors, in small composable stages.

Importing terrapipe registers every functional name (``pipe.header(...)``,
``pipe.chip(...)``, ...). Only the core dependencies are imported here; stages
that need an extra import it when they run.

The top level holds what a training script needs: the pipe starts and
runners (:func:`from_items`, :func:`search_stac`, :func:`read_samples`,
:func:`cache_point`, :func:`loader`, :func:`collate`, :func:`materialize`,
:func:`load_recipe`, :func:`profile`, :func:`set_epoch`), the element types
(:class:`Sample`, :class:`GeoMeta`, :class:`Storage`, :class:`Stage`), the
one-shot readers ``open_*``, and the errors and warnings to catch. Everything
else lives in its layer's subpackage, always importable as an attribute:
``tp.chip.Chip``, ``tp.io.ReadRaster``, ``tp.cache.MemoryLRU``.

Naming rule
-----------
- A stage's functional name is a verb on the data (``read_raster``,
  ``chip``, ``align_to``); its class is that name in CamelCase
  (``ReadRaster``, ``Chip``, ``AlignTo``, ``SampleWindows``,
  ``SliceWithXbatcher``), abbreviations spelled out (``pmap`` ->
  ``ParallelMap``).
- Acronyms keep their case everywhere: ``SearchSTAC``, ``STACServer``,
  ``STACSearchError``.
- A function that reads one source and returns an xarray object or an array
  is ``open_<source>`` (``open_raster``, ``open_zarr``, ``open_stac_item``).
- A one-shot transform of one array lives in its subpackage as
  ``<verb>_<what it takes>`` (``tp.stac.stack_items(items)``,
  ``tp.stac.mosaic_array(cube)``, ``tp.fuse.align_array(array, like)``).
- Old names keep working for one release and warn with
  :class:`TerrapipeDeprecationWarning` naming the new one.

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items([3, 1, 2]).map(lambda x: x * 2).header(2))
[6, 2]
>>> tp.chip.Chip.__name__, len(tp.__all__)
('Chip', 40)
"""

from importlib.metadata import PackageNotFoundError, version

from terrapipe import cache as cache
from terrapipe import chip as chip
from terrapipe import core as core
from terrapipe import datasets as datasets
from terrapipe import dist as dist
from terrapipe import fuse as fuse
from terrapipe import gpu as gpu
from terrapipe import io as io
from terrapipe import recipes as recipes
from terrapipe import run as run
from terrapipe import stac as stac
from terrapipe import tensor as tensor
from terrapipe.cache import cache_point
from terrapipe.cache.entry import CorruptEntryError
from terrapipe.core.errors import (
    CacheError,
    ConcurrentIterationError,
    DeviceError,
    GridMismatchError,
    InvalidArgumentError,
    MissingDependencyError,
    PipelineStateError,
    ReadError,
    RecipeError,
    ResumeWarning,
    SkippedElementWarning,
    SkipsInEpochWarning,
    STACSearchError,
    TerrapipeDeprecationWarning,
    TerrapipeError,
    TerrapipeWarning,
    WorkerError,
)
from terrapipe.core.pipe import Stage, set_epoch
from terrapipe.core.renamed import renamed_names
from terrapipe.core.sample import GeoMeta, Sample
from terrapipe.core.sources import from_items
from terrapipe.dist import MaterializeError, materialize, read_samples
from terrapipe.io import Storage, open_point_cloud, open_raster, open_vector, open_xarray, open_zarr
from terrapipe.recipes import load_recipe
from terrapipe.run import loader, profile
from terrapipe.stac import open_stac_item, search_stac
from terrapipe.tensor import collate

try:
    __version__ = version("terrapipe")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CacheError",
    "ConcurrentIterationError",
    "CorruptEntryError",
    "DeviceError",
    "GeoMeta",
    "GridMismatchError",
    "InvalidArgumentError",
    "MaterializeError",
    "MissingDependencyError",
    "PipelineStateError",
    "ReadError",
    "RecipeError",
    "ResumeWarning",
    "STACSearchError",
    "Sample",
    "SkippedElementWarning",
    "SkipsInEpochWarning",
    "Stage",
    "Storage",
    "TerrapipeDeprecationWarning",
    "TerrapipeError",
    "TerrapipeWarning",
    "WorkerError",
    "__version__",
    "cache_point",
    "collate",
    "from_items",
    "load_recipe",
    "loader",
    "materialize",
    "open_point_cloud",
    "open_raster",
    "open_stac_item",
    "open_vector",
    "open_xarray",
    "open_zarr",
    "profile",
    "read_samples",
    "search_stac",
    "set_epoch",
]

#: Names that left the top level (moved to their subpackage, some renamed), kept for one release.
_OLD_NAMES = {
    "AlignTo": "terrapipe.fuse.AlignTo",
    "Cache": "terrapipe.cache.Cache",
    "CachePoint": "terrapipe.cache.CachePoint",
    "CacheStats": "terrapipe.cache.CacheStats",
    "CacheStore": "terrapipe.cache.CacheStore",
    "ChipCounters": "terrapipe.chip.ChipCounters",
    "Chipper": "terrapipe.chip.Chip",
    "ClipVector": "terrapipe.fuse.ClipVector",
    "Cycler": "terrapipe.core.Cycle",
    "DeviceMover": "terrapipe.gpu.DeviceMover",
    "Enumerator": "terrapipe.core.Enumerate",
    "FlatMapper": "terrapipe.core.FlatMap",
    "FromItems": "terrapipe.core.FromItems",
    "Header": "terrapipe.core.Header",
    "ListSTACItems": "terrapipe.stac.ListSTACItems",
    "MaterializeReport": "terrapipe.dist.MaterializeReport",
    "MemoryLRU": "terrapipe.cache.MemoryLRU",
    "Mosaic": "terrapipe.stac.Mosaic",
    "OpenXarray": "terrapipe.io.OpenXarray",
    "ParallelMapper": "terrapipe.run.ParallelMap",
    "PinnedPool": "terrapipe.gpu.PinnedPool",
    "PipeLoader": "terrapipe.run.PipeLoader",
    "PipeProfile": "terrapipe.run.PipeProfile",
    "PointCloud": "terrapipe.io.PointCloud",
    "Prefetcher": "terrapipe.run.Prefetch",
    "Rasterize": "terrapipe.fuse.Rasterize",
    "RasterizePoints": "terrapipe.fuse.RasterizePoints",
    "ReadPointCloud": "terrapipe.io.ReadPointCloud",
    "ReadRaster": "terrapipe.io.ReadRaster",
    "ReadSTACItem": "terrapipe.stac.ReadSTACItem",
    "ReadSamples": "terrapipe.dist.ReadSamples",
    "ReadVector": "terrapipe.io.ReadVector",
    "ReadZarr": "terrapipe.io.ReadZarr",
    "RedisStore": "terrapipe.cache.RedisStore",
    "SampleStore": "terrapipe.dist.SampleStore",
    "SearchSTAC": "terrapipe.stac.SearchSTAC",
    "ShardInfo": "terrapipe.core.ShardInfo",
    "ShuffledItems": "terrapipe.run.ShuffledItems",
    "SpatialSplit": "terrapipe.chip.SpatialSplit",
    "StacSearchError": "terrapipe.STACSearchError",
    "StacServer": "terrapipe.stac.STACServer",
    "StackSTAC": "terrapipe.stac.StackSTAC",
    "StageProfile": "terrapipe.run.StageProfile",
    "StageStats": "terrapipe.core.StageStats",
    "Stateful": "terrapipe.core.Stateful",
    "ToDevice": "terrapipe.gpu.ToDevice",
    "ToTensor": "terrapipe.tensor.ToTensor",
    "WindowSampler": "terrapipe.chip.SampleWindows",
    "XbatcherSlicer": "terrapipe.chip.SliceWithXbatcher",
    "ZarrStore": "terrapipe.cache.ZarrStore",
    "ZipGrids": "terrapipe.fuse.ZipGrids",
    "ZipperLongest": "terrapipe.core.ZipLongest",
    "align_array": "terrapipe.fuse.align_array",
    "as_tensor": "terrapipe.gpu.as_tensor",
    "boxes_to_pixels": "terrapipe.fuse.boxes_to_pixels",
    "check_same_grid": "terrapipe.fuse.check_same_grid",
    "chip_vectors": "terrapipe.fuse.chip_vectors",
    "collate_samples": "terrapipe.collate",
    "geo_meta": "terrapipe.core.geo_meta",
    "iter_graph": "terrapipe.core.iter_graph",
    "mosaic_array": "terrapipe.stac.mosaic_array",
    "open_zarr_on_device": "terrapipe.gpu.open_zarr_on_device",
    "pixels_to_boxes": "terrapipe.fuse.pixels_to_boxes",
    "register": "terrapipe.core.register",
    "registered_names": "terrapipe.core.registered_names",
    "serve_stac": "terrapipe.stac.serve_stac",
    "shard_info": "terrapipe.core.shard_info",
    "shuffled_items": "terrapipe.run.shuffled_items",
    "stack_items": "terrapipe.stac.stack_items",
    "stitch": "terrapipe.chip.stitch",
    "to_sample": "terrapipe.tensor.to_sample",
}

__getattr__ = renamed_names(__name__, _OLD_NAMES)
