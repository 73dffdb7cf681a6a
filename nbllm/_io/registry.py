"""The endpoint registry on disk: survives kernel restarts, shared by API, magics and form.

Files, in ``$NBLLM_CONFIG_DIR`` (else ``$XDG_CONFIG_HOME/nbllm`` or ``~/.config/nbllm``):

- ``endpoints.json``: ``{"version": 1, "default": name, "endpoints": {name: {...}},
  "secrets": GEN}``; never holds a key. ``GEN`` names the generation of ``secrets.json`` that
  goes with these endpoints (absent in files written before generations: see below).
- ``secrets.json``: ``{"#GEN": {name: key}}`` for keys typed in (not from env vars), mode 0600.
  Older files hold ``{name: key}`` directly; they are read when ``endpoints.json`` names no
  generation, and replaced by the generation form at the first save that changes a key.

**A save is one atomic unit: the rename of ``endpoints.json`` commits it.** Under an exclusive
``flock`` on ``.lock``, a save that changes keys

1. writes ``secrets.json`` holding the committed generation *and* a new one (``#NEW``),
2. writes ``endpoints.json`` naming ``NEW``   <- the commit point
3. writes ``secrets.json`` holding ``#NEW`` only (the old keys are gone from disk).

A save that changes no key is step 2 alone. Every file is written as a temp file created 0600
(``O_EXCL``) in the same directory, fsynced, then ``os.replace``-d (and the directory fsynced),
so a file is always whole. Killed at any instant, the files hold either the old state (before
step 2: the generation ``endpoints.json`` names is in both versions of ``secrets.json``) or the
new one, every endpoint with its key. Temp files and stale generations left by a kill are
removed at the next open (first read, when the lock is free) and at the next save.

Readers take no lock: a reader that finds ``endpoints.json`` naming a generation missing from
``secrets.json`` (a save committed between its two reads) reads both again.

Only strict JSON is written (``allow_nan=False``): NaN/Infinity is refused with a
``ConfigError`` naming the field. A file that cannot be parsed raises ``RegistryFileError`` and
is never overwritten; an entry that does not validate (unknown field, wrong type, bad value) is
reported by ``problems()`` with its name and field, kept as it is on disk, and the others keep
working. A ``secrets.json`` readable by others is set back to 0600, with one warning.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import json
import math
import os
import re
import threading
import types
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._base.exceptions import ConfigError, RegistryFileError, UnknownModelError, UsageError
from .._base.redact import remember
from .._base.validate import check_bool, check_str, got
from .._core.endpoint import Endpoint, check_key

__all__ = ["Registry", "config_dir", "registry"]

_VERSION = 1
_GEN_RE = re.compile(r"^[0-9a-f]{8,64}$")
#: prefixes of the temp files a save writes (and of those the code before generations wrote)
_TMP_PREFIXES = (".endpoints.json.", ".secrets.json.")
#: key of ``problems()`` reporting a ``default`` that is not a name (no endpoint can be named so)
DEFAULT_PROBLEM = "(default)"
_WARNED: set[str] = set()
#: fields whose value a message never shows
_SECRET_FIELDS = frozenset({"api_key", "headers"})


def config_dir() -> Path:
    env = os.environ.get("NBLLM_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nbllm"


# ---- strict JSON -----------------------------------------------------------------------------


def _non_finite(value: Any, path: str = "") -> tuple[str, float] | None:
    """``(path, value)`` of the first NaN/Infinity inside a JSON-like value, else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite(v, f"{path}.{k}" if path else str(k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_finite(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _dumps(data: dict[str, Any]) -> bytes:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem lets a directory be fsynced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, payload: bytes, mode: int) -> None:
    """``path`` holds ``payload`` whole or keeps its old content: a temp file created with
    ``mode`` (0600 for keys: never readable by others, not even for an instant), fsynced,
    renamed over ``path``."""
    tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        try:
            os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


# ---- types of the fields of a saved entry ----------------------------------------------------

_HINTS: dict[str, Any] = {}


def _field_types() -> dict[str, Any]:
    """Endpoint's init fields and their annotated types (read once, on the first entry checked)."""
    if not _HINTS:
        hints = typing.get_type_hints(Endpoint)
        _HINTS.update({f.name: hints[f.name] for f in dataclasses.fields(Endpoint) if f.init})
    return _HINTS


def _accepts(tp: Any, value: Any) -> bool:
    """Whether a JSON value has the type an Endpoint field is annotated with."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_accepts(arg, value) for arg in typing.get_args(tp))
    if origin is typing.Literal:  # the values themselves are checked by Endpoint
        return any(isinstance(value, type(arg)) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    tp = origin or tp
    if isinstance(value, bool) and tp is not bool:
        return False
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(tp, type) and isinstance(value, tp)


_JSON_WORDS = {str: "a string", float: "a number", int: "a whole number", bool: "true/false"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        words = [_describe(a) for a in typing.get_args(tp)]
        return " or ".join(dict.fromkeys(w for w in words if w))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if (origin or tp) is dict:
        return "an object"
    return _JSON_WORDS.get(tp, "")  # a Secret: never in a file


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "a list"


def _check_entry(entry: dict[str, Any]) -> None:
    """Raise ``ConfigError`` naming the first field of a wrong JSON type or holding NaN/Infinity.
    (Unknown fields and bad values of the right type are left to ``Endpoint``.)"""
    types_ = _field_types()
    for fld, value in entry.items():
        tp = types_.get(fld)
        if tp is None:
            continue
        if not _accepts(tp, value):
            got = _json_type(value)
            if fld not in _SECRET_FIELDS:  # a key (or an auth header) is never shown
                shown = json.dumps(value, ensure_ascii=False)
                got += f" ({shown if len(shown) <= 40 else shown[:37] + '...'})"
            raise ConfigError(f"must be {_describe(tp)}, got {got}", field=fld)
        bad = _non_finite(value)
        if bad:
            raise ConfigError(
                f"{bad[0] or fld} is {bad[1]}, which is not JSON (use a finite number)", field=fld
            )


# ---- the registry ----------------------------------------------------------------------------


def _check_env_key(ep: Endpoint) -> None:
    """At config time, an env key that is already set must be sendable (it is checked again at
    every call: the variable may change). The error names the problem, never the key."""
    if ep.api_key_env:
        raw = os.environ.get(ep.api_key_env)
        if raw is not None and raw.strip():
            remember(raw)
            check_key(raw, source=f"${ep.api_key_env}", fld="api_key_env", endpoint=ep.name)


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
        self._secrets: dict[str, Any] = {}  # name -> key, of the committed generation
        self._secrets_doc: dict[str, Any] = {}  # secrets.json as read
        self._built: dict[str, Endpoint] = {}  # valid endpoints built from the files as read
        self._tidied = False  # leftovers of a killed save removed (done once, at the first read)

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
            raise RegistryFileError(
                f"{path} must hold a JSON object, not {_json_type(data)}; nbllm will not overwrite it",
                hint="fix or move the file, then try again",
            )
        return data

    def _read_secrets(self) -> dict[str, Any]:
        try:
            mode = self.secrets_path.stat().st_mode
        except FileNotFoundError:
            return {}
        if mode & 0o077:
            with contextlib.suppress(OSError):
                os.chmod(self.secrets_path, 0o600)
            where = str(self.secrets_path)
            if where not in _WARNED:
                _WARNED.add(where)
                warnings.warn(
                    f"{where} holds API keys but was readable by other users "
                    f"(mode {oct(mode & 0o777)}); nbllm set it to 0600. Consider rotating the keys.",
                    UserWarning,
                    stacklevel=5,
                )
        return self._read(self.secrets_path) or {}

    def _parse(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """``(endpoints.json, secrets.json, keys)`` as read now; keys is None when the files
        do not match (a save committed between the two reads)."""
        raw = self._read(self.path) or {"version": _VERSION, "default": None, "endpoints": {}}
        if not isinstance(raw.get("endpoints", {}), dict):
            raise RegistryFileError(
                f"{self.path}: 'endpoints' must be an object, not {_json_type(raw['endpoints'])}; "
                "nbllm will not overwrite it",
                hint="fix or move the file, then try again",
            )
        raw.setdefault("endpoints", {})
        raw.setdefault("default", None)
        gen = raw.get("secrets")
        if gen is not None and not (isinstance(gen, str) and _GEN_RE.match(gen)):
            raise RegistryFileError(
                f"{self.path}: 'secrets' must name a generation of {self.secrets_path.name} "
                f"(hex digits), not {json.dumps(gen)}; nbllm will not overwrite it",
                hint="restore the value nbllm wrote, or remove the field to drop the stored keys",
            )
        doc = self._read_secrets()
        if gen is None:  # written before generations: {name: key}
            return raw, doc, {k: v for k, v in doc.items() if not k.startswith("#")}
        keys = doc.get("#" + gen)
        if keys is None:
            return raw, doc, None
        if not isinstance(keys, dict):
            raise RegistryFileError(
                f"{self.secrets_path}: '#{gen}' must be an object {{name: key}}, not "
                f"{_json_type(keys)}; nbllm will not overwrite it",
                hint="fix or move the file, then try again",
            )
        return raw, doc, keys

    def _load(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        if not self._tidied:
            self._tidied = True
            with self._flock(blocking=False) as locked:
                self._reload(stamp)
                if locked:
                    self._tidy()
            return
        self._reload(stamp)

    def _reload(self, stamp: tuple[Any, ...]) -> None:
        for _ in range(20):
            raw, doc, keys = self._parse()
            if keys is not None:
                break
            now = self._file_stamp()
            if now[0] == stamp[0]:  # endpoints.json did not change: the generation is really gone
                raise RegistryFileError(
                    f"{self.path} names key generation {raw['secrets']!r}, which is not in "
                    f"{self.secrets_path}; nbllm will not save until this is resolved (the stored keys "
                    "would be lost)",
                    hint=f"restore {self.secrets_path.name}, or remove the 'secrets' field from "
                    f"{self.path.name} and store the keys again",
                )
            stamp = now
        else:  # pragma: no cover - a save committed 20 times while we read
            raise RegistryFileError(f"{self.path} keeps changing while being read", hint="try again")
        self._raw, self._secrets_doc, self._secrets, self._stamp = raw, doc, keys, stamp
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
            raise ConfigError(
                f"saved endpoint {name!r} in {self.path} is invalid: must be an object "
                f'{{"url": ...}}, not {_json_type(entry)}',
                field=name,
                hint=f"fix it in the file, or remove({name!r})",
            )
        data = {**entry, "name": name}
        key = self._secrets.get(name)
        if key is not None:
            data["api_key"] = key
        try:
            _check_entry(data)
            return Endpoint.from_dict(data)
        except ConfigError as exc:
            err = ConfigError(
                f"saved endpoint {name!r} in {self.path} is invalid: {exc}",
                hint=f"fix it with update({name!r}, ...) or remove it",
            )
            err.field = exc.field
            raise err from exc
        except Exception as exc:  # a hand-edited value no check foresaw: still this entry's problem
            raise ConfigError(
                f"saved endpoint {name!r} in {self.path} is invalid: {type(exc).__name__}: {exc}",
                hint=f"fix it in the file, or remove({name!r})",
            ) from exc

    # ---- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, *, blocking: bool) -> Iterator[bool]:
        """The inter-process lock on ``.lock``; yields whether it is held (non-blocking: it may
        not be, and a reader of a directory it cannot write never holds it)."""
        try:
            if blocking:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            elif not self.directory.is_dir():
                yield False
                return
            lock = open(self.directory / ".lock", "a")  # noqa: SIM115 - closed below
        except OSError:
            if blocking:
                raise
            yield False
            return
        with lock:
            try:
                import fcntl

                fcntl.flock(lock, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - not POSIX
                pass
            except OSError:  # held by a writer (non-blocking)
                if blocking:
                    raise
                yield False
                return
            yield True

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock, self._flock(blocking=True):
            self._tidied = True  # a save tidies after it commits
            try:
                self._reload(self._file_stamp())  # refuses (raises) if a file cannot be parsed
                before = dict(self._secrets)
                yield
                self._commit(before)
            except BaseException:
                self._stamp = None  # changes made in memory were not saved: read the files again
                raise
            self._built = {}  # entries changed in memory: build them afresh
            self._tidy()  # what a save killed in another process left

    def _commit(self, before: dict[str, Any]) -> None:
        """Write the state in memory (see the module docstring for the order)."""
        for name, entry in self._raw["endpoints"].items():
            bad = _non_finite(entry)
            if bad:
                raise ConfigError(
                    f"saved endpoint {name!r} in {self.path} holds {bad[1]} at {bad[0]}, which is "
                    "not JSON; nbllm will not write it",
                    field=bad[0].split(".")[0].split("[")[0],
                    hint=f"fix the value in {self.path.name}, or remove({name!r})",
                )
        bad = _non_finite({k: v for k, v in self._raw.items() if k != "endpoints"})
        if bad:
            raise ConfigError(
                f"{self.path} holds {bad[1]} at {bad[0]}, which is not JSON; nbllm will not write it",
                field=bad[0],
                hint=f"fix the value in {self.path.name}",
            )
        gen = self._raw.get("secrets")
        if self._secrets == before:  # no key changed: the commit alone
            self._write(self.path, self._raw, 0o644)
            return
        committed = (
            {"#" + gen: before}
            if gen
            else {k: v for k, v in self._secrets_doc.items() if not k.startswith("#")}
        )
        new = os.urandom(8).hex()
        keys = dict(self._secrets)
        self._write(self.secrets_path, {**committed, "#" + new: keys}, 0o600)  # 1. both
        self._raw["secrets"] = new
        self._write(self.path, self._raw, 0o644)  # 2. the commit
        self._secrets_doc = {"#" + new: keys}
        with contextlib.suppress(OSError):  # committed already; if this fails, the next open tidies
            self._write(self.secrets_path, self._secrets_doc, 0o600)  # 3. the new keys only

    def _write(self, path: Path, data: dict[str, Any], mode: int) -> None:
        try:
            payload = _dumps(data)
        except ValueError as exc:  # pragma: no cover - _commit names the field first
            raise ConfigError(f"{path} would not be strict JSON: {exc}") from exc
        _atomic_write(path, payload, mode)
        self._stamp = self._file_stamp()

    def _tidy(self) -> None:
        """Remove what a killed save leaves (temp files, a generation never committed or no
        longer used); only with the lock held and the files just read."""
        with contextlib.suppress(OSError):
            for p in self.directory.iterdir():
                if p.name.startswith(_TMP_PREFIXES) and p.name.endswith(".tmp"):
                    with contextlib.suppress(OSError):
                        p.unlink()
        gen = self._raw.get("secrets")
        if gen:
            wanted = {"#" + gen: self._secrets}
        else:  # before generations: a save killed while moving to them leaves a "#..." entry
            wanted = {k: v for k, v in self._secrets_doc.items() if not k.startswith("#")}
        if wanted != self._secrets_doc:
            with contextlib.suppress(OSError):
                self._write(self.secrets_path, wanted, 0o600)
                self._secrets_doc = wanted

    def _store(self, ep: Endpoint) -> None:
        entry = ep.to_dict()
        entry.pop("name")
        bad = _non_finite(entry)
        if bad:
            raise ConfigError(
                f"{bad[0]} is {bad[1]}: the registry is JSON, which has no NaN or Infinity",
                field=bad[0].split(".")[0],
                endpoint=ep.name,
                hint="give a finite number",
            )
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
        _check_env_key(ep)
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
            if "api_key_env" in changes:
                _check_env_key(new)
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
        """Saved entries that no longer validate: name -> error message (a ``default`` that is
        not a name is reported under ``"(default)"``, which no endpoint can be named)."""
        with self._lock:
            self._load()
            bad = {}
            value = self._raw.get("default")
            if value is not None and not isinstance(value, str):
                shown = json.dumps(value, ensure_ascii=False)[:40]
                bad[DEFAULT_PROBLEM] = (
                    f"default: must be the name of a saved endpoint, got {_json_type(value)} ({shown}) "
                    f"in {self.path}; ignored (set one with set_default(NAME))"
                )
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
            return value if isinstance(value, str) and value in self._raw["endpoints"] else None

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
