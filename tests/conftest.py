"""Shared test configuration: no network, and no test touches the user's own database."""

from __future__ import annotations

import os

# Set before anything imports huggingface_hub: no test may reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Rich fixes a console's width from COLUMNS when the console is made (at import): a width exported
# in the user's shell would then override the widths that the CLI tests ask for when they invoke.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own default database, data home and Hub cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("INVARBENCH_DB", raising=False)
    monkeypatch.delenv("INVARBENCH_CARDS", raising=False)
    monkeypatch.delenv("INVARBENCH_DATA", raising=False)
    monkeypatch.setenv("INVARBENCH_OFFLINE", "1")  # data sets: never a download (a test may lift it)
    yield
