"""terrapipe: geospatial data to PyTorch tensors, in small composable stages.

Importing terrapipe registers every functional name (``pipe.header(...)``,
``pipe.chip(...)``, ...). Only the core dependencies are imported here; stages
that need an extra import it when they run.

Examples
--------
>>> import terrapipe as tp
>>> list(tp.from_items([3, 1, 2]).map(lambda x: x * 2).header(2))
[6, 2]
"""

from importlib.metadata import PackageNotFoundError, version

from terrapipe import datasets, io, run
from terrapipe.core import (
    CacheError,
    Cycler,
    DeviceError,
    Enumerator,
    FlatMapper,
    FromItems,
    GeoMeta,
    GridMismatchError,
    Header,
    InvalidArgumentError,
    MissingDependencyError,
    PipelineStateError,
    ReadError,
    RecipeError,
    ResumeWarning,
    Sample,
    ShardInfo,
    SkippedElementWarning,
    StacSearchError,
    Stage,
    StageStats,
    Stateful,
    TerrapipeError,
    TerrapipeWarning,
    WorkerError,
    ZipperLongest,
    from_items,
    geo_meta,
    iter_graph,
    register,
    registered_names,
    set_epoch,
    shard_info,
)
from terrapipe.io import (
    OpenXarray,
    ReadRaster,
    ReadVector,
    ReadZarr,
    open_raster,
    open_vector,
    open_xarray,
    open_zarr,
)
from terrapipe.run import (
    ParallelMapper,
    PipeLoader,
    PipeProfile,
    Prefetcher,
    ShuffledItems,
    StageProfile,
    collate_samples,
    loader,
    profile,
    shuffled_items,
)

try:
    __version__ = version("terrapipe")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "CacheError",
    "Cycler",
    "DeviceError",
    "Enumerator",
    "FlatMapper",
    "FromItems",
    "GeoMeta",
    "GridMismatchError",
    "Header",
    "InvalidArgumentError",
    "MissingDependencyError",
    "OpenXarray",
    "ParallelMapper",
    "PipeLoader",
    "PipeProfile",
    "PipelineStateError",
    "Prefetcher",
    "ReadError",
    "ReadRaster",
    "ReadVector",
    "ReadZarr",
    "RecipeError",
    "ResumeWarning",
    "Sample",
    "ShardInfo",
    "ShuffledItems",
    "SkippedElementWarning",
    "StacSearchError",
    "Stage",
    "StageProfile",
    "StageStats",
    "Stateful",
    "TerrapipeError",
    "TerrapipeWarning",
    "WorkerError",
    "ZipperLongest",
    "__version__",
    "collate_samples",
    "datasets",
    "from_items",
    "geo_meta",
    "io",
    "iter_graph",
    "loader",
    "open_raster",
    "open_vector",
    "open_xarray",
    "open_zarr",
    "profile",
    "register",
    "registered_names",
    "run",
    "set_epoch",
    "shard_info",
    "shuffled_items",
]
