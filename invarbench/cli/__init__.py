"""The ``invarbench`` command line: a thin layer that parses, calls the library and renders."""

from invarbench.cli.app import app, main

__all__ = ["app", "main"]
