"""The registry under faults: processes killed mid-save, hand-edited bad files, NaN/Infinity,
a secrets file readable by others.

Kill tests fork a child that saves and dies (``os._exit`` injected before each file-system call
of a save, or ``SIGKILL`` at random instants); after every death a fresh ``Registry`` must see
the old or the new state as a whole (every endpoint with its own key), and after that first
open no temp file and no key of another state may remain in the directory.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import nbllm
from nbllm import ConfigError, Endpoint, Registry, RegistryFileError
from nbllm._core.endpoint import Secret
from nbllm._io import registry as _registry

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kill tests fork a child (POSIX)")

KILLED = 77  # exit status of a child that died at the injected point
Snapshot = dict[str, Any]


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN/Infinity (what every other JSON parser does)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def snapshot(directory: Path) -> Snapshot:
    """What a fresh kernel sees: every endpoint as saved, with its key, and the default."""
    reg = Registry(directory)
    assert reg.problems() == {}
    eps = {}
    for ep in reg.list():
        fields = ep.to_dict()
        fields["key"] = ep.secret.reveal() if ep.secret else None
        eps[ep.name] = fields
    return {"default": reg.default, "endpoints": eps}


def assert_no_leftovers(directory: Path, state: Snapshot, all_keys: set[str]) -> None:
    """No temp file; keys only in secrets.json, and only those of the state seen."""
    names = sorted(p.name for p in directory.iterdir())
    assert not [n for n in names if n.endswith(".tmp")], names
    wanted = {e["key"] for e in state["endpoints"].values() if e["key"]}
    for p in directory.iterdir():
        if p.is_file():
            text = p.read_text()
            if p.suffix == ".json":
                strict_json(text)
            found = {k for k in all_keys if k in text}
            assert found == (wanted if p.name == "secrets.json" else set()), (p.name, found)
    secrets = directory / "secrets.json"
    if secrets.exists():
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o600


class _DyingOs:
    """Stands in for ``os`` inside nbllm._io.registry: the ``n``-th file-system call exits the
    process before it happens (as a kill at that instant would)."""

    CALLS = frozenset({"open", "write", "fsync", "close", "replace", "rename", "unlink", "chmod", "fchmod"})

    def __init__(self, n: int) -> None:
        self.left = n

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.CALLS:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.left -= 1
            if self.left <= 0:
                os._exit(KILLED)
            return real(*args, **kwargs)

        return call


def copy_state(src: Path, dst: Path) -> None:
    """A copy of a registry directory (files and modes); an empty one if there is none."""
    if src.exists():
        shutil.copytree(src, dst)
    else:
        dst.mkdir(parents=True)


def run_child(body: Callable[[], None]) -> int:
    """Run ``body`` in a forked child; its exit status (0: body returned)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            body()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


# ---- os._exit before every file-system call of a save ----------------------------------------

KA, KB, KD, KA2 = (f"sk-{n}-0123456789abcdef" for n in ("alpha", "bravo", "delta", "alpha2"))
ALL_KEYS = {KA, KB, KD, KA2}


def base_state(d: Path) -> None:
    reg = Registry(d)
    reg.add(Endpoint(name="a", url="http://h/v1", api_key=KA))
    reg.add(Endpoint(name="b", url="http://h/v1/completions", api_key=KB, timeout=5))
    reg.add(Endpoint(name="c", url="http://h/v1", api_key_env="C_KEY"))


def legacy_state(d: Path) -> None:
    """Files as nbllm wrote them before key generations."""
    d.mkdir(parents=True)
    endpoints = {
        "version": 1,
        "default": "a",
        "endpoints": {
            "a": {"url": "http://h/v1", "type": "chat"},
            "b": {"url": "http://h/v1", "type": "chat"},
        },
    }
    (d / "endpoints.json").write_text(json.dumps(endpoints))
    (d / "secrets.json").write_text(json.dumps({"a": KA, "b": KB}))
    os.chmod(d / "secrets.json", 0o600)


OPS: dict[str, tuple[Callable[[Path], None], Callable[[Registry], Any]]] = {
    "add with a key": (base_state, lambda r: r.add(Endpoint(name="d", url="http://h/v1", api_key=KD))),
    "change a key and a field": (base_state, lambda r: r.update("a", api_key=KA2, timeout=9)),
    "change a field only": (base_state, lambda r: r.update("b", timeout=7)),
    "rename (the key moves)": (base_state, lambda r: r.rename("a", "z")),
    "remove (the key goes)": (base_state, lambda r: r.remove("b")),
    "set the default": (base_state, lambda r: r.set_default("c")),
    "overwrite, dropping the key": (
        base_state,
        lambda r: r.add(Endpoint(name="a", url="http://h/v2"), overwrite=True),
    ),
    "first save in an empty directory": (
        lambda d: None,
        lambda r: r.add(Endpoint(name="a", url="http://h/v1", api_key=KA)),
    ),
    "legacy files, a key changes": (legacy_state, lambda r: r.update("b", api_key=KD)),
    "legacy files, a field changes": (legacy_state, lambda r: r.update("b", timeout=3)),
}


@pytest.mark.parametrize("op", list(OPS))
def test_killed_before_any_step_of_a_save_leaves_old_or_new_state(tmp_path: Path, op: str) -> None:
    setup, change = OPS[op]
    template = tmp_path / "template"  # the state before the save, copied for every run
    setup(template)
    ref = tmp_path / "reference"  # the same change, not killed
    copy_state(template, ref)
    old = snapshot(ref)
    change(Registry(ref))
    new = snapshot(ref)
    assert new != old
    seen = []
    for n in range(1, 200):
        d = tmp_path / f"kill-at-{n}"
        copy_state(template, d)

        def save(d: Path = d, n: int = n) -> None:
            reg = Registry(d)
            reg.names()  # read first (not a step of the save)
            _registry.os = _DyingOs(n)  # type: ignore[assignment]
            change(reg)

        code = run_child(save)
        assert code in (0, KILLED), f"the child failed (exit {code}) at step {n}"
        after = snapshot(d)  # a fresh Registry: the first open after the kill
        assert after in (old, new), f"half-saved state after a kill before step {n}"
        assert_no_leftovers(d, after, ALL_KEYS)
        seen.append("done" if code == 0 else "old" if after == old else "new")
        if code == 0:
            break
    # the save ran to the end, and every step before was a kill point that left a whole state
    assert seen[-1] == "done" and after == new, seen
    assert seen[0] == "old" and len(seen) >= 4, seen
    assert seen == sorted(seen, key=("old", "new", "done").index), seen  # one commit point


# ---- SIGKILL at random instants of a child saving in a loop ----------------------------------


def key_for(t: int) -> str:
    return f"sk-gen-{t}-0123456789abcdef"


KEEP_KEY = "sk-keep-0123456789abcdef"
LOOP_KEYS = {KEEP_KEY} | {key_for(t) for t in range(100_000)}


def save_forever(d: Path, steps: int = 100_000) -> None:
    """Alternately rename the endpoint x <-> w (its key moves) and change its timeout and key
    together: one save each, so a state is (name, t) with key key_for(t)."""
    reg = Registry(d)
    for _ in range(steps):
        name = "x" if "x" in reg else "w"
        t = int(reg.get(name).timeout)
        if (name == "x") == (t % 2 == 0):
            reg.rename(name, "w" if name == "x" else "x")
        else:
            reg.update(name, timeout=t + 1, api_key=key_for(t + 1))


def loop_setup(d: Path) -> None:
    reg = Registry(d)
    reg.add(Endpoint(name="x", url="http://h/v1", timeout=1, api_key=key_for(1)), default=True)
    reg.add(Endpoint(name="keep", url="http://h/v1", api_key=KEEP_KEY))


def check_loop_state(d: Path) -> int:
    """The state is whole: one of x/w with the key of its timeout, keep with its key."""
    state = snapshot(d)
    eps = state["endpoints"]
    [name] = set(eps) - {"keep"}
    assert name in ("x", "w") and state["default"] == name
    t = int(eps[name].get("timeout", 60))  # to_dict leaves out the default, 60
    assert eps[name]["key"] == key_for(t), f"{name} (timeout {t}) has another state's key"
    assert eps["keep"]["key"] == KEEP_KEY
    names = [p.name for p in d.iterdir()]
    assert not [n for n in names if n.endswith(".tmp")], names
    text = (d / "secrets.json").read_text()
    assert json.loads(text) == {
        f"#{strict_json((d / 'endpoints.json').read_text())['secrets']}": {
            name: key_for(t),
            "keep": KEEP_KEY,
        }
    }, "a key of another state is still on disk"
    return t


def test_sigkill_at_random_instants_never_half_saves(tmp_path: Path) -> None:
    d = tmp_path / "cfg"
    loop_setup(d)
    start = time.perf_counter()
    save_forever(d, steps=4)
    per_save = (time.perf_counter() - start) / 4  # kill within a few saves, whatever the disk speed
    first = check_loop_state(d)
    rng = random.Random(1234)
    progress = []
    wait = 4 * per_save
    for i in range(200):  # at least 40 kills; more on a loaded machine, until 5 saves got through
        if i >= 40 and progress[-1] >= first + 5:
            break
        if i >= 10 and progress[-1] == progress[-10]:
            wait *= 1.5  # no save got through in 10 kills (a loaded machine): let the children run longer
        pid = os.fork()
        if pid == 0:
            try:
                save_forever(d)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.0, wait))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        progress.append(check_loop_state(d))
    assert progress[-1] >= first + 5, progress  # the children did save between kills


def test_sigkill_of_a_fresh_interpreter_mid_save(tmp_path: Path) -> None:
    """The same with real subprocesses (nothing inherited from the test process)."""
    d = tmp_path / "cfg"
    loop_setup(d)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_registry_faults import save_forever
        print("ready", flush=True)
        save_forever(Path({str(d)!r}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(99)
    for _ in range(4):
        with subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=tmp_path
        ) as child:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.01, 0.08))
            child.kill()
        check_loop_state(d)


def test_a_reader_never_sees_a_half_saved_state(tmp_path: Path) -> None:
    """Readers take no lock: one reading while another process saves sees whole states only."""
    d = tmp_path / "cfg"
    loop_setup(d)
    pid = os.fork()
    if pid == 0:
        try:
            save_forever(d, steps=10_000)
        finally:
            os._exit(0)
    try:
        reads = 0
        deadline = time.monotonic() + 0.6
        reg = Registry(d)
        while time.monotonic() < deadline:
            for r in (reg, Registry(d)):  # a cached reader and a fresh one
                eps = {ep.name: ep for ep in r.list()}
                [name] = set(eps) - {"keep"}
                t = int(eps[name].timeout)
                assert eps[name].api_key == Secret(key_for(t))
                assert eps["keep"].api_key == Secret(KEEP_KEY)
                reads += 1
        assert reads > 20
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# ---- leftovers of older versions and of killed saves -----------------------------------------


def test_next_open_removes_key_bearing_temp_files_and_stale_generations(_isolated_config: Path) -> None:
    d = _isolated_config
    Registry(d).add(Endpoint(name="a", url="http://h/v1", api_key=KA))
    gen = json.loads((d / "endpoints.json").read_text())["secrets"]
    (d / ".secrets.json.k3j2l1.tmp").write_text(json.dumps({"a": KB}))  # the old writer's temp name
    (d / ".endpoints.json.abcdef.tmp").write_text("{")
    (d / "secrets.json").write_text(json.dumps({f"#{gen}": {"a": KA}, "#0123456789abcdef": {"a": KB}}))
    os.chmod(d / "secrets.json", 0o600)
    reg = Registry(d)
    assert reg.get("a").api_key == Secret(KA)
    assert sorted(p.name for p in d.iterdir()) == [".lock", "endpoints.json", "secrets.json"]
    assert json.loads((d / "secrets.json").read_text()) == {f"#{gen}": {"a": KA}}
    (d / ".secrets.json.zz.tmp").write_text(json.dumps({"a": KB}))  # another process killed now:
    reg.update("a", timeout=3)  # the next save (of a registry opened long ago) removes it too
    assert sorted(p.name for p in d.iterdir()) == [".lock", "endpoints.json", "secrets.json"]


def test_legacy_files_are_read_and_moved_to_generations_keeping_every_key(_isolated_config: Path) -> None:
    legacy_state(_isolated_config)
    reg = Registry(_isolated_config)
    assert reg.get("a").api_key == Secret(KA) and reg.get("b").api_key == Secret(KB)
    reg.update("a", api_key=KD)
    fresh = Registry(_isolated_config)
    assert fresh.get("a").api_key == Secret(KD) and fresh.get("b").api_key == Secret(KB)
    assert KA not in (_isolated_config / "secrets.json").read_text()


# ---- hand-edited bad files -------------------------------------------------------------------

GOOD = {"url": "http://h/v1", "type": "chat"}


def _wrong_values(field: str) -> list[Any]:
    """Values of a JSON type the field cannot hold."""
    tp = _registry._field_types()[field]
    return [v for v in (5, 1.5, "text", True, [1], {"a": 1}) if not _registry._accepts(tp, v)]


WRONG_TYPES = [
    (fld, value)
    for fld in sorted(_registry._field_types())
    if fld not in ("name", "api_key")
    for value in _wrong_values(fld)
]


def write_files(d: Path, endpoints: Any, secrets: Any = None) -> tuple[str, str | None]:
    d.mkdir(parents=True, exist_ok=True)
    text = endpoints if isinstance(endpoints, str) else json.dumps(endpoints)
    (d / "endpoints.json").write_text(text)
    stext = None
    if secrets is not None:
        stext = secrets if isinstance(secrets, str) else json.dumps(secrets)
        (d / "secrets.json").write_text(stext)
        os.chmod(d / "secrets.json", 0o600)
    return text, stext


def assert_others_keep_working(d: Path, bad: str, field: str | None) -> None:
    reg = Registry(d)
    assert reg.names() == ["bad", "ok"] or sorted(reg.names()) == sorted(["bad", "ok"])
    assert [e.name for e in reg.list()] == ["ok"]
    assert reg.get("ok").url == "http://h/v1" and reg.default == "ok"
    problems = reg.problems()
    assert list(problems) == [bad]
    assert f"saved endpoint {bad!r}" in problems[bad]
    with pytest.raises(ConfigError) as info:
        reg.get(bad)
    if field is not None:
        assert f"{field}:" in problems[bad] and info.value.field == field
    before = json.loads((d / "endpoints.json").read_text())["endpoints"][bad]
    reg.add(Endpoint(name="new", url="http://h/v1"))  # saving others keeps the bad entry as it is
    after_text = (d / "endpoints.json").read_text()
    assert strict_json(after_text)["endpoints"][bad] == before
    assert Registry(d).names() == ["bad", "new", "ok"]


def test_every_field_is_checked(tmp_path: Path) -> None:
    """The table below covers every field Endpoint has (it is derived from its annotations)."""
    covered = {fld for fld, _ in WRONG_TYPES}
    assert covered == set(_registry._field_types()) - {"name", "api_key", "body_template", "message_template"}


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
def test_entry_with_a_field_of_the_wrong_type_is_a_problem_naming_it(
    _isolated_config: Path, field: str, value: Any
) -> None:
    write_files(
        _isolated_config,
        {"version": 1, "default": "ok", "endpoints": {"ok": GOOD, "bad": {**GOOD, field: value}}},
    )
    assert_others_keep_working(_isolated_config, "bad", field)


@pytest.mark.parametrize("entry", ["http://h/v1", ["http://h/v1"], 5, None, True])
def test_entry_that_is_not_an_object_is_a_problem(_isolated_config: Path, entry: Any) -> None:
    write_files(_isolated_config, {"version": 1, "default": "ok", "endpoints": {"ok": GOOD, "bad": entry}})
    assert_others_keep_working(_isolated_config, "bad", None)
    assert "must be an object" in Registry(_isolated_config).problems()["bad"]


@pytest.mark.parametrize(
    ("field", "text"),
    [("timeout", "NaN"), ("price_prompt", "Infinity"), ("params", '{"temperature": -Infinity}')],
)
def test_nan_in_a_hand_edited_entry_is_a_problem_and_blocks_writing_it_back(
    _isolated_config: Path, field: str, text: str
) -> None:
    entries = '{"ok": {"url": "http://h/v1"}, "bad": {"url": "http://h/v1", "FIELD": TEXT}}'
    original = '{"version": 1, "default": "ok", "endpoints": ENTRIES}'.replace("ENTRIES", entries)
    original = original.replace("FIELD", field).replace("TEXT", text)
    write_files(_isolated_config, original)
    reg = Registry(_isolated_config)
    assert [e.name for e in reg.list()] == ["ok"] and reg.get("ok").timeout == 60
    assert field in reg.problems()["bad"] and "not JSON" in reg.problems()["bad"]
    with pytest.raises(ConfigError, match=rf"'bad'.*{field}") as info:
        reg.add(Endpoint(name="new", url="http://h/v1"))
    assert info.value.field == field and "remove('bad')" in str(info.value)
    assert (_isolated_config / "endpoints.json").read_text() == original  # nothing written
    assert "new" not in reg  # the refused change is not kept in memory either
    reg.remove("bad")  # the way out: the bad entry goes, the file is strict JSON again
    assert strict_json((_isolated_config / "endpoints.json").read_text())["endpoints"] == {
        "ok": {"url": "http://h/v1"}
    }


@pytest.mark.parametrize("default", [["x"], {"ok": 1}, 5, True])
def test_default_of_the_wrong_type_is_reported_and_ignored(_isolated_config: Path, default: Any) -> None:
    write_files(_isolated_config, {"version": 1, "default": default, "endpoints": {"ok": GOOD}})
    reg = Registry(_isolated_config)
    assert reg.default is None and [e.name for e in reg.list()] == ["ok"]
    assert "default:" in reg.problems()[_registry.DEFAULT_PROBLEM]
    assert "ok" in reg and reg.get("ok").url == "http://h/v1"
    reg.update("ok", timeout=3)
    assert json.loads((_isolated_config / "endpoints.json").read_text())["default"] == default  # kept
    reg.set_default("ok")  # what the problem says to do
    assert reg.default == "ok" and reg.problems() == {}


TOP_LEVEL = [
    ("not JSON", '{"endpoints": {"a": ', None, "not valid JSON"),
    ("a list", "[]", None, "must hold a JSON object"),
    ("a string", '"endpoints"', None, "must hold a JSON object"),
    ("endpoints a list", '{"endpoints": [{"url": "http://h/v1"}]}', None, "'endpoints' must be an object"),
    ("endpoints a string", '{"endpoints": "a"}', None, "'endpoints' must be an object"),
    ("endpoints null", '{"endpoints": null}', None, "'endpoints' must be an object"),
    ("secrets a number", '{"endpoints": {}, "secrets": 5}', None, "'secrets' must name a generation"),
    ("secrets a path", '{"endpoints": {}, "secrets": "../x"}', None, "'secrets' must name a generation"),
    ("secrets.json not JSON", '{"endpoints": {}}', '{"a": ', "not valid JSON"),
    ("secrets.json a list", '{"endpoints": {}}', '["sk-x"]', "must hold a JSON object"),
    (
        "generation not an object",
        '{"endpoints": {}, "secrets": "0123456789abcdef"}',
        '{"#0123456789abcdef": "sk-x"}',
        "must be an object {name: key}",
    ),
    (
        "generation missing",
        '{"endpoints": {}, "secrets": "0123456789abcdef"}',
        '{"#aaaaaaaaaaaaaaaa": {}}',
        "which is not in",
    ),
    ("secrets.json missing", '{"endpoints": {}, "secrets": "0123456789abcdef"}', None, "which is not in"),
]


@pytest.mark.parametrize(("case", "text", "secrets", "message"), TOP_LEVEL, ids=[c[0] for c in TOP_LEVEL])
def test_file_of_the_wrong_shape_is_refused_and_never_overwritten(
    _isolated_config: Path, case: str, text: str, secrets: str | None, message: str
) -> None:
    write_files(_isolated_config, text, secrets)
    reg = Registry(_isolated_config)
    with pytest.raises(RegistryFileError, match=message) as info:
        reg.names()
    assert "hint:" in str(info.value)
    for action in (lambda: reg.list(), lambda: reg.add(Endpoint(name="b", url="http://h/v1", api_key=KA))):
        with pytest.raises(RegistryFileError):
            action()
    assert (_isolated_config / "endpoints.json").read_text() == text
    if secrets is not None:
        assert (_isolated_config / "secrets.json").read_text() == secrets
    else:
        assert not (_isolated_config / "secrets.json").exists()


@pytest.mark.parametrize("key", [5, ["sk-x"], {"k": "sk-x"}, True])
def test_stored_key_of_the_wrong_type_is_a_problem_of_that_entry(_isolated_config: Path, key: Any) -> None:
    gen = "0123456789abcdef"
    write_files(
        _isolated_config,
        {"version": 1, "default": "ok", "secrets": gen, "endpoints": {"ok": GOOD, "bad": GOOD}},
        {f"#{gen}": {"ok": KA, "bad": key}},
    )
    assert Registry(_isolated_config).get("ok").api_key == Secret(KA)
    assert "sk-x" not in Registry(_isolated_config).problems()["bad"]  # a key is never shown
    assert_others_keep_working(_isolated_config, "bad", "api_key")
    assert Registry(_isolated_config).get("ok").api_key == Secret(KA)  # its key survived the save


def test_legacy_stored_key_of_the_wrong_type_is_a_problem_of_that_entry(_isolated_config: Path) -> None:
    write_files(
        _isolated_config,
        {"version": 1, "default": "ok", "endpoints": {"ok": GOOD, "bad": GOOD}},
        {"ok": KA, "bad": 5},
    )
    assert_others_keep_working(_isolated_config, "bad", "api_key")
    assert Registry(_isolated_config).get("ok").api_key == Secret(KA)


def test_llm_model_list_shows_good_entries_and_names_the_bad_ones(_isolated_config: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import get_ipython

    write_files(
        _isolated_config,
        {
            "version": 1,
            "default": ["x"],
            "endpoints": {"ok": GOOD, "bad": {**GOOD, "url": 5}, "worse": "http://h/v1"},
        },
    )
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    shown: list[Any] = []
    import nbllm._ui.magics as magics

    original = magics.show
    magics.show = lambda obj, **kw: shown.append(obj)  # type: ignore[assignment]
    try:
        assert shell.run_cell("%llm_model list").success
    finally:
        magics.show = original
    [table] = shown
    text = table["text/plain"]
    assert "http://h/v1" in text.splitlines()[2]  # ok
    assert "'bad'" in text and "url: must be a string" in text
    assert "'worse'" in text and "must be an object" in text and "default:" in text


# ---- NaN / Infinity are never written --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("params", {"temperature": float("nan")}),
        ("body_fields", {"options": {"top_k": float("inf")}}),
        ("body_template", {"prompt": "{prompt}", "t": [float("-inf")]}),
        ("params", '{"temperature": NaN}'),  # JSON text: Python's parser accepts NaN
    ],
)
def test_endpoint_refuses_nan_in_json_fields(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=r"(?i)NaN or Infinity") as info:
        Endpoint(name="x", url="http://h/v1", **{field: value})
    assert info.value.field is not None and info.value.field.startswith(field)


@pytest.mark.parametrize(
    ("field", "value"), [("price_prompt", float("nan")), ("timeout", float("inf")), ("retries", 2)]
)
def test_registry_refuses_to_write_nan_numbers(_isolated_config: Path, field: str, value: Any) -> None:
    reg = Registry(_isolated_config)
    reg.add(Endpoint(name="a", url="http://h/v1"))
    before = (_isolated_config / "endpoints.json").read_text()
    if field == "retries":  # a control: a finite value is saved
        reg.add(Endpoint(name="x", url="http://h/v1", **{field: value}))
        assert Registry(_isolated_config).get("x").retries == 2
        return
    # refused when the Endpoint is built (the registry's own check is the second line of defence)
    with pytest.raises(ConfigError, match=r"(?i)finite|NaN or Infinity") as info:
        reg.add(Endpoint(name="x", url="http://h/v1", **{field: value}))
    assert info.value.field == field and "x" not in reg
    assert (_isolated_config / "endpoints.json").read_text() == before


@pytest.mark.parametrize(
    "options",
    [
        "--param temperature=NaN",
        "--param top_p=Infinity",
        "--fields '{\"t\": -Infinity}'",
        '--body \'{"p": "{prompt}", "t": NaN}\'',
        "--price-prompt nan",
        "--price-completion inf",
        "--timeout inf",
    ],
)
def test_magics_never_write_nan(_isolated_config: Path, options: str) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import get_ipython

    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    nbllm.registry().add(Endpoint(name="a", url="http://h/v1", timeout=5))
    from IPython.core.error import UsageError as MagicUsageError

    res = shell.run_cell(f"%llm_model add x --url http://h/v1 {options}")
    flag = options.split()[0].lstrip("-")
    if isinstance(res.error_in_exec, MagicUsageError):  # a typed flag refuses it while parsing
        assert f"--{flag}" in str(res.error_in_exec) and "finite" in str(res.error_in_exec)
    else:
        assert isinstance(res.error_in_exec, ConfigError), res.error_in_exec
        field = {"param": "params", "fields": "body_fields", "body": "body_template"}.get(
            flag, flag.replace("-", "_")
        )
        assert res.error_in_exec.field is not None and res.error_in_exec.field.startswith(field)
    res = shell.run_cell(f"%llm_model edit a {options}")
    assert isinstance(res.error_in_exec, (ConfigError, MagicUsageError)), res.error_in_exec
    assert nbllm.registry().names() == ["a"] and nbllm.registry().get("a").timeout == 5
    for p in _isolated_config.glob("*.json"):
        strict_json(p.read_text())


# ---- a secrets file others can read -----------------------------------------------------------


def test_secrets_file_readable_by_others_is_fixed_with_one_warning(
    _isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_registry, "_WARNED", set())
    Registry(_isolated_config).add(Endpoint(name="a", url="http://h/v1", api_key=KA))
    secrets = _isolated_config / "secrets.json"
    os.chmod(secrets, 0o644)
    with pytest.warns(UserWarning, match=r"readable by other users \(mode 0o644\).*0600"):
        assert Registry(_isolated_config).get("a").api_key == Secret(KA)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    os.chmod(secrets, 0o640)  # again: fixed again, but warned once only
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Registry(_isolated_config).get("a").api_key == Secret(KA)
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600


def test_magic_param_nan_lowercase_is_text_and_the_file_stays_strict(_isolated_config: Path) -> None:
    """``--param K=V`` parses V as JSON when it can: lowercase ``nan``/``inf`` are not JSON, so
    they are kept as text (like ``--param stop=END``); what is written is strict JSON."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import get_ipython

    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    assert shell.run_cell("%llm_model add x --url http://h/v1 --param temperature=nan --param t=inf").success
    assert nbllm.registry().get("x").params == {"temperature": "nan", "t": "inf"}
    assert strict_json((_isolated_config / "endpoints.json").read_text())["endpoints"]["x"]["params"] == {
        "temperature": "nan",
        "t": "inf",
    }
