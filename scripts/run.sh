#!/usr/bin/env bash
# Set up, then run normlab's main job: the quick lab (every experiment at its quick size, a few minutes),
# which writes report/index.html, report/results.json and the figures, and prints the report's path.
# Extra arguments go to `normlab lab run`, e.g. `scripts/run.sh --jobs 1` or `scripts/run.sh --out /tmp/lab`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh lab
exec .venv/bin/normlab lab run --all --quick --out report "$@"
