#!/usr/bin/env bash
# Set up (first run only) and open the dashboard on the sample films in ../shared/media.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# demo mode: sample films indexed on first start, a random-weights CLIP when the hub model cannot be had
FRAMESEARCH_DEMO=1 exec .venv/bin/streamlit run dashboard.py "$@"
