"""Shared fixtures: every test gets its own config directory; one demo server per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import nbllm


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the registry at a fresh directory: no test reads or writes the user's config."""
    path = tmp_path / "nbllm-config"
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def demo() -> Iterator[nbllm.DemoServer]:
    """The built-in demo server on 127.0.0.1, started once and stopped at the end."""
    with nbllm.demo_server() as srv:
        yield srv
