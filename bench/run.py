"""nbllm benchmarks, one command:  .venv/bin/python bench/run.py [--quick]

Measures, in ONE run, against the built-in demo server running in its own process:
import times, streaming CPU per chunk (20,000-chunk answer), time to first token, and
non-streaming throughput at concurrency 1/16/64, for nbllm and its peers (raw httpx, httpx-sse,
the openai SDK, litellm, llm, jupyter-ai-magics). Writes bench/RESULTS.md and prints it.

Each client runs in its own worker process (bench/_clients.py) from the venv that has it: the
project's .venv for nbllm and raw httpx, bench/.work/peers-venv (created on first use from
bench/requirements-peers.txt, with nbllm installed editable) for the peers, plus nbllm and raw
httpx again there to show the two venvs compare. Workers are kept warm and measured in
interleaved rounds, so a burst of load from other processes hits every client alike. As root,
the measuring part runs in a fresh network namespace with only loopback (``unshare -n``):
nothing can leave the machine. See bench/README.md for what each number means.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _proc import DemoServer, Worker, machine_busy, proc_cpu, timed_run
from _report import paired, render

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
PEERS = WORK / "peers-venv"
MAIN_PY = Path(sys.executable)
PEERS_PY = PEERS / "bin" / "python"
CLEAN = WORK / "clean-venv"
PY = {"main": MAIN_PY, "peers": PEERS_PY, "clean": CLEAN / "bin" / "python"}
REQS = BENCH / "requirements-peers.txt"
CLIENTS = BENCH / "_clients.py"
IMPORTS = BENCH / "_imports.py"
N_CHUNKS = 20_000
LEVELS = (1, 16, 64)


@dataclass(frozen=True)
class Mode:
    stream_repeats: int
    stream_repeats_slow: int
    ttft_calls: int
    ttft_block: int
    conc_calls: int
    conc_rounds: int
    conc_rounds_slow: int
    conc_slices: int
    conc_warm: int
    import_repeats: int
    quick: bool


FULL = Mode(7, 3, 200, 10, 2000, 2, 1, 4, 100, 7, False)
QUICK = Mode(2, 1, 40, 10, 200, 1, 1, 2, 20, 1, True)
QUICK_SKIP = {"litellm-sync", "peers-nbllm", "httpx-orjson"}  # left out of --quick runs

# (key, worker client, venv, label, tier). tier "fast": warm-up at full size; "medium": a
# 2,000-chunk warm-up (a full run takes seconds); "slow": that, and fewer repeats.
STREAM = [
    ("nbllm-async", "nbllm-async", "main", "nbllm async (`astream`), default paths", "fast"),
    ("nbllm-sync", "nbllm-sync", "main", "nbllm sync (`stream`), default paths", "fast"),
    (
        "nbllm-simple",
        "nbllm-async-path-simple",
        "main",
        "nbllm async, custom `$.choices[0].delta['content']`",
        "fast",
    ),
    (
        "nbllm-simple2",
        "nbllm-async-path-simple2",
        "main",
        "nbllm async, custom `$['choices'][-1]['delta']['content']`",
        "fast",
    ),
    (
        "nbllm-filter",
        "nbllm-async-path-filter",
        "main",
        "nbllm async, filter `$.choices[?(@.index == 0)].delta.content`",
        "fast",
    ),
    (
        "nbllm-filter-root",
        "nbllm-async-path-filter-root",
        "main",
        "nbllm async, filter on the chunk `$[?(@.object == 'chat.completion.chunk')].choices[0].delta.content`",
        "fast",
    ),
    ("floor", "httpx-async", "main", "**raw httpx async `aiter_lines` + `json.loads` (the floor)**", "fast"),
    ("httpx-sync", "httpx-sync", "main", "raw httpx sync `iter_lines` + `json.loads`", "fast"),
    (
        "httpx-orjson",
        "httpx-async-orjson",
        "main",
        "raw httpx async `aiter_lines` + `orjson.loads` (reference)",
        "fast",
    ),
    (
        "httpx-bytes",
        "httpx-bytes",
        "main",
        "httpx async `aiter_bytes` only, no parsing (transport cost)",
        "fast",
    ),
    ("rawsock", "rawsock", "main", "raw socket, no parsing (what the server can deliver)", "fast"),
    ("peers-floor", "httpx-async", "peers", "raw httpx async + `json.loads` (floor, peers venv)", "fast"),
    ("peers-nbllm", "nbllm-async", "peers", "nbllm async, default paths (peers venv)", "fast"),
    ("httpx-sse", "httpx-sse", "peers", "httpx-sse `aiter_sse` + `json.loads`", "fast"),
    ("openai-sync", "openai-sync", "peers", "openai SDK sync", "medium"),
    ("openai-async", "openai-async", "peers", "openai SDK async", "medium"),
    ("litellm-async", "litellm-async", "peers", "litellm `acompletion` (streaming logging off)", "slow"),
    ("litellm-sync", "litellm-sync", "peers", "litellm `completion` (streaming logging off)", "slow"),
]
TTFT = [
    ("nbllm-async", "nbllm-async", "main", "nbllm async", "fast"),
    ("floor", "httpx-async", "main", "raw httpx async", "fast"),
    ("nbllm-sync", "nbllm-sync", "main", "nbllm sync", "fast"),
    ("httpx-sync", "httpx-sync", "main", "raw httpx sync", "fast"),
    ("openai-async", "openai-async", "peers", "openai SDK async", "fast"),
    ("openai-sync", "openai-sync", "peers", "openai SDK sync", "fast"),
    ("litellm-async", "litellm-async", "peers", "litellm async", "fast"),
]
CONC = [
    ("nbllm-async", "nbllm-async", "main", "nbllm `acomplete`", "fast"),
    ("floor", "httpx-async", "main", "raw httpx `AsyncClient` (default limits)", "fast"),
    ("httpx-limits", "httpx-async-big-limits", "main", "raw httpx `AsyncClient` (limits 256/64)", "fast"),
    (
        "clean-nbllm",
        "nbllm-async",
        "clean",
        "nbllm `acomplete` (clean venv: nbllm's own dependencies only)",
        "fast",
    ),
    ("clean-floor", "httpx-async", "clean", "raw httpx `AsyncClient` (clean venv)", "fast"),
    ("peers-nbllm", "nbllm-async", "peers", "nbllm `acomplete` (peers venv)", "fast"),
    ("peers-floor", "httpx-async", "peers", "raw httpx `AsyncClient` (peers venv)", "fast"),
    ("openai-async", "openai-async", "peers", "`AsyncOpenAI`", "fast"),
    ("litellm-async", "litellm-async", "peers", "`litellm.acompletion`", "slow"),
]
# (key, venv, kind, argument, label)
IMPORT_PROBES = [
    ("httpx", "main", "import", "httpx", "`import httpx`"),
    ("nbllm", "main", "import", "nbllm", "`import nbllm`"),
    ("nbllm+httpx", "main", "import", "nbllm,httpx", "`import nbllm` + httpx (what the first call adds)"),
    ("load_ext nbllm", "main", "load_ext", "nbllm", "`%load_ext nbllm`"),
    ("peers:httpx", "peers", "import", "httpx", "`import httpx` (peers venv)"),
    ("peers:nbllm", "peers", "import", "nbllm", "`import nbllm` (peers venv)"),
    ("openai", "peers", "import", "openai", "`import openai`"),
    ("litellm", "peers", "import", "litellm", "`import litellm`"),
    ("llm", "peers", "import", "llm", "`import llm`"),
    ("jupyter_ai_magics", "peers", "import", "jupyter_ai_magics", "`import jupyter_ai_magics`"),
    ("peers:load_ext nbllm", "peers", "load_ext", "nbllm", "`%load_ext nbllm` (peers venv)"),
    ("load_ext jupyter_ai_magics", "peers", "load_ext", "jupyter_ai_magics", "`%load_ext jupyter_ai_magics`"),
]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the peers venv


def _pip(py: Path, args: list[str], logf: Any) -> bool:
    logf.write(f"\n$ pip install {' '.join(args)}\n")
    logf.flush()
    done = subprocess.run([str(py), "-m", "pip", "install", *args], stdout=logf, stderr=subprocess.STDOUT)
    return done.returncode == 0


def _venv(where: Path, key_text: str) -> tuple[Path, dict[str, Any] | None, str]:
    """(python, saved stamp if the venv is current, key): create the venv when missing."""
    py = where / "bin" / "python"
    stamp = where / ".bench-stamp.json"
    key = hashlib.sha256((key_text + str(ROOT) + sys.version).encode()).hexdigest()
    if py.exists() and stamp.exists():
        saved: dict[str, Any] = json.loads(stamp.read_text())
        if saved.get("key") == key:
            return py, saved, key
    WORK.mkdir(parents=True, exist_ok=True)
    if not py.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(where)], check=True)
    return py, None, key


def ensure_peers() -> dict[str, Any]:
    """Create or reuse bench/.work/peers-venv; returns {"missing": [...requirements that failed]}."""
    py, saved, key = _venv(PEERS, REQS.read_text())
    if saved is not None:
        return saved
    log(f"installing the peer clients into {PEERS.relative_to(ROOT)} (about a minute, once)")
    reqs = [ln.strip() for ln in REQS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    missing: list[str] = []
    with open(WORK / "pip-peers.log", "a") as logf:
        if not _pip(py, ["-q", "-e", str(ROOT), "-r", str(REQS)], logf):
            log("installing all at once failed; trying each requirement alone")
            if not _pip(py, ["-q", "-e", str(ROOT)], logf):
                raise SystemExit(f"cannot install nbllm into the peers venv; see {WORK / 'pip-peers.log'}")
            missing = [r for r in reqs if not _pip(py, ["-q", r], logf)]
    saved = {"key": key, "missing": missing}
    (PEERS / ".bench-stamp.json").write_text(json.dumps(saved))
    return saved


def ensure_clean() -> bool:
    """bench/.work/clean-venv: nbllm and only its declared dependencies, as ``pip install nbllm``
    gives a user (the project venv holds whatever the team installed). Rebuilt when
    pyproject.toml changes."""
    py, saved, key = _venv(CLEAN, (ROOT / "pyproject.toml").read_text())
    if saved is not None:
        return True
    log(f"installing nbllm alone into {CLEAN.relative_to(ROOT)} (once per pyproject.toml change)")
    with open(WORK / "pip-clean.log", "a") as logf:
        ok = _pip(py, ["-q", "-e", str(ROOT)], logf)
    if ok:
        (CLEAN / ".bench-stamp.json").write_text(json.dumps({"key": key}))
    return ok


# ------------------------------------------------------------------ which nbllm


def export_head() -> tuple[Path, str]:
    """The committed HEAD's nbllm/, exported read-only (``git archive``) to bench/.work/src/SHA.
    With it first on PYTHONPATH, every venv imports that copy instead of the editable working
    tree: a run measures a commit, whatever others are editing meanwhile."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest = WORK / "src" / sha[:12]
    if not (dest / "nbllm" / "__init__.py").exists():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", sha, "nbllm"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest, sha


def nbllm_source(venvs: set[str], env: dict[str, str]) -> dict[str, str]:
    code = "import nbllm, os; print(os.path.dirname(nbllm.__file__))"
    out = {}
    for v in sorted(venvs):
        done = subprocess.run([str(PY[v]), "-c", code], capture_output=True, text=True, env=env, cwd=WORK)
        out[v] = done.stdout.strip() or done.stderr.strip().splitlines()[-1]
    return out


# ------------------------------------------------------------------ environment


def bench_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    for sub in ("config", "ipython", "llm", "home-cache"):
        (WORK / sub).mkdir(parents=True, exist_ok=True)
    env.update(
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # else litellm fetches its cost map on import
        NBLLM_CONFIG_DIR=str(WORK / "config"),  # never touch the user's registry
        IPYTHONDIR=str(WORK / "ipython"),
        LLM_USER_PATH=str(WORK / "llm"),
        JUPYTER_PLATFORM_DIRS="1",
        HF_HUB_OFFLINE="1",
        PYTHONWARNINGS="ignore",
    )
    return env


def versions(py: Path, env: dict[str, str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for d in ['nbllm','httpx','httpcore','anyio','sniffio','orjson','h11','ipython','openai','litellm',"
        "'llm','httpx-sse','jupyter-ai-magics','pydantic']:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: out[d] = None\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd=WORK)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        mem_gib = f"{int(mem) / 2**20:.1f} GiB"
    except (OSError, IndexError, ValueError):
        mem_gib = "?"
    git = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "nbllm"], capture_output=True, text=True
    )
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": git.stdout.strip() + (" (nbllm/ has uncommitted changes)" if dirty.stdout.strip() else ""),
        "load_before": os.getloadavg(),
    }


# ------------------------------------------------------------------ phases


class Phase:
    """Wall time and the CPU other processes used meanwhile (a noise figure for the report)."""

    def __init__(self, name: str, ours: list[int], results: dict[str, Any]) -> None:
        self.name, self.ours, self.results = name, ours, results

    def __enter__(self) -> Phase:
        log(f"{self.name} ...")
        self.w0, self.busy0 = time.perf_counter(), machine_busy()
        self.ours0 = sum(proc_cpu(p) for p in self.ours) + time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self.w0
        ours = sum(proc_cpu(p) for p in self.ours) + time.process_time() - self.ours0
        other = max(0.0, machine_busy() - self.busy0 - ours)
        self.results.setdefault("noise", {})[self.name] = {
            "wall": wall,
            "other_cores": other / wall if wall else 0.0,
            "ours_cores": ours / wall if wall else 0.0,
        }
        log(f"{self.name} done in {wall:.0f} s")


TIMEOUTS = {"stream": 180.0, "ttft": 180.0, "conc": 300.0}  # per command; a hung worker is killed


def measured(worker: Worker, server: DemoServer, cmd: dict[str, Any]) -> dict[str, Any]:
    s0 = server.cpu()
    res = worker.send(cmd, TIMEOUTS[cmd["op"]])
    res["server_cpu"] = server.cpu() - s0
    return res


def check_stream(res: dict[str, Any], client: str) -> str | None:
    """Every client must have decoded all the chunks: a fast wrong answer is no result."""
    if "error" in res:
        return str(res["error"]).strip().splitlines()[-1]
    if res["deltas"] != N_CHUNKS:
        return f"decoded {res['deltas']} deltas, expected {N_CHUNKS}"
    if client not in ("httpx-bytes", "rawsock") and res["chars"] != 4 * N_CHUNKS:
        return f"decoded {res['chars']} characters, expected {4 * N_CHUNKS}"
    return None


ONLY: set[str] = set()  # --only: these streaming rows and the floor, nothing else


def rows(table: list[tuple[str, str, str, str, str]], mode: Mode) -> list[tuple[str, str, str, str, str]]:
    if ONLY:
        return [row for row in table if table is STREAM and row[0] in ONLY | {"floor"}]
    return [row for row in table if not (mode.quick and row[0] in QUICK_SKIP)]


def only_report(R: dict[str, Any]) -> str:
    """--only: CPU per chunk of each selected streaming row and its ratio to the floor's, paired
    by round as the full report pairs them (floor CPU / this row's CPU; > 1 is cheaper)."""
    st = R["stream"]
    base = [{**r, "cpc": r["cpu"] / N_CHUNKS} for r in st["floor"]["runs"]]
    lines = [
        "| client | CPU µs/chunk (median) | best | vs floor (paired median) | runs |",
        "|---|---|---|---|---|",
    ]
    for e in st.values():
        runs = [{**r, "cpc": r["cpu"] / N_CHUNKS} for r in e["runs"]]
        if e["error"] or not runs:
            lines.append(f"| {e['label']} | error: {e['error']} | | | 0 |")
            continue
        cpus = sorted(r["cpc"] * 1e6 for r in runs)
        vs = paired(base, runs, "cpc", ("round",))
        lines.append(
            f"| {e['label']} | {cpus[len(cpus) // 2]:.2f} | {cpus[0]:.2f} | {vs:.2f}× | {len(runs)} |"
        )
    lines.append(f"\nnbllm imported from {R['nbllm_paths']}; load after: {os.getloadavg()}")
    return "\n".join(lines)


def run_stream(
    workers: dict[tuple[str, str], Worker], server: DemoServer, mode: Mode, R: dict[str, Any]
) -> None:
    out: dict[str, Any] = {}
    table = rows(STREAM, mode)
    for key, client, venv, label, tier in table:
        out[key] = {"label": label, "venv": venv, "client": client, "runs": [], "error": None}
        warm = measured(
            workers[(client, venv)], server, {"op": "stream", "n": N_CHUNKS if tier == "fast" else 2000}
        )
        if "error" in warm:
            out[key]["error"] = str(warm["error"]).strip().splitlines()[-1]
    # The fast clients run back to back (within a second or two), so a run of theirs and the
    # floor's run of the same round share the machine's state: the report pairs them by round.
    fast = [row for row in table if row[4] == "fast"]
    rest = [row for row in table if row[4] != "fast"]
    for rnd in range(mode.stream_repeats):
        for key, client, venv, _label, tier in fast + rest:
            if out[key]["error"] or (tier == "slow" and rnd >= mode.stream_repeats_slow):
                continue
            res = measured(workers[(client, venv)], server, {"op": "stream", "n": N_CHUNKS})
            problem = check_stream(res, client)
            if problem:
                out[key]["error"] = problem
                continue
            res["round"] = rnd
            out[key]["runs"].append(res)
        fast = fast[1:] + fast[:1]  # rotate: no client is always first after a pause
        log(f"  streaming round {rnd + 1}/{mode.stream_repeats}")
    R["stream"] = out


def run_ttft(
    workers: dict[tuple[str, str], Worker], server: DemoServer, mode: Mode, R: dict[str, Any]
) -> None:
    out: dict[str, Any] = {}
    for key, client, venv, label, _tier in rows(TTFT, mode):
        out[key] = {"label": label, "venv": venv, "ttft": [], "cpu": [], "server_cpu": 0.0, "error": None}
        warm = workers[(client, venv)].send({"op": "ttft", "calls": 20}, TIMEOUTS["ttft"])
        if "error" in warm:
            out[key]["error"] = str(warm["error"]).strip().splitlines()[-1]
    blocks = max(1, mode.ttft_calls // mode.ttft_block)
    for _ in range(blocks):
        for key, client, venv, _label, _tier in rows(TTFT, mode):
            if out[key]["error"]:
                continue
            res = measured(workers[(client, venv)], server, {"op": "ttft", "calls": mode.ttft_block})
            if "error" in res:
                out[key]["error"] = str(res["error"]).strip().splitlines()[-1]
                continue
            out[key]["ttft"] += res["ttft"]
            out[key]["cpu"] += res["cpu"]
            out[key]["server_cpu"] += res["server_cpu"]
    R["ttft"] = out


def run_conc(
    workers: dict[tuple[str, str], Worker], server: DemoServer, mode: Mode, R: dict[str, Any]
) -> None:
    """Each client makes ``conc_calls`` calls per round, in ``conc_slices`` slices interleaved with
    the other clients' slices, so a burst of outside load lands on every client alike."""
    out: dict[str, Any] = {}
    per_slice = mode.conc_calls // mode.conc_slices
    for level in LEVELS:
        per: dict[str, Any] = {}
        for key, client, venv, label, _tier in rows(CONC, mode):
            per[key] = {"label": label, "venv": venv, "runs": [], "error": None}
            warm = workers[(client, venv)].send(
                {"op": "conc", "calls": mode.conc_warm, "concurrency": level}, TIMEOUTS["conc"]
            )
            if "error" in warm:
                per[key]["error"] = str(warm["error"]).strip().splitlines()[-1]
        fast = [row for row in rows(CONC, mode) if row[4] == "fast"]
        rest = [row for row in rows(CONC, mode) if row[4] != "fast"]
        for rnd in range(mode.conc_rounds):
            for piece in range(mode.conc_slices):
                for key, client, venv, _label, tier in fast + rest:
                    if per[key]["error"] or (tier == "slow" and rnd >= mode.conc_rounds_slow):
                        continue
                    cmd = {"op": "conc", "calls": per_slice, "concurrency": level}
                    res = measured(workers[(client, venv)], server, cmd)
                    if "error" in res:
                        per[key]["error"] = str(res["error"]).strip().splitlines()[-1]
                    elif res["ok"] != per_slice:
                        per[key]["error"] = f"{res['ok']} of {per_slice} calls returned the right text"
                    else:
                        res["round"], res["slice"] = rnd, piece
                        per[key]["runs"].append(res)
                fast = fast[1:] + fast[:1]
        log(f"  concurrency {level} done")
        out[str(level)] = per
    R["conc"] = out


def run_imports(mode: Mode, env: dict[str, str], venvs: set[str], R: dict[str, Any]) -> None:
    py = PY
    probes = [p for p in IMPORT_PROBES if p[1] in venvs]
    out: dict[str, Any] = {
        key: {"label": label, "venv": venv, "kind": kind, "runs": [], "error": None, "magics": None}
        for key, venv, kind, _arg, label in probes
    }
    empty: dict[str, list[float]] = {v: [] for v in {p[1] for p in probes}}
    first = 0 if mode.quick else 1  # full runs: round 0 warms the bytecode caches, not counted
    for rnd in range(first, mode.import_repeats + 1):
        for venv in empty:
            wall, done = timed_run([str(py[venv]), str(IMPORTS), "empty"], env, 60)
            if rnd:
                empty[venv].append(wall)
        for key, venv, kind, arg, _label in probes:
            if out[key]["error"]:
                continue
            try:
                wall, done = timed_run([str(py[venv]), str(IMPORTS), kind, arg], env, 180)
            except subprocess.TimeoutExpired:
                out[key]["error"] = "timed out after 180 s"
                continue
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                out[key]["error"] = lines[-1] if lines else f"exit {done.returncode}"
                continue
            res = json.loads(done.stdout.strip().splitlines()[-1])
            res["proc_wall"] = wall
            out[key]["magics"] = res.pop("magics", None)
            if rnd:
                out[key]["runs"].append(res)
    R["imports"] = out
    R["empty"] = empty


def run_others(env: dict[str, str], R: dict[str, Any]) -> None:
    """The magics and evaluation benchmarks belong to others: run them if present, keep their
    output. Each runs from a copy under bench/.work/others/bench/ (its ``.work`` linked to ours,
    so bench_magics reuses its jupyter-ai-magics venv): whatever result file it writes lands
    there, and the owners' files in bench/ are never touched by this run."""
    out: dict[str, Any] = {}
    shadow = WORK / "others" / "bench"
    shadow.mkdir(parents=True, exist_ok=True)
    link = shadow / ".work"
    if not link.exists():
        link.symlink_to(WORK, target_is_directory=True)
    for name in ("bench_magics.py", "bench_eval.py"):
        path = BENCH / name
        if not path.exists():
            out[name] = {"rc": None, "output": "not present in this tree"}
            continue
        copy = shadow / name
        shutil.copyfile(path, copy)
        report = shadow / name.replace("bench_", "RESULTS-").replace(".py", ".md")
        report.unlink(missing_ok=True)
        log(f"running {name} (its default settings)")
        try:
            wall, done = timed_run([str(MAIN_PY), str(copy)], env, 900)
            text = report.read_text() if report.exists() else done.stdout
            if done.returncode != 0:
                text += "\n" + done.stderr[-3000:]
            out[name] = {"rc": done.returncode, "output": text.strip(), "wall": wall}
        except subprocess.TimeoutExpired:
            out[name] = {"rc": None, "output": "timed out after 900 s"}
    R["others"] = out


# ------------------------------------------------------------------ main


def inner(args: argparse.Namespace) -> int:
    mode = QUICK if args.quick else FULL
    R: dict[str, Any] = {"mode": "quick" if args.quick else "full", "netns": args.netns}
    R["command"] = " ".join(
        [".venv/bin/python bench/run.py"] + [a for a in sys.argv[1:] if a not in ("--inner", "--netns")]
    )
    R["params"] = dataclasses.asdict(mode)
    R["machine"] = machine_info()
    peers = {} if ONLY else ensure_peers()  # --only needs the project venv alone
    R["peers_missing"] = peers.get("missing", [])
    clean_ok = False if ONLY else ensure_clean()
    venvs = (
        {"main"}
        | ({"peers"} if PEERS_PY.exists() and not ONLY else set())
        | ({"clean"} if clean_ok else set())
    )
    env = bench_env()
    if args.head:
        src, sha = export_head()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
        R["machine"]["commit"] = sha[:7]
        R["source"] = f"the committed HEAD {sha[:7]}, exported with `git archive` (`--head`)"
    else:
        R["source"] = "the working tree (editable install)" + (
            ", **with uncommitted changes in nbllm/**" if "uncommitted" in R["machine"]["commit"] else ""
        )
    R["nbllm_paths"] = nbllm_source(venvs, env)
    R["versions"] = {v: versions(PY[v], env) if v in venvs else {} for v in PY}
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    if not args.skip_imports and not ONLY:
        with Phase("imports", [], R):
            run_imports(mode, env, venvs, R)

    server = DemoServer(MAIN_PY, env, logs / "demo-server.log")
    R["server_url"] = server.url
    workers: dict[tuple[str, str], Worker] = {}
    try:
        needed = {(c, v) for table in (STREAM, TTFT, CONC) for _k, c, v, _l, _s in rows(table, mode)}
        needed = {(c, v) for c, v in needed if v in venvs}
        log(f"starting {len(needed)} client workers")
        for client, venv in sorted(needed):
            py = PY[venv]
            workers[(client, venv)] = Worker(
                py, CLIENTS, client, server.url, env, logs / f"{venv}-{client}.log"
            )
        for (client, venv), w in sorted(workers.items()):
            if not w.wait_ready():
                log(f"worker {venv}/{client} failed: {(w.error or '').splitlines()[-1:]}")
        missing = Worker.__new__(Worker)  # a stand-in for clients whose venv is absent
        missing.error, missing.client = "this venv could not be installed", "none"
        for table in (STREAM, TTFT, CONC):
            for _k, c, v, _l, _s in rows(table, mode):
                workers.setdefault((c, v), missing)
        ours = [server.pid] + [w.proc.pid for w in workers.values() if hasattr(w, "proc")]
        s0 = server.cpu()
        with Phase("streaming", ours, R):
            run_stream(workers, server, mode, R)
        if not ONLY:
            with Phase("ttft", ours, R):
                run_ttft(workers, server, mode, R)
            with Phase("concurrency", ours, R):
                run_conc(workers, server, mode, R)
        R["server_cpu_total"] = server.cpu() - s0
    finally:
        for w in workers.values():
            if hasattr(w, "proc"):
                w.stop()
        server.stop()

    if ONLY:
        (WORK / "results-only.json").write_text(json.dumps(R, indent=1))
        report = only_report(R)
        if not args.no_write:
            head = f"# Selected streaming rows\n\n`{R['command']}` ({R['machine'].get('commit')}, "
            head += f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {N_CHUNKS} chunks, "
            head += f"{mode.stream_repeats} rounds)\n\n"
            (BENCH / "RESULTS-only.md").write_text(head + report + "\n")
        print(report)
        return 0
    if args.quick or args.skip_others:
        R["others"] = {"skipped": True}
    else:
        with Phase("other benchmarks", [], R):
            run_others(env, R)
    R["machine"]["load_after"] = os.getloadavg()
    R["elapsed"] = time.perf_counter() - t_start
    (WORK / "results.json").write_text(json.dumps(R, indent=1))
    report = render(R, N_CHUNKS, LEVELS)
    if not args.no_write:
        (BENCH / "RESULTS.md").write_text(report)
    print(report)
    log(f"total {R['elapsed']:.0f} s; raw data in {(WORK / 'results.json').relative_to(ROOT)}")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: fewer repeats, no bench_magics/bench_eval (< 2 minutes)",
    )
    p.add_argument("--no-netns", action="store_true", help="do not isolate the network (unshare -n)")
    p.add_argument(
        "--head", action="store_true", help="measure the committed HEAD's nbllm, not the working tree"
    )
    p.add_argument("--no-write", action="store_true", help="print the report, do not write RESULTS.md")
    p.add_argument("--skip-imports", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--skip-others", action="store_true", help="do not run bench_magics.py / bench_eval.py")
    p.add_argument(
        "--render-only", action="store_true", help="rewrite RESULTS.md from bench/.work/results.json"
    )
    p.add_argument(
        "--only",
        metavar="KEYS",
        help="run only these streaming rows (comma-separated keys of STREAM, e.g. nbllm-filter) and "
        "the floor; print their ratio to the floor into bench/RESULTS-only.md (not RESULTS.md)",
    )
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--netns", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.only:
        unknown = set(args.only.split(",")) - {row[0] for row in STREAM}
        if unknown:
            p.error(f"--only: unknown streaming rows {sorted(unknown)}; known: {[row[0] for row in STREAM]}")
        ONLY.update(args.only.split(","))
    if args.render_only:
        report = render(json.loads((WORK / "results.json").read_text()), N_CHUNKS, LEVELS)
        if not args.no_write:
            (BENCH / "RESULTS.md").write_text(report)
        print(report)
        return 0
    if args.inner:
        return inner(args)
    if not ONLY:
        ensure_peers()  # these may need the package index: outside the namespace
        ensure_clean()
    can_isolate = (
        not args.no_netns
        and hasattr(os, "geteuid")
        and os.geteuid() == 0
        and shutil.which("unshare")
        and shutil.which("ip")
        and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    )
    passthrough = [a for a in sys.argv[1:] if a not in ("--inner", "--netns")]
    if can_isolate:
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
        cmd += [sys.executable, __file__, "--inner", "--netns", *passthrough]
    else:
        log("not isolating the network (needs root, unshare and ip); traffic goes to 127.0.0.1 only")
        cmd = [sys.executable, __file__, "--inner", *passthrough]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
