"""Request templating for non-OpenAI APIs (issue 10): exact bodies and the renderer's rules.

``PRESETS`` are Endpoint configurations made of data only, one per real API shape; the same
dicts run end to end against the strict fakes in tests/test_provider_shapes.py. Here each is
called through ``httpx.MockTransport`` and the exact JSON body it sends is asserted.
The hypothesis tests prove the renderer's one rule (docs/formats.md): a missing value removes
its section, else its string and the key/item holding it, cascading through emptied containers,
and an inserted value is never read as a template.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nbllm
from nbllm import ConfigError, Endpoint
from nbllm._core.request import MISSING, _render, build_request, compile_text, normalize_messages

# ---- the presets: any endpoint by configuration alone ---------------------------------------

#: a transcript for chat over prompt-only APIs (TGI /generate, llama.cpp /completion, Ollama /api/generate)
TRANSCRIPT = {
    "system": "{content}\n\n",
    "user": "User: {content}\n",
    "assistant": "Assistant: {content}\n",
    "cue": "Assistant:",
}


def presets(base: str) -> dict[str, dict[str, Any]]:
    """Endpoint fields per API shape, for a server at ``base``."""
    return {
        "anthropic": {
            "url": f"{base}/v1/messages",
            "model": "claude-x",
            "auth_header": "x-api-key",
            "auth_scheme": "",
            "headers": {"anthropic-version": "2023-06-01"},
            "params": {"max_tokens": 64},
            "body_template": {
                "model": "{model}",
                "max_tokens": "{max_tokens}",
                "system": "{system}",
                "messages": "{turns}",
                "temperature": "{temperature}",
                "top_p": "{top_p}",
                "stop_sequences": "{stop}",
                "stream": "{stream}",
            },
            "response_path": "$.content[0].text",
            "stream_path": "$.delta.text",
            "usage_prompt_path": "$.usage.input_tokens",
            "usage_completion_path": "$.usage.output_tokens",
            "finish_reason_path": "$.stop_reason",
        },
        "responses": {
            "url": f"{base}/v1/responses",
            "model": "gpt-x",
            "body_template": {
                "model": "{model}",
                "instructions": "{system}",
                "input": "{turns}",
                "max_output_tokens": "{max_tokens}",
                "temperature": "{temperature}",
                "top_p": "{top_p}",
                "stream": "{stream}",
            },
            "response_path": "$.output[0].content[0].text",
            "stream_path": "$.delta",
            "usage_prompt_path": "$.usage.input_tokens",
            "usage_completion_path": "$.usage.output_tokens",
        },
        "gemini": {
            "url": f"{base}/v1beta/models/gemini-x:generateContent",
            "auth_header": "x-goog-api-key",
            "auth_scheme": "",
            "role_map": {"assistant": "model"},
            "message_template": {"role": "{role}", "parts": [{"text": "{content}"}]},
            "body_template": {
                "contents": "{turns}",
                "systemInstruction": {"parts": [{"text": "{system}"}]},
                "generationConfig": {
                    "maxOutputTokens": "{max_tokens}",
                    "temperature": "{temperature}",
                    "topP": "{top_p}",
                    "stopSequences": "{stop}",
                    "seed": "{seed}",
                },
            },
            "response_path": "$.candidates[0].content.parts[0].text",
            "usage_prompt_path": "$.usageMetadata.promptTokenCount",
            "usage_completion_path": "$.usageMetadata.candidatesTokenCount",
            "finish_reason_path": "$.candidates[0].finishReason",
        },
        "cohere": {
            "url": f"{base}/v2/chat",
            "model": "command-x",
            "param_map": {"top_p": "p", "stop": "stop_sequences"},
            "response_path": "$.message.content[0].text",
            "stream_path": "$.delta.message.content.text",
            "usage_prompt_path": "$.usage.billed_units.input_tokens",
            "usage_completion_path": "$.usage.billed_units.output_tokens",
            "finish_reason_path": "$.finish_reason",
        },
        "ollama": {"url": f"{base}/api/chat", "model": "llama3.2"},
        "ollama-generate": {
            "url": f"{base}/api/generate",
            "model": "llama3.2",
            "transcript": TRANSCRIPT,
            "body_fields": {"raw": True},  # the transcript is the whole prompt: no model template
        },
        "tgi": {
            "url": f"{base}/generate",
            "transcript": TRANSCRIPT,
            "param_map": {"max_tokens": "max_new_tokens"},
            "body_template": {"inputs": "{prompt}", "parameters": "{params}"},
            "response_path": "$.generated_text",
        },
        "llamacpp": {
            "url": f"{base}/completion",
            "transcript": TRANSCRIPT,
            "body_template": {  # llama-server reads only the fields it knows: no "model"
                "prompt": "{prompt}",
                "n_predict": "{max_tokens}",
                "temperature": "{temperature}",
                "top_p": "{top_p}",
                "stop": "{stop}",
                "seed": "{seed}",
                "stream": "{stream}",
            },
            "response_path": "$.content",
            "stream_path": "$.content",
            "usage_prompt_path": "$.tokens_evaluated",
            "usage_completion_path": "$.tokens_predicted",
            "finish_reason_path": "$.stop_type",
        },
    }


def preset(shape: str, base: str = "http://h", **extra: Any) -> Endpoint:
    return Endpoint.from_dict({"name": shape, **presets(base)[shape], **extra})


CHAT = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "2+2?"},
]

# a reply each API would give (read by the preset's response_path), for MockTransport
REPLIES: dict[str, Any] = {
    "anthropic": {"content": [{"type": "text", "text": "4"}], "stop_reason": "end_turn", "usage": {}},
    "responses": {"output": [{"content": [{"type": "output_text", "text": "4"}]}]},
    "gemini": {"candidates": [{"content": {"parts": [{"text": "4"}]}}]},
    "cohere": {"message": {"content": [{"text": "4"}]}},
    "ollama": {"message": {"content": "4"}, "done": True},
    "ollama-generate": {"response": "4", "done": True},
    "tgi": {"generated_text": "4"},
    "llamacpp": {"content": "4"},
}

USER = {"role": "user", "content": "hi"}
ASSISTANT = {"role": "assistant", "content": "hello"}
QUESTION = {"role": "user", "content": "2+2?"}
TURNS_TEXT = "S\n\nUser: hi\nAssistant: hello\nUser: 2+2?\nAssistant:"

# (shape, params, exact body) for CHAT with system prompt "S"
BODIES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "anthropic",
        {"temperature": 0.5},
        {
            "model": "claude-x",
            "max_tokens": 64,
            "system": "S",
            "messages": [USER, ASSISTANT, QUESTION],
            "temperature": 0.5,
            "stream": False,
        },
    ),
    (
        "responses",
        {"max_tokens": 32},
        {
            "model": "gpt-x",
            "instructions": "S",
            "input": [USER, ASSISTANT, QUESTION],
            "max_output_tokens": 32,
            "stream": False,
        },
    ),
    (
        "gemini",
        {"max_tokens": 32, "temperature": 0.1},
        {
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"text": "hello"}]},
                {"role": "user", "parts": [{"text": "2+2?"}]},
            ],
            "systemInstruction": {"parts": [{"text": "S"}]},
            "generationConfig": {"maxOutputTokens": 32, "temperature": 0.1},
        },
    ),
    (
        "cohere",
        {"top_p": 0.9, "stop": ["x"]},
        {
            "model": "command-x",
            "messages": [{"role": "system", "content": "S"}, USER, ASSISTANT, QUESTION],
            "p": 0.9,
            "stop_sequences": ["x"],
        },
    ),
    (
        "ollama",
        {"max_tokens": 5, "temperature": 0.2, "stop": ["\n"], "top_p": 0.5, "seed": 7},
        {
            "model": "llama3.2",
            "messages": [{"role": "system", "content": "S"}, USER, ASSISTANT, QUESTION],
            "stream": False,
            "options": {"num_predict": 5, "temperature": 0.2, "stop": ["\n"], "top_p": 0.5, "seed": 7},
        },
    ),
    (
        "ollama-generate",
        {"max_tokens": 5},
        {
            "model": "llama3.2",
            "prompt": TURNS_TEXT,
            "stream": False,
            "raw": True,
            "options": {"num_predict": 5},
        },
    ),
    ("tgi", {"max_tokens": 9}, {"inputs": TURNS_TEXT, "parameters": {"max_new_tokens": 9}}),
    ("llamacpp", {"max_tokens": 9}, {"prompt": TURNS_TEXT, "n_predict": 9, "stream": False}),
]


def sent_body(ep: Endpoint, prompt: Any, *, system: str | None = None, **params: Any) -> dict[str, Any]:
    """Call ``ep`` through MockTransport; the JSON body it sent."""
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=REPLIES[ep.name])

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        result = nbllm.complete(ep, prompt, system=system, client=client, **params)
    assert result.text == "4"
    assert len(seen) == 1 and str(seen[0].url) == ep.request_url
    body: dict[str, Any] = json.loads(seen[0].content)
    return body


@pytest.mark.parametrize(("shape", "params", "expected"), BODIES, ids=[b[0] for b in BODIES])
def test_exact_body_with_system_and_multi_turn(shape: str, params: dict[str, Any], expected: Any) -> None:
    assert sent_body(preset(shape), CHAT, system="S", **params) == expected


def test_missing_system_and_params_remove_whole_parts() -> None:
    """No system prompt, no max_tokens: Gemini gets no systemInstruction / generationConfig at all
    (an empty part is a 400 there), Anthropic no "system", the Responses API no "instructions"."""
    gemini = sent_body(preset("gemini"), "hi")
    assert gemini == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    anthropic = sent_body(preset("anthropic", params={}), "hi", max_tokens=10)
    assert anthropic == {"model": "claude-x", "max_tokens": 10, "messages": [USER], "stream": False}
    responses = sent_body(preset("responses"), "hi")
    assert responses == {"model": "gpt-x", "input": [USER], "stream": False}
    tgi = sent_body(preset("tgi"), "hi")
    assert tgi == {"inputs": "User: hi\nAssistant:"}  # no params: no "parameters" either


def test_messages_placeholder_keeps_the_system_turn() -> None:
    ep = Endpoint(name="x", url="http://h/run", body_template={"m": "{messages}", "t": "{turns}"})
    spec = build_request(ep, normalize_messages("q", system="S"), {}, stream=False, api_key=None)
    assert spec.json == {
        "m": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
        "t": [{"role": "user", "content": "q"}],
    }


def test_role_map_without_a_template_maps_values_and_keeps_key_renames() -> None:
    ep = Endpoint(
        name="x",
        url="http://h/v1",
        role_map={"user": "human", "assistant": "bot"},
        message_keys={"content": "text"},
    )
    spec = build_request(ep, CHAT, {}, stream=False, api_key=None)
    assert spec.json["messages"] == [
        {"role": "human", "text": "hi"},
        {"role": "bot", "text": "hello"},
        {"role": "human", "text": "2+2?"},
    ]


# ---- stream_options: only on OpenAI-shaped routes, or when configured -----------------------


def stream_body(ep: Endpoint) -> dict[str, Any]:
    spec = build_request(ep, normalize_messages("hi"), {}, stream=True, api_key=None)
    return dict(spec.json)


@pytest.mark.parametrize(
    ("url", "stream_usage", "sent"),
    [
        ("http://h/v1", None, True),  # completed to /v1/chat/completions
        ("http://h/v1/chat/completions", None, True),
        ("http://h/v1/completions", None, True),
        ("http://h/openai/deployments/d/chat/completions?api-version=2024-10-21", None, True),
        ("http://h/v2/chat", None, False),  # Cohere v2: 422 unknown field
        ("http://h/completion", None, False),  # llama.cpp
        ("http://h/api/chat", None, False),  # Ollama
        ("http://h/v2/chat", True, True),  # configured: honoured anywhere
        ("http://h/v1", False, False),
    ],
)
def test_stream_options_only_where_it_belongs(url: str, stream_usage: bool | None, sent: bool) -> None:
    body = stream_body(Endpoint(name="x", url=url, stream_usage=stream_usage))
    assert body["stream"] is True
    assert ("stream_options" in body) is sent
    if sent:
        assert body["stream_options"] == {"include_usage": True}


def test_cohere_stream_through_mock_transport_has_no_stream_options() -> None:
    seen: list[dict[str, Any]] = []
    events = (
        b'event: content-delta\ndata: {"type":"content-delta","delta":{"message":{"content":{"text":"4"}}}}\n\n'
        b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"COMPLETE"}}\n\n'
    )

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(json.loads(req.content))
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events)

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        nbllm.stream(preset("cohere"), "hi", client=client) as s,
    ):
        text = "".join(d.text for d in s.events() if d.text)
    assert text == "4"
    assert seen == [{"model": "command-x", "messages": [USER], "stream": True}]


# ---- param_map ------------------------------------------------------------------------------


def test_ollama_options_precedence_and_override() -> None:
    """Endpoint params < body_fields < the call's params, all inside "options"; an explicit
    param_map entry wins over the dialect default (mapping a name to itself keeps it top-level)."""
    ep = Endpoint(
        name="o",
        url="http://h/api/generate",
        params={"temperature": 0.1, "max_tokens": 50},
        body_fields={"options": {"num_ctx": 4096, "temperature": 0.3}},
        param_map={"seed": "seed"},
    )
    spec = build_request(
        ep, normalize_messages("q"), {"max_tokens": 5, "seed": 1}, stream=False, api_key=None
    )
    assert spec.json == {
        "model": "o",
        "prompt": "q",
        "stream": False,
        "options": {"num_predict": 5, "temperature": 0.3, "num_ctx": 4096},
        "seed": 1,
    }


def test_param_map_places_params_inside_a_template() -> None:
    ep = Endpoint(
        name="t",
        url="http://h/infer",
        param_map={"max_tokens": "gen.max_new", "temperature": "gen.t"},
        body_template={"text": "{prompt}", "config": "{params}", "raw_t": "{temperature}"},
    )
    spec = build_request(
        ep, normalize_messages("q"), {"max_tokens": 3, "temperature": 0.5}, stream=False, api_key=None
    )
    assert spec.json == {"text": "q", "config": {"gen": {"max_new": 3, "t": 0.5}}, "raw_t": 0.5}


# ---- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "needle"),
    [
        ({"role_map": {"assistant": ""}}, "role_map", "non-empty"),
        ({"role_map": ["assistant"]}, "role_map", "object"),
        ({"message_template": {"role": "{role}", "text": "{nope}"}}, "message_template", "nope"),
        ({"message_template": {"role": "{role}"}}, "message_template", "{content}"),
        (
            {"message_template": {"text": "{content}"}, "message_keys": {"content": "text"}},
            "message_keys",
            "message_template",
        ),
        ({"transcript": {"user": "{prompt}"}}, "transcript", "prompt"),
        ({"transcript": {"cue": "{content}"}}, "transcript", "cue"),
        ({"transcript": {"user": 5}}, "transcript", "string"),
        ({"param_map": {"max_tokens": "options..n"}}, "param_map", "dotted"),
        ({"param_map": {"max_tokens": ""}}, "param_map", "non-empty"),
        ({"body_template": {"t": "{?system}{system}"}}, "body_template", "never closed"),
        ({"body_template": {"t": "{prompt}{/system}"}}, "body_template", "closes"),
        ({"body_template": {"t": "{?nope}x{/nope}{prompt}"}}, "body_template", "nope"),
        ({"stream_usage": "yes"}, "stream_usage", "True or False"),
    ],
)
def test_bad_shaping_fields_name_the_field(fields: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        Endpoint(name="x", url="http://h/v1", **fields)
    assert info.value.field == field
    assert needle in str(info.value)


def test_new_fields_round_trip_through_to_dict() -> None:
    for shape in presets("http://h"):
        ep = preset(shape)
        again = Endpoint.from_dict(json.loads(json.dumps(ep.to_dict())))
        assert again == ep
    assert "stream_usage" not in Endpoint(name="x", url="http://h/v1").to_dict()  # None: the default
    assert Endpoint(name="x", url="http://h/v1", stream_usage=True).to_dict()["stream_usage"] is True


def test_json_text_is_accepted_for_the_new_fields() -> None:
    ep = Endpoint(
        name="x",
        url="http://h/run",
        role_map='{"assistant": "model"}',
        message_template='{"r": "{role}", "c": "{content}"}',
        transcript='{"user": "U: {content}\\n"}',
        param_map='{"max_tokens": "n"}',
    )
    assert ep.role_map == {"assistant": "model"} and ep.message_template == {"r": "{role}", "c": "{content}"}
    assert ep.transcript == {"user": "U: {content}\n"} and ep.param_map == {"max_tokens": "n"}


# ---- the renderer's rule, proven ------------------------------------------------------------

NAMES = ("a", "b", "c")
# values may hold braces and the template syntax itself: it must come out literally
value_text = st.lists(
    st.sampled_from([*"xy {}?/\n", "{a}", "{?b}", "{/b}", "{c}", "{content}"]), max_size=8
).map("".join)
maybe_value = st.none() | value_text
literal = st.text(alphabet=st.sampled_from(list("xy :,\n")), max_size=4)


def segments(depth: int) -> st.SearchStrategy[list[Any]]:
    """A string template as segments: ("lit", text) | ("var", name) | ("sec", name, segments)."""
    leaf = st.tuples(st.just("lit"), literal) | st.tuples(st.just("var"), st.sampled_from(NAMES))
    if depth == 0:
        return st.lists(leaf, max_size=4)
    section = st.tuples(st.just("sec"), st.sampled_from(NAMES), segments(depth - 1))
    return st.lists(leaf | section, max_size=4)


def source(segs: list[Any]) -> str:
    out = []
    for s in segs:
        if s[0] == "lit":
            out.append(s[1])
        elif s[0] == "var":
            out.append("{" + s[1] + "}")
        else:
            out.append("{?" + s[1] + "}" + source(s[2]) + "{/" + s[1] + "}")
    return "".join(out)


def model(segs: list[Any], values: dict[str, Any]) -> str | None:
    """The documented rule, written independently: None means 'removed'."""
    out = []
    for s in segs:
        if s[0] == "lit":
            out.append(s[1])
        elif s[0] == "var":
            if values.get(s[1]) is None:
                return None
            out.append(values[s[1]])
        elif values.get(s[1]) is not None:
            inner = model(s[2], values)
            if inner is not None:
                out.append(inner)
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(segs=segments(2), values=st.fixed_dictionaries({n: maybe_value for n in NAMES}))
def test_string_templates_follow_the_rule_and_never_reread_values(
    segs: list[Any], values: dict[str, Any]
) -> None:
    text = source(segs)
    got = _render({"k": text}, values)
    expected = model(segs, values)
    if len(segs) == 1 and segs[0][0] == "var":  # exactly "{name}": the value itself
        expected = values[segs[0][1]]
    if expected is None:
        assert got is MISSING  # the only key removed: the object goes too
    else:
        assert got == {"k": expected}


def json_templates(depth: int) -> st.SearchStrategy[Any]:
    leaf = st.sampled_from(["{a}", "{b}", "x {c}", "{?a}{a}, {/a}{b}", "lit", 1, True])
    if depth == 0:
        return leaf
    inner = json_templates(depth - 1)
    return (
        leaf
        | st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(st.sampled_from(["p", "q", "r"]), inner, min_size=1)
    )


def empties(node: Any) -> list[Any]:
    found = []
    if isinstance(node, dict):
        found += [node] if not node else []
        for v in node.values():
            found += empties(v)
    elif isinstance(node, list):
        found += [node] if not node else []
        for v in node:
            found += empties(v)
    return found


@settings(max_examples=300, deadline=None)
@given(tpl=json_templates(3), values=st.fixed_dictionaries({n: maybe_value for n in NAMES}))
def test_a_missing_value_never_leaves_an_empty_object_or_list(tpl: Any, values: dict[str, Any]) -> None:
    got = _render(tpl, values)
    if got is MISSING:  # removed whole: only when something in it was missing
        assert any(values[n] is None for n in NAMES)
        return
    assert "MISSING" not in repr(got)
    assert empties(got) == []  # the template has none of its own: any would be a removal's leftover
    if all(v is not None for v in values.values()):
        assert got is not MISSING


@settings(max_examples=200, deadline=None)
@given(system=maybe_value, prompt=value_text)
def test_optional_separator_disappears_with_its_value(system: str | None, prompt: str) -> None:
    ep = Endpoint(
        name="x", url="http://h/run", body_template={"text": "{?system}{system}\n\n{/system}{prompt}"}
    )
    spec = build_request(ep, normalize_messages(prompt, system=system), {}, stream=False, api_key=None)
    assert spec.json == {"text": f"{system}\n\n{prompt}" if system else prompt}  # "": no system prompt


@settings(max_examples=200, deadline=None)
@given(turns=st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), value_text), max_size=4))
def test_transcript_inserts_contents_literally(turns: list[tuple[str, str]]) -> None:
    ep = Endpoint(
        name="x", url="http://h/generate", transcript=TRANSCRIPT, body_template={"inputs": "{prompt}"}
    )
    messages = [{"role": r, "content": c} for r, c in turns]
    spec = build_request(ep, messages, {}, stream=False, api_key=None)
    labels = {"system": "{}\n\n", "user": "User: {}\n", "assistant": "Assistant: {}\n"}
    assert spec.json == {"inputs": "".join(labels[r].replace("{}", c) for r, c in turns) + "Assistant:"}


def test_compiled_templates_are_cached_and_values_are_not_compiled() -> None:
    ep = preset("gemini")
    compile_text.cache_clear()
    for _ in range(3):
        build_request(
            ep, normalize_messages("{?a}{/b} {content}", system="{system}"), {}, stream=False, api_key=None
        )
    info = compile_text.cache_info()
    strings = {
        "{turns}",
        "{system}",
        "{role}",
        "{content}",
        "{max_tokens}",
        "{temperature}",
        "{top_p}",
        "{stop}",
        "{seed}",
    }
    assert info.currsize == len(strings)  # only template strings, never a prompt
    assert info.misses == len(strings)


def test_every_example_in_docs_formats_is_a_valid_endpoint() -> None:
    """docs/formats.md: each ``nbllm.Endpoint(...)`` example builds and sends what its text says."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "formats.md").read_text()
    examples = []
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        for stmt in re.split(r"\n(?=nbllm\.Endpoint\()", block):
            code = "\n".join(line for line in stmt.splitlines() if not line.lstrip().startswith("#"))
            examples.append(eval(code.strip(), {"nbllm": nbllm}))  # our own docs
    by_name = {ep.name: ep for ep in examples}
    assert len(by_name) == 9
    for ep in examples:
        spec = build_request(ep, CHAT, {"max_tokens": 5}, stream=True, api_key="k")
        assert ("stream_options" in spec.json) is ep.request_url.endswith("/chat/completions")
    inhouse = build_request(by_name["inhouse"], CHAT, {}, stream=False, api_key=None).json
    assert inhouse["messages"][:2] == [{"role": "human", "text": "hi"}, {"role": "bot", "text": "hello"}]


def test_length_check_counts_the_transcript_labels() -> None:
    """max_seq_len is checked on the text sent: 'User: ...\\nAssistant:' is longer than the turn."""
    from nbllm import PromptTooLongError
    from nbllm._core.request import check_length

    plain = Endpoint(name="p", url="http://h/generate", max_seq_len=3, body_template={"inputs": "{prompt}"})
    labelled = plain.replace(transcript=TRANSCRIPT)
    messages = normalize_messages("abcdefghij")  # 10 characters: ~3 tokens
    check_length(plain, messages, {})
    with pytest.raises(PromptTooLongError):
        check_length(labelled, messages, {})  # 'User: abcdefghij\nAssistant:' is ~7


def test_an_empty_system_prompt_is_no_system_prompt() -> None:
    """system="" must not send Gemini an empty text part (a 400) or Anthropic an empty system."""
    assert sent_body(preset("gemini"), "hi", system="") == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
    }
    ep = preset("anthropic")
    two = [{"role": "system", "content": "A"}, {"role": "system", "content": "B"}, USER]
    assert build_request(ep, two, {}, stream=False, api_key=None).json["system"] == "A\n\nB"
