"""``dvx get URL REV DIR [PATTERN...]``: a revision of a remote into a folder, with no repository (the CLI over
:func:`dvx.source.get`)."""

from __future__ import annotations

import typer

from . import common as core


def get_cmd(
    url: str = typer.Argument(..., help="The remote: a folder path, file://, s3://bucket/prefix, gs://bucket/prefix."),
    rev: str = typer.Argument(..., help="Branch, tag, HEAD, commit id or unique prefix, on the remote."),
    dest: str = typer.Argument(..., metavar="DIR", help="Folder to fill (created if missing)."),
    patterns: list[str] = typer.Argument(
        None,
        help="Only paths matching these gitignore-style patterns. As with git's pathspecs, a pattern that matches "
        "no path of REV (any one of several) is an error, and DIR is left as it was.",
        show_default=False,
    ),
    readonly: bool = typer.Option(
        False, "--readonly", help="Files without write bits, shared with the cache (default: a writable copy)."
    ),
    link: str = typer.Option(
        "auto", "--link", metavar="MODE", help="reflink, hardlink, symlink (need --readonly), copy, or auto."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Use DIR even if it is not empty and not a checkout."),
    jobs: int = typer.Option(None, "--jobs", "-j", help="Parallel downloads and writes."),
    option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE for the storage client (no secrets)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report."),
) -> None:
    """Fetch REV of a remote into DIR without cloning: only the files asked for, through the shared cache."""
    from ..source import get
    from ..transfer import parse_options

    options = parse_options(option)
    with core.progress_bar("getting", enabled=not as_json) as cb:
        report = get(
            url, rev, dest, patterns=list(patterns or []), readonly=readonly, link=link, force=force, jobs=jobs,
            options=options, progress=cb,
        )
    from .cache_cmds import print_report

    print_report(report, "Got", as_json, downloads=True)


def register(app: typer.Typer) -> None:
    app.command("get")(get_cmd)
