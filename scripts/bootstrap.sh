#!/usr/bin/env bash
# Create .venv (if missing) and install nbllm in it with its test extras. Idempotent: pip runs
# again only when pyproject.toml changed. Needs only python3 (>= 3.10) and the package index.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV with $("$PY" --version)"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip 2>&1 | grep -v "is ignored" || true
fi
STAMP="$VENV/.nbllm-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-32)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "[bootstrap] installing nbllm[test] into $VENV"
    # pip -q still relays the build backend's warnings. With the SPDX license string there is one
    # left: setuptools' informational "Editable installation." note (a UserWarning on every -e
    # install). Hide that one by its text; any other warning still shows.
    PYTHONWARNINGS="ignore:Editable installation" \
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[test]" 2>&1 | grep -v "is ignored" || true
    "$VENV/bin/python" -c "import nbllm, pytest, nbclient, ipykernel" # fail loudly if the install did not work
    echo "$WANT" > "$STAMP"
fi
