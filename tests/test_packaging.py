"""Installing nbllm prints no deprecation warnings (issue 9): the license is an SPDX string."""

from __future__ import annotations

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


def test_building_the_wheel_prints_no_deprecation_warning(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "nbllm", src / "nbllm", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path / "whl"), str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 and re.search(r"No matching distribution|Could not find a version|Network", out):
        pytest.skip("no package index with setuptools >= 77 reachable to build with")
    assert proc.returncode == 0, out
    assert not re.search(r"deprecat", out, re.IGNORECASE), out
    [wheel] = (tmp_path / "whl").glob("nbllm-*.whl")
    assert wheel.stat().st_size > 0
