"""Fixtures for the sample-world tests: an offline STAC validator.

How STAC is validated without a network
---------------------------------------
pystac's ``JsonSchemaSTACValidator`` fetches every schema it does not have.
pystac ships the *official* STAC 1.1.0 core schemas (item, catalog, collection
and the item-spec fragments they reference) and the GeoJSON schemas, so core
validation against the real schemas works offline. The extension schemas
(eo v1.1.0, projection v2.0.0, raster v1.1.0) are not shipped anywhere we can
read offline, so :class:`OfflineValidator` serves, under the extensions'
schema URIs, small schemas written here from the extensions' specifications:
they type-check every field of each extension wherever it may appear (item
properties, assets, collection ``item_assets``), reject unknown fields with the
extension's prefix (which catches v1 fields such as ``proj:epsg`` in a v2
item) and require the extension URI in ``stac_extensions`` - but they are our
reading of the specs, not the official files. Any other schema URI raises
instead of going to the network. The tests then check the values that matter
(``proj:code`` against the COG's CRS, ``raster:bands`` against its dtype and
nodata, ...) explicitly, against the data.
"""

from __future__ import annotations

from typing import Any

import pytest

EO_URI = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
PROJ_URI = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_URI = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"

_NUMBER = {"type": "number"}


def _extension_schema(
    uri: str, prefix: str, fields: dict[str, Any], *, in_properties: bool
) -> dict[str, Any]:
    """Schema that checks ``fields`` in properties (optional), assets and item_assets."""
    field_object = {
        "type": "object",
        "properties": fields,
        "patternProperties": {f"^(?!{prefix}:)": {}},
        "additionalProperties": False,
    }
    asset_map = {"type": "object", "additionalProperties": {"$ref": "#/definitions/fields"}}
    item = {
        "type": "object",
        "required": ["type", "properties", "assets", "stac_extensions"],
        "properties": {
            "type": {"const": "Feature"},
            "properties": (
                {"$ref": "#/definitions/fields"}
                if in_properties
                else {"type": "object", "patternProperties": {f"^{prefix}:": False}}
            ),
            "assets": asset_map,
            "stac_extensions": {"type": "array", "contains": {"const": uri}},
        },
    }
    collection = {
        "type": "object",
        "required": ["type", "stac_extensions"],
        "properties": {
            "type": {"const": "Collection"},
            "assets": asset_map,
            "item_assets": asset_map,
            "stac_extensions": {"type": "array", "contains": {"const": uri}},
        },
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": uri,
        "oneOf": [item, collection],
        "definitions": {"fields": field_object},
    }


_COMMON_NAMES = [
    "coastal", "blue", "green", "red", "yellow", "pan", "rededge", "rededge071", "rededge075",
    "rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12",
]  # fmt: skip
_DATA_TYPES = [
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "cint16", "cint32", "cfloat32", "cfloat64", "other",
]  # fmt: skip

EO_SCHEMA = _extension_schema(
    EO_URI,
    "eo",
    {
        "eo:bands": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "common_name": {"enum": _COMMON_NAMES},
                    "description": {"type": "string"},
                    "center_wavelength": {"type": "number", "exclusiveMinimum": 0},
                    "full_width_half_max": {"type": "number", "exclusiveMinimum": 0},
                    "solar_illumination": {"type": "number", "minimum": 0},
                },
            },
        },
        "eo:cloud_cover": {"type": "number", "minimum": 0, "maximum": 100},
        "eo:snow_cover": {"type": "number", "minimum": 0, "maximum": 100},
    },
    in_properties=True,
)

PROJ_SCHEMA = _extension_schema(
    PROJ_URI,
    "proj",
    {
        "proj:code": {"type": ["string", "null"], "pattern": "^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$"},
        "proj:wkt2": {"type": ["string", "null"]},
        "proj:projjson": {"type": ["object", "null"]},
        "proj:geometry": {"type": "object", "required": ["type", "coordinates"]},
        "proj:bbox": {
            "type": "array",
            "items": _NUMBER,
            "oneOf": [{"minItems": 4, "maxItems": 4}, {"minItems": 6, "maxItems": 6}],
        },
        "proj:centroid": {
            "type": "object",
            "required": ["lat", "lon"],
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
            },
        },
        "proj:shape": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "integer", "minimum": 0},
        },
        "proj:transform": {
            "type": "array",
            "items": _NUMBER,
            "oneOf": [{"minItems": 6, "maxItems": 6}, {"minItems": 9, "maxItems": 9}],
        },
    },
    in_properties=True,
)

RASTER_SCHEMA = _extension_schema(
    RASTER_URI,
    "raster",
    {
        "raster:bands": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "nodata": {"oneOf": [_NUMBER, {"enum": ["nan", "inf", "-inf"]}]},
                    "sampling": {"enum": ["area", "point"]},
                    "data_type": {"enum": _DATA_TYPES},
                    "bits_per_sample": {"type": "integer", "minimum": 1},
                    "spatial_resolution": {"type": "number", "exclusiveMinimum": 0},
                    "statistics": {"type": "object"},
                    "unit": {"type": "string"},
                    "scale": _NUMBER,
                    "offset": _NUMBER,
                    "histogram": {"type": "object"},
                },
            },
        }
    },
    # raster:bands belongs to assets only.
    in_properties=False,
)

EXTENSION_SCHEMAS = {EO_URI: EO_SCHEMA, PROJ_URI: PROJ_SCHEMA, RASTER_URI: RASTER_SCHEMA}


def _offline_validator_class() -> type:
    from pystac.validation import JsonSchemaSTACValidator
    from pystac.validation.stac_validator import GetSchemaError

    class OfflineValidator(JsonSchemaSTACValidator):
        """pystac validator that never goes to the network (see the module docstring)."""

        def __init__(self) -> None:
            super().__init__()  # pre-fills schema_cache with pystac's bundled core schemas
            self.schema_cache.update(EXTENSION_SCHEMAS)
            self.requested: set[str] = set()

        def _get_schema(self, schema_uri: str) -> dict[str, Any]:
            self.requested.add(schema_uri)
            if schema_uri not in self.schema_cache:
                raise GetSchemaError(schema_uri, LookupError(f"no offline copy of {schema_uri}"))
            schema: dict[str, Any] = self.schema_cache[schema_uri]
            return schema

    return OfflineValidator


@pytest.fixture(scope="session")
def offline_validator() -> Any:
    """A pystac ``STACValidator`` that validates core and extensions offline."""
    pytest.importorskip("pystac")
    pytest.importorskip("jsonschema")
    return _offline_validator_class()()
