"""Which model cards a branch adds, modifies, deletes or renames since a git revision (an I/O edge).

``invarbench cards validate --changed BASE`` and ``invarbench cards changed BASE`` compare the
cards folder of the working tree with the merge base of ``BASE`` and ``HEAD``: on a pull request's
checkout that is exactly what the pull request changes; on a contributor's clone it also takes
uncommitted edits and new files that git does not ignore, so a card can be checked before it is
committed. Only plain ``git`` is run (``git diff --name-status -M``, ``git ls-files --others``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from invarbench.cards.catalog import CARD_SUFFIXES
from invarbench.errors import InvarbenchError, ValidationError


@dataclass(frozen=True)
class CardChanges:
    """The card files (``*.yaml``/``*.yml`` under the cards folder) changed since ``base``, as absolute
    paths: ``added`` and ``modified`` (in the working tree), ``deleted`` (as they were at the base),
    ``renamed`` (old, new) pairs, and ``other_files``: other changed files under the cards folder (model
    files), which decide nothing on their own but name the cards whose local file changed."""

    base: str
    merge_base: str
    added: list[Path] = field(default_factory=list)
    modified: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)
    other_files: list[Path] = field(default_factory=list)

    @property
    def to_validate(self) -> list[Path]:
        """The cards to check: added, modified and the new names of renamed ones, sorted."""
        return sorted({*self.added, *self.modified, *(new for _, new in self.renamed)})


def _git(args: list[str], cwd: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-c", "core.quotepath=off", *args], cwd=cwd, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise InvarbenchError("--changed needs git, and git is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise InvarbenchError(f"git {' '.join(args)} took over 60 s in {cwd}") from None
    if out.returncode != 0:
        raise _GitFailed(out.stderr.strip())
    return out.stdout


class _GitFailed(Exception):
    pass


def _is_card(path: Path) -> bool:
    return path.suffix in CARD_SUFFIXES


def changed_cards(base: str, cards_dir: Path) -> CardChanges:
    """The cards under ``cards_dir`` changed between the merge base of ``base`` and ``HEAD`` and the
    working tree (untracked files that git does not ignore count as added).

    Raises :class:`ValidationError` when ``cards_dir`` is not inside a git checkout, when ``base`` is
    not a known revision or shares no history with ``HEAD``, naming the fix.
    """
    folder = cards_dir.resolve()
    if not folder.is_dir():
        raise ValidationError(f"cards folder {cards_dir} does not exist (set --cards-dir or INVARBENCH_CARDS)")
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], folder).strip()).resolve()
    except _GitFailed:
        raise ValidationError(
            f"--changed compares with a git revision, but the cards folder {cards_dir} is not inside a git checkout"
        ) from None
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], top)
    except _GitFailed:
        raise ValidationError(
            f"--changed {base}: no such git revision in {top} (fetch it first, e.g. 'git fetch origin main'; in "
            "GitHub Actions check out with fetch-depth: 0)"
        ) from None
    try:
        merge_base = _git(["merge-base", base, "HEAD"], top).strip()
    except _GitFailed:
        raise ValidationError(
            f"--changed {base}: {base} and HEAD share no history (no merge base): compare with the branch you "
            "started from"
        ) from None
    spec = folder.relative_to(top).as_posix() or "."
    diff = _git(["diff", "--name-status", "-z", "-M", "--no-ext-diff", merge_base, "--", spec], top)
    untracked = _git(["ls-files", "--others", "--exclude-standard", "-z", "--", spec], top)

    changes = CardChanges(base=base, merge_base=merge_base)
    fields = diff.split("\0")
    i = 0
    while i < len(fields) and fields[i]:
        status = fields[i]
        if status[0] in "RC":
            old, new = top / fields[i + 1], top / fields[i + 2]
            i += 3
        else:
            old = new = top / fields[i + 1]
            i += 2
        kind = status[0]
        if not (_is_card(old) or _is_card(new)):
            if kind != "D":
                changes.other_files.append(new)
            continue
        if kind == "R" and _is_card(old) and _is_card(new):
            changes.renamed.append((old, new))
        elif kind == "R":  # a card renamed to something that is not a card, or the reverse
            (changes.deleted if _is_card(old) else changes.added).append(old if _is_card(old) else new)
        elif kind in "AC":
            changes.added.append(new)
        elif kind == "D":
            changes.deleted.append(old)
        else:  # M, T (type change), U (unmerged)
            changes.modified.append(new)
    for name in untracked.split("\0"):
        if name:
            path = top / name
            (changes.added if _is_card(path) else changes.other_files).append(path)
    for items in (changes.added, changes.modified, changes.deleted, changes.other_files):
        items.sort()
    changes.renamed.sort()
    return changes
