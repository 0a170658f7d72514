#!/usr/bin/env bash
# Set up, then run normlab's main job. Extra arguments go to the command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh lab
exec .venv/bin/normlab train "$@"
