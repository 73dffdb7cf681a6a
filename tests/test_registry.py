"""The registry on disk: persistence, atomic writes, secrets file, refusing to clobber."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import nbllm
from nbllm import ConfigError, Endpoint, Registry, RegistryFileError, UnknownModelError


def test_add_get_list_default_persist(_isolated_config: Path) -> None:
    reg = nbllm.registry()
    assert reg.names() == [] and reg.default is None
    reg.add(Endpoint(name="a", url="http://h/v1", timeout=5))
    reg.add(Endpoint(name="b", url="http://h/v1/completions"))
    assert reg.default == "a"  # the first endpoint becomes the default
    fresh = Registry(_isolated_config)  # a new kernel: read from disk
    assert fresh.names() == ["a", "b"] and fresh.get("a").timeout == 5 and fresh.default == "a"
    assert "a" in fresh and "zz" not in fresh and len(fresh) == 2
    fresh.set_default("b")
    assert reg.default == "b"  # the first object sees the change: it re-reads the file


def test_update_rename_remove(_isolated_config: Path) -> None:
    reg = nbllm.registry()
    reg.add(Endpoint(name="a", url="http://h/v1", api_key="sk-key-0123456789"), default=True)
    new = reg.update("a", timeout=7, headers={"X": "1"})
    assert new.timeout == 7 and reg.get("a").headers == {"X": "1"}
    with pytest.raises(ConfigError, match="timeout"):
        reg.update("a", timeout=-1)
    assert reg.get("a").timeout == 7  # an invalid update changes nothing
    reg.rename("a", "b")
    assert reg.names() == ["b"] and reg.default == "b"
    assert reg.get("b").key_source == "stored ••••6789"  # the key moves with the name
    with pytest.raises(ConfigError, match="already exists"):
        reg.add(Endpoint(name="b", url="http://h/v1"))
    reg.remove("b")
    assert reg.names() == [] and reg.default is None
    with pytest.raises(UnknownModelError, match="no endpoint named 'b'"):
        reg.get("b")


def test_keys_live_only_in_the_0600_secrets_file(_isolated_config: Path) -> None:
    reg = nbllm.registry()
    reg.add(Endpoint(name="a", url="http://h/v1", api_key="sk-very-secret-value"))
    main = (_isolated_config / "endpoints.json").read_text()
    assert "sk-very-secret" not in main
    secrets = _isolated_config / "secrets.json"
    gen = json.loads(main)["secrets"]  # endpoints.json names the generation of keys it goes with
    assert json.loads(secrets.read_text()) == {f"#{gen}": {"a": "sk-very-secret-value"}}
    assert stat.S_IMODE(os.stat(secrets).st_mode) == 0o600
    assert "sk-very" not in repr(reg) and "sk-very" not in repr(reg.get("a"))


def test_unparseable_file_is_reported_and_never_overwritten(_isolated_config: Path) -> None:
    _isolated_config.mkdir(parents=True)
    path = _isolated_config / "endpoints.json"
    path.write_text('{"endpoints": {"a": ')  # truncated by a bad editor save
    reg = Registry(_isolated_config)
    with pytest.raises(RegistryFileError, match=r"not valid JSON.*will not overwrite"):
        reg.names()
    with pytest.raises(RegistryFileError):
        reg.add(Endpoint(name="b", url="http://h/v1"))
    assert path.read_text() == '{"endpoints": {"a": '


def test_invalid_entry_is_reported_and_kept(_isolated_config: Path) -> None:
    _isolated_config.mkdir(parents=True)
    path = _isolated_config / "endpoints.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "default": "ok",
                "endpoints": {"ok": {"url": "http://h/v1"}, "bad": {"url": "http://h/v1", "colour": "blue"}},
            }
        )
    )
    reg = Registry(_isolated_config)
    assert [e.name for e in reg.list()] == ["ok"]
    assert "unknown field 'colour'" in reg.problems()["bad"]
    with pytest.raises(ConfigError, match="saved endpoint 'bad'"):
        reg.get("bad")
    reg.add(Endpoint(name="new", url="http://h/v1"))
    assert json.loads(path.read_text())["endpoints"]["bad"] == {"url": "http://h/v1", "colour": "blue"}


def test_built_endpoints_are_reused_but_never_stale(_isolated_config: Path) -> None:
    reg = nbllm.registry()
    reg.add(Endpoint(name="a", url="http://h/v1", timeout=5))
    first = reg.get("a")
    assert reg.get("a") is first  # built once per version of the files (calls by name reuse it)
    reg.update("a", timeout=6)  # update() reads the entry inside its own transaction
    assert reg.get("a").timeout == 6
    Registry(_isolated_config).update("a", timeout=7)  # another object (another kernel)
    assert reg.get("a").timeout == 7
    reg.rename("a", "b")
    assert reg.get("b").timeout == 7 and "a" not in reg


def test_writes_are_atomic_no_temp_files_left(_isolated_config: Path) -> None:
    reg = nbllm.registry()
    for i in range(5):
        reg.add(Endpoint(name=f"e{i}", url="http://h/v1"))
    leftovers = [p.name for p in _isolated_config.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_registry_follows_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path / "one"))
    nbllm.registry().add(Endpoint(name="one", url="http://h/v1"))
    monkeypatch.setenv("NBLLM_CONFIG_DIR", str(tmp_path / "two"))
    assert nbllm.registry().names() == []


def test_a_call_by_name_reads_no_file_until_one_changes(
    _isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get() is on the hot path of every call: it stats the two files, reads them only on change."""
    reg = nbllm.registry()
    reg.add(Endpoint(name="a", url="http://h/v1", api_key="sk-key-0123456789"))
    reads = []
    real = reg._parse
    monkeypatch.setattr(reg, "_parse", lambda: reads.append(1) or real())
    first = reg.get("a")
    for _ in range(200):
        assert reg.get("a") is first
    assert reads == []
    Registry(_isolated_config).update("a", timeout=9)  # another kernel saves
    assert reg.get("a").timeout == 9 and len(reads) == 1
