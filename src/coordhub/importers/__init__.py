"""Importers: another coordination system's data, read from its store and written onto the hub (issue 10)."""
