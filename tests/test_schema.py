"""Structured outputs: schema normalisation, parsing, placement, complete/evaluate, %%llm, scorers."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import enum
import json
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import pandas as pd
import pydantic
import pytest

import nbllm
from nbllm import Endpoint, SchemaError, UsageError, scorers
from nbllm._core.schema import as_schema, extract_json, gemini_schema, resolve_format
from nbllm._server.demo_replies import schema_answer

REVIEW = {"sentiment": Literal["positive", "negative", "neutral"], "confidence": float, "topics": list[str]}


class Review(pydantic.BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    confidence: float
    topics: list[str]


@dataclasses.dataclass
class Product:
    name: str
    price: float
    stock: int
    on_sale: bool
    tags: list[str]
    note: str | None


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@pytest.fixture()
def ep(demo: nbllm.DemoServer) -> Endpoint:
    return Endpoint(name="demo", url=demo.url)


def last_body(server: nbllm.DemoServer) -> dict[str, Any]:
    body: dict[str, Any] = server.requests[-1]["json"]
    return body


# ---- normalising each form of S -----------------------------------------------------------------


def test_mapping_becomes_a_closed_json_schema_with_typed_fields() -> None:
    s = as_schema({**REVIEW, "stars": int, "ok": bool, "color": Color, "extra": dict})
    assert s.json["type"] == "object"
    assert s.json["required"] == ["sentiment", "confidence", "topics", "stars", "ok", "color", "extra"]
    assert s.json["additionalProperties"] is False
    props = s.json["properties"]
    assert props["sentiment"] == {"type": "string", "enum": ["positive", "negative", "neutral"]}
    assert props["topics"] == {"type": "array", "items": {"type": "string"}}
    assert props["color"] == {"type": "string", "enum": ["red", "blue"]}
    assert s.fields == {
        "sentiment": "string",
        "confidence": "Float64",
        "topics": "object",
        "stars": "Int64",
        "ok": "boolean",
        "color": "string",
        "extra": "object",
    }


def test_dataclass_fields_and_optional_types() -> None:
    s = as_schema(Product)
    assert s.name == "Product"
    assert s.json["properties"]["note"] == {"type": ["string", "null"]}
    assert s.fields == {
        "name": "string",
        "price": "Float64",
        "stock": "Int64",
        "on_sale": "boolean",
        "tags": "object",
        "note": "string",
    }
    data = s.parse('{"name":"a","price":1,"stock":2,"on_sale":true,"tags":[],"note":null}')
    assert data["note"] is None


def test_pydantic_model_uses_its_own_schema_and_validator() -> None:
    s = as_schema(Review)
    assert s.validator == "pydantic" and s.name == "Review"
    assert s.json == Review.model_json_schema()
    assert s.fields["confidence"] == "Float64" and s.fields["topics"] == "object"
    assert s.parse('{"sentiment":"positive","confidence":1,"topics":["x"]}') == {
        "sentiment": "positive",
        "confidence": 1.0,  # pydantic's coercion is kept
        "topics": ["x"],
    }
    with pytest.raises(SchemaError) as info:
        s.parse('{"sentiment":"positive","confidence":"high","topics":[]}')
    assert info.value.detail.startswith("field 'confidence': ") and "'high'" in info.value.detail


def test_json_schema_dict_is_kept_as_given() -> None:
    js = {"type": "object", "title": "Thing", "properties": {"n": {"type": "integer", "minimum": 0}}}
    s = as_schema(js)
    assert s.json is js or s.json == js
    assert s.name == "Thing" and s.fields == {"n": "Int64"} and s.validator == "jsonschema"
    with pytest.raises(SchemaError, match="minimum"):
        s.parse('{"n": -1}')


def test_a_column_named_type_is_a_mapping_not_a_json_schema() -> None:
    s = as_schema({"type": str, "weight": float})
    assert s.fields == {"type": "string", "weight": "Float64"}
    assert s.json["properties"]["type"] == {"type": "string"}


def test_an_invalid_json_schema_is_refused_up_front() -> None:
    with pytest.raises(UsageError) as info:
        as_schema({"type": "object", "properties": {"n": {"type": "integr"}}})
    assert info.value.field == "schema" and "not a valid JSON Schema" in str(info.value)
    assert "properties/n/type" in str(info.value)


@pytest.mark.parametrize(
    "bad",
    [42, "a string", {}, {"x": object}, {"": int}, [("a", int)], {"sentiment": "string"}],
    ids=lambda v: repr(v)[:20],
)
def test_bad_schema_arguments_are_usage_errors_naming_schema(bad: Any) -> None:
    with pytest.raises(UsageError) as info:
        as_schema(bad)
    assert info.value.field == "schema"


# ---- parsing and validation errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '  \n{"a": 1}\n',
        'Sure! Here it is:\n```json\n{"a": 1}\n```\nAnything else?',
        '```\n{"a": 1}\n```',
        'The answer is {"a": 1} as requested.',
        'Note {not json} then {"a": 1}',
    ],
)
def test_extract_json_tolerates_fences_and_prose(text: str) -> None:
    assert extract_json(text) == {"a": 1}


def test_no_json_at_all_is_a_schema_error_showing_the_answer() -> None:
    with pytest.raises(SchemaError) as info:
        as_schema({"a": int}).parse("I cannot answer that.")
    assert info.value.detail == "answer: expected a JSON object, got 'I cannot answer that.'"
    assert info.value.raw == "I cannot answer that."


@pytest.mark.parametrize("builtin", [False, True], ids=["jsonschema", "builtin"])
@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (
            {"sentiment": "positive", "confidence": "high", "topics": []},
            "field 'confidence': expected number, got 'high'",
        ),
        ({"sentiment": "positive", "topics": []}, "field 'confidence': missing (required)"),
        (
            {"sentiment": "great", "confidence": 1, "topics": []},
            'field \'sentiment\': expected one of ["positive", "negative", "neutral"], got \'great\'',
        ),
        (
            {"sentiment": "positive", "confidence": 1, "topics": ["a", 2]},
            "field 'topics[1]': expected string, got 2",
        ),
        ({"sentiment": "positive", "confidence": True, "topics": []}, "field 'confidence': expected number"),
    ],
)
def test_validation_errors_name_field_expected_and_got(
    answer: dict[str, Any], detail: str, builtin: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if builtin:
        _hide_jsonschema(monkeypatch)
    s = as_schema(REVIEW)
    assert s.validator == ("builtin" if builtin else "jsonschema")
    with pytest.raises(SchemaError) as info:
        s.parse(json.dumps(answer))
    assert info.value.detail.startswith(detail)
    assert str(info.value).startswith(f"schema: {detail}")


def _hide_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    real = builtins.__import__

    def fake(name: str, *args: Any, **kw: Any) -> Any:
        if name == "jsonschema" or name.startswith("jsonschema."):
            raise ImportError("No module named 'jsonschema'")
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_without_jsonschema_a_schema_beyond_the_builtin_subset_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _hide_jsonschema(monkeypatch)
    with pytest.raises(UsageError) as info:
        as_schema({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}})
    assert "minimum" in str(info.value) and "pip install jsonschema" in str(info.value)
    # the subset the mapping form produces works without it
    assert (
        as_schema(REVIEW).parse('{"sentiment":"neutral","confidence":0.5,"topics":[]}')["confidence"] == 0.5
    )


# ---- placement per schema_format (exact bodies) ---------------------------------------------


def _body(ep: Endpoint, schema: Any = REVIEW, answer: str = '{"sentiment":"positive"}') -> dict[str, Any]:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"choices": [{"message": {"content": answer}}]})

    # only the request matters here: what comes back may not fit the endpoint's shape
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        contextlib.suppress(nbllm.NbllmError),
    ):
        nbllm.complete(ep, "Rate: great phone", client=client, schema=schema)
    return seen[0]


def test_openai_format_sends_response_format_json_schema_strict() -> None:
    body = _body(Endpoint(name="o", url="http://127.0.0.1:9/v1"))
    s = as_schema(REVIEW)
    assert body == {
        "model": "o",
        "messages": [{"role": "user", "content": "Rate: great phone"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": s.json, "strict": True},
        },
    }


def test_openai_strict_is_off_for_a_schema_strict_mode_would_refuse() -> None:
    body = _body(Endpoint(name="o", url="http://127.0.0.1:9/v1"), schema=Review)
    spec = body["response_format"]["json_schema"]
    assert spec["name"] == "Review" and spec["strict"] is False  # pydantic leaves objects open


def test_ollama_format_sends_format() -> None:
    ep = Endpoint(name="ol", url="http://127.0.0.1:9/api/chat", model="llama3")
    body = _body(ep)
    assert body["format"] == as_schema(REVIEW).json
    assert "response_format" not in body and body["stream"] is False


def test_gemini_format_sends_response_schema_in_its_openapi_subset() -> None:
    ep = Endpoint(
        name="g",
        url="http://127.0.0.1:9/v1beta/models/gemini:generateContent",
        body_template={"contents": [{"role": "user", "parts": [{"text": "{prompt}"}]}]},
        response_path="$.candidates[0].content.parts[0].text",
    )
    assert resolve_format(ep) == "gemini"
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"candidates": [{"content": {"parts": [{"text": "{}"}]}}]})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client, pytest.raises(SchemaError):
        nbllm.complete(ep, "hi", client=client, schema=Product)
    gc = seen[0]["generationConfig"]
    assert gc["responseMimeType"] == "application/json"
    schema = gc["responseSchema"]
    assert "additionalProperties" not in schema and "title" in schema
    assert schema["properties"]["note"] == {"type": "string", "nullable": True}
    assert gemini_schema({"$schema": "x", "type": "object", "additionalProperties": False}) == {
        "type": "object"
    }


def test_prompt_format_states_the_schema_in_the_last_user_turn() -> None:
    ep = Endpoint(name="p", url="http://127.0.0.1:9/v1", schema_format="prompt")
    body = _body(ep)
    assert "response_format" not in body
    assert body["messages"] == [
        {
            "role": "user",
            "content": "Rate: great phone\n\nAnswer with only a JSON object (no prose, no code fence) "
            "matching this JSON Schema:\n" + json.dumps(as_schema(REVIEW).json),
        }
    ]


class JsonBot(nbllm.Handler):
    """Answers the schema's shape when asked with response_format, else echoes what it got."""

    def completion(self, messages: list[dict[str, Any]], **params: Any) -> Any:
        if "response_format" in params:
            return '{"n": 7}'
        return messages[-1]["content"]


def test_handlers_get_the_schema_in_the_prompt_or_as_response_format(monkeypatch: pytest.MonkeyPatch) -> None:
    from nbllm._io import providers as _providers

    monkeypatch.setattr(_providers, "_PROVIDERS", dict(_providers._PROVIDERS))  # undone after the test
    nbllm.register_provider("jsonbot", JsonBot)
    with pytest.raises(SchemaError) as info:  # by default: stated in the prompt (echoed back here)
        nbllm.complete("jsonbot/m", "count", schema={"n": int})
    assert info.value.raw.startswith("count\n\nAnswer with only a JSON object")
    ep = Endpoint(name="jb", handler="jsonbot", schema_format="openai")
    assert nbllm.complete(ep, "count", schema={"n": int}).data == {"n": 7}


def test_schema_format_defaults_by_dialect_and_is_validated() -> None:
    assert resolve_format(Endpoint(name="a", url="http://h/v1")) == "openai"
    assert resolve_format(Endpoint(name="b", url="http://h/api/chat")) == "ollama"
    assert resolve_format(
        Endpoint(name="c", url="http://h/generate", body_template={"inputs": "{prompt}"})
    ) == ("prompt")
    assert resolve_format(Endpoint(name="d", url="http://h/v1", schema_format="ollama")) == "ollama"
    assert Endpoint(name="e", url="http://h/v1", schema_format="").schema_format is None
    with pytest.raises(nbllm.ConfigError) as info:
        Endpoint(name="f", url="http://h/v1", schema_format="xml")
    assert info.value.field == "schema_format" and "openai, ollama, gemini, prompt" in str(info.value)


# ---- complete / stream against the demo server ------------------------------------------------


def test_complete_with_schema_gives_data(ep: Endpoint, demo: nbllm.DemoServer) -> None:
    r = nbllm.complete(ep, "Great battery but a dim screen", schema=REVIEW)
    assert r.data == json.loads(r.text)
    assert r.data["sentiment"] in ("positive", "negative", "neutral")
    assert isinstance(r.data["confidence"], float) and r.data["topics"]
    assert last_body(demo)["response_format"]["type"] == "json_schema"
    assert nbllm.complete(ep, "Great battery but a dim screen").data is None  # no schema, no data


def test_fenced_answer_is_parsed(ep: Endpoint) -> None:
    r = nbllm.complete(ep, "Great battery [[schema:fence]]", schema=REVIEW)
    assert r.text.startswith("Here is the JSON") and "```json" in r.text
    assert set(r.data) == {"sentiment", "confidence", "topics"}


def test_invalid_answer_raises_schema_error_with_the_raw_text(ep: Endpoint) -> None:
    with pytest.raises(SchemaError) as info:
        nbllm.complete(ep, "Great battery [[schema:break]]", schema=REVIEW)
    exc = info.value
    assert exc.detail.startswith("field 'sentiment': expected string, got [\"wrong\"]")
    assert exc.endpoint == "demo" and exc.result is not None and exc.raw == exc.result.text
    assert "repair=1" in str(exc)


def test_repair_reasks_once_with_the_validation_error(ep: Endpoint, demo: nbllm.DemoServer) -> None:
    before = demo.request_count  # the log keeps the last 100 requests of the shared server
    r = nbllm.complete(ep, "Great battery [[schema:break]]", schema=REVIEW, repair=1)
    assert demo.request_count == before + 2
    messages = last_body(demo)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "field 'sentiment': expected string" in messages[-1]["content"]
    assert r.data is not None and r.data["sentiment"] in ("positive", "negative", "neutral")
    first = demo.requests[-2]["json"]
    assert r.usage.prompt_tokens is not None and r.usage.prompt_tokens > len(
        first["messages"][0]["content"].split()
    )


def test_acomplete_and_astream_with_schema(ep: Endpoint) -> None:
    import asyncio

    async def go() -> tuple[nbllm.Result, nbllm.Result]:
        a = await nbllm.acomplete(ep, "async review", schema=Review)
        async with nbllm.astream(ep, "streamed review", schema=REVIEW) as s:
            text = "".join([d async for d in s])
        assert s.result is not None and text == s.result.text
        return a, s.result

    a, b = asyncio.run(go())
    assert a.data is not None and set(a.data) == {"sentiment", "confidence", "topics"}
    assert b.data == json.loads(b.text)


def test_stream_with_schema_parses_at_the_end(ep: Endpoint) -> None:
    with nbllm.stream(ep, "stream a review please", schema=REVIEW) as s:
        pieces = list(s)
    assert len(pieces) > 1 and s.result is not None and s.result.data == json.loads("".join(pieces))
    with pytest.raises(SchemaError), nbllm.stream(ep, "x [[schema:break]]", schema=REVIEW) as s2:
        list(s2)
    assert s2.result is not None and s2.result.text  # the raw text is kept


def test_repair_needs_a_schema(ep: Endpoint) -> None:
    with pytest.raises(UsageError, match="repair= needs schema="):
        nbllm.complete(ep, "hi", repair=1)


def test_demo_schema_answers_are_deterministic_and_follow_the_schema() -> None:
    s = as_schema(Product)
    a, b = schema_answer(s.json, "same prompt"), schema_answer(s.json, "same prompt")
    assert a == b
    s.parse(a)
    assert "```json" in schema_answer(s.json, "x", "fence")
    with pytest.raises(SchemaError):
        s.parse(schema_answer(s.json, "x", "break"))


def test_demo_honours_ollama_format(demo: nbllm.DemoServer) -> None:
    ep = Endpoint(name="ol", url=demo.base_url + "/api/chat", model="m")
    r = nbllm.complete(ep, "an ollama review", schema=REVIEW)
    assert last_body(demo)["format"]["type"] == "object" and r.data is not None


# ---- evaluate: typed columns, failure rows, repair ----------------------------------------------


def test_evaluate_expands_typed_columns(ep: Endpoint) -> None:
    schema = {**REVIEW, "stars": int, "recommend": bool}
    cases = ["Great battery", "Bad screen [[schema:break]]", "Fine overall [[schema:fence]]"]
    df = nbllm.evaluate(cases, ep, schema=schema, cache=False, progress=False)
    assert str(df["out_sentiment"].dtype) == "string"
    assert str(df["out_confidence"].dtype) == "Float64"
    assert str(df["out_stars"].dtype) == "Int64"
    assert str(df["out_recommend"].dtype) == "boolean"
    assert df["out_topics"].dtype == object
    ok, broken, fenced = df.iloc[0], df.iloc[1], df.iloc[2]
    assert ok["error"] == "" and isinstance(ok["out_topics"], list) and ok["out_topics"]
    assert broken["error"].startswith("schema: field 'sentiment': expected string, got [\"wrong\"]")
    assert '"sentiment": ["wrong"]' in broken["output"]  # the raw answer is kept
    assert pd.isna(broken["out_confidence"]) and pd.isna(broken["out_sentiment"])
    assert fenced["error"] == "" and fenced["out_sentiment"] in ("positive", "negative", "neutral")


def test_evaluate_repair_fixes_the_broken_row(ep: Endpoint, demo: nbllm.DemoServer) -> None:
    before = demo.request_count
    df = nbllm.evaluate(
        ["Bad screen [[schema:break]]"], ep, schema=REVIEW, repair=1, cache=False, progress=False
    )
    assert demo.request_count == before + 2
    assert "expected string" in last_body(demo)["messages"][-1]["content"]
    assert df.loc[0, "error"] == "" and df.loc[0, "out_sentiment"] in ("positive", "negative", "neutral")


def test_evaluate_schema_prefix_and_clash(ep: Endpoint) -> None:
    df = nbllm.evaluate(["a b c"], ep, schema={"n": int}, schema_prefix="llm_", cache=False, progress=False)
    assert str(df["llm_n"].dtype) == "Int64"
    with pytest.raises(UsageError) as info:
        nbllm.evaluate([{"input": "x", "out_n": 1}], ep, schema={"n": int}, cache=False, progress=False)
    assert info.value.field == "schema_prefix" and "out_n" in str(info.value)


def test_evaluate_cache_keeps_structured_answers_apart(ep: Endpoint, tmp_path: Any) -> None:
    plain = nbllm.evaluate(["cached one"], ep, cache=tmp_path / "c", progress=False)
    typed = nbllm.evaluate(["cached one"], ep, schema={"n": int}, cache=tmp_path / "c", progress=False)
    again = nbllm.evaluate(["cached one"], ep, schema={"n": int}, cache=tmp_path / "c", progress=False)
    assert not bool(typed.loc[0, "cached"]) and bool(again.loc[0, "cached"])
    assert plain.loc[0, "output"] != typed.loc[0, "output"]
    assert again.loc[0, "out_n"] == typed.loc[0, "out_n"]


# ---- scorers ------------------------------------------------------------------------------------


def test_schema_valid_and_field_match_scorers(ep: Endpoint) -> None:
    cases = pd.DataFrame(
        {
            "input": ["Great battery", "Bad screen [[schema:break]]"],
            "sentiment": ["positive", "negative"],
            "confidence": [0.5, 0.5],
        }
    )
    df = nbllm.evaluate(
        cases,
        ep,
        schema=REVIEW,
        cache=False,
        progress=False,
        scorers=[
            scorers.schema_valid,
            scorers.field_match("sentiment"),
            scorers.field_match("confidence", tol=1.0, name="conf_close"),
            scorers.field_match("confidence", tol=0.0, name="conf_exact"),
        ],
    )
    assert df["score_schema_valid"].tolist() == [1.0, 0.0]
    row = df.iloc[0]
    assert row["score_sentiment_match"] == float(row["out_sentiment"] == "positive")
    assert row["score_conf_close"] == 1.0  # any confidence in [0, 1) is within 1.0 of 0.5
    assert row["score_conf_exact"] == float(row["out_confidence"] == 0.5)
    assert pd.isna(df.iloc[1]["score_sentiment_match"])  # a failed answer has no fields to score


def test_field_match_lists_and_missing_expected() -> None:
    sc = scorers.field_match("topics", "want")
    assert sc("", None, {"out_topics": ["a", "b"], "want": '["a", "b"]'}) == 1.0
    assert sc("", None, {"out_topics": ["a"], "want": ["a", "b"]}) == 0.0
    assert pd.isna(sc("", None, {"out_topics": ["a"], "want": None}))
    assert sc("", None, {"out_topics": None, "want": ["a"]}) == 0.0


def test_schema_valid_with_its_own_schema_parses_the_output() -> None:
    sc = scorers.schema_valid(schema={"n": int})
    assert sc('{"n": 1}') == 1.0 and sc('{"n": "x"}') == 0.0 and sc("nope") == 0.0


# ---- %%llm --schema --------------------------------------------------------------------------


@pytest.fixture()
def shell(demo: nbllm.DemoServer) -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.testing.globalipapp import get_ipython

    ip = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    ip.run_line_magic("load_ext", "nbllm")
    m = ip.magics_manager.registry["LLMMagics"]
    m.output = "text"
    nbllm.registry().add(Endpoint(name="demo", url=demo.url), default=True)
    yield ip
    m.output = "auto"
    for name in ("Review", "rv", "_llm_result", "_llm_results"):
        ip.user_ns.pop(name, None)


def test_llm_magic_schema_from_namespace_shows_parsed_json(
    shell: Any, demo: nbllm.DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns["Review"] = Review
    res = shell.run_cell("%%llm --schema Review -o rv\nGreat battery, dim screen")
    assert res.error_in_exec is None, res.error_in_exec
    rv = shell.user_ns["rv"]
    assert isinstance(rv, nbllm.Result) and rv.data == json.loads(rv.text)
    out = capsys.readouterr().out
    assert json.dumps(rv.data, indent=2) in out  # pretty JSON under the streamed text
    assert last_body(demo)["response_format"]["json_schema"]["name"] == "Review"


def test_llm_magic_inline_json_schema_and_bad_names(shell: Any, demo: nbllm.DemoServer) -> None:
    res = shell.run_cell(
        '%%llm --no-stream --schema \'{"type":"object","properties":{"n":{"type":"integer"}}}\' -o rv\ncount'
    )
    assert res.error_in_exec is None, res.error_in_exec
    assert set(shell.user_ns["rv"].data) == {"n"}
    assert last_body(demo)["response_format"]["json_schema"]["schema"]["properties"] == {
        "n": {"type": "integer"}
    }
    res = shell.run_cell("%%llm --schema NoSuchThing\nhi")
    assert "does not name a schema object" in str(res.error_in_exec)
    shell.user_ns["Review"] = Review
    res = shell.run_cell("%%llm --schema Review\nx [[schema:break]]")
    assert isinstance(res.error_in_exec, SchemaError) or "schema:" in str(res.error_in_exec)


def test_llm_eval_magic_schema_and_repair(shell: Any) -> None:
    shell.user_ns["Review"] = Review
    shell.user_ns["rv_cases"] = ["Great battery", "Dim screen [[schema:break]]"]
    res = shell.run_cell("%%llm_eval rv_cases -m demo --schema Review -q --no-cache -o rv\n{input}")
    assert res.error_in_exec is None, res.error_in_exec
    df = shell.user_ns["rv"]
    assert str(df["out_confidence"].dtype) == "Float64"
    assert df["error"].tolist()[0] == "" and df["error"].tolist()[1].startswith("schema: field 'sentiment'")
    res = shell.run_cell(
        "%%llm_eval rv_cases -m demo --schema Review --repair 1 -q --no-cache -o rv\n{input}"
    )
    assert res.error_in_exec is None, res.error_in_exec
    assert shell.user_ns["rv"]["error"].tolist() == ["", ""]
    shell.user_ns.pop("rv_cases", None)


def test_llm_magic_schema_rich_shows_a_json_block(shell: Any) -> None:
    from IPython.utils.capture import capture_output

    shell.magics_manager.registry["LLMMagics"].output = "rich"
    with capture_output() as cap:
        res = shell.run_cell(
            '%%llm --schema \'{"type": "object", "properties": {"n": {"type": "integer"}}}\'\nhi'
        )
    assert res.error_in_exec is None, res.error_in_exec
    data = shell.user_ns["_llm_result"].data
    blocks = [o.data.get("text/markdown", "") for o in cap.outputs]
    assert f"```json\n{json.dumps(data, indent=2)}\n```" in blocks
