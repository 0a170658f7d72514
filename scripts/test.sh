#!/usr/bin/env bash
# Set up, then run the whole test suite (PyTorch 2.13.0 CPU is the oracle). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
exec .venv/bin/python -m pytest -q "$@"
