#!/usr/bin/env bash
# Create .venv (once) and install normlab with the given extras, e.g. `scripts/setup.sh lab`.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=${1:-lab}
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$extras]"
