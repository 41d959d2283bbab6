"""Publishing a site build atomically: into a temporary sibling folder of ``--out``, then one rename,
under a lock (an I/O edge).

``site build`` never writes into ``--out`` in place. It renders the whole site into a hidden
sibling folder ``.<out>.building-XXXX``, then swaps that folder with ``--out`` in a single
``renameat2(RENAME_EXCHANGE)`` (Linux; where the file system or the OS lacks it: ``--out`` is
renamed aside and the new folder renamed into its place, two renames in a row) and deletes the
earlier build. So a reader sees the old site or the new one, never a mix, and no file of an
earlier build survives (a model withdrawn from the results loses its page).

Two builds into the same ``--out`` are serialised by an exclusive ``flock`` on the sibling file
``.<out>.lock``, taken without waiting: the second build stops at once with one line ("another
site build is writing DIR; wait for it or use another --out"), having written nothing. The lock
file stays (deleting it would race with a build that just opened it); it is empty.

A build marks its folder with :data:`MARKER`. An ``--out`` that exists, is not empty and bears
neither the marker nor the title of a site built before the marker existed is refused, so that a
mistyped ``--out ~`` cannot replace a folder that is not a site.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from invarbench.errors import ValidationError

MARKER = ".invarbench-site"
MARKER_TEXT = "Built by 'invarbench site build': the next build replaces this whole folder.\n"
# What index.html of a build made before the marker existed starts with: such a folder is a site too.
_LEGACY_TITLE = "<title>invarbench leaderboard</title>"
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def lock_path(out: Path) -> Path:
    """The lock file of builds into ``out``: ``.<name>.lock`` beside it."""
    return out.parent / f".{out.name}.lock"


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.building-"


def _is_site(folder: Path) -> bool:
    if (folder / MARKER).is_file():
        return True
    index = folder / "index.html"
    if not index.is_file():
        return False
    with open(index, encoding="utf-8", errors="replace") as fh:
        return _LEGACY_TITLE in fh.read(4096)


def check_replaceable(out: Path) -> None:
    """Raise :class:`ValidationError` unless ``out`` is absent, an empty folder or an earlier site build."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValidationError(f"--out {out} is a file, not a folder: give a folder for the site; nothing was changed")
    if _is_site(out) or next(out.iterdir(), None) is None:
        return
    raise ValidationError(
        f"--out {out} is not empty and is not an earlier site build (it has no {MARKER} file), so the build "
        "will not replace it: give a new or empty folder; nothing was changed"
    )


@contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold the exclusive lock of builds into ``out``; :class:`ValidationError` at once if another holds it."""
    try:
        fd = os.open(lock_path(out), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ValidationError(
            f"cannot create the lock file {lock_path(out)} ({exc.strerror}): the folder {out.parent} must be "
            "writable; nothing was changed"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValidationError(f"another site build is writing {out}; wait for it or use another --out") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _exchange(a: Path, b: Path) -> bool:
    """Swap ``a`` and ``b`` in one ``renameat2(RENAME_EXCHANGE)``; False where it is unavailable or fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without the wrapper (glibc < 2.28)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    return renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def _swap_in(staging: Path, out: Path) -> None:
    """Put ``staging`` at ``out``; the earlier ``out``, if any, is deleted."""
    if not out.exists():
        os.rename(staging, out)
        return
    if _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # now the earlier build
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.replaced-", dir=out.parent))
    os.rename(out, aside / "site")
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(aside / "site", out)  # put the earlier build back
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def publish_site(out: Path, render: Callable[[Path], object]) -> Path:
    """Run ``render(folder)`` on an empty temporary sibling folder of ``out``, then make it ``out`` atomically,
    under the lock (see the module docstring). Returns ``out / "index.html"``.

    Raises :class:`ValidationError` (one line, nothing changed) when another build holds the lock, when
    ``out`` is a file or a non-empty folder that is not a site build, or when the folders cannot be
    written; whatever ``render`` raises propagates, with the temporary folder removed and ``out`` as it was.
    """
    target = Path(os.path.abspath(Path(out).expanduser()))
    if target.is_symlink():
        target = target.resolve()  # replace the folder the link points to, keep the link
    if target.parent == target:
        raise ValidationError(f"--out {out} is the root folder: give a folder for the site")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(f"cannot create the folder {target.parent} for --out ({exc.strerror})") from None
    with build_lock(target):
        check_replaceable(target)
        for prefix in (_staging_prefix(target), f".{target.name}.replaced-"):  # left by a build that was killed
            for stale in target.parent.glob(prefix + "*"):
                shutil.rmtree(stale, ignore_errors=True)
        try:
            staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
        except OSError as exc:
            raise ValidationError(
                f"cannot write beside {out} ({exc.strerror}): the folder {target.parent} must be writable; "
                "nothing was changed"
            ) from None
        try:
            os.chmod(staging, 0o755)  # mkdtemp makes it private; a site is read by a web server
            render(staging)
            (staging / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
            try:
                _swap_in(staging, target)
            except OSError as exc:
                raise ValidationError(f"cannot replace {out} ({exc.strerror}): the earlier site is unchanged") from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return Path(out) / "index.html"
