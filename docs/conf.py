"""Sphinx configuration: pydata-sphinx-theme + MyST (the Pangeo convention)."""

from __future__ import annotations

import terrapipe

project = "terrapipe"
author = "terrapipe developers"
release = terrapipe.__version__
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
autodoc_typehints = "description"
autodoc_member_order = "bysource"
nb_execution_mode = "cache"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
html_theme = "pydata_sphinx_theme"
html_title = "terrapipe"
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache"]
intersphinx_mapping: dict[str, tuple[str, None]] = {}
suppress_warnings = ["myst.header"]
