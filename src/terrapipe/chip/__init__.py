"""Chipping: window planning, the chunk-aware chipper, the xbatcher-compatible slicer, samplers, splits, stitching."""

from terrapipe.chip.chipper import Chip, ChipCounters
from terrapipe.chip.reads import Reads
from terrapipe.chip.sampler import SampleWindows
from terrapipe.chip.split import SpatialSplit, SplitSubset
from terrapipe.chip.stitch import stitch
from terrapipe.chip.window_shuffle import WindowShuffle
from terrapipe.chip.xbatcher import SliceWithXbatcher
from terrapipe.core.renamed import renamed_names

__all__ = [
    "Chip",
    "ChipCounters",
    "Reads",
    "SampleWindows",
    "SliceWithXbatcher",
    "SpatialSplit",
    "SplitSubset",
    "WindowShuffle",
    "stitch",
]

__getattr__ = renamed_names(
    __name__,
    {
        "Chipper": "terrapipe.chip.Chip",
        "WindowSampler": "terrapipe.chip.SampleWindows",
        "XbatcherSlicer": "terrapipe.chip.SliceWithXbatcher",
    },
)
