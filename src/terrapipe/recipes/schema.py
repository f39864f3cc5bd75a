"""The recipe schema (pydantic v2, unknown keys forbidden).

.. code-block:: yaml

    version: 1                       # required, only 1 exists
    name: landcover-segmentation
    description: ...
    seed: 0                          # given to loader(seed=), steps that take seed, chip's shuffle
    output: main                     # the input whose pipe build() returns (default "main")
    inputs:
      main:
        source: {search_stac: {catalog: {$world: catalog}, collections: [demo-s2]}}
        steps:                       # applied in order: pipe = getattr(pipe, name)(**kwargs)
          - stack_stac: {bands: [red, green, blue], resolution: 10}
          - chip: {size: 128}
          - align_to: {reference: {$world: dem}, name: dem}
          - map: {fn: {scale: {factor: 0.0001}}}   # fn: a registered recipe function only
    loader: {batch_size: 4, workers: 2}
    storage:                         # one tp.Storage for every stage that reads (see storage_section)
      region: eu-west-1
      key_id: ${MY_KEY_ID}           # credentials: only references to environment variables
      secret: ${env:MY_SECRET}

A source is exactly one of ``items: [...]`` (``tp.from_items``),
``search_stac: {catalog: ..., ...}`` (``tp.search_stac``; ``source:`` is the
deprecated name of ``catalog:``) or
``sample_world: FIELD`` (the path of a sample-world file, as a one-element
pipe). A step is ``{stage: {kwargs}}``, ``{stage: null}`` or ``stage``;
``args: [...]`` fills a stage's ``*others`` (``zip``, ``zip_grids``).
"""

from __future__ import annotations

from typing import Any

from terrapipe.core.optional import require

__all__ = ["FORMAT_VERSION", "recipe_model"]

#: The recipe format this terrapipe reads (``version:``); a larger one is a recipe for a newer terrapipe.
FORMAT_VERSION = 1

_MODEL: Any = None


def recipe_model() -> Any:
    """Return the pydantic model of a recipe file (built on first use: pydantic is an extra)."""
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    pydantic = require("pydantic", extra="cli", feature="recipes")
    BaseModel, ConfigDict, Field = pydantic.BaseModel, pydantic.ConfigDict, pydantic.Field  # noqa: N806
    strict = ConfigDict(extra="forbid", strict=True)

    class SourceSpec(BaseModel):  # type: ignore[misc,valid-type]
        model_config = strict
        items: list[Any] | None = None
        search_stac: dict[str, Any] | None = None
        sample_world: str | None = None

        @pydantic.model_validator(mode="after")  # type: ignore[untyped-decorator]
        def _one(self) -> SourceSpec:
            given = [k for k in ("items", "search_stac", "sample_world") if getattr(self, k) is not None]
            if len(given) != 1:
                msg = f"a source is exactly one of items, search_stac, sample_world; got {given or 'none'}"
                raise ValueError(msg)
            return self

    class InputSpec(BaseModel):  # type: ignore[misc,valid-type]
        model_config = strict
        source: SourceSpec
        steps: list[str | dict[str, Any]] = Field(default_factory=list)

    class RecipeSpec(BaseModel):  # type: ignore[misc,valid-type]
        model_config = strict
        version: int  # strict: ``true`` and ``1.0`` are not 1 (Literal[1] took them: True == 1.0 == 1)
        name: str
        description: str = ""
        # a seed outside 0 .. 2**64 - 1 is taken modulo 2**64 by the RNGs: -1 and 2**64 - 1 shuffled alike
        seed: int = Field(default=0, ge=0, lt=2**64)
        output: str = "main"
        inputs: dict[str, InputSpec] = Field(min_length=1)
        loader: dict[str, Any] = Field(default_factory=dict)
        storage: dict[str, Any] | None = None  # checked by terrapipe.recipes.storage_section

        @pydantic.field_validator("version")  # type: ignore[untyped-decorator]
        @classmethod
        def _known(cls, value: int) -> int:
            if value > FORMAT_VERSION:
                msg = (
                    f"this recipe is written for recipe format {value}, newer than this terrapipe's "
                    f"({FORMAT_VERSION}); upgrade terrapipe (pip install -U terrapipe) to run it"
                )
                raise ValueError(msg)
            if value != FORMAT_VERSION:
                raise ValueError(f"{value} is not a recipe format; write version: {FORMAT_VERSION}")
            return value

    _MODEL = RecipeSpec
    return _MODEL
