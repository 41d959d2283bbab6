"""Hub loading: a real ``hf_hub_download`` on a cache laid out as huggingface_hub documents it, offline.

conftest sets ``HF_HUB_OFFLINE=1`` and a fresh ``HF_HOME`` for every test, so the cache these
tests build is ``$HF_HOME/hub`` and nothing reaches the network.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import huggingface_hub
import pytest
import torch
from cards_helpers import (
    REPO_ID,
    REVISION,
    TINY_INPUT,
    hub_card_dict,
    make_hub_cache,
    safetensors_bytes,
    sha256_bytes,
    tiny_model,
    tiny_pt2_bytes,
    write_card,
)
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from invarbench.cards.catalog import load_card
from invarbench.cards.schema import HubSource
from invarbench.errors import NotFoundError, ValidationError
from invarbench.models.hub import download_model_file, hub_cache_dir
from invarbench.models.loading import load_model

WHERE = "model card CARD"


@pytest.fixture
def cache() -> Path:
    """The Hub cache huggingface_hub uses in this test ($HF_HOME/hub)."""
    return Path(os.environ["HF_HOME"]) / "hub"


def hub_ref(tmp_path, name: str, file: str, sha256: str, **kwargs):
    return load_card(write_card(tmp_path / "cards", hub_card_dict(name, file, sha256, **kwargs)))


def error_of(ref) -> str:
    with pytest.raises((NotFoundError, ValidationError)) as info:
        load_model(ref)
    return str(info.value).replace(f"model card {ref.path}", WHERE)


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    assert hub_cache_dir() == Path(os.environ["HF_HOME"]) / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    assert hub_cache_dir() == tmp_path / "elsewhere"


def test_loads_a_pinned_file_through_hf_hub_download(tmp_path, cache, monkeypatch):
    data = tiny_pt2_bytes()
    repo = make_hub_cache(cache, REPO_ID, REVISION, {"weights/model.pt2": data})
    calls = []
    real = huggingface_hub.hf_hub_download

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    ref = hub_ref(tmp_path, "hub", "weights/model.pt2", sha256_bytes(data))
    wrapper = load_model(ref).wrapper
    # one call, at the pinned commit, from the cache only (HF_HUB_OFFLINE), and no dry run
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert args == (REPO_ID, "weights/model.pt2")
    assert kwargs["revision"] == REVISION and kwargs["local_files_only"] is True
    assert "dry_run" not in kwargs
    x = torch.rand(4, *TINY_INPUT)
    assert torch.equal(wrapper(x), tiny_model()(x))
    assert (repo / "snapshots" / REVISION / "weights" / "model.pt2").is_symlink()


def test_safetensors_from_the_hub(tmp_path, cache):
    data = safetensors_bytes(tiny_model(), prefix="module.")
    make_hub_cache(cache, REPO_ID, REVISION, {"model.safetensors": data})
    ref = hub_ref(tmp_path, "st", "model.safetensors", sha256_bytes(data), fmt="safetensors")
    x = torch.rand(3, *TINY_INPUT)
    assert torch.equal(load_model(ref).wrapper(x), tiny_model()(x))


def test_wrong_checksum_is_refused_before_loading(tmp_path, cache, monkeypatch):
    data = tiny_pt2_bytes()
    make_hub_cache(cache, REPO_ID, REVISION, {"model.pt2": data})
    import invarbench.models.safe_export as safe_export

    def never(*args, **kwargs):
        raise AssertionError("the file was deserialised before its checksum was checked")

    monkeypatch.setattr(safe_export, "load_exported_module", never)
    ref = hub_ref(tmp_path, "sum", "model.pt2", "1" * 64)
    assert error_of(ref) == (
        f"{WHERE}: checksum mismatch for model.pt2: the card says sha256 {'1' * 64}, the file has "
        f"{sha256_bytes(data)}. The file is not the one the card registered; nothing was loaded."
    )


def test_file_not_in_the_cached_revision(tmp_path, cache):
    make_hub_cache(cache, REPO_ID, REVISION, {"model.pt2": tiny_pt2_bytes()})
    ref = hub_ref(tmp_path, "missing", "other.pt2", "1" * 64)
    assert error_of(ref) == (
        f"{WHERE}: 'other.pt2' of {REPO_ID}@{REVISION[:12]} is not in the Hugging Face cache and the Hub cannot "
        f"be reached (the cache {cache} has revision {REVISION[:12]} of {REPO_ID} but not the file 'other.pt2'; "
        "HF_HUB_OFFLINE is set or there is no network). Download it once online, or point HF_HUB_CACHE at a cache "
        "that holds it."
    )


def test_revision_not_in_the_cache(tmp_path, cache):
    make_hub_cache(cache, REPO_ID, REVISION, {"model.pt2": tiny_pt2_bytes()})
    other = "f" * 40
    ref = hub_ref(tmp_path, "rev", "model.pt2", "1" * 64, revision=other)
    assert f"(the cache {cache} has {REPO_ID} but not its revision {other}; HF_HUB_OFFLINE is set" in error_of(ref)


def test_repository_not_in_the_cache(tmp_path, cache):
    ref = hub_ref(tmp_path, "repo", "model.pt2", "1" * 64, repo_id="nobody/nothing")
    message = error_of(ref)
    assert message.startswith(f"{WHERE}: 'model.pt2' of nobody/nothing@{REVISION[:12]} is not in the Hugging Face ")
    assert f"(the cache {cache} has nothing of nobody/nothing; HF_HUB_OFFLINE is set" in message


def test_file_over_the_size_cap(tmp_path, cache, monkeypatch):
    data = tiny_pt2_bytes()
    make_hub_cache(cache, REPO_ID, REVISION, {"model.pt2": data})
    monkeypatch.setenv("INVARBENCH_MAX_MODEL_BYTES", "1000")
    ref = hub_ref(tmp_path, "big", "model.pt2", sha256_bytes(data))
    assert error_of(ref) == (
        f"{WHERE}: model.pt2 is {len(data):,} bytes, over the 1,000-byte limit (raise it with "
        "INVARBENCH_MAX_MODEL_BYTES if the model really is this large)"
    )


def test_bad_size_cap_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("INVARBENCH_MAX_MODEL_BYTES", "lots")
    ref = hub_ref(tmp_path, "cap", "model.pt2", "1" * 64)
    assert error_of(ref) == "INVARBENCH_MAX_MODEL_BYTES must be a number of bytes, got 'lots'"


# --- online: hf_hub_download stands in for the Hub (no network in tests) --------------------------


def _http_error(cls):
    response = types.SimpleNamespace(headers={}, request=None)
    return cls("404 from the Hub", response=response)


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            RevisionNotFoundError,
            f"revision {'e' * 40} not found in '{REPO_ID}': check source.hub.revision against the "
            "repository's commit history",
        ),
        (
            RemoteEntryNotFoundError,
            f"file 'model.pt2' not found in {REPO_ID} at revision {'e' * 12}: check source.hub.file",
        ),
        (RepositoryNotFoundError, f"Hub repository '{REPO_ID}' not found (or private: log in with 'hf auth login')"),
    ],
)
def test_online_errors_are_named(monkeypatch, error, message):
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def fake(*args, **kwargs):
        raise _http_error(error)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    hub = HubSource(repo_id=REPO_ID, revision="e" * 40, file="model.pt2", sha256="1" * 64)
    with pytest.raises(NotFoundError) as info:
        download_model_file(hub, where="W")
    assert str(info.value) == f"W: {message}"


def test_online_size_cap_is_checked_before_the_download(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("INVARBENCH_MAX_MODEL_BYTES", "100")
    calls = []

    def fake(repo_id, filename, **kwargs):
        calls.append(kwargs)
        if kwargs.get("dry_run"):
            return types.SimpleNamespace(file_size=5000)
        raise AssertionError("downloaded a file over the size cap")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    hub = HubSource(repo_id=REPO_ID, revision=REVISION, file="model.pt2", sha256="1" * 64)
    with pytest.raises(ValidationError) as info:
        download_model_file(hub, where="W")
    assert str(info.value) == (
        "W: model.pt2 is 5,000 bytes, over the 100-byte limit (raise it with INVARBENCH_MAX_MODEL_BYTES if the "
        "model really is this large)"
    )
    assert [c["local_files_only"] for c in calls] == [False]
