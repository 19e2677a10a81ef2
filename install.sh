#!/usr/bin/env bash
# Set up radsurv in ./.venv with the exact versions of requirements.lock.
# Needs only Python 3.12 with venv (Debian: python3-venv) and network access to PyPI.
# The interpreter: $PYTHON if set, else python3.12 on PATH, else a pyenv 3.12, else python3.
set -euo pipefail
cd "$(dirname "$0")"
if [ -n "${PYTHON:-}" ]; then
    PY="$PYTHON"
elif python3.12 -c "" 2>/dev/null; then  # a pyenv shim on PATH may not run
    PY=python3.12
elif compgen -G "${PYENV_ROOT:-$HOME/.pyenv}/versions/3.12*/bin/python3.12" >/dev/null; then
    PY="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 | sort -V | tail -n 1)"
else
    PY=python3
fi

"$PY" - <<'PYCHECK'
import sys
if sys.version_info[:2] != (3, 12):
    sys.exit(f"radsurv needs Python 3.12 (pictologics, the fast IBSI engine, needs >= 3.12); "
             f"this is {sys.version.split()[0]}. Set PYTHON=/path/to/python3.12")
PYCHECK

# A .venv made by another Python (e.g. the 3.11 of earlier releases) is rebuilt.
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
    echo "install.sh: .venv is not Python 3.12; rebuilding it" >&2
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
            echo "install.sh: python venv module missing; installing Debian's python3-venv" >&2
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            "$PY" -m venv .venv
        else
            echo "install.sh: '$PY -m venv' failed. On Debian/Ubuntu: sudo apt-get install python3-venv" >&2
            exit 1
        fi
    fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check pip==26.3
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
# pictologics compiles its Numba kernels on first import (minutes, ~2 GB) into a cache beside its
# modules in .venv (Numba's cache=True: __pycache__ of site-packages/pictologics); do it here, once,
# so that no pipeline job pays it.
echo "install.sh: compiling pictologics' Numba kernels (first install only; several minutes)" >&2
.venv/bin/python -c 'import pictologics'
echo "radsurv installed in $(pwd)/.venv"
