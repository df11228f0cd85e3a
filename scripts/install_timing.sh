#!/usr/bin/env bash
# How long pip takes to resolve this project unlocked, as a library user installs it: a fresh
# virtualenv, no lock (constraints.txt is not used), no cache, PyPI only (this machine's local
# indexes and wheel folders are switched off), `pip install --dry-run <this project>`; once with
# the pip that `python3 -m venv` bundles (23.2 on Python 3.11) and once with the current pip.
# Prints the seconds of each; fails only when one takes longer than INSTALL_TIMING_LIMIT_S
# (default 600) or does not resolve. CI runs it after the tests (.ci/run), never inside `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=$(pwd)
PYTHON=${PYTHON:-python3}
LIMIT=${INSTALL_TIMING_LIMIT_S:-600}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# PyPI only: empty the machine's extra indexes and find-links; keep its CA bundle if it names one.
cert=$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)
{
    echo "[global]"
    echo "index-url = https://pypi.org/simple"
    echo "extra-index-url ="
    echo "find-links ="
    if [ -n "$cert" ]; then echo "cert = $cert"; fi
} > "$work/pip.conf"
export PIP_CONFIG_FILE="$work/pip.conf" PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

failed=0
resolve() {  # resolve LABEL VENV: one unlocked dry run, timed
    local label=$1 env=$2 start end seconds status=0
    start=$(date +%s.%N)
    timeout $((LIMIT + 30)) "$env/bin/python" -m pip install --dry-run --progress-bar off "$PROJECT" \
        > "$work/$label.log" 2>&1 || status=$?
    end=$(date +%s.%N)
    seconds=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.0f", b - a }')
    echo "install-timing: $label ($("$env/bin/python" -m pip --version | cut -d' ' -f1-2)): ${seconds} s unlocked dry-run resolution (limit ${LIMIT} s)"
    # where the resolver backtracked (what to tighten next), and how many files it fetched
    grep -o "looking at multiple versions of [^ ]*" "$work/$label.log" | sort | uniq -c \
        | sed "s/^/install-timing:   $label backtracked:/" || true
    echo "install-timing:   $label downloaded $(grep -c "Downloading " "$work/$label.log" || true) files"
    if [ "$status" -ne 0 ]; then
        echo "install-timing: $label did not resolve (exit $status):" >&2
        tail -20 "$work/$label.log" >&2
        failed=1
    elif [ "$seconds" -gt "$LIMIT" ]; then
        echo "install-timing: $label took ${seconds} s, over the ${LIMIT} s limit" >&2
        failed=1
    fi
}

"$PYTHON" -m venv "$work/bundled"
resolve bundled-pip "$work/bundled"
"$PYTHON" -m venv "$work/current"
"$work/current/bin/python" -m pip install --quiet --upgrade pip
resolve current-pip "$work/current"
exit "$failed"
