#!/usr/bin/env bash
# Set up what tests/test_browser.py needs: Debian's chromium (+ a font, so screenshots have
# readable text) and JupyterLab, Notebook 7 and Playwright in the given virtualenv.
#
#   bash scripts/setup_browser.sh [VENV]        # default VENV: .venv next to this repo's scripts/
#
# Idempotent and quick on a rerun (~1 s): apt runs only when /usr/bin/chromium is missing, pip
# only when a package is missing. Never runs `playwright install` (its browser download is not
# reachable here, and Debian's chromium is what the test drives via executable_path).
# First run on a bare Debian 12: ~90 s apt (incl. apt-get update) + ~60 s pip.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
t0=$(date +%s)

if ! [ -x /usr/bin/chromium ]; then
    echo "[setup_browser] installing chromium from apt"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
# the /usr/bin/chromium wrapper may print a harmless "[: ... unexpected operator"; ask the binary
/usr/lib/chromium/chromium --version

if ! [ -x "$VENV/bin/python" ]; then
    echo "[setup_browser] no virtualenv at $VENV (run scripts/bootstrap.sh first)" >&2
    exit 1
fi
# find_spec, not imports: importing jupyterlab takes seconds on a loaded 2-core machine
if ! "$VENV/bin/python" - <<'PY'
import importlib.util, sys
need = ["jupyterlab", "notebook", "playwright", "ipywidgets", "jupyterlab_widgets", "ipykernel", "nbformat"]
missing = [m for m in need if importlib.util.find_spec(m) is None]
sys.exit(1 if missing else 0)
PY
then
    echo "[setup_browser] pip install jupyterlab notebook playwright ipywidgets ipykernel nbformat into $VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "jupyterlab>=4.0,<5" "notebook>=7.0,<8" "playwright>=1.40" "ipywidgets>=8.0,<9" ipykernel nbformat \
        2>&1 | grep -v "is ignored" || true
fi
# without the widget manager lab extension, widgets render as the text 'VBox(children=...)'
EXT="$VENV/share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager/package.json"
[ -f "$EXT" ] || { echo "[setup_browser] widget manager lab extension missing: $EXT" >&2; exit 1; }
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m
print("[setup_browser]", " ".join(f"{p}={m.version(p)}" for p in
      ["jupyterlab", "notebook", "ipywidgets", "jupyterlab_widgets", "ipykernel", "playwright"]))
PY
echo "[setup_browser] ok in $(( $(date +%s) - t0 ))s (venv: $VENV)"
