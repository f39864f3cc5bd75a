"""Raster and vector files that rasterio, GDAL, pyogrio and others ship as test data."""
