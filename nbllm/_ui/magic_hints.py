"""Hints in the words of the magics.

The library's errors say what to do in Python (``update()``, ``add(..., overwrite=True)``,
``os.environ[...]``, ``.partial_text``): right for the API, wrong inside ``%llm_model`` or
``%%llm``, where the user types options. ``for_magic`` rewrites the hint of an error that a magic
is about to surface, chosen by the error's type and fields (a word of the message only where the
type alone is ambiguous), and keeps the same exception object, so its type, message, cause and
traceback are unchanged.
"""

from __future__ import annotations

import re

from .._base.exceptions import (
    ConfigError,
    ConnectError,
    ExtractionError,
    HTTPStatusError,
    NbllmError,
    PromptTooLongError,
    StreamError,
    TimeoutError,
    UnknownModelError,
)
from .._base.redact import redact

__all__ = ["for_magic", "speaks_python"]

# a call (``update(``), a module attribute (``nbllm.``), a keyword argument (``overwrite=True``),
# a subscript (``os.environ[``) or an attribute (``.partial_text``): magics users type none of these
_PYTHON = re.compile(r"\b\w+\(|\bnbllm\.|\b\w+=(True|False|'|\")|\[['\"]|(^|\s)\.\w+|\bos\.environ\b")

_ADD = "add it with %llm_model add NAME --url URL (%llm_model list shows the saved ones)"


def speaks_python(hint: str | None) -> bool:
    """True when ``hint`` tells the user to write Python."""
    return bool(hint and _PYTHON.search(hint))


def _hint(exc: NbllmError, command: str, name: str | None, new: str | None) -> str | None:
    """The magic's hint for ``exc`` (None: keep the library's)."""
    ep = exc.endpoint or name or "NAME"
    if isinstance(exc, UnknownModelError):
        return _ADD
    if isinstance(exc, ConfigError) and exc.field == "name" and "already exists" in exc.message:
        if command == "rename":
            return f"choose another new name, or remove the other endpoint first: %llm_model remove {new or 'NEW'}"
        return (
            f"add it again with --replace to overwrite it, or change single fields with "
            f"%llm_model edit {ep} --OPTION VALUE"
        )
    if isinstance(exc, ConfigError) and exc.field == "api_key_env":
        return (
            "set the variable before starting Jupyter (or in this kernel: %env VAR=value), "
            f"or change the key source: %llm_model edit {ep} --key-env VAR"
        )
    if isinstance(exc, PromptTooLongError):
        return f"shorten the prompt, lower --max-tokens, or raise the limit: %llm_model edit {ep} --max-seq-len N"
    if isinstance(exc, TimeoutError):
        return (
            f"the server is slow or stuck: check it, or wait longer: %llm_model edit {ep} --timeout SECONDS"
        )
    if isinstance(exc, ExtractionError) and exc.path and "matched nothing" in exc.message:
        flag = "--stream-path" if "in the stream" in exc.message else "--response-path"
        return f"point {flag} at the answer text in that sample: %llm_model edit {ep} {flag} JSONPATH"
    if isinstance(exc, StreamError) and exc.partial_text:
        if command == "llm":
            return "the partial answer is shown above and kept in _llm_result; the server may have crashed"
        return "the answer broke off part way; the server may have crashed"
    if isinstance(exc, HTTPStatusError) and exc.status_code in (400, 422) and exc.endpoint:
        # the library names the fields (body_fields, message_keys): say the options
        return (
            "the server rejected the request body: check the model name and the extra body fields: "
            f"%llm_model edit {ep} --model M / --param k=v / --fields JSON / --message-keys JSON "
            "(%llm_model show shows what is sent)"
        )
    if isinstance(exc, ConnectError) and speaks_python(exc.hint):  # verify='/path/ca.pem'
        return (
            "the server's TLS certificate is not trusted: use a certificate your system trusts, or for "
            f"a test server: %llm_model edit {ep} --no-verify"
        )
    if isinstance(exc, ConfigError) and speaks_python(exc.hint) and name and repr(name) in exc.message:
        # a saved entry that no longer validates (edited by hand, or by an older nbllm)
        return (
            f"fix it with %llm_model edit {ep} --OPTION VALUE (see %llm_model edit --help), "
            f"or %llm_model remove {ep}"
        )
    return None


def for_magic(
    exc: NbllmError, command: str = "", name: str | None = None, new: str | None = None
) -> NbllmError:
    """``exc`` with its hint in magic words when the library's would name Python calls.

    ``command`` is the ``%llm_model`` subcommand (or ``"llm"``), ``name`` the endpoint it is
    about, ``new`` the new name of a rename."""
    hint = _hint(exc, command, name, new)
    if hint is not None and hint != exc.hint:
        exc.hint = redact(hint)
        exc.args = (exc._format(),)  # str(exc) is built once: build it again with the new hint
    return exc
