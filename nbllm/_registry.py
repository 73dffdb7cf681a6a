"""The endpoint registry on disk: survives kernel restarts, shared by API, magics and form.

Files, in ``$NBLLM_CONFIG_DIR`` (else ``$XDG_CONFIG_HOME/nbllm`` or ``~/.config/nbllm``):
- ``endpoints.json``: ``{"version": 1, "default": name, "endpoints": {name: {...}}}``; never
  holds a key;
- ``secrets.json``: ``{name: key}`` for keys typed in (not from env vars), mode 0600.

Writes are atomic (temp file in the same directory, fsync, ``os.replace``) under an advisory
lock. A file that cannot be parsed raises ``RegistryFileError`` and is never overwritten; an
entry that no longer validates is reported by ``problems()`` and kept as it is on disk.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._endpoint import Endpoint
from ._exceptions import ConfigError, RegistryFileError, UnknownModelError, UsageError
from ._validate import check_bool, check_str, got

__all__ = ["Registry", "config_dir", "registry"]

_VERSION = 1


def config_dir() -> Path:
    env = os.environ.get("NBLLM_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nbllm"


def _atomic_write(path: Path, data: dict[str, Any], mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Registry:
    """Named endpoints persisted on disk. Re-reads the files whenever they change, so every
    client in the kernel (and other kernels) sees the same endpoints."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else config_dir()
        self.path = self.directory / "endpoints.json"
        self.secrets_path = self.directory / "secrets.json"
        self._lock = threading.RLock()
        self._stamp: tuple[Any, ...] | None = None
        self._raw: dict[str, Any] = {"version": _VERSION, "default": None, "endpoints": {}}
        self._secrets: dict[str, str] = {}
        self._built: dict[str, Endpoint] = {}  # valid endpoints built from the files as read

    # ---- reading -------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for p in (self.path, self.secrets_path):
            try:
                st = p.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RegistryFileError(
                f"{path} is not valid JSON ({exc}); nbllm will not overwrite it",
                hint="fix or move the file, then try again",
            ) from exc
        if not isinstance(data, dict):
            raise RegistryFileError(f"{path} must hold a JSON object; nbllm will not overwrite it")
        return data

    def _load(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        raw = self._read(self.path) or {"version": _VERSION, "default": None, "endpoints": {}}
        if not isinstance(raw.get("endpoints", {}), dict):
            raise RegistryFileError(
                f"{self.path}: 'endpoints' must be an object; nbllm will not overwrite it"
            )
        raw.setdefault("endpoints", {})
        raw.setdefault("default", None)
        secrets = self._read(self.secrets_path) or {}
        self._raw, self._secrets, self._stamp = raw, secrets, stamp
        self._built = {}

    def _build(self, name: str) -> Endpoint:
        """The Endpoint for a saved entry, built (and validated) once per version of the files:
        every call by name goes through here, and an Endpoint also caches its compiled paths."""
        ep = self._built.get(name)
        if ep is None:
            ep = self._built[name] = self._make(name)
        return ep

    def _make(self, name: str) -> Endpoint:
        entry = self._raw["endpoints"][name]
        if not isinstance(entry, dict):
            raise ConfigError(f"entry {name!r} in {self.path} is not an object", field=name)
        data = {**entry, "name": name}
        key = self._secrets.get(name)
        if key:
            data["api_key"] = key
        try:
            return Endpoint.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(
                f"saved endpoint {name!r} in {self.path} is invalid: {exc}",
                hint=f"fix it with update({name!r}, ...) or remove it",
            ) from exc

    # ---- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.directory / ".lock", "a") as lock:
                try:
                    import fcntl

                    fcntl.flock(lock, fcntl.LOCK_EX)
                except ImportError:  # pragma: no cover - not POSIX
                    pass
                self._stamp = None
                self._load()  # refuses (raises) if the file on disk cannot be parsed
                yield
                _atomic_write(self.path, self._raw, 0o644)
                _atomic_write(self.secrets_path, self._secrets, 0o600)
                self._stamp = self._file_stamp()
                self._built = {}  # entries changed in memory: build them afresh

    def _store(self, ep: Endpoint) -> None:
        entry = ep.to_dict()
        entry.pop("name")
        self._raw["endpoints"][ep.name] = entry
        if ep.secret is not None:
            self._secrets[ep.name] = ep.secret.reveal()
        else:
            self._secrets.pop(ep.name, None)

    # ---- public --------------------------------------------------------------------------
    def add(self, ep: Endpoint, *, default: bool = False, overwrite: bool = False) -> Endpoint:
        """Save ``ep`` under ``ep.name``; refuses to replace an existing one unless ``overwrite``."""
        if not isinstance(ep, Endpoint):
            raise UsageError(f"must be an nbllm.Endpoint, {got(ep)}", field="ep")
        check_bool("default", default)
        check_bool("overwrite", overwrite)
        with self._transaction():
            if ep.name in self._raw["endpoints"] and not overwrite:
                raise ConfigError(
                    f"an endpoint named {ep.name!r} already exists",
                    field="name",
                    hint="use update(), or add(..., overwrite=True)",
                )
            self._store(ep)
            if default or not self._raw.get("default"):
                self._raw["default"] = ep.name
        return ep

    def update(self, name: str, **changes: Any) -> Endpoint:
        """Change fields of a saved endpoint (validated); returns the new Endpoint."""
        with self._transaction():
            if "name" in changes and changes["name"] != name:
                raise ConfigError("use rename() to change the name", field="name")
            new = self.get(name).replace(**changes)
            self._store(new)
        return new

    def rename(self, old: str, new: str) -> Endpoint:
        with self._transaction():
            ep = self.get(old).replace(name=new)
            if new in self._raw["endpoints"]:
                raise ConfigError(f"an endpoint named {new!r} already exists", field="name")
            del self._raw["endpoints"][old]
            self._secrets.pop(old, None)
            self._store(ep)
            if self._raw.get("default") == old:
                self._raw["default"] = new
        return ep

    def remove(self, name: str) -> None:
        with self._transaction():
            self._require(name)
            del self._raw["endpoints"][name]
            self._secrets.pop(name, None)
            if self._raw.get("default") == name:
                self._raw["default"] = next(iter(self._raw["endpoints"]), None)

    def set_default(self, name: str) -> None:
        with self._transaction():
            self._require(name)
            self._raw["default"] = name

    def _require(self, name: str) -> None:
        check_str("name", name)
        if name not in self._raw["endpoints"]:
            raise UnknownModelError(
                f"no endpoint named {name!r}"
                + (f"; saved: {', '.join(self._raw['endpoints'])}" if self._raw["endpoints"] else ""),
                hint="add it with %llm_model add NAME --url URL, or nbllm.registry().add(nbllm.Endpoint(...))",
            )

    def get(self, name: str) -> Endpoint:
        """The saved endpoint (with its stored key, if any); ``UnknownModelError`` if missing."""
        with self._lock:
            self._load()
            self._require(name)
            return self._build(name)

    def list(self) -> builtins.list[Endpoint]:
        """Every valid saved endpoint (invalid ones are reported by ``problems()``)."""
        with self._lock:
            self._load()
            out = []
            for name in self._raw["endpoints"]:
                with contextlib.suppress(ConfigError):
                    out.append(self._build(name))
            return out

    def problems(self) -> dict[str, str]:
        """Saved entries that no longer validate: name -> error message."""
        with self._lock:
            self._load()
            bad = {}
            for name in self._raw["endpoints"]:
                try:
                    self._build(name)
                except ConfigError as exc:
                    bad[name] = str(exc)
            return bad

    def names(self) -> builtins.list[str]:
        with self._lock:
            self._load()
            return list(self._raw["endpoints"])

    @property
    def default(self) -> str | None:
        with self._lock:
            self._load()
            value = self._raw.get("default")
            return value if value in self._raw["endpoints"] else None

    def __contains__(self, name: object) -> bool:
        with self._lock:
            self._load()
            return name in self._raw["endpoints"]

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({str(self.directory)!r}, endpoints={self.names()})"


_DEFAULT: dict[Path, Registry] = {}
_DEFAULT_LOCK = threading.Lock()


def registry() -> Registry:
    """The registry of the current config directory (follows ``NBLLM_CONFIG_DIR``)."""
    path = config_dir()
    with _DEFAULT_LOCK:
        reg = _DEFAULT.get(path)
        if reg is None:
            reg = _DEFAULT[path] = Registry(path)
        return reg
