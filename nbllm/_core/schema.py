"""Structured outputs (pure, no I/O): a schema given four ways -> one ``Schema``.

``as_schema(S)`` accepts a JSON Schema dict, a pydantic ``BaseModel`` class (pydantic is
imported only when one is given), a dataclass, or a ``{"column": type}`` mapping
(``{"sentiment": Literal["pos", "neg"], "confidence": float, "topics": list[str]}``).

A ``Schema`` holds the JSON Schema, its top-level fields with their pandas dtype, and a
validator: the pydantic model when one was given; else ``jsonschema`` when installed; else a
small built-in validator for exactly the subset the mapping and dataclass forms produce:
``type`` (one or a list, ``"null"`` included), ``properties``, ``required``, ``enum``,
``items`` and ``additionalProperties: false`` (plus the annotations ``title``,
``description``, ``default``, ``$schema``). A schema using any other keyword (``minimum``,
``pattern``, ``anyOf``, ``$ref``, ...) needs ``pip install jsonschema``, and says so.

``Schema.parse(text)`` reads the answer: the whole text as JSON, else a fenced ```json block,
else the first JSON object inside prose; then validates it. Every failure is a
``SchemaError`` whose ``detail`` names the field, what was expected and what came:
``field 'confidence': expected number, got 'high'``.

Placement (``schema_format`` of an Endpoint, docs/formats.md "Structured outputs"):
``"openai"`` ``response_format`` json_schema, ``"ollama"`` ``format``, ``"gemini"``
``generationConfig.responseSchema``, ``"prompt"`` the schema stated in the prompt; None picks by
dialect (``resolve_format``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._base.exceptions import SchemaError, UsageError
from .._base.validate import got
from .endpoint import SCHEMA_FORMATS

if TYPE_CHECKING:
    import pandas as pd

    from .endpoint import Endpoint
    from .request import RequestSpec
    from .result import Result

__all__ = [
    "BUILTIN_KEYWORDS",
    "FORMATS",
    "Schema",
    "as_schema",
    "expand_frame",
    "merge_attempts",
    "place",
    "prompt_messages",
    "repair_messages",
    "resolve_format",
]

#: The values of ``Endpoint.schema_format`` (None: chosen by dialect).
FORMATS = SCHEMA_FORMATS
#: What the built-in validator understands; anything else needs jsonschema.
BUILTIN_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "enum",
        "items",
        "additionalProperties",
        "title",
        "description",
        "default",
        "$schema",
    }
)
_DTYPES = {"integer": "Int64", "number": "Float64", "boolean": "boolean", "string": "string"}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
_NAME_RE = re.compile(r"[^A-Za-z0-9_-]+")
_FENCE = re.compile(r"```[ \t]*(?:json[c5]?|JSON)?[ \t]*\n(.*?)```", re.S)
# Gemini's responseSchema is an OpenAPI 3.0 subset: other keys are refused by the API
_GEMINI_KEYS = frozenset(
    {
        "type",
        "format",
        "description",
        "nullable",
        "enum",
        "properties",
        "required",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "propertyOrdering",
        "title",
        "anyOf",
    }
)


# ---- normalising S ----------------------------------------------------------------------------


def _type_schema(tp: Any, where: str) -> dict[str, Any]:
    """A Python type annotation as JSON Schema (the subset the built-in validator knows)."""
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in simple:
        return {"type": simple[tp]}
    if tp in (list, tuple):
        return {"type": "array"}
    if tp is dict:
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        return {**_enum_type(values), "enum": values}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        values = list(args)
        return {**_enum_type(values), "enum": values}
    if origin in (list, tuple, Sequence) and args:
        return {"type": "array", "items": _type_schema(args[0], f"{where}[]")}
    if origin is dict:
        return {"type": "object"}
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            inner = _type_schema(rest[0], where)
            t = inner.get("type")
            if isinstance(t, str):
                inner = {**inner, "type": [t, "null"]}
                if "enum" in inner:
                    inner["enum"] = [*inner["enum"], None]
            return inner
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_schema(tp)
    raise UsageError(
        f"{where}: type {tp!r} is not supported in a schema mapping or dataclass",
        field="schema",
        hint="use str, int, float, bool, list[...], dict, Literal[...], an Enum, X | None, "
        "or give a JSON Schema dict",
    )


def _enum_type(values: list[Any]) -> dict[str, Any]:
    kinds = {type(v) for v in values}
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if len(kinds) == 1 and next(iter(kinds)) in names:
        return {"type": names[next(iter(kinds))]}
    return {}


def _object(props: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    if title:
        out["title"] = title
    out.update(properties=props, required=list(props), additionalProperties=False)
    return out


def _dataclass_schema(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # a forward reference that does not resolve
        raise UsageError(f"cannot read the type hints of {cls.__name__}: {exc}", field="schema") from exc
    props = {
        f.name: _type_schema(hints.get(f.name, Any), f"{cls.__name__}.{f.name}")
        for f in dataclasses.fields(cls)
    }
    return _object(props, cls.__name__)


def _is_pydantic(obj: Any) -> bool:
    return isinstance(obj, type) and callable(getattr(obj, "model_json_schema", None))


_JSON_TYPES = (dict, list, str, int, float, bool, type(None))
_SCHEMA_WORDS = ("type", "properties", "$schema", "$defs", "$ref", "anyOf", "oneOf", "allOf", "enum", "items")


def _is_json_schema(d: Mapping[str, Any]) -> bool:
    """A JSON Schema dict (JSON values, some schema keyword) rather than ``{"col": type}``
    (Python types as values: ``{"type": str}`` is a column named "type")."""
    if all(not isinstance(v, _JSON_TYPES) for v in d.values()):
        return False
    if any(k in d for k in _SCHEMA_WORDS):
        return True
    raise UsageError(
        f"is neither a JSON Schema (no {', '.join(_SCHEMA_WORDS[:3])}, ... keyword) nor a "
        f"{{'column': type}} mapping (values are Python types such as str, float, list[str]); "
        f"got keys {sorted(map(str, d))[:5]}",
        field="schema",
        hint='e.g. {"sentiment": str, "confidence": float} or {"type": "object", "properties": {...}}',
    )


def as_schema(spec: Any) -> Schema:
    """``spec`` (a JSON Schema dict, pydantic model class, dataclass, ``{"col": type}`` mapping
    or a ``Schema``) as a ``Schema``; ``UsageError`` naming ``schema`` for anything else."""
    if isinstance(spec, Schema):
        return spec
    if _is_pydantic(spec):
        return Schema(spec.model_json_schema(), name=spec.__name__, model=spec)
    if dataclasses.is_dataclass(spec) and isinstance(spec, type):
        return Schema(_dataclass_schema(spec), name=spec.__name__)
    if isinstance(spec, Mapping):
        if not spec:
            raise UsageError("must name at least one field, got an empty mapping", field="schema")
        if _is_json_schema(spec):
            try:
                json.dumps(spec, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise UsageError(f"a JSON Schema dict must be JSON: {exc}", field="schema") from exc
            return Schema(dict(spec), name=str(spec.get("title") or "response"))
        for k in spec:
            if not isinstance(k, str) or not k:
                raise UsageError(f"field names must be non-empty strings, {got(k)}", field="schema")
        props = {k: _type_schema(v, f"schema[{k!r}]") for k, v in spec.items()}
        return Schema(_object(props), name="response")
    raise UsageError(
        f"must be a JSON Schema dict, a pydantic model class, a dataclass or a "
        f"{{'column': type}} mapping, {got(spec)}",
        field="schema",
    )


# ---- the Schema -------------------------------------------------------------------------------


def _keywords(node: Any, found: set[str]) -> None:
    """Every keyword used anywhere in a schema (property names are not keywords)."""
    if not isinstance(node, dict):
        return
    for k, v in node.items():
        found.add(k)
        if k == "properties" and isinstance(v, dict):
            for sub in v.values():
                _keywords(sub, found)
        elif k == "items":
            _keywords(v, found)


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _where(path: Sequence[Any]) -> str:
    if not path:
        return "answer"
    out = str(path[0])
    for p in path[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return f"field {out!r}"


class Schema:
    """A normalised schema: ``json`` (the JSON Schema), ``name``, ``fields`` (top-level field ->
    pandas dtype), ``model`` (the pydantic class, if given) and ``validator`` (which one checks:
    ``"pydantic"``, ``"jsonschema"`` or ``"builtin"``)."""

    def __init__(self, schema: dict[str, Any], *, name: str = "response", model: Any = None) -> None:
        self.json = schema
        self.name = (_NAME_RE.sub("_", name) or "response")[:64]
        self.model = model
        props = schema.get("properties")
        self.fields: dict[str, str] = {}
        self._jsonschema: Any = None
        if isinstance(props, dict):
            self.fields = {str(k): _dtype(v) for k, v in props.items()}
        self.validator = "pydantic" if model is not None else self._pick_validator()

    def _pick_validator(self) -> str:
        try:
            import jsonschema  # type: ignore[import-untyped]
        except ImportError:
            used: set[str] = set()
            _keywords(self.json, used)
            extra = sorted(used - BUILTIN_KEYWORDS)
            if extra:
                raise UsageError(
                    f"this schema uses {', '.join(extra)}, which the built-in validator does not check "
                    f"(it knows {', '.join(sorted(BUILTIN_KEYWORDS))})",
                    field="schema",
                    hint="pip install jsonschema",
                ) from None
            return "builtin"
        cls = jsonschema.validators.validator_for(self.json)
        try:
            cls.check_schema(self.json)
        except jsonschema.SchemaError as exc:
            where = "/".join(map(str, exc.path)) or "top level"
            raise UsageError(f"is not a valid JSON Schema ({where}: {exc.message})", field="schema") from None
        self._jsonschema = cls(self.json)  # built once: parse() runs per row
        return "jsonschema"

    @property
    def fingerprint(self) -> str:
        """A stable text of what is asked (part of the evaluation cache key)."""
        return json.dumps([self.name, self.json], sort_keys=True, separators=(",", ":"))

    def __repr__(self) -> str:
        return f"Schema(name={self.name!r}, fields={list(self.fields)}, validator={self.validator!r})"

    # -- reading an answer ---------------------------------------------------------------------
    def parse(self, text: str) -> Any:
        """The answer as a validated dict; ``SchemaError`` (``.detail``) otherwise."""
        return self.validate(extract_json(text), text)

    def validate(self, value: Any, raw: str = "") -> Any:
        if self.model is not None:
            return self._validate_pydantic(value, raw)
        if self.validator == "jsonschema":
            self._validate_jsonschema(value, raw)
        else:
            problem = _check(self.json, value, [])
            if problem:
                raise SchemaError(problem, raw=raw)
        return value

    def _validate_pydantic(self, value: Any, raw: str) -> Any:
        import pydantic

        try:
            return self.model.model_validate(value).model_dump(mode="json")
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            where = _where(list(err.get("loc", ())))
            kind = str(err.get("type", ""))
            if kind == "missing":
                detail = f"{where}: missing (required)"
            else:
                detail = f"{where}: {err.get('msg', kind)}, got {_show(err.get('input'))}"
            raise SchemaError(detail, raw=raw) from None

    def _validate_jsonschema(self, value: Any, raw: str) -> None:
        errors = sorted(
            self._jsonschema.iter_errors(value), key=lambda e: (len(e.path), e.validator != "type")
        )
        if not errors:
            return
        e = errors[0]
        where = _where(list(e.path))
        if e.validator == "type":
            expected = e.validator_value
            words = " or ".join(expected) if isinstance(expected, list) else str(expected)
            detail = f"{where}: expected {words}, got {_show(e.instance)}"
        elif e.validator == "required":
            missing = [k for k in e.validator_value if isinstance(e.instance, dict) and k not in e.instance]
            detail = f"{_where([*e.path, missing[0]]) if missing else where}: missing (required)"
        elif e.validator == "enum":
            detail = f"{where}: expected one of {_show(e.validator_value)}, got {_show(e.instance)}"
        elif e.validator == "additionalProperties":
            detail = f"{where}: {e.message}"
        else:
            detail = f"{where}: {e.message}"
        raise SchemaError(detail, raw=raw)


def _dtype(prop: Any) -> str:
    if not isinstance(prop, dict):
        return "object"
    t = prop.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        t = rest[0] if len(rest) == 1 else None
    if t is None and isinstance(prop.get("enum"), list):
        t = _enum_type([v for v in prop["enum"] if v is not None]).get("type")
    if t is None and isinstance(prop.get("anyOf"), list):  # pydantic's X | None
        rest = [s for s in prop["anyOf"] if not (isinstance(s, dict) and s.get("type") == "null")]
        if len(rest) == 1:
            return _dtype(rest[0])
    return _DTYPES.get(str(t), "object")


def _check(schema: Any, value: Any, path: list[Any]) -> str:
    """The built-in validator: the first problem as ``field 'x': expected ..., got ...``."""
    if not isinstance(schema, dict):
        return ""
    where = _where(path)
    t = schema.get("type")
    if t is not None:
        allowed = t if isinstance(t, list) else [t]
        if not any(_is_type(value, a) for a in allowed):
            return f"{where}: expected {' or '.join(map(str, allowed))}, got {_show(value)}"
    enum_ = schema.get("enum")
    if isinstance(enum_, list) and value not in enum_:
        return f"{where}: expected one of {_show(enum_)}, got {_show(value)}"
    if isinstance(value, dict):
        for k in schema.get("required", ()):
            if k not in value:
                return f"{_where([*path, k])}: missing (required)"
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is False:
            extra = [k for k in value if k not in props]
            if extra:
                return f"{_where([*path, extra[0]])}: not in the schema (additionalProperties is false)"
        for k, sub in props.items():
            if k in value:
                problem = _check(sub, value[k], [*path, k])
                if problem:
                    return problem
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = _check(schema["items"], item, [*path, i])
            if problem:
                return problem
    return ""


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _PY_TYPES.get(name, (object,)))


def extract_json(text: str) -> Any:
    """The JSON in an answer: the whole text, a fenced block, or the first object in prose."""
    s = text.strip()
    try:
        return json.loads(s)
    except ValueError:
        pass
    for m in _FENCE.finditer(s):
        try:
            return json.loads(m.group(1))
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    start = s.find("{")
    tries = 0
    while start != -1 and tries < 20:
        try:
            return decoder.raw_decode(s, start)[0]
        except ValueError:
            start = s.find("{", start + 1)
            tries += 1
    sample = s if len(s) <= 60 else s[:57] + "..."
    raise SchemaError(f"answer: expected a JSON object, got {sample!r}", raw=text)


# ---- where the schema goes in a request ---------------------------------------------------


def resolve_format(ep: Endpoint) -> str:
    """The endpoint's ``schema_format``, or by dialect: OpenAI-shaped routes -> openai, Ollama ->
    ollama, a ``:generateContent`` URL -> gemini, anything else (handlers, templates) -> prompt."""
    fmt: str | None = getattr(ep, "schema_format", None)
    if fmt:
        return fmt
    if ep.handler:
        return "prompt"
    url = ep.request_url
    if ":generateContent" in url or ":streamGenerateContent" in url:
        return "gemini"
    if ep.dialect.startswith("ollama"):
        return "ollama"
    from .request import _openai_route

    if ep.body_template is None and _openai_route(url):
        return "openai"
    return "prompt"


def _strict_ok(node: Any) -> bool:
    """Whether OpenAI's strict mode accepts the schema: every object closed, all required."""
    if not isinstance(node, dict):
        return True
    props = node.get("properties")
    if isinstance(props, dict):
        if node.get("additionalProperties") is not False or set(node.get("required", ())) != set(props):
            return False
        if not all(_strict_ok(p) for p in props.values()):
            return False
    return _strict_ok(node.get("items"))


def gemini_schema(node: Any) -> Any:
    """A JSON Schema as Gemini's OpenAPI subset: unsupported keys dropped, ``[t, "null"]`` ->
    ``type: t, nullable: true``."""
    if isinstance(node, list):
        return [gemini_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k not in _GEMINI_KEYS:
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: gemini_schema(sub) for name, sub in v.items()}
        elif k == "type" and isinstance(v, list):
            rest = [x for x in v if x != "null"]
            out[k] = rest[0] if rest else "string"
            if "null" in v:
                out["nullable"] = True
        elif k == "enum" and isinstance(v, list):
            out[k] = [x for x in v if x is not None]
        else:
            out[k] = gemini_schema(v)
    return out


def body_part(fmt: str, schema: Schema) -> dict[str, Any]:
    """What ``fmt`` adds to the request body (deep-merged); {} for ``"prompt"``."""
    if fmt == "openai":
        spec = {"name": schema.name, "schema": schema.json, "strict": _strict_ok(schema.json)}
        return {"response_format": {"type": "json_schema", "json_schema": spec}}
    if fmt == "ollama":
        return {"format": schema.json}
    if fmt == "gemini":
        return {
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": gemini_schema(schema.json),
            }
        }
    return {}


def place(spec: RequestSpec, fmt: str, schema: Schema) -> RequestSpec:
    """``spec`` with the schema in its body the ``fmt`` way (a new spec; bytes re-encoded)."""
    from .endpoint import deep_merge

    part = body_part(fmt, schema)
    if not part or not isinstance(spec.json, dict):
        return spec
    body = deep_merge(spec.json, part)
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return dataclasses.replace(spec, json=body, body=raw)


def instruction(schema: Schema) -> str:
    text = json.dumps(schema.json, ensure_ascii=False)
    return "Answer with only a JSON object (no prose, no code fence) matching this JSON Schema:\n" + text


def prompt_messages(messages: list[dict[str, Any]], schema: Schema) -> list[dict[str, Any]]:
    """The messages with the schema instruction appended to the last user turn."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                m["content"] = [*content, {"type": "text", "text": instruction(schema)}]
            else:
                m["content"] = f"{content or ''}\n\n{instruction(schema)}"
            return out
    return [*out, {"role": "user", "content": instruction(schema)}]


def repair_messages(messages: list[dict[str, Any]], raw: str, detail: str) -> list[dict[str, Any]]:
    """The conversation re-asked once: the bad answer, then what failed validation."""
    return [
        *messages,
        {"role": "assistant", "content": raw},
        {
            "role": "user",
            "content": f"Your answer did not match the JSON schema: {detail}. "
            "Answer again with only the corrected JSON object.",
        },
    ]


def merge_attempts(first: Result, second: Result) -> Result:
    """``second`` carrying the tokens, cost, latency and retries of both attempts."""
    from .result import Usage

    def add(a: Any, b: Any) -> Any:
        return None if a is None and b is None else (a or 0) + (b or 0)

    u1, u2 = first.usage, second.usage
    second.usage = Usage(
        add(u1.prompt_tokens, u2.prompt_tokens),
        add(u1.completion_tokens, u2.completion_tokens),
        u1.estimated or u2.estimated,
    )
    second.cost = add(first.cost, second.cost)
    second.latency_s = add(first.latency_s, second.latency_s)
    second.retries = first.retries + second.retries
    return second


def check_answer(schema: Schema, result: Result) -> Result:
    """Set ``result.data``; ``SchemaError`` (with ``.result``) when the answer fails."""
    try:
        result.data = schema.parse(result.text)
    except SchemaError as exc:
        exc.result = result
        exc.endpoint = exc.endpoint or result.endpoint
        exc.args = (exc._format(),)
        raise
    return result


# ---- typed columns ------------------------------------------------------------------------


def column_names(schema: Schema, prefix: str) -> dict[str, str]:
    """Field -> result column name."""
    return {f: f"{prefix}{f}" for f in schema.fields}


def expand_frame(df: pd.DataFrame, schema: Schema, prefix: str) -> None:
    """Parse each answered row's ``output`` into one typed column per top-level field (in
    place); a row whose answer fails gets ``error`` ``"schema: <detail>"`` and NA fields.

    Dtypes: integer -> Int64, number -> Float64, boolean -> boolean, string -> string, arrays
    and objects -> object columns holding Python lists / dicts."""
    import pandas as pd

    names = column_names(schema, prefix)
    values: dict[str, list[Any]] = {f: [None] * len(df) for f in names}
    errors = df["error"].tolist()
    outputs = df["output"].tolist()
    for i, (err, text) in enumerate(zip(errors, outputs, strict=True)):
        if err:
            continue
        try:
            data = schema.parse(text)
        except SchemaError as exc:
            errors[i] = f"schema: {exc.detail}"
            continue
        if isinstance(data, dict):
            for f in names:
                values[f][i] = data.get(f)
    df["error"] = pd.array(errors, dtype="string")
    for f, col in names.items():
        dtype = schema.fields[f]
        if dtype == "object":
            arr: Any = pd.Series(values[f], dtype=object).array
        elif dtype == "Float64":
            arr = pd.array([None if v is None else float(v) for v in values[f]], dtype="Float64")
        elif dtype == "Int64":
            arr = pd.array([None if v is None else int(v) for v in values[f]], dtype="Int64")
        elif dtype == "string":
            arr = pd.array([None if v is None else str(v) for v in values[f]], dtype="string")
        else:
            arr = pd.array(values[f], dtype=dtype)
        df[col] = arr


def check_prefix(schema: Schema, prefix: str, taken: Sequence[str]) -> None:
    """``UsageError`` when a field column would replace a column already there."""
    clash = sorted(c for c in column_names(schema, prefix).values() if c in set(taken))
    if clash:
        raise UsageError(
            f"schema column(s) {clash} would replace column(s) already there",
            field="schema_prefix",
            hint="choose another schema_prefix=, e.g. schema_prefix='llm_'",
        )
