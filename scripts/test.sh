#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this).
#   bash scripts/test.sh [pytest args]
# Sets up, idempotently and cached: .venv with nbllm[test]; Debian's chromium + JupyterLab +
# Playwright for the real-browser widget test; the LiteLLM proxy and `transformers serve` (with a
# tiny model built here) in their own virtualenvs. NBLLM_SKIP_SETUP=1 skips the last two (their
# tests then skip with a reason).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
if [ "${NBLLM_SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup_browser.sh "$ROOT/.venv"
    bash scripts/setup_realservers.sh
    # set up just now, so their tests must run: a missing browser or server fails, never skips
    export NBLLM_BROWSER_REQUIRED=1 NBLLM_REALSERVERS_REQUIRED=1
fi
exec .venv/bin/python -m pytest -q -ra "$@"
