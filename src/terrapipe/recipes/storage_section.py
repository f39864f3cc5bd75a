r"""A recipe's ``storage:`` section: one :class:`terrapipe.Storage` for every stage that reads.

.. code-block:: yaml

    storage:
      s3_endpoint: https://s3.eu-central-1.example.com   # or endpoint: (every cloud), azure_endpoint, gcs_endpoint
      region: eu-central-1
      requester_pays: true
      timeout: 30            # seconds per request
      deadline: 300          # seconds per read, retries included
      retries: 5
      concurrency: 16
      key_id: ${MY_KEY_ID}   # credentials: only references to environment variables
      secret: ${env:MY_SECRET}
      # from_env: true       # or: what the clouds' own SDKs read (AWS_*, AZURE_STORAGE_*, ...)

Fields: ``endpoint``, ``s3_endpoint``, ``azure_endpoint``, ``gcs_endpoint``
(``http(s)://`` URLs), ``region``, ``account_name``, ``anonymous``,
``requester_pays``, ``sidecars``, ``timeout``, ``deadline``, ``retries``, ``concurrency``,
``max_bytes``, ``backoff``, ``max_backoff``, ``from_env``; and the credentials
``key_id``, ``secret``, ``session_token``, ``account_key``, ``sas_token``,
``gcs_token``, ``gcs_credentials``.

The rules (a shared recipe is untrusted input, and must never hold a secret):

* a credential is exactly one reference to an environment variable,
  ``${NAME}`` or ``${env:NAME}``, and the user allows that name
  (``load_recipe(path, allow_env={"NAME"})``, ``terrapipe run --allow-env NAME``);
  a literal value is a :class:`~terrapipe.core.errors.RecipeError` saying how to
  reference one instead (its value is never shown);
* ``from_env: true`` reads the environment the way each cloud's SDK does
  (:meth:`terrapipe.Storage.from_env`); the other fields override it;
* a recipe that chooses an endpoint also says which credentials go there:
  ``anonymous: true`` or credentials referenced by name. ``from_env: true``
  with an endpoint the recipe wrote is refused (the recipe would choose where
  your ambient credentials are sent); the endpoint may itself come from a
  variable you allow (``s3_endpoint: ${MY_ENDPOINT}``);
* no headers, no request hooks (code), no other keys.

The storage reaches every step whose stage takes ``storage=`` (``read_raster``,
``read_vector``/GeoParquet, ``read_zarr``, ``open_xarray``, ``read_samples``,
and ``search_stac`` sources), unless the step sets ``storage_options`` (fsspec's
own, for ``read_zarr``). Stages that do not take it yet are listed in
``docs/storage.md``.

Examples
--------
>>> import os
>>> os.environ["TP_DOC_KEY"], os.environ["TP_DOC_SECRET"] = "AKID", "s3cr3t"
>>> spec = check_storage_section({"region": "eu-west-1", "key_id": "${TP_DOC_KEY}",
...     "secret": "${env:TP_DOC_SECRET}"}, "r.yaml", {}, frozenset({"TP_DOC_KEY", "TP_DOC_SECRET"}))
>>> storage = build_storage(spec, "r.yaml", {}, frozenset({"TP_DOC_KEY", "TP_DOC_SECRET"}))
>>> storage.region, storage.secret == "s3cr3t", "s3cr3t" in repr(storage)
('eu-west-1', True, False)
>>> check_storage_section({"secret": "s3cr3t"}, "r.yaml", {}, frozenset())
Traceback (most recent call last):
...
terrapipe.core.errors.RecipeError: r.yaml: storage.secret: a shared recipe must never hold a secret; ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any

from terrapipe.core.errors import RecipeError, TerrapipeError
from terrapipe.io.storage import Storage
from terrapipe.recipes.values import check_limit, expand_env, where
from terrapipe.recipes.yaml_source import Lines

__all__ = ["CREDENTIAL_FIELDS", "SETTING_FIELDS", "build_storage", "check_storage_section"]

#: Fields that hold a secret (or the path of one): only ``${NAME}`` / ``${env:NAME}`` references.
CREDENTIAL_FIELDS = (
    "key_id",
    "secret",
    "session_token",
    "account_key",
    "sas_token",
    "gcs_token",
    "gcs_credentials",
)
_ENDPOINTS = ("endpoint", "s3_endpoint", "azure_endpoint", "gcs_endpoint")
#: Fields that are plain settings, with the types they take.
SETTING_FIELDS: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(_ENDPOINTS, (str,)),
    "region": (str,),
    "account_name": (str,),
    "anonymous": (bool,),
    "requester_pays": (bool,),
    "sidecars": (bool,),
    "from_env": (bool,),
    "timeout": (int, float),
    "deadline": (int, float),
    "backoff": (int, float),
    "max_backoff": (int, float),
    "retries": (int,),
    "concurrency": (int,),
    "max_bytes": (int,),
}
_REFERENCE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_FORM = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def _at(file: str, lines: Lines, key: str | None = None) -> str:
    path = ("storage", key) if key is not None else ("storage",)
    return f"{where(file, lines, path)}: storage" + (f".{key}" if key is not None else "")


def _expand(value: str, key: str, file: str, lines: Lines, allowed: Set[str]) -> str:
    """Expand ``${NAME}`` and ``${env:NAME}`` (allowed names only) in a value of the section."""
    return expand_env(_ENV_FORM.sub(r"${\1}", value), ("storage", key), file, lines, allowed)


def check_storage_section(
    section: Any, file: str, lines: Lines, allowed: Set[str], secrets: dict[str, str] | None = None
) -> dict[str, Any]:
    """Check a recipe's ``storage:`` section when the recipe is loaded; return it (references unexpanded).

    Parameters
    ----------
    section
        The section as read from the YAML.
    file, lines
        Where it is (for messages).
    allowed
        The environment variables the user allowed.
    secrets
        Filled with ``{value: "${NAME}"}`` for each expanded reference (so
        messages show the reference, never the value).

    Raises
    ------
    RecipeError
        An unknown key, a wrong type, a literal credential, a variable not
        allowed or not set, ``from_env`` with an endpoint the recipe chose, an
        endpoint without saying which credentials go there, or a value
        :class:`terrapipe.Storage` refuses.
    """
    if not isinstance(section, Mapping):
        raise RecipeError(
            f"{_at(file, lines)}: must be a mapping of settings, got a {type(section).__name__}"
        )
    spec = dict(section)
    for key, value in spec.items():
        if key in CREDENTIAL_FIELDS:
            if not isinstance(value, str) or not _REFERENCE.fullmatch(value.strip()):
                raise RecipeError(
                    f"{_at(file, lines, key)}: a shared recipe must never hold a secret; reference an "
                    f"environment variable instead ({key}: ${{MY_VARIABLE}} or ${{env:MY_VARIABLE}}) and "
                    "allow it when you load the recipe (load_recipe(path, allow_env={'MY_VARIABLE'}), "
                    "terrapipe run --allow-env MY_VARIABLE), or use from_env: true (the value given is "
                    "not shown)"
                )
            continue
        if key not in SETTING_FIELDS:
            known = ", ".join((*SETTING_FIELDS, *CREDENTIAL_FIELDS))
            raise RecipeError(f"{_at(file, lines, str(key))}: unknown key; storage takes: {known}")
        types = SETTING_FIELDS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            hint = ""
            if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d*)?[eE][+-]?\d+", value.strip()):
                hint = f" (YAML 1.1 reads {value!r} as text: write it with a dot and a signed exponent, 1.0e+3, or in full)"
            raise RecipeError(f"{_at(file, lines, key)}: must be a {names}, got {type(value).__name__}{hint}")
        check_limit(key, value, _at(file, lines, key))
    chosen = [k for k in _ENDPOINTS if isinstance(spec.get(k), str) and not _REFERENCE.search(spec[k])]
    if chosen and spec.get("from_env"):
        raise RecipeError(
            f"{_at(file, lines, chosen[0])}: with from_env: true the recipe would choose where the "
            "credentials of your environment are sent; set the endpoint in your environment "
            "(AWS_ENDPOINT_URL, AZURE_STORAGE_CONNECTION_STRING, STORAGE_EMULATOR_HOST) or reference "
            f"a variable you allow ({chosen[0]}: ${{MY_ENDPOINT}})"
        )
    has_credentials = any(k in spec for k in CREDENTIAL_FIELDS)
    if chosen and not spec.get("anonymous") and not has_credentials:
        raise RecipeError(
            f"{_at(file, lines, chosen[0])}: a recipe that chooses an endpoint says which credentials go "
            "there: anonymous: true, or credentials referenced by name (key_id: ${MY_KEY_ID}, ...)"
        )
    # Build it once now, so that a bad value fails when the recipe is loaded.
    build_storage(spec, file, lines, allowed, secrets)
    return spec


def build_storage(
    spec: Mapping[str, Any], file: str, lines: Lines, allowed: Set[str], secrets: dict[str, str] | None = None
) -> Storage:
    """Make the :class:`terrapipe.Storage` of a checked section (environment references expanded now).

    Raises
    ------
    RecipeError
        A variable not allowed or not set, or a value :class:`terrapipe.Storage` refuses.
    """
    values: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "from_env":
            continue
        if isinstance(value, str):
            expanded = _expand(value.strip(), key, file, lines, allowed)
            if secrets is not None and expanded != value and expanded:
                secrets[expanded] = value
            value = expanded
        values[key] = value
    try:
        if spec.get("from_env"):
            return Storage.from_env(**values)
        return Storage(**values)
    except TerrapipeError as err:  # Storage's checks name the field and never show a credential
        raise RecipeError(f"{_at(file, lines)}: {err}") from None
