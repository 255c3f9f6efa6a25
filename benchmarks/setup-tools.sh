#!/usr/bin/env bash
# Install the comparison tools used by benchmarks/run.py:
#   - DVC (with S3 support) into its own venv, benchmarks/.tools-venv, so that its many
#     dependencies never mix with the project's .venv;
#   - git-lfs from Debian's packages (needs root, as on the project's machines).
# Idempotent: re-running skips what is already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.tools-venv"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/dvc" ] && "$venv/bin/dvc" --version >/dev/null 2>&1; then
    echo "DVC already installed: $("$venv/bin/dvc" --version) ($venv)"
else
    echo "Installing DVC into $venv ..."
    "$python" -m venv "$venv"
    # keep the venv out of git whatever the top-level .gitignore says
    echo '*' > "$venv/.gitignore"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet 'dvc[s3]'
    echo "DVC installed: $("$venv/bin/dvc" --version)"
fi

if command -v git-lfs >/dev/null 2>&1; then
    echo "git-lfs already installed: $(git-lfs version)"
else
    echo "Installing git-lfs ..."
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $sudo apt-get install -y -q git-lfs; then
        $sudo apt-get update -q
        $sudo apt-get install -y -q git-lfs
    fi
    echo "git-lfs installed: $(git-lfs version)"
fi
