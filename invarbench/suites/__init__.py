"""Evaluation suites: versioned YAML data (``<suite>/<dataset>.yaml``) validated by a typed schema."""

from functools import cache

from invarbench.errors import InvarbenchError
from invarbench.suites.schema import Suite, list_suites, load_suite

__all__ = ["Suite", "list_suites", "load_suite", "suite_file_examples"]


@cache
def suite_file_examples(suite_name: str, dataset: str, suite_version: int) -> int | None:
    """The ``num_examples`` of suite ``suite_name`` for ``dataset`` from the package's suite files.

    Returns None when there is no such suite file, or when its current version is not ``suite_version``
    (the files hold only the current version of a suite).
    """
    try:
        suite = load_suite(suite_name, dataset)
    except InvarbenchError:
        return None
    return suite.num_examples if suite.version == suite_version else None
