#!/usr/bin/env bash
# Refresh the README's screenshots in docs/ on purpose (the test suite writes them to a temp folder).
set -euo pipefail
cd "$(dirname "$0")/.."
FRAMESEARCH_BROWSER=1 bash scripts/setup.sh
FRAMESEARCH_SCREENSHOTS=docs exec .venv/bin/python -m pytest -q tests/test_browser.py "$@"
