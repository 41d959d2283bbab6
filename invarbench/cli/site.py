"""``invarbench site``: the static leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from invarbench.cli.common import CardsDirOption, DbOption, console, user_errors
from invarbench.errors import NotFoundError, ValidationError
from invarbench.site import build_site
from invarbench.site.build import build_site_from_results
from invarbench.site.protocol import check_repository_url
from invarbench.store import Store

app = typer.Typer(
    help="Build the static leaderboard site from stored results.", no_args_is_help=True, rich_markup_mode="markdown"
)


@app.command("build")
def build_command(
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Output folder for the static site (index.html and assets).")
    ] = Path("leaderboard/_site"),
    db: DbOption = None,
    cards_dir: CardsDirOption = None,
    results: Annotated[
        Path | None,
        typer.Option(
            "--results",
            metavar="DIR",
            help="Build from published results files (e.g. leaderboard/results) instead of a database: they are "
            "imported into a throwaway one. Not with --db.",
            show_default=False,
        ),
    ] = None,
    repository_url: Annotated[
        str | None,
        typer.Option(
            "--repository-url",
            metavar="URL",
            help="The project's repository, which the pages link to (its docs, CONTRIBUTING, the methods): an https "
            "URL such as https://github.com/OWNER/REPO. Default: [project.urls] Repository of the checkout's "
            "pyproject.toml, else a placeholder.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Render the leaderboard into OUT: one board per data set and suite version, with the newest finished full
    run of each model ranked (models whose intervals overlap share a rank), JSON and CSV downloads of each board;
    smoke runs (--limit) and runs on custom data (--data) listed apart, not ranked. The same results give the
    same bytes.

    The site is built in a temporary folder beside OUT that then replaces OUT in one rename, under a lock: nothing
    of an earlier build survives, and a second build into OUT at the same time stops with one line. An OUT that
    is not empty and not an earlier site build is never replaced (docs/site.md)."""
    with user_errors():
        if repository_url is not None:
            check_repository_url(repository_url)  # before anything is read
        if results is not None:
            if db is not None:
                raise ValidationError("give --results or --db, not both")
            if not results.exists():
                raise NotFoundError(f"results folder not found: {results}")
            index = build_site_from_results(results, out, cards_dir, repository_url)
        else:
            index = build_site(Store(db), out, cards_dir, repository_url)
    console.print(f"Wrote {index}")


@app.command("serve")
def serve_command(
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="The built site's folder (see 'site build').")
    ] = Path("leaderboard/_site"),
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")] = 8000,
) -> None:
    """Preview the built site at http://127.0.0.1:PORT/ until Ctrl-C (a local preview, not a web server)."""
    import functools
    import http.server

    with user_errors():
        if not (out / "index.html").is_file():
            raise NotFoundError(f"no site in {out}: build it first with 'invarbench site build --out {out}'")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError as exc:
            raise ValidationError(
                f"cannot listen on 127.0.0.1:{port} ({exc.strerror}): choose another --port"
            ) from None
    console.print(f"Serving {out} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("Stopped.")
    finally:
        server.server_close()
