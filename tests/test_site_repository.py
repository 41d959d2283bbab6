"""The repository the site links to: named by the build (``site build --repository-url``, as the leaderboard
workflow passes GitHub's own), else ``[project.urls] Repository`` of pyproject.toml, else the placeholder; a
URL that is not an https URL without quotes or whitespace stops the build with one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from invarbench.cli.app import app
from invarbench.errors import ValidationError
from invarbench.site.protocol import (
    REPOSITORY_URL,
    check_repository_url,
    default_repository_url,
    docs_link,
    repository_url,
    using_repository,
)

# A figure whose layout collapsed (matplotlib draws it anyway, squeezed) is an error here.
pytestmark = pytest.mark.filterwarnings("error:constrained_layout not applied:UserWarning")

runner = CliRunner()
RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "mnist5k"  # the reference board
FORK = "https://git.example.org/someone/invarbench-fork"


def test_the_site_links_the_repository_its_build_names_and_never_the_placeholder(tmp_path):
    out = tmp_path / "site"
    result = runner.invoke(
        app, ["site", "build", "--results", str(RESULTS), "--out", str(out), "--repository-url", FORK + "/"]
    )
    assert result.exit_code == 0, result.output
    index = (out / "index.html").read_text(encoding="utf-8")
    assert f'href="{FORK}"' in index and f'href="{FORK}/blob/main/docs"' in index
    assert f'href="{FORK}/blob/main/CONTRIBUTING.md"' in index
    # The protocol's links to the methods too: every link into docs/ goes to the named repository.
    docs = re.findall(r'href="([^"]*/blob/main/docs/[^"]*)"', index)
    assert docs and all(link.startswith(f"{FORK}/blob/main/docs/") for link in docs)
    for page in out.rglob("*.html"):
        assert REPOSITORY_URL not in page.read_text(encoding="utf-8"), page
    assert repository_url() == REPOSITORY_URL  # the build's choice does not outlive it


@pytest.mark.parametrize(
    "url",
    [
        "http://github.com/someone/fork",
        "https://github.com/some one/fork",
        'https://github.com/someone/fork"onmouseover="x',
        "https://github.com/someone/fork'",
        "https://github.com/someone/fork\n",
        "github.com/someone/fork",
        "https://",
        "https://github.com/someone/fork?tab=readme",
        "",
    ],
)
def test_a_repository_url_that_is_not_one_stops_the_build_with_one_line(tmp_path, url):
    out = tmp_path / "site"
    result = runner.invoke(
        app, ["site", "build", "--results", str(RESULTS), "--out", str(out), "--repository-url", url]
    )
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--repository-url must be an https URL" in lines[0], result.stderr
    assert "https://github.com/OWNER/REPO" in lines[0]
    assert not out.exists()
    with pytest.raises(ValidationError):
        check_repository_url(url)


def test_the_default_is_pyprojects_repository_entry_else_the_placeholder(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    assert default_repository_url(tmp_path / "absent.toml") == REPOSITORY_URL
    pyproject.write_text('[project]\nname = "x"\n')
    assert default_repository_url(pyproject) == REPOSITORY_URL
    pyproject.write_text(f'[project]\nname = "x"\n[project.urls]\nHomepage = "https://x.org"\nRepository = "{FORK}"\n')
    assert default_repository_url(pyproject) == FORK
    pyproject.write_text('[project]\nname = "x"\n[project.urls]\nRepository = "http://insecure.org/x"\n')
    with pytest.raises(ValidationError, match=r"\[project.urls\] Repository in .*pyproject.toml must be an https URL"):
        default_repository_url(pyproject)
    # The checkout's own pyproject.toml decides the default of a build that names none.
    with using_repository(None) as chosen:
        assert chosen == default_repository_url() and docs_link("site.md") == f"{chosen}/blob/main/docs/site.md"
    with using_repository(FORK):
        assert docs_link("measurements.md", "2. NSPGD") == f"{FORK}/blob/main/docs/measurements.md#2-nspgd"
    assert repository_url() == REPOSITORY_URL
