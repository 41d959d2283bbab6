"""Downloading model files from the Hugging Face Hub at a pinned revision (an I/O edge).

``hf_hub_download`` and its cache do the work (``HF_HUB_OFFLINE=1`` and ``HF_HOME`` /
``HF_HUB_CACHE`` are honoured). The file's size is capped and its sha256 checked before
anything reads it as a model.
"""

from __future__ import annotations

import os
from pathlib import Path

from invarbench.cards.schema import HubSource
from invarbench.errors import InvarbenchError, NotFoundError, ValidationError

MAX_FILE_BYTES_ENV = "INVARBENCH_MAX_MODEL_BYTES"
DEFAULT_MAX_FILE_BYTES = 2 * 1024**3  # 2 GiB: larger than any model of the literature's zoos


def max_file_bytes() -> int:
    value = os.environ.get(MAX_FILE_BYTES_ENV)
    return int(value) if value else DEFAULT_MAX_FILE_BYTES


def _too_large(size: int, limit: int, where: str, name: str) -> ValidationError:
    return ValidationError(
        f"{where}: {name} is {size:,} bytes, over the {limit:,}-byte limit "
        f"(raise it with {MAX_FILE_BYTES_ENV} if the model really is this large)"
    )


def download_model_file(hub: HubSource, *, where: str) -> Path:
    """Fetch ``hub.file`` at ``hub.revision`` into the Hub cache, check size and sha256, return its path."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from invarbench.models.loading import verify_sha256

    limit = max_file_bytes()
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    target = f"'{hub.file}' of {hub.repo_id}@{hub.revision[:12]}"
    try:
        if not offline:
            info = hf_hub_download(hub.repo_id, hub.file, revision=hub.revision, dry_run=True)
            size = getattr(info, "file_size", None)
            if size is not None and size > limit:
                raise _too_large(size, limit, where, hub.file)
        local = Path(hf_hub_download(hub.repo_id, hub.file, revision=hub.revision))
    except LocalEntryNotFoundError:
        raise NotFoundError(
            f"{where}: {target} is not in the Hugging Face cache and the Hub cannot be reached "
            "(HF_HUB_OFFLINE is set or there is no network). Download it once online, or point "
            "HF_HUB_CACHE at a cache that holds it."
        ) from None
    except GatedRepoError:
        raise InvarbenchError(f"{where}: {hub.repo_id} is gated: log in with 'hf auth login' after accepting its terms") from None
    except RepositoryNotFoundError:
        raise NotFoundError(f"{where}: Hub repository '{hub.repo_id}' not found (or private)") from None
    except RevisionNotFoundError:
        raise NotFoundError(f"{where}: revision {hub.revision} not found in '{hub.repo_id}'") from None
    except EntryNotFoundError:
        raise NotFoundError(f"{where}: file '{hub.file}' not found in {hub.repo_id}@{hub.revision[:12]}") from None
    except HfHubHTTPError as exc:
        raise InvarbenchError(f"{where}: the Hub refused the download of {target}: {exc}") from None
    size = local.stat().st_size
    if size > limit:
        raise _too_large(size, limit, where, hub.file)
    verify_sha256(local, hub.sha256, where)
    return local
