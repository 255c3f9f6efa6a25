"""``dvx checkout REV --readonly --to DIR [PATTERN...]`` and ``dvx cache info|prune|verify``.

The main flow runs as a real process; error cases call the same entry point (``run``) in-process, to keep
the suite fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from dvx.repo import Repo


def _run(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``dvx ARGS`` through the console entry point, in this process: (exit code, stdout, stderr)."""
    from dvx.cli.main import run

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["dvx", *args])
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_readonly_checkout_cache_info_prune_verify(h, dataset: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    cache_dir = tmp_path / "cache"  # the DVX_CACHE_DIR of this test
    dest = tmp_path / "out"
    pats = ["data/a/", "*.sh"]
    r = h.run_cli(["checkout", "v2", "--readonly", "--to", str(dest), *pats], dataset.root)  # a real process
    assert r.returncode == 0, r.stderr
    assert "read-only, hardlink" in r.stdout and "unchanged" in r.stdout
    h.assert_checkout(dataset, "v2", dest, patterns=pats)

    code, out, _ = _run(["cache", "info", "--json"], dataset.root, monkeypatch, capsys)
    info = json.loads(out)
    assert info["dir"] == str(cache_dir) and info["objects"] > 0 and info["limit"] is None
    code, out, _ = _run(["cache", "info"], dataset.root, monkeypatch, capsys)
    assert "objects" in out and str(cache_dir) in out

    code, out, _ = _run(["checkout", "v2", "--readonly", "--to", str(dest), *pats, "--json"], dataset.root, monkeypatch, capsys)
    doc = json.loads(out)
    assert doc["written"] == 0 and doc["kept"] == doc["files"] and doc["objects_extracted"] == 0

    assert _run(["cache", "verify"], dataset.root, monkeypatch, capsys)[0] == 0
    code, out, _ = _run(["cache", "prune", "--to", "0", "--json"], dataset.root, monkeypatch, capsys)
    pruned = json.loads(out)
    assert pruned["objects_removed"] == info["objects"] and pruned["bytes_after"] == 0
    h.assert_checkout(dataset, "v2", dest, patterns=pats)


def test_cache_commands_work_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("DVX_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("DVX_CACHE_SIZE", "1G")
    code, out, err = _run(["cache", "info", "--json"], tmp_path, monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out)["limit"] == 1 << 30
    code, out, err = _run(["cache", "prune"], tmp_path, monkeypatch, capsys)
    assert code == 0 and "removed 0 objects" in out


def test_plain_checkout_still_moves_the_working_tree(h, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    repo = h.make_dataset(tmp_path / "r")
    code, out, err = _run(["checkout", "v1"], repo.root, monkeypatch, capsys)
    assert code == 0, err
    assert "HEAD is now at" in out
    assert (repo.root / "swap" / "inner.txt").is_file()
    repo.close()


@pytest.mark.parametrize(
    "args",
    [
        ["checkout", "v1", "--readonly"],  # no --to
        ["checkout", "v1", "--link", "copy"],
        ["checkout", "v1", "--to", "x", "--link", "teleport"],
        ["checkout", "v1", "--to", "x", "--link", "hardlink"],  # writable + hardlink
        ["cache", "prune", "--to", "lots"],
    ],
)
def test_usage_errors_exit_2(dataset: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, args: list[str]) -> None:
    args = [str(tmp_path / a) if a == "x" else a for a in args]
    code, out, err = _run(args, dataset.root, monkeypatch, capsys)
    assert code == 2, (args, out, err)
    assert err.startswith("dvx: error:"), err


def test_refusals_are_one_line_errors(dataset: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    code, _, err = _run(["checkout", "v1", "--readonly", "--to", str(busy)], dataset.root, monkeypatch, capsys)
    assert code == 2 and "not empty" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1


def test_verify_reports_bad_files_and_fails(h, dataset: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from dvx.cache import Cache
    from dvx.readonly import checkout_to

    cache = Cache(tmp_path / "cache")  # the DVX_CACHE_DIR of this test
    checkout_to(dataset, "v1", tmp_path / "a", link="copy", cache=cache)
    e = h.expected(dataset, "v1")["dup1.txt"]
    path = cache.path(e.id)
    path.chmod(0o644)
    path.write_bytes(b"Duplicate\n")
    path.chmod(0o444)
    code, out, err = _run(["cache", "verify", "--keep-bad"], dataset.root, monkeypatch, capsys)
    assert code == 1 and f"bad {e.id}" in err and "1 bad cache file" in err
    assert path.exists()
    code, out, err = _run(["cache", "verify", "--json"], dataset.root, monkeypatch, capsys)
    assert code == 1 and json.loads(out)["removed"] == 1 and not path.exists()


@pytest.mark.parametrize("patterns", [["nomatch/**"], ["data/a/", "nomatch"], ["data/a/", "!data/a/*"]],
                         ids=["one", "one-of-two", "all-left-out"])
def test_patterns_that_match_nothing_fail_and_leave_the_folder_as_it_was(
    h, dataset: Repo, tmp_path: Path, snapshot, patterns: list[str]
) -> None:
    """As git's "pathspec did not match any file(s)": an error, not an emptied checkout."""
    dest = tmp_path / "ro"
    r = h.run_cli(["checkout", "v1", "--readonly", "--to", str(dest)], dataset.root)  # a real process
    assert r.returncode == 0, r.stderr
    before = snapshot(dest)
    r = h.run_cli(["checkout", "v1", "--readonly", "--to", str(dest), *patterns], dataset.root)
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("dvx: error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and "nothing was changed" in r.stderr
    assert ("'nomatch" in r.stderr) == any(p.startswith("nomatch") for p in patterns)
    assert snapshot(dest) == before  # the manifest included
    fresh = tmp_path / "fresh"
    r = h.run_cli(["checkout", "v1", "--readonly", "--to", str(fresh), *patterns], dataset.root)
    assert r.returncode == 1 and not fresh.exists()
