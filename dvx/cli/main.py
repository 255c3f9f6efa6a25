"""The ``dvx`` command line: argument parsing and output only; all work is done by :class:`dvx.Repo`.

Errors: a :class:`~dvx.errors.DvxError` (or an OS refusal such as a full disk) becomes one line on stderr and
its exit code; a usage mistake exits 2. Only a bug shows a traceback.
"""

from __future__ import annotations

import os
import posixpath
import sys
from typing import Any

# typer imports pydantic when it is installed, whose plugin discovery reads every installed package's
# metadata (~150 ms per command); dvx uses no pydantic plugins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer  # noqa: E402

try:  # typer >= 0.20 vendors click as typer._click; older versions use click itself.
    from typer._click import exceptions as click_exc  # noqa: E402
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc  # type: ignore[no-redef]  # noqa: E402

from ..errors import DvxError, RevisionNotFound, UsageError, os_error

app = typer.Typer(
    name="dvx",
    help="Git-like, local-first version control for datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


from .common import (  # noqa: E402,F401
    color,
    err,
    human,
    one_line,
    open_repo,
    out,
    paint,
    plain_output,
    print_json,
    progress_bar,
    quote_path,
    split_at_dashdash,
    subfolder,
)

# --- commands ---------------------------------------------------------------------------------------------


@app.command()
def init(
    path: str = typer.Argument(".", help="Folder to make a repository (created if missing)."),
    branch: str = typer.Option("main", "--branch", "-b", help="Name of the first branch."),
    level: int = typer.Option(
        1, "--compression-level", help="zstd level for stored objects, 1 (fastest) to 22 (smallest).", show_default=True
    ),
) -> None:
    """Create an empty repository."""
    from ..repo import Repo

    repo = Repo.init(path, branch=branch, compression_level=level)
    out(f"Initialized empty dvx repository in {repo.dvx}")


@app.command()
def status(
    paths: list[str] = typer.Argument(
        None, help="Only these paths and what is below them (relative to the current folder; a final / matches "
        "only a folder).", show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show added, modified and deleted files against HEAD."""
    repo = open_repo()
    st = repo.status(paths=[_log_path(repo, p) for p in paths] if paths else None)
    for w in st.warnings:
        err(f"dvx: warning: {w}")
    if as_json:
        print_json(st.to_json())
        return
    branch, head = repo.head()
    out(f"On branch {branch}" if branch else f"HEAD detached at {head[:12] if head else '?'}")
    if head is None:
        out("No commits yet")
    if not st:
        out("nothing to commit, working tree clean")
        return
    shown = _from_here(repo)
    for label, paths, code in (("added", st.added, "32"), ("modified", st.modified, "33"), ("deleted", st.deleted, "31")):
        for p in paths:
            out(paint(f"  {label + ':':<10} {quote_path(shown(p))}", code))


def _from_here(repo: Any) -> Any:
    """How git's status names a repository path in its text output: relative to the current folder (``../a``
    from a subfolder). ``--json`` keeps repository paths."""
    base = subfolder(repo)
    if not base:
        return lambda p: p
    return lambda p: posixpath.relpath(p, base)


@app.command()
def commit(
    message: str = typer.Option(None, "--message", "-m", help="Commit message."),
    allow_empty: bool = typer.Option(False, "--allow-empty", help="Commit even if nothing changed."),
    meta: list[str] = typer.Option([], "--meta", help="KEY=VALUE metadata (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Snapshot the working tree as a new commit."""
    repo = open_repo()
    if message is None:
        raise UsageError("a commit message is required (-m MESSAGE)")
    message = clean_message(message)
    meta_map = _parse_kv(meta, "--meta")
    with progress_bar("committing") as cb:
        cid = repo.commit(message, allow_empty=allow_empty, meta=meta_map, progress=cb,
                          warn=lambda w: err(f"dvx: warning: {w}"))
    branch, _ = repo.head()
    if as_json:
        print_json({"id": cid, "branch": branch})
    else:
        first = message.strip().splitlines()[0]
        root = "" if repo.read_commit(cid).parents else " (root-commit)"  # as git says of a first commit
        out(f"[{branch or 'detached HEAD'}{root} {cid[:12]}] {first}")


def clean_message(message: str) -> str:
    """git's cleanup of a message given with ``-m``: trailing spaces and leading and trailing blank lines go,
    runs of blank lines become one."""
    lines = [line.rstrip() for line in message.split("\n")]  # not splitlines: \f, \r or U+2028 stay as they are
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _parse_kv(items: list[str], flag: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        result[key] = value
    return result


def _repo_path(repo: Any, path: str) -> str:
    """A path given on the command line, relative to the current folder as in git, as a repository path."""
    here = os.path.relpath(os.getcwd(), repo.root)
    joined = os.path.normpath(os.path.join(here, path)) if here != "." else os.path.normpath(path)
    if os.path.isabs(path):
        joined = os.path.relpath(os.path.normpath(path), repo.root)
        if joined == ".." or joined.startswith("../"):
            # Reached through a symlink to the repository (or a folder above it): its real path may be inside.
            # The last component is kept as it is: it may be a deleted file or a symlink of the tree.
            head, name = os.path.split(os.path.normpath(path))
            joined = os.path.normpath(os.path.join(os.path.relpath(os.path.realpath(head), repo.root), name))
    if joined == ".." or joined.startswith("../"):
        raise UsageError(f"{path!r} is outside the repository at {repo.root}")
    return "" if joined == "." else joined


@app.command()
def log(
    rev: str | None = typer.Argument(None, help="Start revision (default HEAD); several: the union of their histories."),
    paths: list[str] = typer.Argument(
        None,
        help="More revisions, then paths: only commits changing these (after --, or existing files; "
        "a final / matches only a folder).",
        show_default=False,
    ),
    n: int = typer.Option(None, "-n", "--max-count", help="Show at most N commits."),
    graph: bool = typer.Option(False, "--graph", help="Draw the commit graph."),
    oneline: bool = typer.Option(False, "--oneline", help="One line per commit."),
    all_refs: bool = typer.Option(False, "--all", help="Start from every branch, tag and remote-tracking branch too."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array, newest first."),
) -> None:
    """Show commit history."""
    repo = open_repo()
    if n is not None and n < 0:
        raise UsageError("-n must be >= 0")
    positional = [x for x in [rev, *(paths or [])] if x is not None]
    revs, path_list = _split_revisions_and_paths(repo, positional, "log")
    followed: dict[str, tuple[str, ...]] = {}
    entries = repo.log(revs, limit=n, paths=[_log_path(repo, p) for p in path_list], followed=followed,
                       all_refs=all_refs)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    if graph:
        from ..graph import render_graph, rewrite_parents

        nodes = [(e.id, list(e.commit.parents)) for e in entries]
        if path_list:  # as git: hidden parents are replaced by the shown commits they lead to, along the
            # simplified history (a merge that kept one side's version of the paths leads to that side only)
            nodes = rewrite_parents(
                nodes, lambda c: followed[c] if c in followed else repo.read_commit(c).parents
            )
        texts = {e.id: _log_line(e) for e in entries}
        for line in render_graph(nodes, texts):
            out(line)
        return
    for e in entries:
        if oneline:
            out(_log_line(e))
            continue
        deco = f" ({', '.join(e.refs)})" if e.refs else ""
        out(paint(f"commit {e.id}", "33") + deco)
        if len(e.commit.parents) > 1:
            out("Merge: " + " ".join(p[:12] for p in e.commit.parents))
        out(f"Author: {one_line(e.commit.author)}")
        out(f"Date:   {e.commit.time}")
        out("")
        for line in e.commit.message.splitlines() or [""]:
            out(f"    {line}")
        out("")


def _split_revisions_and_paths(repo: Any, positional: list[str], command: str) -> tuple[list[str], list[str]]:
    """The revisions and the paths among ``positional``: after ``--`` (git's rule) paths, before it revisions;
    without it, as :func:`_revisions_then_paths` reads them."""
    split = split_at_dashdash(positional)
    return split if split is not None else _revisions_then_paths(repo, positional, command)


def _revisions_then_paths(repo: Any, args: list[str], command: str = "log") -> tuple[list[str], list[str]]:
    """git's reading of arguments given without ``--``: revisions first; from the first one that is not a
    revision on, paths, each of which must exist in the working tree (else the argument is ambiguous)."""
    revs: list[str] = []
    for i, arg in enumerate(args):
        try:
            repo.resolve(arg)
        except RevisionNotFound:
            if not os.path.lexists(arg):
                if i == 0:
                    raise
                raise UsageError(f"ambiguous argument {arg!r}: unknown revision or path not in the working tree "
                                 "(use '--' to separate paths from revisions)") from None
            rest = args[i:]
            missing = next((p for p in rest if not os.path.lexists(p)), None)
            if missing is not None:
                raise UsageError(f"ambiguous argument {missing!r}: unknown revision or path not in the working tree "
                                 "(use '--' to separate paths from revisions)") from None
            return revs, rest
        if os.path.lexists(arg):
            raise UsageError(f"ambiguous argument {arg!r}: both a revision and a path "
                             f"(use 'dvx {command} {arg} --' or 'dvx {command} -- {arg}')")
        revs.append(arg)
    return revs, []


def _log_path(repo: Any, path: str) -> str:
    """:func:`_repo_path`, keeping a final ``/`` (a path that matches only a folder, as in git)."""
    p = _repo_path(repo, path)
    return p + "/" if p and path.endswith("/") else p


def _log_line(e: Any) -> str:
    deco = f" ({', '.join(e.refs)})" if e.refs else ""
    first = (e.commit.message.splitlines() or [""])[0]
    return f"{paint(e.id[:12], '33')}{deco} {first}"


@app.command()
def show(
    rev: str = typer.Argument("HEAD"),
    stat: bool = typer.Option(False, "--stat", help="Only counts and sizes of the changes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show a commit and the changes it made against its first parent."""
    repo = open_repo()
    cid = repo.resolve(rev)
    c = repo.read_commit(cid)
    parent = c.parents[0] if c.parents else None
    from ..diff import diff_flat

    d = diff_flat(*repo.trees.differing(repo.read_commit(parent).tree if parent else None, c.tree))
    if as_json:
        doc = {"id": cid, "parents": list(c.parents), "tree": c.tree, "message": c.message, "author": c.author,
               "time": c.time, "meta": c.meta, "diff": d.to_json()}
        print_json(doc)
        return
    out(paint(f"commit {cid}", "33"))
    if len(c.parents) > 1:
        out("Merge: " + " ".join(p[:12] for p in c.parents))
    out(f"Author: {one_line(c.author)}")
    out(f"Date:   {c.time}")
    for k, v in sorted(c.meta.items()):
        out(f"Meta:   {k}={v}")
    out("")
    for line in c.message.splitlines():
        out(f"    {line}")
    out("")
    _print_diff(d, stat=stat)


def _print_diff(d: Any, stat: bool) -> None:
    if not stat:
        for ch in d.all():
            if ch.status == "renamed":
                changed = (ch.old.kind, ch.old.executable) != (ch.new.kind, ch.new.executable)
                what = f"  ({_what_changed(ch.old, ch.new)})" if changed else ""
                out(paint(f"R  {quote_path(ch.old_path, arrow=True)} -> {quote_path(ch.path, arrow=True)}{what}", "36"))
            elif ch.status == "added":
                out(paint(f"A  {quote_path(ch.path)}  ({human(ch.new.size)})", "32"))
            elif ch.status == "deleted":
                out(paint(f"D  {quote_path(ch.path)}", "31"))
            else:
                what = _what_changed(ch.old, ch.new)
                out(paint(f"M  {quote_path(ch.path)}  ({what})", "33"))
    s = d.stats()
    out(
        f"{s['added']} added (+{human(s['bytes_added'])}), {s['deleted']} deleted (-{human(s['bytes_deleted'])}), "
        f"{s['modified']} modified ({human(s['bytes_modified_old'])} -> {human(s['bytes_modified_new'])}), "
        f"{s['renamed']} renamed ({human(s['bytes_renamed'])})"
    )


def _what_changed(old: Any, new: Any) -> str:
    if old.kind != new.kind:
        names = {"f": "file", "l": "symlink", "d": "directory"}
        return f"{names[old.kind]} -> {names[new.kind]}"
    if old.id == new.id and old.executable != new.executable:
        return "mode " + ("+x" if new.executable else "-x")
    if old.kind == "l":
        return f"link {quote_path(old.target or '', arrow=True)} -> {quote_path(new.target or '', arrow=True)}"
    return f"{human(old.size)} -> {human(new.size)}"


@app.command()
def diff(
    rev_a: str = typer.Argument(None, help="Old side (default HEAD)."),
    rev_b: str = typer.Argument(None, help="New side (default: the working tree)."),
    paths: list[str] = typer.Argument(
        None, help="Only changes to these paths and what is below them (after --, or existing files; relative to "
        "the current folder; a final / matches only a folder).", show_default=False,
    ),
    stat: bool = typer.Option(False, "--stat", help="Only counts and sizes."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show changes: working tree vs HEAD, working tree vs REV_A, or REV_A vs REV_B."""
    repo = open_repo()
    positional = [x for x in [rev_a, rev_b, *(paths or [])] if x is not None]
    revs, path_list = _split_revisions_and_paths(repo, positional, "diff")
    if len(revs) > 2:
        raise UsageError(f"diff compares at most two revisions, got {len(revs)}: {', '.join(map(repr, revs))}")
    old_side, new_side = (revs[0] if revs else None), (revs[1] if len(revs) > 1 else None)
    d = repo.diff(old_side, new_side, paths=[_log_path(repo, p) for p in path_list] if path_list else None)
    if as_json:
        print_json(d.to_json())
        return
    _print_diff(d, stat)


@app.command("ls")
def ls_cmd(
    rev: str | None = typer.Argument(None, help="Revision (default HEAD)."),
    patterns: list[str] = typer.Argument(None, help="Glob filters (gitignore syntax).", show_default=False),
    full_tree: bool = typer.Option(False, "--full-tree", help="From a subfolder, list the whole repository."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (repository paths)."),
) -> None:
    """List the files of a revision with size and content hash (BLAKE3).

    From a subfolder, as git ls-tree: only the files below it, matched and shown relative to it."""
    repo = open_repo()
    here = "" if full_tree else subfolder(repo)
    pats = list(patterns or [])
    guessed = None
    if rev is not None:
        try:
            repo.resolve(rev)
        except RevisionNotFound:
            # `dvx ls '*.jpg'`: a first argument that names no revision is a pattern. Any other failure (an
            # ambiguous prefix, HEAD~N past the first commit, a damaged ref) is reported as it is.
            guessed, rev = rev, None
            pats.insert(0, guessed)
    items = repo.ls(rev, pats, under=here)
    # A glob that matches nothing lists nothing; a plain word that is neither a revision nor a path is a
    # mistyped name (git: "unknown revision or path not in the working tree").
    if (guessed is not None and not any(c in guessed for c in "*?[")
            and not (items if len(pats) == 1 else repo.ls(None, [guessed], under=here))):
        raise RevisionNotFound(f"unknown revision or path {guessed!r} (no branch, tag or commit has that name, "
                               "and no path of HEAD matches it)")
    if as_json:
        print_json([
            {"path": p, "kind": {"f": "file", "l": "symlink"}[e.kind], "size": e.size, "id": e.id,
             "executable": e.executable, **({"target": e.target} if e.target is not None else {})}
            for p, e in items
        ])
        return
    cut = len(here) + 1 if here else 0
    for p, e in items:
        suffix = f" -> {quote_path(e.target or '', arrow=True)}" if e.kind == "l" else ""
        flag = "x" if e.executable else ("l" if e.kind == "l" else "-")
        out(f"{flag} {e.size:>12}  {e.id}  {quote_path(p[cut:], arrow=e.kind == 'l')}{suffix}")


@app.command()
def checkout(
    rev: str = typer.Argument(..., help="Branch, tag or commit."),
    force: bool = typer.Option(False, "--force", "-f", help="Discard uncommitted changes and untracked files in the way, as git does."),
) -> None:
    """Move the working tree to REV (only files that differ are touched)."""
    repo = open_repo()
    if repo.ambiguous_name(rev):
        err(f"dvx: warning: {rev!r} is both a branch and a tag; checking out the branch (use refs/tags/{rev} for the tag)")
    with progress_bar("checking out") as cb:
        cid = repo.checkout(rev, force=force, progress=cb)
    branch, _ = repo.head()
    if branch:
        out(f"Switched to branch '{branch}' ({cid[:12]})")
    else:
        out(f"HEAD is now at {cid[:12]} (detached)")


@app.command()
def branch(
    name: str = typer.Argument(None, help="Branch to create."),
    rev: str = typer.Argument("HEAD", help="Where it starts."),
    delete: str = typer.Option(None, "-d", "--delete", help="Delete this branch (refused if not fully merged)."),
    force_delete: str = typer.Option(None, "-D", help="Delete this branch even if its commits are merged nowhere."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List, create or delete branches."""
    repo = open_repo()
    if delete is not None or force_delete is not None:
        if delete is not None and force_delete is not None:
            raise UsageError("give -d or -D, not both")
        gone = delete if delete is not None else force_delete
        assert gone is not None
        was = repo.delete_branch(gone, force=force_delete is not None)
        out(f"Deleted branch {gone} (was {was[:12]})")
        return
    if name is not None:
        cid = repo.create_branch(name, rev)
        out(f"Created branch {name} at {cid[:12]}")
        return
    current, head = repo.head()
    branches = repo.branches()
    if as_json:
        print_json({"current": current, "branches": branches})
        return
    if current is None and head is not None:
        out(f"* (HEAD detached at {head[:12]})")  # as git lists it, first
    for b, cid in branches.items():
        mark = "*" if b == current else " "
        out(f"{mark} {b:<20} {cid[:12]}")


@app.command()
def tag(
    name: str = typer.Argument(None, help="Tag to create."),
    rev: str = typer.Argument("HEAD", help="Commit to tag."),
    delete: str = typer.Option(None, "-d", "--delete", help="Delete this tag."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List, create or delete tags."""
    repo = open_repo()
    if delete is not None:
        was = repo.delete_tag(delete)
        out(f"Deleted tag {delete} (was {was[:12]})")
        return
    if name is not None:
        cid = repo.create_tag(name, rev)
        out(f"Tagged {cid[:12]} as {name}")
        return
    tags = repo.tags()
    if as_json:
        print_json(tags)
        return
    for t, cid in tags.items():
        out(f"{t:<20} {cid[:12]}")


@app.command()
def fsck(
    remote: str = typer.Option(None, "--remote", help="Check this remote's objects instead."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Verify every reachable object (hash, decompression, structure)."""
    repo = open_repo()
    if remote:
        from ..transfer import fsck_remote

        checked, nbytes, bad = fsck_remote(repo, remote)
        if as_json:
            print_json({"ok": not bad, "objects": checked, "bytes": nbytes, "bad": bad})
        else:
            for oid, why in sorted(bad.items()):
                err(f"bad {oid}: {why}")
            out(f"checked {checked} reachable objects in {human(nbytes)} of packs on {remote}")
        if bad:
            raise DvxError(f"remote {remote} has {len(bad)} problem(s): {' '.join(b[:16] for b in sorted(bad)[:10])}")
        if not as_json:
            out("ok")
        return
    report = repo.fsck()
    if as_json:
        print_json({"ok": report.ok, "objects": report.objects, "bytes": report.bytes,
                    "bad": report.bad, "missing": report.missing})
    else:
        for oid, why in sorted(report.bad.items()):
            err(f"bad {oid}: {why}")
        for oid in report.missing:
            err(f"missing {oid}")
        out(f"checked {report.objects} objects, {human(report.bytes)} of file content"
            + (f"; {report.not_fetched} file contents not fetched yet (lazy clone)" if report.not_fetched else ""))
    if not report.ok:
        bad = sorted(report.bad) + report.missing
        raise DvxError(f"fsck found {len(bad)} problem(s): {' '.join(b[:16] for b in bad[:10])}")
    if not as_json:
        out("ok")


@app.command()
def gc(
    grace: float = typer.Option(3600.0, "--grace", help="Spare objects younger than this many seconds."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only report what would be deleted."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete objects no ref can reach."""
    if not grace >= 0 or grace == float("inf"):  # NaN compares false: refused too
        raise UsageError("--grace must be a number of seconds >= 0")
    repo = open_repo()
    r = repo.gc(grace_seconds=grace, dry_run=dry_run)
    if as_json:
        print_json(vars(r))
        return
    if dry_run:
        out(f"would remove {r.objects_removed} objects ({human(r.bytes_freed)}); would spare {r.kept_young} young files")
    else:
        out(f"removed {r.objects_removed} objects ({human(r.bytes_freed)}); rewrote {r.packs_rewritten} packs;"
            f" spared {r.kept_young} young files")


def _register_extensions() -> None:
    """Command groups that live in their own modules (remotes, read-only checkout, merge)."""
    import importlib

    for mod in ("remote_cmds", "merge_cmds", "cache_cmds", "get_cmds"):
        try:
            module = importlib.import_module(f"dvx.cli.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dvx.cli.{mod}":
                raise
            continue
        module.register(app)


_register_extensions()


def usage_message(exc: click_exc.ClickException) -> str:
    """A command-line parser's error in dvx's own style: one line, lower case, no final period, and for a
    usage error the help to read (``missing argument 'rev' (see 'dvx checkout --help')``)."""
    msg = " ".join(exc.format_message().split()).rstrip(".")
    if msg[:1].isupper() and msg[1:2].islower():  # "Missing argument", not "URL ..."
        msg = msg[0].lower() + msg[1:]
    ctx = exc.ctx if isinstance(exc, click_exc.UsageError) else None
    if ctx is not None:
        msg += f" (see '{ctx.command_path} --help')"
    return one_line(msg)


def run() -> None:
    """Console-script entry point."""
    if len(sys.argv) == 1:
        sys.argv.append("--help")
    if sys.argv[1:] == ["--version"]:
        from .. import __version__

        out(f"dvx {__version__}")
        return
    import signal

    from . import _interrupted_while_loading

    if signal.getsignal(signal.SIGINT) is _interrupted_while_loading:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on, KeyboardInterrupt unwinds cleanly
    plain_output()
    for arg in sys.argv[1:]:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            # Bytes that are not UTF-8 (decoded with surrogate escapes): refused here, before any command
            # could store them, since names, messages and paths of the format are UTF-8.
            shown = repr(arg.encode("utf-8", "surrogateescape"))[1:]
            err(f"dvx: error: argument {shown} is not valid UTF-8")
            sys.exit(2)
    try:
        rc = app(standalone_mode=False, prog_name="dvx")
    except DvxError as exc:
        err(f"dvx: error: {one_line(str(exc))}")
        sys.exit(exc.exit_code)
    except click_exc.ClickException as exc:
        err(f"dvx: error: {usage_message(exc)}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err("dvx: interrupted")
        sys.exit(130)
    except BrokenPipeError:
        # Output piped into `head`: not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except OSError as exc:
        e = os_error(exc, "operation failed")
        err(f"dvx: error: {one_line(str(e))}")
        sys.exit(e.exit_code)
    if rc == 130:  # typer turns KeyboardInterrupt into exit code 130, silently
        err("dvx: interrupted")
    if isinstance(rc, int) and rc:
        sys.exit(rc)


if __name__ == "__main__":
    run()
