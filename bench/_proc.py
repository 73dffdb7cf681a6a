"""Process plumbing for bench/run.py: CPU clocks of other processes, the demo server, workers."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any, TextIO

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds used so far by every thread of ``pid`` (nanosecond schedstat when available)."""
    total = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended between listdir and open
        except (OSError, ValueError, IndexError):  # no schedstat: clock ticks from stat
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / _TICK
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / _TICK


class DemoServer:
    """``python -m nbllm._server.demo`` in its own process: it never shares a GIL with a client."""

    def __init__(self, python: Path, env: dict[str, str], log: Path) -> None:
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(python), "-m", "nbllm._server.demo", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=str(log.parent),  # not the repo root: -m puts the cwd first on sys.path
        )
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, 30.0)
        if not line.startswith("nbllm demo server on "):
            raise RuntimeError(f"the demo server did not start: {line!r} (see {log})")
        self.url = line.split()[-1]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _readline(stream: TextIO, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer within {timeout:g} s")
    return stream.readline()


class Worker:
    """One client library in its own process (bench/_clients.py), driven by JSON lines."""

    def __init__(self, python: Path, script: Path, client: str, url: str, env: dict[str, str], log: Path):
        self.client = client
        self.log = log
        self._log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(python), str(script), client, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=str(log.parent),
            bufsize=1,
        )
        self.error: str | None = None

    def wait_ready(self, timeout: float = 180.0) -> bool:
        if self.error is not None:
            return False
        try:
            assert self.proc.stdout is not None
            line = _readline(self.proc.stdout, timeout)
            msg = json.loads(line) if line else {"ready": False, "error": f"exited; see {self.log}"}
        except (TimeoutError, ValueError) as exc:
            msg = {"ready": False, "error": f"{exc}; see {self.log}"}
        if not msg.get("ready"):
            self.error = str(msg.get("error", "failed to start")).strip()
        return self.error is None

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def send(self, cmd: dict[str, Any], timeout: float = 900.0) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
            line = _readline(self.proc.stdout, timeout)
        except TimeoutError:
            self.proc.kill()  # hung (a deadlock, a stuck socket): stop it, go on without it
            self.proc.wait()
            self.error = f"hung: no answer within {timeout:g} s, killed; see {self.log}"
            return {"error": self.error}
        except (BrokenPipeError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}; see {self.log}"
            return {"error": self.error}
        if not line:
            self.error = f"the worker exited; see {self.log}"
            return {"error": self.error}
        result: dict[str, Any] = json.loads(line)
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write('{"op": "exit"}\n')
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def timed_run(
    cmd: list[str], env: dict[str, str], timeout: float
) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return time.perf_counter() - t0, done
