#!/usr/bin/env bash
# Set up radsurv in ./.venv with the exact versions of requirements.lock.
# Needs only Python 3.11 or 3.12 with venv (Debian: python3-venv) and network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"

"$PY" - <<'PYCHECK'
import sys
if sys.version_info[:2] not in ((3, 11), (3, 12)):
    sys.exit(f"radsurv needs Python 3.11 or 3.12; this is {sys.version.split()[0]}. Set PYTHON=/path/to/python3.11")
PYCHECK

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
echo "radsurv installed in $(pwd)/.venv"
