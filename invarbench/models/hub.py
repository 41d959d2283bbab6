"""Downloading model files from the Hugging Face Hub at a pinned revision (an I/O edge).

``hf_hub_download`` and its cache do the work. Unlike huggingface_hub itself, which reads its
environment once at import, the cache folder and offline mode are resolved here at every call:
``HF_HUB_CACHE`` (or ``HUGGINGFACE_HUB_CACHE``), else ``$HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``; ``HF_HUB_OFFLINE=1``
means the cache only. The file's size is capped and its sha256 checked before anything reads
it as a model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from invarbench.cards.schema import HubSource
from invarbench.env import env_flag
from invarbench.errors import InvarbenchError, NotFoundError, ValidationError

MAX_FILE_BYTES_ENV = "INVARBENCH_MAX_MODEL_BYTES"
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3  # 2 GiB: larger than any model of the literature's zoos (WRN-70-16: 1.1 GB)


def max_file_bytes() -> int:
    """The size cap for a model file: ``$INVARBENCH_MAX_MODEL_BYTES`` or 2 GiB."""
    value = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_FILE_BYTES
    try:
        limit = int(value)
    except ValueError:
        raise ValidationError(f"{MAX_FILE_BYTES_ENV} must be a number of bytes, got '{value}'") from None
    if limit <= 0:
        raise ValidationError(f"{MAX_FILE_BYTES_ENV} must be positive, got {limit}")
    return limit


def too_large(size: int, limit: int, where: str, name: str) -> ValidationError:
    return ValidationError(
        f"{where}: {name} is {size:,} bytes, over the {limit:,}-byte limit "
        f"(raise it with {MAX_FILE_BYTES_ENV} if the model really is this large)"
    )


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set now (huggingface_hub itself only looks at import time)."""
    return env_flag("HF_HUB_OFFLINE")


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache folder, resolved from the environment now."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _repo_folder(cache_dir: Path, repo_id: str) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


def _snapshot_folder(cache_dir: Path, hub: HubSource) -> Path:
    return _repo_folder(cache_dir, hub.repo_id) / "snapshots" / hub.revision


def cached_file(hub: HubSource, cache_dir: Path | None = None) -> Path:
    """Where the Hub cache (default: :func:`hub_cache_dir`) keeps ``hub.file`` at ``hub.revision``;
    the file may not be there."""
    return _snapshot_folder(cache_dir if cache_dir is not None else hub_cache_dir(), hub) / hub.file


def _offline_miss(hub: HubSource, cache_dir: Path, where: str) -> NotFoundError:
    """Say precisely what the cache lacks: the repository, the revision or the file."""
    target = f"'{hub.file}' of {hub.repo_id}@{hub.revision[:12]}"
    repo = _repo_folder(cache_dir, hub.repo_id)
    if not repo.is_dir():
        what = f"the cache {cache_dir} has nothing of {hub.repo_id}"
    elif not _snapshot_folder(cache_dir, hub).is_dir():
        what = f"the cache {cache_dir} has {hub.repo_id} but not its revision {hub.revision}"
    else:
        what = f"the cache {cache_dir} has revision {hub.revision[:12]} of {hub.repo_id} but not the file '{hub.file}'"
    return NotFoundError(
        f"{where}: {target} is not in the Hugging Face cache and the Hub cannot be reached ({what}; "
        "HF_HUB_OFFLINE is set or there is no network). Download it once online, or point HF_HUB_CACHE "
        "at a cache that holds it."
    )


@contextmanager
def _hub_errors(hub: HubSource, where: str, cache: Path) -> Iterator[None]:
    """Turn huggingface_hub's errors into one line naming the card's field to check."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    target = f"'{hub.file}' of {hub.repo_id}@{hub.revision[:12]}"
    try:
        yield
    except LocalEntryNotFoundError:
        raise _offline_miss(hub, cache, where) from None
    except GatedRepoError:
        raise InvarbenchError(
            f"{where}: {hub.repo_id} is gated: accept its terms on the Hub, then log in with 'hf auth login'"
        ) from None
    except RepositoryNotFoundError:
        raise NotFoundError(
            f"{where}: Hub repository '{hub.repo_id}' not found (or private: log in with 'hf auth login')"
        ) from None
    except RevisionNotFoundError:
        raise NotFoundError(
            f"{where}: revision {hub.revision} not found in '{hub.repo_id}': check source.hub.revision "
            "against the repository's commit history"
        ) from None
    except EntryNotFoundError:
        raise _file_not_found(hub, where) from None
    except HfHubHTTPError as exc:
        raise InvarbenchError(
            f"{where}: the Hub refused the request for {target}: {' '.join(str(exc).split())}"
        ) from None
    except OSError as exc:  # no network, or the cache cannot be written
        raise InvarbenchError(f"{where}: could not reach {target} (Hub or cache {cache}): {exc}") from None


def _file_not_found(hub: HubSource, where: str) -> NotFoundError:
    return NotFoundError(
        f"{where}: file '{hub.file}' not found in {hub.repo_id} at revision {hub.revision[:12]}: check source.hub.file"
    )


def download_model_file(hub: HubSource, *, where: str, cache_dir: Path | str | None = None) -> Path:
    """Fetch ``hub.file`` at ``hub.revision`` into the Hub cache, check size and sha256, return its path."""
    from huggingface_hub import hf_hub_download

    from invarbench.cards.checksum import verify_sha256

    limit = max_file_bytes()
    offline = hub_offline()
    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    target = f"'{hub.file}' of {hub.repo_id}@{hub.revision[:12]}"
    kwargs = dict(revision=hub.revision, cache_dir=str(cache), local_files_only=offline)
    with _hub_errors(hub, where, cache):
        if not offline:
            info = hf_hub_download(hub.repo_id, hub.file, dry_run=True, **kwargs)
            size = getattr(info, "file_size", None)
            if size is not None and size > limit:
                raise too_large(size, limit, where, hub.file)
        local = Path(hf_hub_download(hub.repo_id, hub.file, **kwargs))
    if not local.is_file():
        raise NotFoundError(f"{where}: the Hub cache entry for {target} is not a file: {local}")
    size = local.stat().st_size
    if size > limit:
        raise too_large(size, limit, where, hub.file)
    verify_sha256(local, hub.sha256, where)
    return local


def check_hub_file(hub: HubSource, *, where: str, cache_dir: Path | str | None = None) -> str:
    """Check on the Hub that the repository, the pinned revision and the file exist, that the file is
    within the size cap, and that its sha256 is the card's; return how it was checked, one line.

    Online, huggingface_hub's metadata call (``HfApi.get_paths_info`` at the revision) gives the file's
    size and, for a file stored with Git LFS (as model files are), its sha256: nothing is downloaded.
    A file without LFS metadata is downloaded into the Hub cache, only when its size is within the cap,
    and hashed. With ``HF_HUB_OFFLINE=1`` the local Hub cache stands in for the Hub. Raises
    :class:`NotFoundError` or :class:`ValidationError` naming the card's field to fix.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    cache = Path(cache_dir) if cache_dir is not None else hub_cache_dir()
    if hub_offline():
        download_model_file(hub, where=where, cache_dir=cache)
        return f"{hub.file} found in the local Hub cache at {hub.revision[:12]} (HF_HUB_OFFLINE), sha256 matches"
    limit = max_file_bytes()
    with _hub_errors(hub, where, cache):
        infos = HfApi().get_paths_info(hub.repo_id, [hub.file], revision=hub.revision)
    entry = next((i for i in infos if i.path == hub.file), None)
    if entry is None:
        raise _file_not_found(hub, where)
    if not isinstance(entry, RepoFile):
        raise ValidationError(
            f"{where}: '{hub.file}' is a folder in {hub.repo_id} at revision {hub.revision[:12]}, not a file: "
            "check source.hub.file"
        )
    if entry.size > limit:
        raise too_large(entry.size, limit, where, hub.file)
    if entry.lfs is not None and entry.lfs.sha256:
        if entry.lfs.sha256 != hub.sha256:
            raise ValidationError(
                f"{where}: checksum mismatch for {hub.file}: the card says sha256 {hub.sha256}, the Hub has "
                f"{entry.lfs.sha256} for it at revision {hub.revision[:12]}. Copy the sha256 of the file you "
                "uploaded into source.hub.sha256, or pin the revision that holds the file you meant."
            )
        return f"{hub.file} found on the Hub at {hub.revision[:12]} ({entry.size:,} bytes), sha256 matches"
    download_model_file(hub, where=where, cache_dir=cache)
    return (
        f"{hub.file} found on the Hub at {hub.revision[:12]} ({entry.size:,} bytes, not in LFS: downloaded), "
        "sha256 matches"
    )
