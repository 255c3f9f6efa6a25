#!/usr/bin/env python3
"""Build a sample dvx repository that exercises every part of docs/format.md.

Usage: python docs/examples/make_sample_repo.py DIR [DVX]

DIR must not exist. DVX is the dvx executable (default: ``dvx`` on PATH). The repository gets:

* ``data/random.bin``  5 MiB + 12345 bytes of random data: a chunked file (manifest + several chunks);
* ``data/zeros.bin``   9 MiB of zeros: a chunked file whose manifest lists one chunk twice;
* ``data/zeros3.bin``  3 MiB of zeros: >= the chunking threshold but cut into a single chunk, so the file
                       id names a blob (stored loose), not a manifest;
* ``data/text.csv``    1.2 MB of compressible text: one blob >= 512 KiB, stored loose and zstd-compressed;
* ``data/big/``        2100 small files: a directory split into buckets (depth 0);
* ``deep/``            2100 files whose names all have BLAKE3 byte 0 = 0x00: buckets at depth 1;
* ``run.sh``           an executable file; ``empty`` an empty file; ``naïve dir/Ωmega.txt`` non-ASCII names;
* ``latest.csv``       a symlink to a file, ``docs-link`` a symlink to a directory, ``dangling`` a dangling one;

and three commits on ``main``, a tag ``v1`` and a branch ``side``. Uses only the standard library and the
dvx command line, so the result is what a real user gets.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path


def names_in_bucket_zero(n: int) -> list[str]:
    """``n`` file names whose BLAKE3 digest starts with byte 0x00 (so they share a depth-0 bucket)."""
    import blake3  # a dvx dependency; only needed for this helper

    out: list[str] = []
    i = 0
    while len(out) < n:
        name = f"z{i}.dat"
        i += 1
        if blake3.blake3(name.encode()).digest()[0] == 0:
            out.append(name)
    return out


def main() -> None:
    root = Path(sys.argv[1])
    dvx = os.path.abspath(shutil.which(sys.argv[2] if len(sys.argv) > 2 else "dvx") or "dvx")
    env = dict(os.environ, DVX_AUTHOR="Ada Lovelace <ada@example.org>")

    def run(*args: str) -> None:
        subprocess.run([dvx, *args], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)

    subprocess.run([dvx, "init", str(root)], check=True, stdout=subprocess.DEVNULL)
    rng = random.Random(1)
    (root / "data/big").mkdir(parents=True)
    (root / "data/random.bin").write_bytes(rng.randbytes((5 << 20) + 12345))
    (root / "data/zeros.bin").write_bytes(bytes(9 << 20))
    (root / "data/zeros3.bin").write_bytes(bytes(3 << 20))
    (root / "data/text.csv").write_text("a,b,c\n" * 200_000)
    for i in range(2100):
        (root / f"data/big/f{i:05d}.txt").write_text(f"row {i}\n")
    (root / "deep").mkdir()
    for i, name in enumerate(names_in_bucket_zero(2100)):
        (root / "deep" / name).write_text(f"deep {i}\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "empty").write_bytes(b"")
    (root / "naïve dir").mkdir()
    (root / "naïve dir/Ωmega.txt").write_text("unicode\n")
    os.symlink("data/text.csv", root / "latest.csv")
    os.symlink("naïve dir", root / "docs-link")
    os.symlink("does/not/exist", root / "dangling")
    run("commit", "-m", "first import")
    run("tag", "v1")
    with open(root / "run.sh", "a") as fh:
        fh.write("echo again\n")
    (root / "data/big/f00007.txt").write_text("changed\n")
    run("commit", "-m", "second\n\nwith a body line")
    run("branch", "side")
    (root / "empty").unlink()
    run("commit", "-m", "third", "--meta", "source=make_sample_repo")


if __name__ == "__main__":
    main()
