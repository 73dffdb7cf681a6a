"""The code stays typed and linted: CI fails if mypy (strict) or ruff find anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_mypy_strict_is_clean() -> None:
    out = run("mypy", "nbllm")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Success: no issues found" in out.stdout


def test_ruff_check_and_format_are_clean() -> None:
    check = run("ruff", "check", ".")
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = run("ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
