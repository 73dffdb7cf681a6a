"""The one description of ``Endpoint``'s fields (pure): flags, form inputs, docs, cache key.

``FIELDS`` holds one small ``FieldSpec`` per settable field of ``Endpoint``. The
``%llm_model add/edit`` flags (``_magic_args``), the form's inputs (``_widget_form``),
``%llm_model show`` (``_magics``), the evaluation cache key (``_eval_cache``) and
``docs/endpoint-fields.md`` (``python -m nbllm._core.fields --docs``) are all generated from it, so
they cannot drift. Defaults are read from the dataclass itself, never retyped here; validation
stays in ``Endpoint.__post_init__`` (the one validator every path goes through).

Adding a field to ``Endpoint`` is one record here: ``FieldSpec("deadline", "number", "limits",
help="...")``. Everything else follows from the kind:

============  ==========================  ==========================  ===============
kind          flag (``%llm_model``)       form widget                 sample (tests)
============  ==========================  ==========================  ===============
text, path    ``--x TEXT`` ('' resets)    Text                        "sample"
jsonpath      ``--x P`` (path checked)    Text                        "$.sample"
json          ``--x JSON``                Textarea (JSON)             {"sample": 1}
number        ``--x X`` (finite float)    FloatText / Text if None ok 1.5
integer       ``--x N`` (whole, >= 0)     IntText / Text if None ok   3
bool          ``--x`` / ``--no-x``        Checkbox                    not the default
tristate      ``--x {auto,on,off}``       Dropdown auto/on/off        False
choice        ``--x {a,b,...}``           Dropdown                    the last choice
============  ==========================  ==========================  ===============

The few fields with a syntax of their own (``name`` is the positional NAME, ``--key``,
``--header 'K: V'``, ``--param k=v``, ``--no-verify``/``--ca-bundle``) say so with ``syntax``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Literal

from .endpoint import SCHEMA_FORMATS, STREAM_MODES, Endpoint

__all__ = [
    "FIELDS",
    "GROUPS",
    "TRISTATE",
    "FieldSpec",
    "by_name",
    "docs_markdown",
    "not_in_cache_key",
    "settable_fields",
]

Kind = Literal["text", "path", "jsonpath", "json", "number", "integer", "bool", "tristate", "choice"]
Syntax = Literal["value", "name", "url", "secret", "header", "param", "verify"]

#: Groups in the order they appear in ``--help``, the form's Advanced section and the docs.
#: The form lays "basic" out by hand (URL, key, model, name, type); every other group is
#: generated into "Advanced".
GROUPS: dict[str, str] = {
    "basic": "endpoint",
    "request": "request shape (headers, body, templates)",
    "paths": "response JSONPaths (unset: the dialect's default, shown by `%llm_model show`)",
    "streaming": "streaming",
    "pricing": "prices and token limits",
    "network": "network and TLS",
    "limits": "limits against slow or hostile servers",
}
#: The values of a ``tristate`` field (``append_path``) as typed and as shown in the form.
TRISTATE: dict[str, bool | None] = {"auto": None, "on": True, "off": False}
_NOT_IN_KEY_GROUPS = frozenset({"pricing", "network", "limits"})  # change how, not what, is answered


@dataclass(frozen=True)
class FieldSpec:
    """How one Endpoint field is offered to users. Only ``name``, ``kind``, ``group`` and
    ``help`` are needed; the rest have defaults derived from the kind and the name."""

    name: str
    kind: Kind
    group: str
    help: str
    label: str = ""  # form label; default: the name, spaced and capitalised
    placeholder: str = ""
    flag: str = ""  # default: --the-name
    metavar: str = ""
    choices: tuple[str, ...] = ()
    syntax: Syntax = "value"
    clearable: bool = True  # '' on %llm_model edit (an empty form input) means "the default"
    in_cache_key: bool | None = None  # default: not for the pricing/network groups
    sample: Any = None  # a valid non-default value for the round-trip test (default by kind)
    doc: str = ""  # the docs line; default: the help text
    none_word: str = ""  # a flag value meaning None (e.g. "none": no limit); "" for none

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"{self.name}: unknown group {self.group!r}; one of {', '.join(GROUPS)}")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())
        if not self.flag and self.syntax != "name":
            object.__setattr__(self, "flag", "--" + self.name.replace("_", "-"))
        if not self.metavar:
            metavar = {"jsonpath": "P", "json": "JSON", "number": "X", "integer": "N", "path": "PATH"}
            object.__setattr__(self, "metavar", metavar.get(self.kind, "TEXT"))
        if not self.doc:
            object.__setattr__(self, "doc", self.help)
        if self.in_cache_key is None:
            object.__setattr__(self, "in_cache_key", self.group not in _NOT_IN_KEY_GROUPS)

    # ---- read from the dataclass, never retyped ---------------------------------------------
    @property
    def field(self) -> dataclasses.Field[Any]:
        return _DATACLASS_FIELDS[self.name]

    @property
    def default(self) -> Any:
        """The dataclass default (a fresh one for ``default_factory`` fields)."""
        f = self.field
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return None if f.default is dataclasses.MISSING else f.default

    @property
    def optional(self) -> bool:
        """Whether None is a value of this field (an empty input then means None)."""
        return self.default is None or "None" in str(self.field.type)

    @property
    def widget(self) -> str:
        """The form input kind: text, password, textarea, dropdown, checkbox, float, int."""
        if self.syntax == "secret":
            return "password"
        if self.syntax == "verify":
            return "checkbox"
        if self.kind == "json":
            return "textarea"
        if self.kind in ("choice", "tristate"):
            return "dropdown"
        if self.kind == "bool":
            return "checkbox"
        if self.kind in ("number", "integer") and not self.optional:
            return "float" if self.kind == "number" else "int"
        return "text"

    @property
    def flags(self) -> tuple[str, ...]:
        """Every ``%llm_model add/edit`` option that sets this field (NAME for ``name``)."""
        if self.syntax == "name":
            return ("NAME",)
        if self.syntax == "verify":
            return ("--no-verify", "--verify", "--ca-bundle")
        if self.kind == "bool":
            return (self.flag, "--no-" + self.flag[2:])
        return (self.flag,)

    @property
    def example(self) -> Any:
        """A valid value other than the default (used by the round-trip test)."""
        if self.sample is not None:
            return self.sample
        if self.kind == "json":
            return {"sample": 1}
        if self.kind == "jsonpath":
            return "$.sample"
        if self.kind == "number":
            return 1.5
        if self.kind == "integer":
            return 3
        if self.kind == "bool":
            return not self.default
        if self.kind == "tristate":
            return False
        if self.kind == "choice":
            return self.choices[-1]
        return "sample"

    def help_text(self, *, edit: bool = False) -> str:
        """The ``--help`` line: the help, then the default, then how to unset on edit."""
        text = self.help
        default = self.default
        if default not in (None, "", {}, []) and "default" not in text and self.kind != "bool":
            text += f" (default: {_show(default)})"
        fixed = self.syntax in ("name", "verify", "header", "param") or self.kind in (
            "bool",
            "choice",
            "tristate",
        )
        if edit and self.clearable and not fixed:
            text += " ('' to unset)" if self.default in (None, "") else " ('' for the default)"
        return text


def _show(value: Any) -> str:
    if value is True or value is False:
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_DATACLASS_FIELDS = {f.name: f for f in dataclasses.fields(Endpoint) if f.init}

_S = FieldSpec
# fmt: off
#: The table. Order: the order of --help, the form and the docs within each group.
FIELDS: tuple[FieldSpec, ...] = (
    # basic: laid out by hand in the form, first in --help
    _S("name", "text", "basic", "registry name (letters, digits, _.:@/+-)", label="Save as", syntax="name",
       placeholder="name in the registry (default: the model name)", sample="sample-name", clearable=False,
       in_cache_key=False),
    _S("url", "text", "basic", "base URL (completed with /chat/completions or /completions) or full URL",
       label="Endpoint URL", placeholder="http://127.0.0.1:8000/v1 (the /chat/completions part is added)",
       metavar="URL", syntax="url", clearable=False, sample="http://127.0.0.1:9/v1/chat/completions"),
    _S("stream_url", "text", "request",
       "URL posted to when streaming, if not the URL (Gemini :streamGenerateContent, TGI /generate_stream)",
       label="Streaming URL", placeholder="only if streaming uses another URL; {model} is filled in",
       metavar="URL", sample="http://127.0.0.1:9/generate_stream"),
    _S("model", "text", "basic", "model name sent in the body (default: the endpoint's name)",
       label="Model name", placeholder='sent as "model", e.g. tgi or NousResearch/Nous-Hermes-2', metavar="M"),
    _S("type", "choice", "basic", "API type (default: inferred from the URL)", choices=("chat", "completion", "image"),
       sample="completion", clearable=False),
    _S("api_key_env", "text", "basic", "read the API key from this environment variable (preferred)",
       label="API key env var", placeholder="or the name of an environment variable, e.g. OPENAI_API_KEY",
       flag="--key-env", metavar="VAR", sample="SAMPLE_KEY", in_cache_key=False),
    _S("api_key", "text", "basic", "a literal key, saved in a 0600 secrets file; stays in the cell source",
       label="API key", placeholder="pasted keys are stored in a 0600 file, never in the notebook",
       flag="--key", metavar="KEY", syntax="secret", sample="sk-sample-0123456789", in_cache_key=False),
    # request shape
    _S("auth_header", "text", "request", "header carrying the key", metavar="NAME", sample="X-Api-Key",
       in_cache_key=False),
    _S("auth_scheme", "text", "request", "scheme before the key ('' for none)", metavar="S", sample="Token",
       clearable=False, in_cache_key=False),
    _S("headers", "json", "request", "extra request header (repeatable; on edit merged, 'K:' removes K)",
       label="Extra headers", placeholder='{"X-Team": "ml"}', flag="--header", metavar="'K: V'",
       syntax="header", sample={"X-Sample": "1"}),
    _S("body_fields", "json", "request", "JSON object deep-merged into every request body",
       label="Extra body fields", placeholder='{"user": "notebook", "options": {"seed": 1}}', flag="--fields"),
    _S("message_keys", "json", "request", "rename message keys, e.g. '{\"content\": \"message\"}'",
       label="Message keys", placeholder='{"role": "role", "content": "message"}', sample={"content": "message"}),
    _S("body_template", "json", "request",
       "full JSON body with {prompt} {messages} {system} {model} {params} {stream} ... placeholders",
       label="Body template", placeholder='{"inputs": "{prompt}", "parameters": "{params}"}', flag="--body",
       sample={"inputs": "{prompt}"}),
    _S("role_map", "json", "request", "rename role values, e.g. '{\"assistant\": \"model\"}' (Gemini)",
       label="Role values", placeholder='{"assistant": "model"}', sample={"assistant": "model"}),
    _S("message_template", "json", "request",
       "JSON shape of one message with {role} {content} {name}, e.g. Gemini's parts",
       label="Message template", placeholder='{"role": "{role}", "parts": [{"text": "{content}"}]}',
       sample={"role": "{role}", "parts": [{"text": "{content}"}]}),
    _S("transcript", "json", "request",
       "chat over a prompt-only API: a format per role plus 'cue' (e.g. \"Assistant:\") building {prompt}",
       label="Transcript format", placeholder='{"user": "User: {content}\\n", "cue": "Assistant:"}',
       sample={"user": "User: {content}\n", "assistant": "Assistant: {content}\n", "cue": "Assistant:"}),
    _S("param_map", "json", "request",
       "move a parameter to a dotted body location, e.g. '{\"max_tokens\": \"options.num_predict\"}'",
       label="Parameter locations", placeholder='{"max_tokens": "options.num_predict"}',
       sample={"max_tokens": "options.num_predict"}),
    _S("params", "json", "request",
       "default generation parameter, value parsed as JSON when it can be (repeatable)",
       label="Default parameters", placeholder='{"temperature": 0.2, "max_tokens": 256}', flag="--param",
       metavar="K=V", syntax="param", sample={"temperature": 0.5, "stop": ["\n"]}),
    _S("append_path", "tristate", "request",
       "add /chat/completions or /completions to the URL (auto: unless the URL names its API)",
       label="Complete the URL"),
    _S("schema_format", "choice", "request",
       "where schema= goes: openai response_format, ollama format, gemini responseSchema, or stated "
       "in the prompt (default: by dialect)", label="Schema format", choices=SCHEMA_FORMATS),
    _S("handler", "text", "request", "'package.module:attribute' or a registered provider that does the call",
       placeholder="e.g. mypkg.llm:call (instead of an HTTP request)", metavar="H", sample="sample_provider"),
    # response JSONPaths
    _S("response_path", "jsonpath", "paths", "JSONPath of the answer in a whole response",
       placeholder="JSONPath of the answer, default $.choices[0].message.content"),
    _S("stream_path", "jsonpath", "paths", "JSONPath of the text in each streamed chunk",
       placeholder="JSONPath in each chunk, default $.choices[0].delta.content"),
    _S("reasoning_path", "jsonpath", "paths", "JSONPath of the reasoning text in a whole response",
       placeholder="e.g. $.choices[0].message.reasoning_content"),
    _S("stream_reasoning_path", "jsonpath", "paths", "JSONPath of the reasoning text in each streamed chunk",
       placeholder="e.g. $.choices[0].delta.reasoning_content"),
    _S("usage_prompt_path", "jsonpath", "paths", "JSONPath of the prompt token count (for usage and cost)",
       label="Prompt tokens path", placeholder="e.g. $.usage.prompt_tokens"),
    _S("usage_completion_path", "jsonpath", "paths",
       "JSONPath of the completion token count (for usage and cost)",
       label="Completion tokens path", placeholder="e.g. $.usage.completion_tokens"),
    _S("image_b64_path", "jsonpath", "paths", "image endpoints: JSONPath of the base64 images",
       placeholder="default $.data[*].b64_json", sample="$.images[*].b64"),
    _S("image_url_path", "jsonpath", "paths", "image endpoints: JSONPath of the image URLs",
       placeholder="default $.data[*].url", sample="$.images[*].url"),
    _S("revised_prompt_path", "jsonpath", "paths", "image endpoints: JSONPath of the revised prompts",
       placeholder="default $.data[*].revised_prompt", sample="$.images[*].prompt"),
    _S("finish_reason_path", "jsonpath", "paths", "JSONPath of the finish reason",
       placeholder="e.g. $.choices[0].finish_reason"),
    # streaming
    _S("stream", "choice", "streaming", "streaming mode", label="Stream format", choices=STREAM_MODES,
       in_cache_key=False),
    _S("error_path", "jsonpath", "streaming",
       "JSONPath whose match in a stream chunk or a body means an error ('': no check)",
       placeholder="default $.error; e.g. $[?(@.type == 'error')]", sample="$.delta.error"),
    _S("error_events", "json", "streaming",
       "SSE event names that mean an error, as a JSON list", label="Error events",
       placeholder='["error", "response.failed"]', sample=["error"]),
    _S("stream_usage", "tristate", "streaming",
       "ask for token usage at the end of a stream (stream_options): auto = only on OpenAI-shaped routes",
       label="Ask for usage when streaming", in_cache_key=False),
    # prices and token limits
    _S("price_prompt", "number", "pricing", "price per 1K prompt tokens", label="Prompt price",
       placeholder="per 1K prompt tokens, e.g. 0.0005"),
    _S("price_completion", "number", "pricing", "price per 1K completion tokens", label="Completion price",
       placeholder="per 1K completion tokens, e.g. 0.0015", metavar="Y"),
    _S("price_image", "number", "pricing", "price per generated image (image endpoints)",
       label="Image price", placeholder="per generated image, e.g. 0.04", metavar="Z"),
    _S("max_seq_len", "integer", "pricing", "refuse longer prompts before sending",
       label="Max sequence length", placeholder="tokens; longer prompts are refused before sending"),
    _S("tokenizer", "path", "pricing", "a tokenizer.json file to count prompt tokens with",
       placeholder="optional path to a tokenizer.json (HuggingFace tokenizers)"),
    # network
    _S("timeout", "number", "network", "seconds to wait for the answer / each chunk", label="Timeout (s)",
       metavar="S"),
    _S("retries", "integer", "network", "retries on 408/429/5xx and network errors", label="Retries"),
    _S("deadline", "number", "limits",
       "seconds for a whole non-streaming call, retries included ('none': no limit)",
       label="Deadline (s)", metavar="S", none_word="none"),
    _S("idle_timeout", "number", "limits",
       "seconds a stream may go without a complete event (default: the timeout; 'none': no limit)",
       label="Stream idle limit (s)", metavar="S", none_word="none"),
    _S("max_body_bytes", "integer", "limits",
       "largest response body, compressed and decompressed ('none': no limit)",
       label="Max body bytes", none_word="none", sample=1048576),
    _S("max_event_bytes", "integer", "limits",
       "largest single SSE event / NDJSON line ('none': no limit)",
       label="Max event bytes", none_word="none", sample=1048576),
    _S("verify", "bool", "network",
       "do not verify TLS certificates (--verify: verify again; --ca-bundle PATH: with this PEM file)",
       label="Verify TLS certificates", syntax="verify", clearable=False,
       doc="verify TLS certificates: true, false (a test server), or the path of a CA bundle (PEM)"),
)
# fmt: on

_BY_NAME = {s.name: s for s in FIELDS}


def by_name(name: str) -> FieldSpec:
    """The spec of field ``name`` (KeyError for a field the table does not describe)."""
    return _BY_NAME[name]


def settable_fields() -> tuple[str, ...]:
    """Every init field of ``Endpoint``, in dataclass order (what the table must cover)."""
    return tuple(_DATACLASS_FIELDS)


def not_in_cache_key() -> frozenset[str]:
    """Fields that do not change an answer (or are secret): left out of the evaluation cache key."""
    return frozenset(s.name for s in FIELDS if not s.in_cache_key)


# ---- docs ----------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _flags_doc(spec: FieldSpec) -> str:
    if spec.syntax == "name":
        return "`NAME` (positional; `rename OLD NEW`)"
    if spec.syntax == "header":
        return "`--header 'K: V'` (repeatable)"
    if spec.syntax == "param":
        return "`--param K=V` (repeatable)"
    if spec.syntax == "verify":
        return "`--no-verify`, `--verify`, `--ca-bundle PATH`"
    if spec.kind == "bool":
        return f"`{spec.flag}` / `--no-{spec.flag[2:]}`"
    if spec.kind in ("choice", "tristate"):
        choices = spec.choices if spec.kind == "choice" else tuple(TRISTATE)
        return f"`{spec.flag} {'|'.join(choices)}`".replace("|", "\\|")
    return f"`{spec.flag} {spec.metavar}`"


def _default_doc(spec: FieldSpec) -> str:
    default = spec.default
    if spec.name in ("model", "type", "append_path") or spec.kind == "jsonpath":
        return {"model": "the name", "type": "from the URL", "append_path": "auto"}.get(
            spec.name, "dialect's"
        )
    if default in (None, "", {}):
        return "–"
    return f"`{_show(default)}`"


def docs_markdown() -> str:
    """``docs/endpoint-fields.md``: one line per field, grouped, generated from ``FIELDS``."""
    out = [
        "# Endpoint fields",
        "",
        "<!-- generated by `python -m nbllm._core.fields --docs > docs/endpoint-fields.md`; do not edit:",
        "     tests/test_fields.py checks this file against the table in nbllm/_core/fields.py -->",
        "",
        "Every field of `nbllm.Endpoint`, with the `%llm_model add` / `edit` option that sets it",
        "and its input in the form (`nbllm.model_form()`; everything below *endpoint* is under",
        "*Advanced*). On `%llm_model edit`, `''` resets a text, path or number field to its default.",
        "*Cache key*: whether a change makes `evaluate()` call the endpoint again instead of",
        "reusing cached answers.",
        "",
    ]
    for group, title in GROUPS.items():
        specs = [s for s in FIELDS if s.group == group]
        if not specs:
            continue
        out += [f"## {title[0].upper()}{title[1:]}", ""]
        out += ["| field | option | form | default | cache key | what it is |", "|---|---|---|---|---|---|"]
        for s in specs:
            row = [
                f"`{s.name}`",
                _flags_doc(s),
                _cell(s.label),
                _default_doc(s),
                "yes" if s.in_cache_key else "no",
                _cell(s.doc[0].upper() + s.doc[1:]),
            ]
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover - exercised through docs_markdown() in the tests
    if sys.argv[1:] != ["--docs"]:
        sys.exit("usage: python -m nbllm._core.fields --docs > docs/endpoint-fields.md")
    sys.stdout.write(docs_markdown())
