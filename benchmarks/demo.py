#!/usr/bin/env python3
"""dvx demo (``make demo``): a small dataset taken through the everyday commands, every step shown for real.

Makes ``demo-out/`` afresh (under the current directory): a sample dataset of 300 files in 10 folders plus
one 20 MiB file, then runs and echoes ``dvx init``, ``commit``, ``status``, ``diff --stat``, ``log --graph``,
``remote add`` / ``push``, ``clone --no-checkout`` and a read-only ``checkout --to`` a "training node" folder,
with each command's output and wall time. A command that this dvx does not have yet is reported as
"(not available yet: ...)" and the demo goes on; the exit code is 0 when the core steps (init, commit,
status, diff, log) succeeded.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import workload  # noqa: E402

OUT = Path("demo-out")
SEED = 42
SPEC = workload.WorkloadSpec(
    n_small=300,
    n_dirs=10,
    big=(workload.BigFile("big/sample.csv", "text", 20 * workload.MiB),),
)

try:
    from rich.console import Console

    _console: Console | None = Console(highlight=False)
except ImportError:  # plain output
    _console = None


def heading(text: str) -> None:
    if _console is not None:
        _console.print(f"\n[bold cyan]## {text}[/]", soft_wrap=True)
    else:
        print(f"\n## {text}")


def echo(text: str, style: str = "") -> None:
    if _console is not None and style:
        _console.print(text, style=style, markup=False, soft_wrap=True)
    else:
        print(text, flush=True)


def fmt_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def find_dvx() -> str:
    beside = Path(sys.executable).parent / "dvx"
    if beside.exists():
        return str(beside)
    return shutil.which("dvx") or "dvx"


def summary_line(stderr: str, stdout: str) -> str:
    """The line that says why a command failed: the first one, or a traceback's last one."""
    lines = [ln.strip() for ln in (stderr or stdout).splitlines() if ln.strip()]
    if not lines:
        return "no output"
    if lines[0].startswith("Traceback"):
        return lines[-1]
    return lines[0]


def looks_missing(text: str) -> bool:
    low = text.lower()
    return any(s in low for s in ("no such command", "no such option", "unknown option", "not implemented"))


@dataclass
class Demo:
    dvx: str
    root: Path  # the directory the demo was started from; paths are shown relative to it
    env: dict[str, str]
    failed_core: list[str]

    def show_cwd(self, cwd: Path) -> str:
        try:
            rel = cwd.resolve().relative_to(self.root)
            return str(rel) if str(rel) != "." else "."
        except ValueError:
            return str(cwd)

    def step(self, title: str, argv: list[str], cwd: Path, core: bool = False) -> bool:
        """Print and run one command; returns whether it succeeded."""
        heading(title)
        shown = ["dvx" if a == self.dvx else a for a in argv]
        echo(f"{self.show_cwd(cwd)}$ {shlex.join(shown)}", "bold")
        t0 = time.perf_counter()
        try:
            p = subprocess.run(argv, cwd=cwd, env=self.env, capture_output=True, text=True, errors="replace")
        except FileNotFoundError as e:
            p = subprocess.CompletedProcess(argv, 127, "", str(e))
        seconds = time.perf_counter() - t0
        if p.returncode == 0:
            out = (p.stdout + p.stderr).rstrip("\n")
            if out:
                echo(out)
            echo(f"({seconds:.2f} s)", "dim")
            return True
        why = summary_line(p.stderr, p.stdout)
        if looks_missing(why) or p.returncode == 127:
            echo(f"(not available yet: {why})", "yellow")
        else:
            out = (p.stdout + p.stderr).rstrip("\n")
            if out and not out.startswith("Traceback"):
                echo(out)
            echo(f"(failed with exit code {p.returncode}: {why})", "bold red")
        if core:
            self.failed_core.append(f"{shlex.join(shown)}: {why}")
        return False


def main() -> int:
    root = Path.cwd().resolve()
    out = (root / OUT).resolve()
    if out.exists():
        subprocess.run(["chmod", "-R", "u+w", str(out)], check=False)
        shutil.rmtree(out)
    out.mkdir(parents=True)
    dataset = out / "dataset"
    remote = out / "remote"
    node_repo = out / "node-repo"
    training = out / "training-node"

    env = dict(os.environ)
    env["DVX_CACHE_DIR"] = str(out / "cache")  # keep the demo's cache inside demo-out/
    env.setdefault("COLUMNS", "100")
    demo = Demo(dvx=find_dvx(), root=root, env=env, failed_core=[])
    dvx = demo.dvx

    heading("A sample dataset")
    t0 = time.perf_counter()
    info = workload.generate(dataset, seed=SEED, spec=SPEC)
    echo(
        f"{OUT}/dataset: {info.n_small} small files (half CSV text, half binary) in {SPEC.n_dirs} folders"
        f" + big/sample.csv ({fmt_size(info.big_bytes)}); {fmt_size(info.total_bytes)} in all"
        f"  ({time.perf_counter() - t0:.2f} s)"
    )
    echo(f"(DVX_CACHE_DIR={OUT}/cache keeps the demo's object cache inside {OUT}/)", "dim")

    demo.step("Make it a dvx repository", [dvx, "init"], dataset, core=True)
    demo.step(
        "Snapshot everything as the first version",
        [dvx, "commit", "-m", "v1: initial import"],
        dataset,
        core=True,
    )

    heading("Change a few files (1% modified, a few added and deleted, 1 MiB rewritten + 1 MiB appended)")
    change = workload.mutate(dataset, SEED)
    echo(
        f"modified {len(change.modified)}, added {len(change.added)}, deleted {len(change.deleted)} small files;"
        f" rewrote {change.big_rewritten[0][2] >> 10} KiB in the middle of {change.big_rewritten[0][0]}"
        f" and appended {change.big_appended[0][2] >> 10} KiB to {change.big_appended[0][0]}"
    )

    demo.step("What changed?", [dvx, "status"], dataset, core=True)
    demo.step("How much changed?", [dvx, "diff", "--stat"], dataset, core=True)
    demo.step(
        "Record the second version", [dvx, "commit", "-m", "v2: 1% of the files changed"], dataset, core=True
    )
    demo.step("History", [dvx, "log", "--graph"], dataset, core=True)

    demo.step(
        "Add a remote (a local folder here; s3:// and gs:// URLs work the same way)",
        [dvx, "remote", "add", "origin", str(remote)],
        dataset,
    )
    demo.step("Push the history to it", [dvx, "push"], dataset)
    demo.step(
        "On a training node: clone without materialising files",
        [dvx, "clone", str(remote), node_repo.name, "--no-checkout"],
        out,
    )
    ro_cwd = node_repo if node_repo.exists() else out
    demo.step(
        "Materialise the latest version read-only, next to the clone",
        [dvx, "checkout", "HEAD", "--readonly", "--to", os.path.relpath(training, ro_cwd)],
        ro_cwd,
    )

    samples = sorted((training / "dir000").glob("*"))[:2] if (training / "dir000").is_dir() else []
    samples += [p for p in (training / "big" / "sample.csv",) if p.exists()]
    if samples:
        demo.step(
            "The training node's files are read-only",
            ["ls", "-l", *[str(p.relative_to(out)) for p in samples]],
            out,
        )
    else:
        heading("The training node's files are read-only")
        echo("(no read-only checkout to show)", "yellow")

    present = [
        str(p.relative_to(out))
        for p in (dataset / ".dvx", remote, node_repo, out / "cache", training)
        if p.exists()
    ]
    demo.step(
        "Space used: the dataset's store, the remote, the clone, the cache and the checkout"
        " (du counts a hard-linked file once, where it first sees it)",
        ["du", "-sh", *present],
        out,
    )

    heading("Summary")
    if demo.failed_core:
        echo("core steps failed:", "bold red")
        for f in demo.failed_core:
            echo(f"  {f}", "red")
        return 1
    echo("core steps (init, commit, status, diff, log) all succeeded", "green")
    return 0


if __name__ == "__main__":
    sys.exit(main())
