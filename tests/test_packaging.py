"""Installing nbllm prints no deprecation warnings (issue 9): the license is an SPDX string."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def test_license_is_an_spdx_string_with_a_setuptools_that_reads_it() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # a {text = ...} table makes setuptools >= 77 warn three times on every install
    assert meta["project"]["license"] == "MIT"
    [req] = [r for r in meta["build-system"]["requires"] if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", req)
    assert m and int(m.group(1)) >= 77, req  # the first setuptools that takes the string form
    assert not any("License ::" in c for c in meta["project"].get("classifiers", []))  # not both


def source_copy(tmp_path: Path) -> Path:
    """What a build reads, copied: a build writes build/ and *.egg-info next to pyproject.toml."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "nbllm", src / "nbllm", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def no_index(out: str) -> None:
    if re.search(r"No matching distribution|Could not find a version|Network", out):
        pytest.skip("no package index with setuptools >= 77 reachable to build with")


def test_building_the_wheel_prints_no_deprecation_warning(tmp_path: Path) -> None:
    src = source_copy(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "whl"), str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        no_index(out)
    assert proc.returncode == 0, out
    assert not re.search(r"deprecat", out, re.IGNORECASE), out
    [wheel] = (tmp_path / "whl").glob("nbllm-*.whl")
    assert wheel.stat().st_size > 0


def test_bootstrap_editable_install_is_quiet(tmp_path: Path) -> None:
    """bootstrap.sh's ``pip install -q -e`` prints nothing: recent pip relays the build backend's
    warnings even with -q, and setuptools notes "Editable installation." on every -e install; the
    script filters exactly that note. Installed into a throwaway venv (no pip of its own: this
    interpreter's pip drives it with --python), without dependencies."""
    script = (ROOT / "scripts" / "bootstrap.sh").read_text(encoding="utf-8")
    m = re.search(r'PYTHONWARNINGS="([^"]+)"', script)
    assert m, "bootstrap.sh no longer sets PYTHONWARNINGS for its pip install"
    src = source_copy(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)

    def install(env_warnings: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
        if env_warnings is not None:
            env["PYTHONWARNINGS"] = env_warnings
        cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q"]
        proc = subprocess.run(
            [*cmd, "--force-reinstall", "--no-deps", "-e", str(src)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            no_index(out)
        assert proc.returncode == 0, out
        return out

    assert install(m.group(1)) == ""  # the bootstrap's way: silent
    # the filter is there for a reason (if setuptools stops saying this, drop it from the script)
    assert "Editable installation" in install(None)
