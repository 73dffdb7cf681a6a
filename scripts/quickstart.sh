#!/usr/bin/env bash
# The main job: execute notebooks/quickstart.ipynb headless against the built-in demo endpoint
# (no API key), print each cell's output and save notebooks/quickstart.out.ipynb.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/bootstrap.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/run_quickstart.py" "$@"
