"""``dvx checkout REV --to DIR`` (read-only or writable checkouts into any folder) and ``dvx cache``.

``register(app)`` replaces the core ``checkout`` command with one that also takes ``--to``: without ``--to`` it
calls the core command it replaced (moving the working tree), so there is one ``checkout`` with one help text.
The core callback is taken from the app rather than imported, because ``dvx.cli.main`` may be running as
``__main__``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer

from ..errors import NotARepository, UsageError
from . import common as core

cache_app = typer.Typer(help="Inspect and prune the shared cache that read-only checkouts link from.",
                        no_args_is_help=True)
_core_checkout: Callable[..., Any] | None = None


def _repo_or_none() -> Any:
    try:
        return core.open_repo()
    except NotARepository:
        return None


def _cache() -> Any:
    from ..cache import Cache

    repo = _repo_or_none()
    if repo is None:
        return Cache.open()
    return Cache.open(repo.config, repo.root)


def checkout(
    rev: str = typer.Argument(..., help="Branch, tag or commit."),
    patterns: list[str] = typer.Argument(
        None,
        help="Only paths matching these gitignore-style patterns. Without --to, as `git checkout REV -- PATHS`: "
        "write REV's version of them into the working tree (local changes to them are lost; HEAD does not move; "
        "`dvx checkout -- PATHS` takes them from HEAD). With --to: only these go into DIR. As with git's "
        "pathspecs, a pattern that matches no path of REV (any one of several) is an error, and nothing changes.",
        show_default=False,
    ),
    force: bool = typer.Option(
        False, "--force", "-f", help="Discard uncommitted changes in the way (with --to: use a non-empty DIR)."
    ),
    to: str = typer.Option(None, "--to", metavar="DIR", help="Materialize REV into DIR instead of the working tree."),
    readonly: bool = typer.Option(False, "--readonly", help="With --to: files without write bits, shared with the cache."),
    link: str = typer.Option(
        "auto", "--link", metavar="MODE", help="With --to: reflink, hardlink, symlink, copy or auto (the best that works)."
    ),
    jobs: int = typer.Option(None, "--jobs", "-j", help="With --to: parallel extractions and writes."),
    as_json: bool = typer.Option(False, "--json", help="With --to: print a JSON report."),
) -> None:
    """Move the working tree to REV, or with --to DIR materialize REV into DIR (only changed files are touched)."""
    if to is None:
        used = [flag for flag, on in (("--readonly", readonly), ("--link", link != "auto"), ("--jobs", jobs is not None),
                                      ("--json", as_json)) if on]
        if used:
            raise UsageError(f"{', '.join(used)} {'applies' if len(used) == 1 else 'apply'} only with --to DIR")
        split = core.split_at_dashdash([rev, *(patterns or [])])
        if split is not None and not split[0]:  # `dvx checkout -- PATHS` restores them from HEAD
            rev, patterns = "HEAD", split[1]
        if patterns:
            _restore(rev, list(patterns))
            return
        _call_core_checkout(rev=rev, force=force)
        return
    from ..readonly import checkout_to

    repo = core.open_repo()
    with core.progress_bar("checking out", enabled=not as_json) as cb:
        report = checkout_to(
            repo, rev, to, patterns=list(patterns or []), link=link, readonly=readonly, force=force, jobs=jobs,
            progress=cb,
        )
    print_report(report, "Checked out", as_json)


def _restore(rev: str, patterns: list[str]) -> None:
    """``dvx checkout REV -- PATHS``: REV's version of the paths into the working tree (see Repo.restore)."""
    repo = core.open_repo()
    with core.progress_bar("restoring") as cb:
        written = repo.restore(rev, patterns, under=core.subfolder(repo), progress=cb)
    n = len(written)
    core.out(f"Updated {n} path{'' if n == 1 else 's'} from {repo.resolve(rev)[:12]}")


def print_report(report: Any, verb: str, as_json: bool, *, downloads: bool = False) -> None:
    """What a read-only checkout or ``dvx get`` did: warnings on stderr, then JSON or one summary line."""
    for w in report.warnings:
        core.err(f"dvx: warning: {w}")
    if as_json:
        core.print_json(report.to_json())
        return
    kind = "read-only" if report.readonly else "writable"
    how = ", ".join(f"{n} {m}" for m, n in sorted(report.placed.items())) or "nothing to write"
    fetched = f"{core.human(report.bytes_fetched)} downloaded in {report.requests} requests, " if downloads else ""
    core.out(
        f"{verb} {report.commit[:12]} into {report.dest} ({kind}, {report.link}): {report.files} files; "
        f"{report.written} written ({how}), {report.kept} unchanged, {report.removed} removed; "
        f"{fetched}{report.objects_extracted} object{'' if report.objects_extracted == 1 else 's'} "
        f"({core.human(report.bytes_extracted)}) added to the cache"
    )


@cache_app.command("info")
def cache_info(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Where the cache is, how much it holds, and its size limit."""
    info = _cache().info()
    if as_json:
        core.print_json(info.to_json())
        return
    limit = core.human(info.limit) if info.limit is not None else "none"
    core.out(f"cache:    {info.dir}")
    core.out(f"size:     {core.human(info.bytes)} in {info.objects} objects ({info.files} files)")
    core.out(f"limit:    {limit}")
    core.out(f"pins:     {info.pins} symlink-mode checkouts")
    if info.temp_files:
        core.out(f"temp:     {info.temp_files} files (a checkout in progress, or left by a crash)")


@cache_app.command("prune")
def cache_prune(
    to: str = typer.Option(None, "--to", metavar="SIZE", help="Target size (e.g. 10G, 0); default: the size limit."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Evict least-recently-used objects down to SIZE (objects pinned by symlink checkouts stay)."""
    from ..cache import parse_size

    cache = _cache()
    target = parse_size(to) if to is not None else None
    report = cache.prune(target)
    assert report is not None  # prune waits for the lock by default
    if as_json:
        core.print_json(report.to_json())
        return
    if target is None and cache.size_limit is None:
        core.out("no size limit set (DVX_CACHE_SIZE or cache.size_limit) and no --to: only cleaned up")
    core.out(
        f"removed {report.objects_removed} objects ({core.human(report.bytes_freed)}); "
        f"{core.human(report.bytes_before)} -> {core.human(report.bytes_after)}; "
        f"{report.kept_pinned} pinned objects kept, {report.pins_removed} stale pins and "
        f"{report.temp_removed} old temp files removed"
    )


@cache_app.command("verify")
def cache_verify(
    keep_bad: bool = typer.Option(False, "--keep-bad", help="Report bad files without removing them."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-hash every cached file; remove the ones whose bytes or mode are wrong (a later checkout of a folder
    that hard-links one replaces it there too)."""
    from ..errors import DvxError

    report = _cache().verify(remove_bad=not keep_bad)
    if as_json:
        core.print_json(report.to_json())
    else:
        for name in report.bad:
            core.err(f"bad {name}")
        sealed = f"; {report.sealed} good file(s) with a changed mtime sealed again" if report.sealed else ""
        core.out(f"checked {report.files} files, {core.human(report.bytes)}{sealed}")
    if not report.ok:
        what = "kept" if keep_bad else "removed; check out again any folder that hard-links them"
        raise DvxError(f"{len(report.bad)} bad cache file(s) ({what})")
    if not as_json:
        core.out("ok")


def _call_core_checkout(**given: Any) -> None:
    """Call the replaced core command; parameters it has beyond ``given`` get their declared defaults."""
    if _core_checkout is None:
        raise UsageError("checkout without --to is not available")
    kwargs = {}
    for name, param in inspect.signature(_core_checkout).parameters.items():
        default = param.default
        kwargs[name] = given[name] if name in given else getattr(default, "default", default)  # typer's OptionInfo
    _core_checkout(**kwargs)


def _command_name(info: Any) -> str:
    return str(info.name or (info.callback.__name__ if info.callback is not None else ""))


def register(app: typer.Typer) -> None:
    """Add ``dvx cache`` and swap the core ``checkout`` for the one above (a superset of it)."""
    global _core_checkout
    core_infos = [c for c in app.registered_commands if _command_name(c) == "checkout"]
    if core_infos and core_infos[0].callback is not checkout:
        _core_checkout = core_infos[0].callback
    app.registered_commands = [c for c in app.registered_commands if _command_name(c) != "checkout"]
    app.command("checkout")(checkout)
    app.add_typer(cache_app, name="cache")
