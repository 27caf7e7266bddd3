#!/usr/bin/env bash
# The whole test suite on a fresh machine: set-up (including Chromium for the browser test),
# then lint and pytest. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMESEARCH_BROWSER=1 bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
