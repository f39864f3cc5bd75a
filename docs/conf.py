"""Sphinx configuration: pydata-sphinx-theme + MyST-NB (the Pangeo convention).

The tutorials (``tutorials/*.md``) and the benchmark plots are MyST-NB
notebooks executed at build time, offline, on the built-in sample world.
The world is built once into ``docs/_build/sample-data`` (ignored by git)
unless ``TERRAPIPE_DATA_DIR`` names another folder; notebooks run in a
temporary folder, so a build writes nothing into the source tree.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SRC = DOCS.parent / "src"

# Document (and execute) the checkout's own sources, also in the notebook kernels.
if (SRC / "terrapipe").is_dir():
    sys.path.insert(0, str(SRC))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
os.environ.setdefault("TERRAPIPE_DATA_DIR", str(DOCS / "_build" / "sample-data"))
# The benchmark notebook reads the tables in docs/benchmarks/*.md from here.
os.environ["TERRAPIPE_DOCS_DIR"] = str(DOCS)

import terrapipe  # noqa: E402

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
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3  # "page.md#a-heading" links (conformance.md links into reliability.md)
nb_execution_mode = "cache"
nb_execution_timeout = 300
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_in_temp = True
nb_merge_streams = True
html_theme = "pydata_sphinx_theme"
html_title = "terrapipe"
html_theme_options = {"navigation_depth": 2, "show_toc_level": 2}
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache"]
intersphinx_mapping: dict[str, tuple[str, None]] = {}
suppress_warnings = ["myst.header"]
