"""``dvx remote``, ``push``, ``fetch``, ``pull``, ``clone``: the CLI over :mod:`dvx.transfer`."""

from __future__ import annotations

import typer

from .common import err, human, open_repo, out, print_json, transfer_bar

remote_app = typer.Typer(help="Manage remotes (any fsspec URL: path, file://, s3://, gs://, memory://).",
                         no_args_is_help=True)


@remote_app.command("add")
def remote_add(
    name: str = typer.Argument(..., help="Remote name, e.g. origin."),
    url: str = typer.Argument(..., help="Local path, file://, s3://bucket/prefix, gs://bucket/prefix."),
    option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE passed to the filesystem (no secrets)."),
    no_check: bool = typer.Option(False, "--no-check", help="Do not probe the remote now."),
) -> None:
    """Add a remote; it is probed now, so a typo or an unreachable store is refused at once."""
    from ..transfer import add_remote, parse_options

    repo = open_repo()
    stored = add_remote(repo, name, url, parse_options(option), check=not no_check)
    out(f"Added remote {name} -> {stored}")


@remote_app.command("list")
def remote_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List remotes."""
    repo = open_repo()
    remotes = repo.config.get("remotes", {})
    if as_json:
        print_json({k: v for k, v in remotes.items()})
        return
    for name, cfg in sorted(remotes.items()):
        opts = " ".join(f"{k}={v}" for k, v in sorted(cfg.get("options", {}).items()))
        out(f"{name}\t{cfg.get('url')}" + (f"\t{opts}" if opts else ""))


@remote_app.command("remove")
def remote_remove(name: str = typer.Argument(...)) -> None:
    """Remove a remote (and its remote-tracking refs)."""
    from ..transfer import remove_remote

    repo = open_repo()
    remove_remote(repo, name)
    out(f"Removed remote {name}")
    if repo.config.get("core", {}).get("lazy_remote") == name:
        err(f"dvx: warning: this repository fetches file contents on demand from {name!r} (it was cloned): "
            f"contents not fetched yet are unavailable until a remote named {name!r} is added again")


def push(
    remote: str = typer.Argument("origin", help="Remote name."),
    refs: list[str] = typer.Argument(None, help="Branches or tags (default: the current branch).", show_default=False),
    force: bool = typer.Option(False, "--force", help="Allow a non-fast-forward update."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Send the objects the remote lacks, then update its refs (compare-and-swap)."""
    from ..transfer import push as do_push

    repo = open_repo()
    with transfer_bar("pushing") as (cb, objects):
        stats = do_push(repo, remote, list(refs or []), force=force, progress=cb, objects=objects)
    for warning in stats.warnings:
        err(f"dvx: warning: {warning}")
    if as_json:
        print_json(stats.to_json())
        return
    if stats.up_to_date:
        out("Everything up to date")
        return
    out(f"Pushed {stats.objects} objects ({human(stats.bytes)}) in {stats.packs} packs, "
        f"{stats.requests} requests; updated {', '.join(r.split('/', 2)[-1] for r in stats.refs_updated)}")


def fetch(
    remote: str = typer.Argument("origin", help="Remote name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fetch the remote's branches and tags with their commits, trees and (except in a clone) file contents.

    Only what is missing travels. A clone is lazy: its file contents come when a checkout needs them.

    In a repository made by init, they come with the fetch, so merge and checkout of a fetched branch work."""
    from ..transfer import fetch as do_fetch

    repo = open_repo()
    with transfer_bar("fetching") as (cb, objects):
        stats = do_fetch(repo, remote, progress=cb, objects=objects)
    for warning in stats.warnings:
        err(f"dvx: warning: {warning}")
    if as_json:
        print_json(stats.to_json())
        return
    updated = ", ".join(stats.refs_updated) or "no ref changed"
    out(f"Fetched {stats.objects} objects ({human(stats.bytes)}); {updated}")


def pull(
    remote: str = typer.Argument("origin", help="Remote name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fetch, then fast-forward the current branch (or refuse and say to merge)."""
    from ..transfer import pull as do_pull

    repo = open_repo()
    with transfer_bar("pulling") as (cb, objects):
        stats, outcome = do_pull(repo, remote, progress=cb, objects=objects)
    for warning in stats.warnings:
        err(f"dvx: warning: {warning}")
    if as_json:
        print_json({**stats.to_json(), "outcome": outcome})
        return
    branch, head = repo.head()
    msg = {"up to date": "Already up to date", "ahead": f"{branch} is ahead of {remote}/{branch}; nothing to pull",
           "fast-forward": f"Fast-forwarded {branch} to {head[:12] if head else '?'}"}[outcome]
    out(msg)


def clone(
    url: str = typer.Argument(..., help="Remote URL."),
    directory: str = typer.Argument(None, help="Destination folder."),
    branch: str = typer.Option(None, "--branch", "-b", help="Branch to check out."),
    no_checkout: bool = typer.Option(False, "--no-checkout", help="Fetch metadata only; no file contents."),
    option: list[str] = typer.Option([], "--option", "-o", help="KEY=VALUE for the filesystem."),
) -> None:
    """Copy a repository from a remote (lazily: file contents only for what is checked out)."""
    from ..transfer import clone as do_clone
    from ..transfer import parse_options

    with transfer_bar("cloning") as (cb, objects):
        repo = do_clone(url, directory, branch=branch, checkout=not no_checkout, options=parse_options(option),
                        progress=cb, objects=objects, warn=lambda w: err(f"dvx: warning: {w}"))
    b, head = repo.head()
    if head is None:
        err("dvx: warning: the remote is empty")
    out(f"Cloned {url} into {repo.root}" + (f" (branch {b} at {head[:12]})" if head else ""))


def register(app: typer.Typer) -> None:
    app.add_typer(remote_app, name="remote")
    app.command()(push)
    app.command()(fetch)
    app.command()(pull)
    app.command()(clone)
