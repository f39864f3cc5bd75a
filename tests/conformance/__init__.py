"""Conformance: terrapipe against data and items that other projects published (issue #17)."""
