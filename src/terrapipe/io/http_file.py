"""The import path of :class:`~terrapipe.io.object_file.HTTPFile` and :func:`~terrapipe.io.object_file.open_http`.

Examples
--------
>>> from terrapipe.io.object_file import ObjectFile
>>> issubclass(HTTPFile, ObjectFile)
True
"""

from terrapipe.io.object_file import HTTPFile, open_http

__all__ = ["HTTPFile", "open_http"]
