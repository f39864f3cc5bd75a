"""Chipping: window planning, the chunk-aware chipper, the xbatcher-compatible slicer, samplers, splits, stitching."""

from terrapipe.chip.chipper import ChipCounters, Chipper
from terrapipe.chip.sampler import WindowSampler
from terrapipe.chip.split import SpatialSplit
from terrapipe.chip.stitch import stitch
from terrapipe.chip.xbatcher import XbatcherSlicer

__all__ = ["ChipCounters", "Chipper", "SpatialSplit", "WindowSampler", "XbatcherSlicer", "stitch"]
