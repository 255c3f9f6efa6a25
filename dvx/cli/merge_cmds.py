"""``dvx merge`` and ``dvx squash`` (registered on the main app by ``_register_extensions``)."""

from __future__ import annotations

from typing import Any

import typer

from ..errors import MergeConflict, UsageError
from .common import open_repo, out, print_json, progress_bar

_SHOWN_CONFLICTS = 20


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def merge_summary(result: Any) -> list[str]:
    """The lines ``dvx merge`` prints for a :class:`dvx.merge.MergeResult` (first line: the summary)."""
    if result.up_to_date:
        return ["Already up to date."]
    where = result.branch or "HEAD"
    counts = f"{result.added} added, {result.modified} modified, {result.deleted} deleted"
    if result.fast_forward:
        lines = [f"Fast-forwarded {where} to {result.commit[:12]}: {counts}"]
    else:
        what = ", ".join(result.merged)
        line = f"Merged {what} into {where}: {counts} (commit {result.commit[:12]})"
        if result.conflicts:
            line += f"; {_plural(len(result.conflicts), 'conflict')} resolved toward {result.strategy}"
        lines = [line]
        keep = "ours" if result.strategy == "ours" else "theirs"
        for c in result.conflicts[:_SHOWN_CONFLICTS]:
            lines.append(f"  kept {keep}: {c.summary()}")
        if len(result.conflicts) > _SHOWN_CONFLICTS:
            lines.append(f"  ... and {len(result.conflicts) - _SHOWN_CONFLICTS} more (see --json)")
    if getattr(result, "ignored", None):
        shown = ", ".join(result.ignored[:_SHOWN_CONFLICTS])
        more = f" and {len(result.ignored) - _SHOWN_CONFLICTS} more" if len(result.ignored) > _SHOWN_CONFLICTS else ""
        lines.append(f"Left out, as the merged .dvxignore excludes them (kept on disk if they were): {shown}{more}")
    if result.skipped:
        lines.append(f"Already contained: {', '.join(result.skipped)}")
    return lines


def merge_cmd(
    revs: list[str] = typer.Argument(..., help="Revisions to merge into HEAD, in order.", show_default=False),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message (default: 'Merge REV into BRANCH')."),
    strategy: str = typer.Option(
        "fail", "--strategy", "-s", help="On conflicts: fail (change nothing), ours (keep HEAD's side), theirs."
    ),
    allow_unrelated: bool = typer.Option(
        False, "--allow-unrelated", help="Merge histories with no common commit (as a union)."
    ),
    ff: bool = typer.Option(False, "--ff", help="Fast-forward instead of a merge commit when HEAD is an ancestor."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Merge REV... into the current branch: a three-way merge of trees, one commit with all parents.

    A conflict (both sides changed a path differently, a change against a deletion, a file against a directory) stops the merge with strategy fail and nothing changes; ours/theirs resolve each conflict toward HEAD or the merged REV and record it in the commit's metadata. Refuses to start over uncommitted changes (a change that is already what the merge writes there, as a killed run of the same merge leaves, does not count).
    """
    from ..merge import STRATEGIES, Conflict, conflict_message, merge

    if strategy not in STRATEGIES:
        raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    repo = open_repo()
    try:
        with progress_bar("merging", enabled=not as_json) as cb:
            result = merge(
                repo, revs, message=message, strategy=strategy, allow_unrelated=allow_unrelated, ff=ff, progress=cb
            )
    except MergeConflict as exc:
        conflicts = [c for c in exc.conflicts if isinstance(c, Conflict)]
        if as_json:  # the structured list on stdout for scripts; the one-line error still goes to stderr
            print_json({"conflicts": [c.to_json() for c in conflicts]})
        raise MergeConflict(conflict_message(conflicts, more="--json lists them all"), exc.conflicts) from None
    if as_json:
        print_json(result.to_json())
        return
    for line in merge_summary(result):
        out(line)


def squash_cmd(
    rev: str = typer.Argument(..., help="Revision whose files to copy."),
    message: str | None = typer.Option(None, "--message", "-m", help="Commit message."),
    branch: str | None = typer.Option(None, "--branch", "-b", help="Create this branch at the new commit."),
    tag: str | None = typer.Option(None, "--tag", "-t", help="Create this tag at the new commit."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Copy REV's files into a new root commit (no history), named by a new --branch or --tag.

    HEAD, the current branch and the working tree are not touched; check the new name out to use it. Without --branch or --tag the copy is tagged squash-<id> (an unnamed commit would be deleted by gc).
    """
    from ..merge import squash

    if message is None or not message.strip():
        raise UsageError("a message is required (-m MESSAGE)")
    repo = open_repo()
    cid = squash(repo, rev, message, branch=branch, tag=tag, default_tag=branch is None and tag is None)
    if branch is None and tag is None:
        tag = f"squash-{cid[:12]}"
    if as_json:
        print_json({"id": cid, "source": repo.resolve(rev), "branch": branch, "tag": tag})
        return
    names = ([f"branch {branch}"] if branch else []) + ([f"tag {tag}"] if tag else [])
    out(f"Squashed {rev} into root commit {cid[:12]} ({', '.join(names)})")


def register(app: typer.Typer) -> None:
    app.command("merge")(merge_cmd)
    app.command("squash")(squash_cmd)
