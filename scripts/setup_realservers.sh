#!/usr/bin/env bash
# Set up the REAL third-party servers that tests/test_realservers.py starts on 127.0.0.1:
#
#   $DIR/litellm-venv   LiteLLM proxy (litellm[proxy] + prisma), its own venv
#   $DIR/hf-venv        transformers serve (transformers[serving] + the CPU torch wheel on disk)
#   $DIR/models/tiny-llama  a tiny random Llama + locally trained tokenizer (seeded, byte-identical
#                           rebuilds), and the same files as an offline HF hub cache entry
#   $DIR/hf-hub/models--nbllm--tiny-llama/   (so `transformers serve nbllm/tiny-llama` works offline)
#
# DIR is $NBLLM_REALSERVERS_DIR, default ~/.cache/nbllm-realservers.
# Idempotent: each part has a stamp file holding a hash of its inputs (pins, lock, build script,
# Python version); a part whose stamp matches is skipped, so a rerun takes about a second.
# Only python3.11 + pip are needed (and the package index); nothing comes from a model hub.
#
# Usage: bash scripts/setup_realservers.sh [--force] [--only litellm|hf]
#   --force      rebuild everything
#   --only X     set up only one server (hf includes the model)
# Env: NBLLM_REALSERVERS_DIR, NBLLM_REALSERVERS_PYTHON (default python3.11)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/realservers"
DIR="${NBLLM_REALSERVERS_DIR:-$HOME/.cache/nbllm-realservers}"
PY="${NBLLM_REALSERVERS_PYTHON:-python3.11}"
FORCE=0
ONLY=""
while [ $# -gt 0 ]; do
    case "$1" in
        --force) FORCE=1 ;;
        --only) ONLY="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

if ! command -v "$PY" >/dev/null 2>&1; then
    echo "setup_realservers: $PY not found (the torch CPU wheel on this machine is for CPython 3.11;" \
         "set NBLLM_REALSERVERS_PYTHON)" >&2
    exit 1
fi

mkdir -p "$DIR" "$DIR/logs"
T_START=$(date +%s.%N)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[setup_realservers %6.1fs] %s\n' "$(secs "$T_START" "$(now)")" "$*"; }

PYVER="$("$PY" -c 'import sys; print(sys.version.split()[0])')"
stamp_of() {  # stamp content for a part: hash of its inputs
    { echo "python=$PYVER"; for f in "$@"; do echo "== $f"; cat "$f"; done; } | sha256sum | cut -c1-32
}
is_fresh() {  # is_fresh NAME STAMP
    [ "$FORCE" = 0 ] && [ -f "$DIR/$1.ready" ] && [ "$(cat "$DIR/$1.ready")" = "$2" ]
}

# pip: quiet, no version check, and drop the "Location ... is ignored" noise of this machine's
# extra file indexes. The pip cache (~/.cache/pip) makes reinstalls fast.
pip_install() {  # pip_install VENV LOGFILE ARGS...
    local venv="$1" logf="$2"; shift 2
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off "$@" \
            >"$logf" 2>&1; then
        grep -v 'is ignored: it is neither a file nor a directory' "$logf" | tail -40 >&2
        return 1
    fi
}

make_venv() {  # make_venv NAME REQS LOCK -> creates $DIR/NAME-venv, logs to $DIR/logs/NAME.log
    local name="$1" reqs="$2" lock="$3" venv="$DIR/$1-venv"
    rm -rf "$venv" "$DIR/$name.ready"
    "$PY" -m venv "$venv"
    pip_install "$venv" "$DIR/logs/$name.log" -r "$reqs" -c "$lock"
}

# ---- 1+2. the two venvs, installed concurrently (mostly download + unpack) ---------------
LITELLM_STAMP="$(stamp_of "$HERE/litellm.requirements.txt" "$HERE/litellm.lock.txt")"
HF_STAMP="$(stamp_of "$HERE/hf.requirements.txt" "$HERE/hf.lock.txt")"
MODEL_STAMP="$(stamp_of "$ROOT/scripts/build_tiny_model.py")-$HF_STAMP"

pids=()
names=()
start_install() {  # start_install NAME STAMP
    local name="$1" stamp="$2"
    if is_fresh "$name" "$stamp"; then
        log "$name venv: up to date ($DIR/$name-venv)"
        return
    fi
    log "$name venv: installing (log: $DIR/logs/$name.log)"
    (
        t0=$(now)
        make_venv "$name" "$HERE/$name.requirements.txt" "$HERE/$name.lock.txt"
        echo "$stamp" > "$DIR/$name.ready"
        log "$name venv: installed in $(secs "$t0" "$(now)") s"
    ) &
    pids+=("$!")
    names+=("$name")
}
[ "$ONLY" = "hf" ] || start_install litellm "$LITELLM_STAMP"
[ "$ONLY" = "litellm" ] || start_install hf "$HF_STAMP"
fail=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "setup_realservers: installing the ${names[$i]} venv FAILED" >&2
        fail=1
    fi
done
[ "$fail" = 0 ] || exit 1

# ---- 3. the tiny model ---------------------------------------------------------------------
if [ "$ONLY" != "litellm" ]; then
    if is_fresh model "$MODEL_STAMP" && [ -f "$DIR/models/tiny-llama/model.safetensors" ]; then
        log "tiny model: up to date ($DIR/models/tiny-llama)"
    else
        rm -f "$DIR/model.ready"
        t0=$(now)
        mkdir -p "$DIR/models" "$DIR/hf-hub"
        HF_HOME="$DIR/logs/hf-home-build" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
            HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
            "$DIR/hf-venv/bin/python" "$ROOT/scripts/build_tiny_model.py" \
            "$DIR/models/tiny-llama" --hub-cache "$DIR/hf-hub" --repo-id nbllm/tiny-llama \
            >"$DIR/logs/model.log" 2>&1 || { tail -40 "$DIR/logs/model.log" >&2; exit 1; }
        echo "$MODEL_STAMP" > "$DIR/model.ready"
        log "tiny model: built in $(secs "$t0" "$(now)") s: $(grep -o 'sha256-tree=.*' "$DIR/logs/model.log")"
    fi
fi

# ---- summary ------------------------------------------------------------------------------
ver() { [ -x "$1/bin/python" ] && "$1/bin/python" -c "import importlib.metadata as m; print(' '.join(f'{d}=={m.version(d)}' for d in '$2'.split()))" 2>/dev/null || echo "(not installed)"; }
log "litellm venv: $(ver "$DIR/litellm-venv" 'litellm prisma fastapi uvicorn')"
log "hf venv:      $(ver "$DIR/hf-venv" 'transformers torch tokenizers fastapi uvicorn')"
log "done in $(secs "$T_START" "$(now)") s; dir: $DIR ($(du -sh "$DIR" 2>/dev/null | cut -f1))"
