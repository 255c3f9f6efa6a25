#!/usr/bin/env python3
"""dvx benchmark runner: times dvx on a deterministic workload against DVC and git-lfs where installed.

Not part of the test suite. ``make bench BENCH_ARGS='--scale 0.1'`` or ``.venv/bin/python benchmarks/run.py
--help``; benchmarks/README.md explains the workload, the steps and the goals. Each goal is printed as PASS,
FAIL or SKIP with the measured ratio; the exit code is 1 when a goal failed or a dvx step errored.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workload  # noqa: E402

SECTIONS = ("core", "remote", "readonly")
TOOLS = ("dvx", "DVC", "git-lfs", "cp")
BUCKET = "bench-bucket"
COMMAND_TIMEOUT = 4 * 3600.0

# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Figure:
    section: str
    tool: str
    step: str
    value: float | None
    unit: str  # "s", "B" or "n"
    note: str = ""


@dataclass
class Goal:
    section: str
    name: str
    target: str
    ratio: float | None = None
    passed: bool | None = None  # None: not evaluated
    detail: str = ""

    @property
    def status(self) -> str:
        return "SKIP" if self.passed is None else "PASS" if self.passed else "FAIL"


@dataclass
class Timed:
    seconds: float
    stdout: str
    stderr: str
    rc: int


class CommandFailed(Exception):
    def __init__(self, cmd: Sequence[str], rc: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        lines = [ln for ln in (stderr or stdout).strip().splitlines() if ln.strip()]
        tail = " | ".join(lines[-3:]) if lines else "(no output)"
        super().__init__(f"`{' '.join(map(str, cmd))}` exited {rc}: {tail}")


class BenchError(Exception):
    """A step ran but its result is wrong (e.g. a checkout produced the wrong tree)."""


class Skipped(Exception):
    """A part cannot run here (tool or command missing); the message says why."""


# ----------------------------------------------------------------------------------------------------------
# Helpers


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 100 else f"{value:.1f} s"
    if unit == "B":
        return fmt_bytes(value)
    return f"{value:,.0f}"


def dir_size(path: Path) -> tuple[int, int]:
    """(apparent bytes, disk bytes) of the files under ``path``, hard links counted once (like du -sb / du -s)."""
    seen: set[tuple[int, int]] = set()
    apparent = disk = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            apparent += st.st_size
            disk += st.st_blocks * 512
    return apparent, disk


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def force_rmtree(path: Path) -> None:
    """Remove a tree that may hold read-only files and folders (read-only checkouts)."""
    if not path.exists():
        return
    subprocess.run(["chmod", "-R", "u+w", str(path)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def find_dvx() -> Path | None:
    beside = Path(sys.executable).parent / "dvx"
    if beside.exists():
        return beside
    found = shutil.which("dvx")
    return Path(found) if found else None


def find_dvc() -> Path | None:
    venv = HERE / ".tools-venv" / "bin" / "dvc"
    if venv.exists():
        return venv
    found = shutil.which("dvc")
    return Path(found) if found else None


def interleaved_medians(first: Callable[[], float], second: Callable[[], float], n: int = 3) -> tuple[float, float]:
    """Medians of ``n`` runs of each, alternated: two sub-second figures that a goal divides are taken at the same
    moments, so the machine's drift (up to ~30% here between minutes) does not land on one of them only."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(n):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def check_readonly(root: Path, sample: int = 50) -> str | None:
    """None if every sampled file under ``root`` has no write bit, else a message naming one that has."""
    files = workload.list_files(root)
    step = max(1, len(files) // sample)
    for rel in files[::step]:
        mode = (root / rel).stat().st_mode
        if mode & 0o222:
            return f"{rel} is writable (mode {oct(mode & 0o777)})"
    return None


# ----------------------------------------------------------------------------------------------------------
# The bench context


@dataclass
class DvcRepo:
    path: Path
    v1: str  # text of data.dvc at v1
    v2: str  # text of data.dvc at v2


@dataclass
class Bench:
    args: argparse.Namespace
    run_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    dvx: Path | None = None
    dvc: Path | None = None
    lfs: bool = False
    base: Path = Path()
    info: workload.WorkloadInfo | None = None
    change: workload.ChangeInfo | None = None
    v1_digest: str = ""
    v2_digest: str = ""
    moto: subprocess.Popen[bytes] | None = None
    s3_endpoint: str | None = None
    # artifacts shared between sections (None until a section made them)
    dvx_v1_repo: tuple[Path, str, str] | None = None  # repo holding v1, a rev naming v1, v1's id
    dvx_local_remote: tuple[str, str] | None = None  # URL of a local remote holding v1, v1's commit id
    dvc_repo: DvcRepo | None = None
    dvc_local_remote: Path | None = None
    _dvx_help: dict[str, str] = field(default_factory=dict)

    # -- output ---------------------------------------------------------------------------------------------

    def say(self, msg: str = "") -> None:
        print(msg, flush=True)

    def note(self, section: str, msg: str) -> None:
        self.notes.append(f"[{section}] {msg}")
        self.say(f"  note: {msg}")

    def record(
        self, section: str, tool: str, step: str, value: float | None, unit: str = "s", note: str = ""
    ) -> None:
        self.figures.append(Figure(section, tool, step, value, unit, note))
        extra = f"   ({note})" if note else ""
        self.say(f"  {tool:8} {step:44} {fmt_value(value, unit):>12}{extra}")

    def fig(self, section: str, tool: str, step: str) -> float | None:
        for f in reversed(self.figures):
            if (f.section, f.tool, f.step) == (section, tool, step):
                return f.value
        return None

    def error(self, section: str, tool: str, exc: BaseException) -> None:
        msg = f"[{section}] {tool}: {exc}"
        if tool == "dvx":
            self.errors.append(msg)
        self.notes.append(msg)
        self.say(f"  ERROR {tool}: {exc}")

    # -- processes ------------------------------------------------------------------------------------------

    def run(
        self,
        cmd: Sequence[str | Path],
        cwd: Path,
        env: dict[str, str] | None = None,
        ok: Sequence[int] | None = (0,),
        timeout: float = COMMAND_TIMEOUT,
    ) -> Timed:
        """Run a command and time it; raises CommandFailed unless its exit code is in ``ok`` (None: any)."""
        argv = [str(c) for c in cmd]
        if self.args.verbose:
            self.say(f"    $ (cd {cwd} && {' '.join(argv)})")
        os.sync()  # earlier steps' dirty pages are not this command's cost
        t0 = time.perf_counter()
        try:
            p = subprocess.run(
                argv,
                cwd=cwd,
                env=env or self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
            )
        except FileNotFoundError as e:
            raise CommandFailed(argv, 127, "", str(e)) from e
        seconds = time.perf_counter() - t0
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        if self.args.verbose:
            self.say(f"      -> exit {p.returncode} in {seconds:.3f} s")
        if ok is not None and p.returncode not in ok:
            raise CommandFailed(argv, p.returncode, out, err)
        return Timed(seconds, out, err, p.returncode)

    def dir(self, rel: str) -> Path:
        path = self.run_dir / rel
        force_rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def copy_base(self, rel: str) -> Path:
        """A fresh repo folder ``rel`` holding a copy of workload v1 as ``data/``."""
        repo = self.dir(rel)
        repo.mkdir()
        subprocess.run(["cp", "-a", str(self.base / "data"), str(repo / "data")], check=True)
        return repo

    def mutate(self, data: Path) -> workload.ChangeInfo:
        change = workload.mutate(data, self.args.seed)
        if self.change is None:
            self.change = change
        if not self.v2_digest:
            self.v2_digest = workload.tree_digest(data)
        return change

    def verify(self, data: Path, digest: str, what: str) -> None:
        if not digest:
            return
        got = workload.tree_digest(data)
        if got != digest:
            raise BenchError(f"{what}: the tree in {data} differs from the expected one")

    # -- dvx ------------------------------------------------------------------------------------------------

    def dvx_env(self, cache: Path | None = None) -> dict[str, str]:
        env = dict(self.env)
        if cache is not None:
            env["DVX_CACHE_DIR"] = str(cache)
        return env

    def x(
        self, *args: str | Path, cwd: Path, env: dict[str, str] | None = None, ok: Sequence[int] | None = (0,)
    ) -> Timed:
        assert self.dvx is not None
        return self.run([self.dvx, *args], cwd=cwd, env=env, ok=ok)

    def dvx_help(self, command: str) -> str | None:
        """``dvx COMMAND --help`` output, or None when the command is not available."""
        if self.dvx is None:
            return None
        if command not in self._dvx_help:
            t = self.run([self.dvx, command, "--help"], cwd=self.run_dir, ok=None)
            self._dvx_help[command] = t.stdout + t.stderr if t.rc == 0 else ""
        return self._dvx_help[command] or None

    def dvx_head(self, repo: Path) -> str:
        t = self.x("log", "--json", cwd=repo)
        try:
            entries = json.loads(t.stdout)
            return str(entries[0]["id"])
        except (ValueError, LookupError, TypeError) as e:
            raise BenchError(f"cannot read the newest commit id from `dvx log --json`: {e}") from e

    def dvx_commit_v1(self, rel: str) -> tuple[Path, str, str]:
        """Untimed set-up: a repo with v1 committed; returns (repo, v1 commit id, v1 commit id)."""
        repo = self.copy_base(rel)
        self.x("init", cwd=repo)
        self.x("commit", "-m", "v1", cwd=repo)
        v1 = self.dvx_head(repo)
        return repo, v1, v1

    # -- DVC ------------------------------------------------------------------------------------------------

    def c(self, *args: str | Path, cwd: Path, ok: Sequence[int] | None = (0,)) -> Timed:
        assert self.dvc is not None
        return self.run([self.dvc, *args], cwd=cwd, ok=ok)

    def dvc_ready_repo(self) -> DvcRepo:
        """A DVC repo whose cache holds v1 and v2, with both data.dvc texts (the core one, or made untimed)."""
        if self.dvc_repo is None:
            repo = self.copy_base("shared/dvc")
            self.c("init", "--no-scm", "-q", cwd=repo)
            self.c("add", "data", cwd=repo)
            v1 = (repo / "data.dvc").read_text()
            self.mutate(repo / "data")
            self.c("add", "data", cwd=repo)
            self.dvc_repo = DvcRepo(repo, v1, (repo / "data.dvc").read_text())
        return self.dvc_repo

    def dvc_fresh_copy(self, rel: str, config_from: Path, dvc_text: str) -> Path:
        """What a DVC 'clone' is without git: an empty repo with the remote config and the .dvc file."""
        dest = self.dir(rel)
        dest.mkdir()
        self.c("init", "--no-scm", "-q", cwd=dest)
        shutil.copy(config_from / ".dvc" / "config", dest / ".dvc" / "config")
        (dest / "data.dvc").write_text(dvc_text)
        return dest

    # -- S3 (moto) ------------------------------------------------------------------------------------------

    def start_s3(self) -> str | None:
        """Start a moto S3 server on a free local port and create the bucket; the endpoint URL, or None."""
        if self.s3_endpoint is not None:
            return self.s3_endpoint
        try:
            import moto  # noqa: F401
        except ImportError:
            return None
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        log = open(self.run_dir / "moto.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if self.moto.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("the moto S3 server did not start (see moto.log)") from None
                time.sleep(0.2)
        self.env.update(
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ENDPOINT_URL=endpoint,
        )
        os.environ.update(
            {k: self.env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
        )
        try:
            import s3fs

            fs = s3fs.S3FileSystem(key="test", secret="test", client_kwargs={"endpoint_url": endpoint})
            fs.mkdir(BUCKET)
        except ImportError:
            import boto3

            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        self.s3_endpoint = endpoint
        self.say(f"  moto S3 server at {endpoint}, bucket {BUCKET}")
        return endpoint

    def stop_s3(self) -> None:
        if self.moto is not None and self.moto.poll() is None:
            self.moto.terminate()
            try:
                self.moto.wait(10)
            except subprocess.TimeoutExpired:
                self.moto.kill()
        self.moto = None

    # -- goals ----------------------------------------------------------------------------------------------

    def goal_faster(
        self, section: str, name: str, dvx_step: str, other_tool: str, other_step: str, factor: float
    ) -> None:
        """dvx must be at least ``factor`` times faster than ``other_tool``."""
        goal = Goal(section, name, f">= {factor:g}x faster than {other_tool}")
        mine = self.fig(section, "dvx", dvx_step)
        theirs = self.fig(section, other_tool, other_step)
        if mine is None or mine <= 0:
            goal.detail = "no dvx figure"
            goal.passed = False if self._dvx_errored(section) else None
        elif theirs is None:
            goal.detail = f"no {other_tool} figure"
        else:
            goal.ratio = theirs / mine
            goal.passed = goal.ratio >= factor
            goal.detail = f"{other_tool} {theirs:.3f} s / dvx {mine:.3f} s"
        self.goals.append(goal)

    def goal_within(
        self, section: str, name: str, num: tuple[str, str], den: tuple[str, str], factor: float
    ) -> None:
        """Figure ``num`` (tool, step) must be at most ``factor`` times figure ``den``."""
        goal = Goal(section, name, f"within {factor:g}x")
        a = self.fig(section, *num)
        b = self.fig(section, *den)
        if a is None or b is None or b <= 0:
            goal.detail = "missing figure"
            goal.passed = False if num[0] == "dvx" and self._dvx_errored(section) else None
        else:
            goal.ratio = a / b
            goal.passed = goal.ratio <= factor
            goal.detail = f"{a:.3f} s / {b:.3f} s"
        self.goals.append(goal)

    def _dvx_errored(self, section: str) -> bool:
        """A dvx step of ``section`` failed (a missing dvx figure is then a FAIL, not a SKIP)."""
        return any(e.startswith(f"[{section}] dvx:") for e in self.errors)


# ----------------------------------------------------------------------------------------------------------
# Section 1: core (commit, status, 1% change, checkout, store size)


def section_core(b: Bench) -> None:
    S = "core"
    b.say("\n== core: commit, status, 1% change, checkout, store size ==")
    parts: list[tuple[str, Callable[[Bench], None] | None, str]] = [
        ("dvx", core_dvx if b.dvx else None, "dvx CLI not found"),
        ("DVC", core_dvc if b.dvc else None, "DVC not installed (run benchmarks/setup-tools.sh)"),
        ("git-lfs", core_lfs if b.lfs else None, "git-lfs not installed (run benchmarks/setup-tools.sh)"),
    ]
    for tool, fn, why in parts:
        if fn is None:
            if not (tool == "DVC" and b.args.no_dvc) and not (tool == "git-lfs" and b.args.no_lfs):
                b.note(S, why)
            continue
        try:
            fn(b)
        except (CommandFailed, BenchError, subprocess.TimeoutExpired) as e:
            b.error(S, tool, e)

    median_step = commit_v1_medians(b)
    b.goal_faster(S, "commit v1: dvx vs DVC (add + commit)", median_step, "DVC", median_step, 5)
    add_only = b.fig(S, "DVC", "init + add v1")
    mine = b.fig(S, "dvx", "init + commit v1")
    if add_only and mine:
        b.note(S, f"commit v1 against `dvc add` alone (no `dvc commit`): {add_only:.2f} / {mine:.2f} s = {add_only / mine:.2f}x")
    b.goal_within(
        S,
        "no-op status: 20k-file repo vs empty repo",
        ("dvx", "status no-op (median of 3)"),
        ("dvx", "status, empty repo (median of 3)"),
        2.5,
    )
    goal = Goal(S, "store growth for the 1% change", "v2 <= 1.05 x (v1 + compressed changed bytes)")
    v1 = b.fig(S, "dvx", "store after v1")
    v2 = b.fig(S, "dvx", "store after v2")
    if v1 is not None and v2 is not None and b.change is not None:
        bound = v1 + b.change.compressed_changed_bytes
        goal.ratio = v2 / bound
        goal.passed = v2 <= 1.05 * bound
        goal.detail = (
            f"v2 {fmt_bytes(v2)} vs v1 {fmt_bytes(v1)} + changed {fmt_bytes(b.change.compressed_changed_bytes)}"
            f" (ratio {goal.ratio:.3f}, limit 1.05)"
        )
    else:
        goal.detail = "missing figure"
        goal.passed = False if b._dvx_errored(S) else None
    b.goals.append(goal)


def commit_v1_medians(b: Bench) -> str:
    """Time ``init + commit v1`` of dvx and DVC ``--commit-runs`` times in all, alternated (the core runs above
    are the first of each), and record each tool's median; returns the step name of the medians.

    One run of each is not enough to judge a ratio on this machine: the same dvx commit has taken 2.4-3.2 s
    and the same `dvc add` 12-25 s within one hour, so the goal compares medians of runs taken in turns.
    """
    S = "core"
    n = b.args.commit_runs
    step = f"init + commit v1 (median of {n})"
    samples: dict[str, list[float]] = {}
    trials: dict[str, Callable[[Bench, int], float]] = {"dvx": trial_commit_dvx, "DVC": trial_commit_dvc}
    for tool in trials:
        first = b.fig(S, tool, "init + commit v1")
        if first is not None:
            samples[tool] = [first]
    for i in range(1, n):
        for tool in list(samples):
            try:
                samples[tool].append(trials[tool](b, i))
            except (CommandFailed, BenchError, subprocess.TimeoutExpired) as e:
                b.error(S, tool, e)
                del samples[tool]  # no median for a tool that failed: its goal shows the missing figure
    for tool, ts in samples.items():
        runs = ", ".join(f"{t:.2f}" for t in ts)
        b.record(S, tool, step, statistics.median(ts), note=f"runs {runs} s")
    return step


# The trial repos stay until the run's folder is removed at the end. Deleting them at once would slow every
# later step that creates files, and unevenly: this machine's ext4 has no journal, and its inode allocator then
# skips (reading each one's inode block) every inode freed in the last 60 s (360 s while that block is dirty):
# 20,000 creates took 1.0 s, and 11.0 s right after 20,000 deletes (benchmarks/README.md, fourteenth session).


def trial_commit_dvx(b: Bench, i: int) -> float:
    repo = b.copy_base(f"core/dvx-trial{i}")
    return b.x("init", cwd=repo).seconds + b.x("commit", "-m", "v1", cwd=repo).seconds


def trial_commit_dvc(b: Bench, i: int) -> float:
    repo = b.copy_base(f"core/dvc-trial{i}")
    return sum(b.c(*args, cwd=repo).seconds for args in (("init", "--no-scm", "-q"), ("add", "data"), ("commit",)))


def core_dvx(b: Bench) -> None:
    S, T = "core", "dvx"
    empty = b.dir("core/dvx-empty")
    b.x("init", empty, cwd=b.run_dir)

    repo = b.copy_base("core/dvx")
    t_init = b.x("init", cwd=repo).seconds
    t_commit = b.x("commit", "-m", "v1", cwd=repo).seconds
    b.record(S, T, "init", t_init)
    b.record(S, T, "commit v1", t_commit)
    b.record(S, T, "init + commit v1", t_init + t_commit)
    v1 = b.dvx_head(repo)
    rev = v1
    try:
        b.x("tag", "v1", cwd=repo)
        rev = "v1"
    except CommandFailed as e:
        b.note(S, f"dvx tag failed, using the commit id for v1 ({e})")
    b.dvx_v1_repo = (repo, rev, v1)
    t_empty, t_noop = interleaved_medians(lambda: b.x("status", cwd=empty).seconds, lambda: b.x("status", cwd=repo).seconds)
    b.record(S, T, "status, empty repo (median of 3)", t_empty)
    b.record(S, T, "status no-op (median of 3)", t_noop)
    app, disk = dir_size(repo / ".dvx")
    b.record(S, T, "store after v1", app, "B", f"du {fmt_bytes(disk)}")

    b.mutate(repo / "data")
    b.record(S, T, "status after 1% change", b.x("status", cwd=repo, ok=(0, 1)).seconds)
    b.record(S, T, "commit v2 (1% change)", b.x("commit", "-m", "v2", cwd=repo).seconds)
    app, disk = dir_size(repo / ".dvx")
    b.record(S, T, "store after v2", app, "B", f"du {fmt_bytes(disk)}")

    b.record(S, T, "checkout v1", b.x("checkout", rev, cwd=repo).seconds)
    b.verify(repo / "data", b.v1_digest, "dvx checkout v1")


def core_dvc(b: Bench) -> None:
    S, T = "core", "DVC"
    empty = b.dir("core/dvc-empty")
    empty.mkdir()
    b.c("init", "--no-scm", "-q", cwd=empty)

    repo = b.copy_base("core/dvc")
    t_init = b.c("init", "--no-scm", "-q", cwd=repo).seconds
    # The baseline for a commit is `dvc add` + `dvc commit`; both parts are recorded, and the ratio
    # against `dvc add` alone is printed beside the goal's.
    t_add = b.c("add", "data", cwd=repo).seconds
    t_dvc_commit = b.c("commit", cwd=repo).seconds
    b.record(S, T, "init", t_init)
    b.record(S, T, "dvc add v1", t_add, note="dvc add data")
    b.record(S, T, "dvc commit v1", t_dvc_commit, note="dvc commit")
    b.record(S, T, "commit v1", t_add + t_dvc_commit, note="dvc add data + dvc commit")
    b.record(S, T, "init + commit v1", t_init + t_add + t_dvc_commit)
    b.record(S, T, "init + add v1", t_init + t_add, note="without dvc commit")
    v1 = (repo / "data.dvc").read_text()
    t_empty, t_noop = interleaved_medians(lambda: b.c("status", cwd=empty).seconds, lambda: b.c("status", cwd=repo).seconds)
    b.record(S, T, "status, empty repo (median of 3)", t_empty)
    b.record(S, T, "status no-op (median of 3)", t_noop)
    app, disk = dir_size(repo / ".dvc" / "cache")
    b.record(S, T, "store after v1", app, "B", f"du {fmt_bytes(disk)}")

    b.mutate(repo / "data")
    b.record(S, T, "status after 1% change", b.c("status", cwd=repo, ok=(0, 1)).seconds)
    t = b.c("add", "data", cwd=repo).seconds + b.c("commit", cwd=repo).seconds
    b.record(S, T, "commit v2 (1% change)", t, note="dvc add data + dvc commit")
    v2 = (repo / "data.dvc").read_text()
    app, disk = dir_size(repo / ".dvc" / "cache")
    b.record(S, T, "store after v2", app, "B", f"du {fmt_bytes(disk)}")

    (repo / "data.dvc").write_text(v1)
    b.record(S, T, "checkout v1", b.c("checkout", cwd=repo).seconds, note="restore data.dvc + dvc checkout")
    b.dvc_repo = DvcRepo(repo, v1, v2)
    b.verify(repo / "data", b.v1_digest, "dvc checkout v1")


def core_lfs(b: Bench) -> None:
    S, T = "core", "git-lfs"

    def git(*args: str, cwd: Path) -> Timed:
        return b.run(["git", *args], cwd=cwd)

    def setup(repo: Path) -> float:
        return (
            git("init", "-q", "-b", "main", cwd=repo).seconds
            + git("lfs", "install", "--local", cwd=repo).seconds
            + git("lfs", "track", "data/**", cwd=repo).seconds
        )

    empty = b.dir("core/lfs-empty")
    empty.mkdir()
    setup(empty)

    repo = b.copy_base("core/git-lfs")
    t_init = setup(repo)
    t_commit = git("add", "-A", cwd=repo).seconds + git("commit", "-q", "-m", "v1", cwd=repo).seconds
    b.record(S, T, "init", t_init, note="git init + lfs install + lfs track")
    b.record(S, T, "commit v1", t_commit, note="git add + git commit")
    b.record(S, T, "init + commit v1", t_init + t_commit)
    git("tag", "v1", cwd=repo)
    t_empty, t_noop = interleaved_medians(lambda: git("status", cwd=empty).seconds, lambda: git("status", cwd=repo).seconds)
    b.record(S, T, "status, empty repo (median of 3)", t_empty)
    b.record(S, T, "status no-op (median of 3)", t_noop)
    app, disk = dir_size(repo / ".git")
    b.record(S, T, "store after v1", app, "B", f"du {fmt_bytes(disk)}")

    b.mutate(repo / "data")
    b.record(S, T, "status after 1% change", git("status", cwd=repo).seconds)
    t = git("add", "-A", cwd=repo).seconds + git("commit", "-q", "-m", "v2", cwd=repo).seconds
    b.record(S, T, "commit v2 (1% change)", t)
    app, disk = dir_size(repo / ".git")
    b.record(S, T, "store after v2", app, "B", f"du {fmt_bytes(disk)}")

    b.record(S, T, "checkout v1", git("checkout", "-q", "v1", cwd=repo).seconds)
    b.verify(repo / "data", b.v1_digest, "git checkout v1")


# ----------------------------------------------------------------------------------------------------------
# Section 2: remotes (push, 1% push, cold clone)


def section_remote(b: Bench) -> None:
    S = "remote"
    b.say("\n== remote: push, 1% push, cold clone + checkout ==")
    endpoint: str | None = None
    try:
        endpoint = b.start_s3()
        if endpoint is None:
            b.note(S, "S3 parts skipped: moto not installed (pip install 'moto[server]')")
    except (BenchError, OSError, ImportError) as e:
        b.note(S, f"S3 parts skipped: {e}")

    if b.dvx is None:
        b.note(S, "skipped: dvx CLI not found")
    elif b.dvx_help("push") is None or b.dvx_help("clone") is None or b.dvx_help("remote") is None:
        missing = [c for c in ("push", "clone", "remote") if b.dvx_help(c) is None]
        b.note(S, f"skipped: dvx {' / '.join(missing)} not available")
    else:
        try:
            remote_dvx(b, endpoint)
        except (CommandFailed, BenchError, subprocess.TimeoutExpired) as e:
            b.error(S, "dvx", e)

    if b.dvc is not None:
        try:
            remote_dvc(b, endpoint)
        except (CommandFailed, BenchError, subprocess.TimeoutExpired) as e:
            b.error(S, "DVC", e)
    elif not b.args.no_dvc:
        b.note(S, "DVC not installed (run benchmarks/setup-tools.sh)")

    b.goal_faster(S, "initial push to S3: dvx vs DVC", "push v1 -> S3", "DVC", "push v1 -> S3", 5)
    b.goal_faster(S, "1% push to S3: dvx vs DVC", "push 1% -> S3", "DVC", "push 1% -> S3", 10)
    b.goal_faster(
        S,
        "cold clone + checkout from S3: dvx vs DVC",
        "cold clone+checkout <- S3",
        "DVC",
        "cold clone+checkout <- S3",
        3,
    )


def _dvx_push(b: Bench, repo: Path, section: str, step: str) -> None:
    help_text = b.dvx_help("push") or ""
    args = ["push", "--json"] if "--json" in help_text else ["push"]
    t = b.x(*args, cwd=repo)
    b.record(section, "dvx", step, t.seconds)
    if "--json" in args:
        try:
            doc = json.loads(t.stdout)
        except ValueError:
            doc = None
        if isinstance(doc, dict) and "requests" in doc:
            b.record(section, "dvx", f"{step} (requests)", float(doc["requests"]), "n")


def remote_dvx(b: Bench, endpoint: str | None) -> None:
    S, T = "remote", "dvx"
    repo_local, _rev, v1 = b.dvx_commit_v1("remote/dvx-local")
    targets: list[tuple[str, Path, str]] = [("local dir", repo_local, str(b.dir("remote/dvx-remote-dir")))]
    if endpoint is not None:
        repo_s3 = b.dir("remote/dvx-s3")
        subprocess.run(["cp", "-a", str(repo_local), str(repo_s3)], check=True)
        targets.append(("S3", repo_s3, f"s3://{BUCKET}/dvx"))

    for kind, repo, url in targets:
        b.x("remote", "add", "origin", url, cwd=repo)
        _dvx_push(b, repo, S, f"push v1 -> {kind}")
    b.dvx_local_remote = (targets[0][2], v1)

    for _kind, repo, _url in targets:
        b.mutate(repo / "data")
        b.x("commit", "-m", "v2", cwd=repo)
    for kind, repo, _url in targets:
        _dvx_push(b, repo, S, f"push 1% -> {kind}")

    for kind, _repo, url in targets:
        slug = "s3" if kind == "S3" else "dir"
        dest = b.dir(f"remote/dvx-clone-{slug}")
        cache = b.dir(f"remote/dvx-clone-{slug}-cache")
        cache.mkdir()
        t = b.x("clone", url, dest, cwd=b.run_dir, env=b.dvx_env(cache))
        b.record(S, T, f"cold clone+checkout <- {kind}", t.seconds, note="dvx clone, empty DVX_CACHE_DIR")
        b.verify(dest / "data", b.v2_digest, f"dvx clone from {kind}")


def remote_dvc(b: Bench, endpoint: str | None) -> None:
    S, T = "remote", "DVC"
    d = b.dvc_ready_repo()
    repo = d.path
    local = b.dir("remote/dvc-remote-dir")
    b.c("remote", "add", "-f", "local", local, cwd=repo)
    kinds = [("local dir", "local")]
    if endpoint is not None:
        b.c("remote", "add", "-f", "-d", "s3", f"s3://{BUCKET}/dvc", cwd=repo)
        b.c("remote", "modify", "s3", "endpointurl", endpoint, cwd=repo)
        kinds.append(("S3", "s3"))

    (repo / "data.dvc").write_text(d.v1)
    for kind, name in kinds:
        b.record(S, T, f"push v1 -> {kind}", b.c("push", "-r", name, cwd=repo).seconds)
    b.dvc_local_remote = local
    (repo / "data.dvc").write_text(d.v2)
    for kind, name in kinds:
        b.record(S, T, f"push 1% -> {kind}", b.c("push", "-r", name, cwd=repo).seconds)

    for kind, name in kinds:
        dest = b.dvc_fresh_copy(f"remote/dvc-clone-{name}", repo, d.v2)
        t = b.c("pull", "-r", name, cwd=dest)
        b.record(S, T, f"cold clone+checkout <- {kind}", t.seconds, note="dvc pull into a fresh copy")
        b.verify(dest / "data", b.v2_digest, f"dvc pull from {kind}")


# ----------------------------------------------------------------------------------------------------------
# Section 3: read-only checkout


def section_readonly(b: Bench) -> None:
    S = "readonly"
    b.say("\n== readonly: read-only checkout, warm and cold cache ==")
    help_text = b.dvx_help("checkout") if b.dvx else None
    if b.dvx is None:
        b.note(S, "skipped: dvx CLI not found")
    elif help_text is None or "--readonly" not in help_text:
        b.note(S, "skipped: dvx checkout --readonly not available")
    else:
        try:
            readonly_warm(b)
        except (CommandFailed, BenchError, subprocess.TimeoutExpired) as e:
            b.error(S, "dvx", e)
        try:
            readonly_cold(b)
        except Skipped as e:
            b.note(S, str(e))
        except (CommandFailed, BenchError, subprocess.TimeoutExpired) as e:
            b.error(S, "dvx", e)

    if b.dvc is not None:
        try:
            readonly_dvc(b)
        except (CommandFailed, BenchError, subprocess.TimeoutExpired) as e:
            b.error(S, "DVC", e)
    elif not b.args.no_dvc:
        b.note(S, "DVC not installed (run benchmarks/setup-tools.sh)")

    b.goal_within(
        S,
        "read-only checkout, warm cache: dvx vs cp -al",
        ("dvx", "checkout v1 tree, warm"),
        ("cp", "checkout v1 tree, warm"),
        3,
    )
    b.goal_faster(
        S,
        "read-only checkout, cold cache: dvx vs dvc pull",
        "cold: fetch + checkout v1",
        "DVC",
        "cold: fetch + checkout v1",
        3,
    )


def readonly_warm(b: Bench) -> None:
    S, T = "readonly", "dvx"
    if b.dvx_v1_repo is None:
        b.dvx_v1_repo = b.dvx_commit_v1("readonly/dvx")
    repo, rev, _v1 = b.dvx_v1_repo
    dest = b.dir("readonly/dvx-ro-first")
    b.record(S, T, "checkout v1 tree, first", b.x("checkout", rev, "--readonly", "--to", dest, cwd=repo).seconds,
             note="dvx checkout --readonly --to")
    b.verify(dest / "data", b.v1_digest, "dvx checkout v1 tree, first")
    problem = check_readonly(dest / "data")
    if problem:
        raise BenchError(f"read-only checkout left a writable file: {problem}")
    # Warm: dvx and `cp -al` alternately, three times each into fresh folders (sub-second figures on a machine
    # whose speed drifts: the medians of interleaved runs compare like with like).
    warm: list[float] = []
    cp: list[float] = []
    for i in range(3):
        dest = b.dir(f"readonly/dvx-ro-warm{i}")
        warm.append(b.x("checkout", rev, "--readonly", "--to", dest, cwd=repo).seconds)
        b.verify(dest / "data", b.v1_digest, "dvx checkout v1 tree, warm")
        problem = check_readonly(dest / "data")
        if problem:
            raise BenchError(f"read-only checkout left a writable file: {problem}")
        dest = b.dir(f"readonly/cp-al{i}")
        dest.mkdir()
        cp.append(b.run(["cp", "-al", b.base / "data", dest / "data"], cwd=b.run_dir).seconds)
    b.record(S, T, "checkout v1 tree, warm", statistics.median(warm),
             note="dvx checkout --readonly --to, median of 3")
    b.record(S, "cp", "checkout v1 tree, warm", statistics.median(cp), note="cp -al of the same tree, median of 3")


def readonly_cold(b: Bench) -> None:
    S, T = "readonly", "dvx"
    if b.dvx_local_remote is None:
        if b.dvx_help("push") is None or b.dvx_help("clone") is None:
            raise Skipped("cold part skipped: dvx push / clone not available")
        if b.dvx_v1_repo is None:
            b.dvx_v1_repo = b.dvx_commit_v1("readonly/dvx")
        repo, _rev, v1 = b.dvx_v1_repo
        url = str(b.dir("readonly/dvx-remote-dir"))
        b.x("remote", "add", "origin", url, cwd=repo)
        b.x("push", cwd=repo)
        b.dvx_local_remote = (url, v1)
    url, v1 = b.dvx_local_remote
    # The goal's figure: `dvx get` on a node with no repository and an empty cache (metadata, then only the
    # contents v1 needs, straight from the remote's packs into the cache, then linked into DEST).
    if b.dvx_help("get") is not None:
        cache = b.dir("readonly/dvx-get-cache")
        cache.mkdir()
        dest = b.dir("readonly/dvx-get-cold")
        t = b.x("get", url, v1, dest, "--readonly", cwd=b.run_dir, env=b.dvx_env(cache))
        b.record(S, T, "cold: fetch + checkout v1", t.seconds, note="dvx get --readonly, empty DVX_CACHE_DIR")
        b.verify(dest / "data", b.v1_digest, "dvx get --readonly")
        problem = check_readonly(dest / "data")
        if problem:
            raise BenchError(f"dvx get --readonly left a writable file: {problem}")
    # The same through a lazy clone: clone --no-checkout, then a read-only checkout out of it.
    cache = b.dir("readonly/dvx-cold-cache")
    cache.mkdir()
    env = b.dvx_env(cache)
    clone = b.dir("readonly/dvx-cold-clone")
    t_clone = b.x("clone", "--no-checkout", url, clone, cwd=b.run_dir, env=env).seconds
    dest = b.dir("readonly/dvx-ro-cold")
    t_co = b.x("checkout", v1, "--readonly", "--to", dest, cwd=clone, env=env).seconds
    b.record(S, T, "cold: clone --no-checkout", t_clone, note="empty DVX_CACHE_DIR")
    b.record(S, T, "cold: checkout v1 --readonly", t_co)
    step = "cold: clone + checkout v1" if b.dvx_help("get") is not None else "cold: fetch + checkout v1"
    b.record(S, T, step, t_clone + t_co)
    b.verify(dest / "data", b.v1_digest, "dvx cold read-only checkout")


def readonly_dvc(b: Bench) -> None:
    S, T = "readonly", "DVC"
    d = b.dvc_ready_repo()
    if b.dvc_local_remote is None:
        local = b.dir("readonly/dvc-remote-dir")
        b.c("remote", "add", "-f", "local", local, cwd=d.path)
        (d.path / "data.dvc").write_text(d.v1)
        b.c("push", "-r", "local", cwd=d.path)
        b.dvc_local_remote = local
    dest = b.dvc_fresh_copy("readonly/dvc-cold", d.path, d.v1)
    t = b.c("pull", "-r", "local", cwd=dest)
    b.record(S, T, "cold: fetch + checkout v1", t.seconds, note="dvc pull from a local remote")
    b.verify(dest / "data", b.v1_digest, "dvc pull v1")


# ----------------------------------------------------------------------------------------------------------
# Report


def print_report(b: Bench) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text fallback
        Console = None  # type: ignore[assignment,misc]  # noqa: N806
        Table = None  # type: ignore[assignment,misc]  # noqa: N806

    info = b.info
    header = "dvx benchmark"
    if info is not None:
        header += (
            f" — scale {b.args.scale:g}, seed {b.args.seed}: {info.n_files:,} files in {info.n_dirs} folders,"
            f" {fmt_bytes(info.total_bytes)} ({info.n_small:,} small = {fmt_bytes(info.small_bytes)},"
            f" {len(info.big_files)} big = {fmt_bytes(info.big_bytes)})"
        )
    ch = b.change
    change_line = ""
    if ch is not None:
        change_line = (
            f"1% change: {len(ch.modified)} modified, {len(ch.added)} added, {len(ch.deleted)} deleted small files,"
            f" 1 region rewritten + 1 append in big files; {fmt_bytes(ch.changed_bytes)} new content,"
            f" {fmt_bytes(ch.compressed_changed_bytes)} zstd-compressed"
        )
    rows_by_section: dict[str, list[str]] = {}
    for f in b.figures:
        rows = rows_by_section.setdefault(f.section, [])
        if f.step not in rows:
            rows.append(f.step)

    def tools(section: str) -> list[str]:
        return [t for t in TOOLS if any(f.tool == t and f.section == section for f in b.figures)]

    def cell(section: str, tool: str, step: str) -> str:
        for f in reversed(b.figures):
            if (f.section, f.tool, f.step) == (section, tool, step):
                return fmt_value(f.value, f.unit)
        return ""

    goal_rows = [
        (g.status, g.section, g.name, "-" if g.ratio is None else f"{g.ratio:.2f}", g.target, g.detail)
        for g in b.goals
    ]

    if Console is not None and Table is not None:
        console = Console(width=max(140, shutil.get_terminal_size((140, 40)).columns))
        console.print()
        console.rule(header)
        if change_line:
            console.print(change_line)
        for section, rows in rows_by_section.items():
            table = Table(title=f"{section}", title_justify="left")
            table.add_column("step")
            for t in tools(section):
                table.add_column(t, justify="right")
            for step in rows:
                table.add_row(step, *(cell(section, t, step) for t in tools(section)))
            console.print(table)
        table = Table(title="goals", title_justify="left")
        for col in ("result", "section", "goal", "ratio", "target", "detail"):
            table.add_column(col, justify="right" if col == "ratio" else "left")
        styles = {"PASS": "green", "FAIL": "bold red", "SKIP": "yellow"}
        for row in goal_rows:
            table.add_row(f"[{styles[row[0]]}]{row[0]}[/]", *row[1:])
        console.print(table)
        for n in b.notes:
            console.print(f"note: {n}", highlight=False, markup=False)
        return

    print("\n" + header)
    if change_line:
        print(change_line)
    for section, rows in rows_by_section.items():
        print(f"\n{section}")
        print(f"  {'step':44}" + "".join(f"{t:>14}" for t in tools(section)))
        for step in rows:
            print(f"  {step:44}" + "".join(f"{cell(section, t, step):>14}" for t in tools(section)))
    print("\ngoals")
    for row in goal_rows:
        print(f"  {row[0]:4}  {row[1]:8}  {row[2]:50} ratio {row[3]:>7}  ({row[4]}; {row[5]})")
    for n in b.notes:
        print(f"note: {n}")


def write_json(b: Bench, path: Path) -> None:
    doc: dict[str, Any] = {
        "scale": b.args.scale,
        "seed": b.args.seed,
        "sections": b.args.only or list(SECTIONS),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "versions": b.versions,
        "workload": asdict(b.info) if b.info else None,
        "change": asdict(b.change) if b.change else None,
        "figures": [asdict(f) for f in b.figures],
        "goals": [{**asdict(g), "status": g.status} for g in b.goals],
        "notes": b.notes,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"figures written to {path}")


# ----------------------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply file counts and big-file sizes (default 1)"
    )
    p.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    p.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    p.add_argument("--no-dvc", action="store_true", help="do not run DVC even if installed")
    p.add_argument("--no-lfs", action="store_true", help="do not run git-lfs even if installed")
    p.add_argument("--json", type=Path, metavar="FILE", help="write all figures and goals as JSON to FILE")
    p.add_argument("--keep", action="store_true", help="keep the working directory")
    p.add_argument(
        "--workdir", type=Path, help="where to make the run's working directory (default benchmarks/out)"
    )
    p.add_argument(
        "--commit-runs", type=int, default=3, metavar="N",
        help="init + commit v1 runs per tool, alternated, whose medians the commit goal compares (default 3)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print every command run")
    args = p.parse_args(argv)
    if args.scale <= 0:
        p.error("--scale must be > 0")
    if args.commit_runs < 1:
        p.error("--commit-runs must be >= 1")
    return args


def tool_versions(b: Bench) -> None:
    def version(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=b.env)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return (
            (p.stdout or p.stderr).strip().splitlines()[0]
            if p.returncode == 0 and (p.stdout or p.stderr)
            else "?"
        )

    if b.dvx:
        b.versions["dvx"] = version([str(b.dvx), "--version"])
    if b.dvc:
        b.versions["DVC"] = version([str(b.dvc), "--version"])
    if b.lfs:
        b.versions["git-lfs"] = version(["git", "lfs", "version"])
    b.versions["git"] = version(["git", "--version"])


def make_env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    gitconfig = run_dir / "gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = dvx bench\n\temail = bench@example.invalid\n[init]\n\tdefaultBranch = main\n"
    )
    env.update(
        GIT_CONFIG_GLOBAL=str(gitconfig),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(run_dir / "dvc-site-cache"),
        DVX_CACHE_DIR=str(run_dir / "dvx-cache"),
        PYTHONWARNINGS="ignore",
    )
    # Every Python tool runs with its bytecode cache, as it does for its users (pip compiles what it installs;
    # dvx's editable install is compiled in main()). A shell that sets PYTHONDONTWRITEBYTECODE would otherwise
    # make each dvx command recompile its modules (~0.1 s) and each DVC command read no cache it lacks.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for k in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(k, None)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sections = args.only or list(SECTIONS)
    root = (args.workdir or HERE / "out").resolve()
    root.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    b = Bench(args=args, run_dir=run_dir, env=make_env(run_dir))
    (run_dir / "dvx-cache").mkdir()

    b.dvx = find_dvx()
    if b.dvx is not None:
        import compileall

        import dvx

        compileall.compile_dir(str(Path(dvx.__file__).parent), quiet=1)
    if b.dvx is not None and b.run([b.dvx, "--help"], cwd=run_dir, ok=None).rc != 0:
        b.notes.append(f"dvx at {b.dvx} does not run (`dvx --help` failed): dvx figures skipped")
        b.errors.append("dvx CLI not runnable")
        b.dvx = None
    b.dvc = None if args.no_dvc else find_dvc()
    b.lfs = not args.no_lfs and shutil.which("git-lfs") is not None
    tool_versions(b)

    print(f"working directory: {run_dir}")
    print("tools: " + ", ".join(f"{k} {v}" for k, v in b.versions.items()))
    if b.dvx is None:
        print("dvx CLI not found or not runnable: only the other tools are measured")
    if b.dvc is None and not args.no_dvc:
        print("DVC not installed (run benchmarks/setup-tools.sh)")
    if not b.lfs and not args.no_lfs:
        print("git-lfs not installed (run benchmarks/setup-tools.sh)")

    rc = 0
    try:
        t0 = time.perf_counter()
        b.base = run_dir / "base"
        b.info = workload.generate(b.base / "data", args.scale, args.seed)
        gen_s = time.perf_counter() - t0
        b.v1_digest = workload.tree_digest(b.base / "data")
        info = b.info
        print(
            f"workload: {info.n_files:,} files, {fmt_bytes(info.total_bytes)}, generated in {gen_s:.1f} s"
            f" (seed {args.seed}, scale {args.scale:g}, tree sha256 {b.v1_digest[:16]})"
        )
        runners = {"core": section_core, "remote": section_remote, "readonly": section_readonly}
        for name in SECTIONS:
            if name in sections:
                runners[name](b)
    except KeyboardInterrupt:
        print("\ninterrupted")
        rc = 130
    finally:
        b.stop_s3()
        print_report(b)
        if args.json:
            write_json(b, args.json)
        if args.keep:
            print(f"kept {run_dir}")
        else:
            force_rmtree(run_dir)

    if rc:
        return rc
    failed = [g for g in b.goals if g.status == "FAIL"]
    if failed or b.errors:
        print(f"{len(failed)} goal(s) failed, {len(b.errors)} dvx error(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
