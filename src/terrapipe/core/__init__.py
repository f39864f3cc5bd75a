"""Core of terrapipe: the pipe model, errors, optional dependencies, sharding, samples."""

from terrapipe.core.cycle import Cycle
from terrapipe.core.enumerate import Enumerate
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
from terrapipe.core.flatmap import FlatMap
from terrapipe.core.header import Header
from terrapipe.core.on_error import OnError, check_on_error, handle_error
from terrapipe.core.optional import require
from terrapipe.core.pipe import (
    GRAPH_LOCK,
    IterDataPipe,
    Stage,
    iter_graph,
    pipe_graph,
    register,
    registered_names,
    set_epoch,
    source_pipes,
)
from terrapipe.core.renamed import renamed_names
from terrapipe.core.sample import GeoMeta, Sample, geo_meta
from terrapipe.core.shard import ShardInfo, shard_info, shard_range, shard_scope, shared_seed, worker_seed
from terrapipe.core.sources import FromItems, from_items
from terrapipe.core.state import Stateful, check_resume, expect_keys
from terrapipe.core.stats import StageStats
from terrapipe.core.zip_longest import ZipLongest

__all__ = [
    "GRAPH_LOCK",
    "CacheError",
    "ConcurrentIterationError",
    "Cycle",
    "DeviceError",
    "Enumerate",
    "FlatMap",
    "FromItems",
    "GeoMeta",
    "GridMismatchError",
    "Header",
    "InvalidArgumentError",
    "IterDataPipe",
    "MissingDependencyError",
    "OnError",
    "PipelineStateError",
    "ReadError",
    "RecipeError",
    "ResumeWarning",
    "STACSearchError",
    "Sample",
    "ShardInfo",
    "SkippedElementWarning",
    "SkipsInEpochWarning",
    "Stage",
    "StageStats",
    "Stateful",
    "TerrapipeDeprecationWarning",
    "TerrapipeError",
    "TerrapipeWarning",
    "WorkerError",
    "ZipLongest",
    "check_on_error",
    "check_resume",
    "expect_keys",
    "from_items",
    "geo_meta",
    "handle_error",
    "iter_graph",
    "pipe_graph",
    "register",
    "registered_names",
    "require",
    "set_epoch",
    "shard_info",
    "shard_range",
    "shard_scope",
    "shared_seed",
    "source_pipes",
    "worker_seed",
]

__getattr__ = renamed_names(
    __name__,
    {
        "Cycler": "terrapipe.core.Cycle",
        "Enumerator": "terrapipe.core.Enumerate",
        "FlatMapper": "terrapipe.core.FlatMap",
        "StacSearchError": "terrapipe.STACSearchError",
        "ZipperLongest": "terrapipe.core.ZipLongest",
    },
)
