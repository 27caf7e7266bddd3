#!/usr/bin/env bash
# Set up (first run only) and open the dashboard on the sample films in ../shared/media.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/streamlit run dashboard.py "$@"
