"""GitHub Actions job summaries: Markdown appended to the file that ``$GITHUB_STEP_SUMMARY`` names.

GitHub sets ``GITHUB_STEP_SUMMARY`` in every step and shows what the step appends to that file on the
run's page and in the pull request's checks. Outside GitHub Actions the variable is unset and nothing
is written. Card fields and error messages come from submitters: :func:`md` escapes them so that they
stay text (no links, no HTML, no broken tables).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invarbench.errors import InvarbenchError

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

# Always placed after other text on a line, so that line-start syntax (#, -, +, 1.) cannot start; links
# and images need '[', emphasis '*' or '_', tables '|', code '`', strikethrough '~'.
_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: object) -> str:
    """``text`` as literal Markdown on one line, to be placed after other text: HTML characters as entities,
    the Markdown characters that act mid-line escaped."""
    one_line = " ".join(str(text).split())
    html = one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", html)


def code(text: object) -> str:
    """``text`` as an inline code span on one line (backticks become quotes; ``|`` is escaped for tables,
    which GitHub applies before code spans)."""
    return "`" + " ".join(str(text).split()).replace("`", "'").replace("|", "\\|") + "`"


def summary_path() -> Path | None:
    """The job summary file when running in GitHub Actions, else None."""
    value = os.environ.get(SUMMARY_ENV, "").strip()
    return Path(value) if value else None


def append_summary(markdown: str) -> bool:
    """Append ``markdown`` (followed by a blank line) to the job summary; False outside GitHub Actions."""
    path = summary_path()
    if path is None:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(markdown.rstrip("\n") + "\n\n")
    return True


@contextmanager
def summarise_failure(title: str) -> Iterator[None]:
    """Append ``### ❌ title`` and the error's one line to the job summary when an
    :class:`InvarbenchError` passes through, then let it go on (to :func:`invarbench.cli.common.user_errors`)."""
    try:
        yield
    except InvarbenchError as exc:
        append_summary(f"### ❌ {title}\n\n{md(exc)}")
        raise
