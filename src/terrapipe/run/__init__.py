"""Run layer: ``tp.loader``, parallel map, prefetch, exact resume, progress and profiling.

Importing it registers the functional names ``pmap`` and ``prefetch``.
See :mod:`terrapipe.run.pipe_loader` for how the loader parallelises and resumes.
"""

from terrapipe.core.device import map_tensors, move_to, resolve_device
from terrapipe.core.renamed import renamed_names
from terrapipe.core.shard import shard_scope
from terrapipe.run.pipe_loader import PipeLoader, loader
from terrapipe.run.pipe_state import ResumePlan, resume_plan
from terrapipe.run.pmap import ParallelMap
from terrapipe.run.prefetch import Prefetch
from terrapipe.run.profiler import PipeProfile, StageProfile, profile
from terrapipe.run.sharding import apply_torch_sharding, can_shard
from terrapipe.run.shuffle import ShuffledItems, shuffled_items

__all__ = [
    "ParallelMap",
    "PipeLoader",
    "PipeProfile",
    "Prefetch",
    "ResumePlan",
    "ShuffledItems",
    "StageProfile",
    "apply_torch_sharding",
    "can_shard",
    "loader",
    "map_tensors",
    "move_to",
    "profile",
    "resolve_device",
    "resume_plan",
    "shard_scope",
    "shuffled_items",
]

__getattr__ = renamed_names(
    __name__,
    {
        "collate_samples": "terrapipe.collate",
        "ParallelMapper": "terrapipe.run.ParallelMap",
        "Prefetcher": "terrapipe.run.Prefetch",
        "ResumeWarning": "terrapipe.ResumeWarning",
        "WorkerError": "terrapipe.WorkerError",
    },
)
