"""Every public entry point checks its input up front (issue 9): one table row per bad input.

Each row: the entry point called with one bad argument, the nbllm error class expected and the
substrings its message must contain (the argument's name and what is expected). A row passes
only when nbllm refuses the input itself, before anything is sent, with that error: a deep
``TypeError``/``AttributeError``, a silent acceptance or a later network error all fail it.
Magic lines run through a real IPython shell and must show a short message, no traceback.

Nothing here reaches a server: endpoints point at a closed port (127.0.0.1:9) with no retries,
so an input that is wrongly accepted fails fast with a ConnectError instead of hanging.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import get_ipython

import nbllm
from nbllm import ConfigError, NbllmError, UsageError, scorers
from nbllm._base.validate import check_int, check_json_value, check_number

NAN, INF = float("nan"), float("inf")
URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


def ep(**kw: Any) -> nbllm.Endpoint:
    return nbllm.Endpoint(**{"name": "x", "url": URL, "retries": 0, "timeout": 2, **kw})


class Echo(nbllm.Handler):
    def completion(self, messages: list[dict[str, Any]], **params: Any) -> str:
        return str(messages[-1]["content"])


nbllm.register_provider("badinput-echo", Echo())
ECHO = "badinput-echo/m"


def run_eval(*args: Any, **kw: Any) -> Any:
    args = args or ([{"q": "a"}], ep())
    kw.setdefault("prompt", "{q}")
    return nbllm.evaluate(*args, **{"cache": False, "progress": False, **kw})


def frame() -> pd.DataFrame:
    df: pd.DataFrame = nbllm.evaluate(
        [{"q": "a", "expected": "a"}], ECHO, prompt="{q}", cache=False, progress=False
    )
    return df


def registered() -> nbllm.Registry:
    reg = nbllm.registry()
    reg.add(ep(name="saved"), overwrite=True)
    return reg


def acomplete(*args: Any, **kw: Any) -> Any:
    return asyncio.run(nbllm.acomplete(*args, **kw))


def aevaluate(**kw: Any) -> Any:
    return asyncio.run(nbllm.aevaluate([{"q": "a"}], ep(), prompt="{q}", cache=False, progress=False, **kw))


Row = tuple[str, Callable[[], Any], type[BaseException], tuple[str, ...]]

ENDPOINT_ROWS: list[Row] = [
    ("name-type", lambda: ep(name=123), ConfigError, ("name", "str")),
    ("name-empty", lambda: ep(name=""), ConfigError, ("name", "1-100 characters")),
    ("name-space", lambda: ep(name="a b"), ConfigError, ("name", "no spaces")),
    ("url-type", lambda: ep(url=123), ConfigError, ("url", "string")),
    ("url-scheme", lambda: ep(url="ftp://h/v1"), ConfigError, ("url", "http(s)")),
    ("url-no-host", lambda: ep(url="http:///v1"), ConfigError, ("url", "host")),
    ("url-port", lambda: ep(url="http://h:99999/v1"), ConfigError, ("url", "port")),
    ("model-type", lambda: ep(model=123), ConfigError, ("model", "string", "int")),
    ("model-empty", lambda: ep(model=""), ConfigError, ("model", "non-empty")),
    ("type-type", lambda: ep(type=1), ConfigError, ("type", "'chat' or 'completion'")),
    ("type-value", lambda: ep(type="embeddings"), ConfigError, ("type", "'chat' or 'completion'")),
    ("api_key_env-type", lambda: ep(api_key_env=5), ConfigError, ("api_key_env", "string", "int")),
    ("api_key_env-value", lambda: ep(api_key_env="1 BAD"), ConfigError, ("api_key_env", "environment")),
    ("api_key-type", lambda: ep(api_key=5), ConfigError, ("api_key", "string")),
    ("auth_header-type", lambda: ep(auth_header=5), ConfigError, ("auth_header", "string", "int")),
    ("auth_header-value", lambda: ep(auth_header="a b"), ConfigError, ("auth_header", "header name")),
    ("auth_scheme-type", lambda: ep(auth_scheme=5), ConfigError, ("auth_scheme", "string", "int")),
    ("auth_scheme-newline", lambda: ep(auth_scheme="Bearer\nX: y"), ConfigError, ("auth_scheme", "one line")),
    ("headers-type", lambda: ep(headers=["a"]), ConfigError, ("headers", "object", "list")),
    ("headers-value-type", lambda: ep(headers={"X-A": 1}), ConfigError, ("headers", "one-line string")),
    ("headers-name", lambda: ep(headers={"a b": "1"}), ConfigError, ("headers", "header name")),
    ("body_fields-type", lambda: ep(body_fields=5), ConfigError, ("body_fields", "object", "int")),
    ("body_fields-json", lambda: ep(body_fields="{oops"), ConfigError, ("body_fields", "JSON")),
    ("message_keys-key", lambda: ep(message_keys={"x": "y"}), ConfigError, ("message_keys", "role/content")),
    ("message_keys-value", lambda: ep(message_keys={"role": 1}), ConfigError, ("message_keys", "non-empty")),
    ("role_map-value", lambda: ep(role_map={"assistant": 1}), ConfigError, ("role_map", "non-empty string")),
    (
        "message_template-no-content",
        lambda: ep(message_template={"role": "{role}"}),
        ConfigError,
        ("message_template", "{content}"),
    ),
    ("transcript-name", lambda: ep(transcript={"user": "{nope}"}), ConfigError, ("transcript", "nope")),
    ("param_map-value", lambda: ep(param_map={"max_tokens": "a..b"}), ConfigError, ("param_map", "dotted")),
    (
        "body_template-no-prompt",
        lambda: ep(body_template={"a": 1}),
        ConfigError,
        ("body_template", "{prompt}"),
    ),
    ("response_path-type", lambda: ep(response_path=5), ConfigError, ("response_path", "string")),
    ("stream_path-syntax", lambda: ep(stream_path="$[["), ConfigError, ("stream_path", "JSONPath")),
    ("stream-type", lambda: ep(stream=True), ConfigError, ("stream", "auto")),
    ("stream-value", lambda: ep(stream="yes"), ConfigError, ("stream", "auto")),
    (
        "stream_usage-str",
        lambda: ep(stream_usage="no"),
        ConfigError,
        ("stream_usage", "True or False", "str"),
    ),
    ("schema_format-type", lambda: ep(schema_format=1), ConfigError, ("schema_format", "string", "int")),
    (
        "schema_format-value",
        lambda: ep(schema_format="xml"),
        ConfigError,
        ("schema_format", "openai, ollama"),
    ),
    ("error_path-type", lambda: ep(error_path=5), ConfigError, ("error_path", "string", "int")),
    ("error_path-syntax", lambda: ep(error_path="$[?(@.a =="), ConfigError, ("error_path", "JSONPath")),
    ("error_events-type", lambda: ep(error_events=3), ConfigError, ("error_events", "list", "int")),
    ("error_events-item", lambda: ep(error_events=["a\nb"]), ConfigError, ("error_events", "one-line")),
    ("append_path-str", lambda: ep(append_path="yes"), ConfigError, ("append_path", "True, False or None")),
    ("price_prompt-negative", lambda: ep(price_prompt=-1), ConfigError, ("price_prompt", ">= 0")),
    ("price_prompt-nan", lambda: ep(price_prompt=NAN), ConfigError, ("price_prompt", "finite")),
    ("price_completion-inf", lambda: ep(price_completion=INF), ConfigError, ("price_completion", "finite")),
    ("price_completion-str", lambda: ep(price_completion="1"), ConfigError, ("price_completion", "number")),
    ("max_seq_len-negative", lambda: ep(max_seq_len=-1), ConfigError, ("max_seq_len", "whole number")),
    ("max_seq_len-float", lambda: ep(max_seq_len=1.5), ConfigError, ("max_seq_len", "whole number")),
    ("max_seq_len-zero", lambda: ep(max_seq_len=0), ConfigError, ("max_seq_len", ">= 1")),
    ("tokenizer-type", lambda: ep(tokenizer=5), ConfigError, ("tokenizer", "string", "int")),
    ("tokenizer-missing", lambda: ep(tokenizer="/no/such/tokenizer.json"), ConfigError, ("tokenizer",)),
    ("timeout-nan", lambda: ep(timeout=NAN), ConfigError, ("timeout", "finite number")),
    ("timeout-inf", lambda: ep(timeout=INF), ConfigError, ("timeout", "finite number")),
    ("timeout-zero", lambda: ep(timeout=0), ConfigError, ("timeout", "> 0")),
    ("timeout-str", lambda: ep(timeout="5"), ConfigError, ("timeout", "number", "str")),
    ("timeout-bool", lambda: ep(timeout=True), ConfigError, ("timeout", "number", "bool")),
    ("deadline-nan", lambda: ep(deadline=NAN), ConfigError, ("deadline", "finite number")),
    ("deadline-zero", lambda: ep(deadline=0), ConfigError, ("deadline", "> 0")),
    ("deadline-str", lambda: ep(deadline="5"), ConfigError, ("deadline", "number", "str")),
    ("idle_timeout-inf", lambda: ep(idle_timeout=INF), ConfigError, ("idle_timeout", "finite number")),
    ("idle_timeout-neg", lambda: ep(idle_timeout=-1), ConfigError, ("idle_timeout", "> 0")),
    ("max_body_bytes-small", lambda: ep(max_body_bytes=10), ConfigError, ("max_body_bytes", "1024")),
    ("max_body_bytes-float", lambda: ep(max_body_bytes=2e6), ConfigError, ("max_body_bytes", "float")),
    ("max_event_bytes-bool", lambda: ep(max_event_bytes=True), ConfigError, ("max_event_bytes", "bool")),
    ("verify-int", lambda: ep(verify=5), ConfigError, ("verify", "True, False or a CA bundle", "int")),
    ("verify-missing", lambda: ep(verify="/no/such/ca.pem"), ConfigError, ("verify", "does not exist")),
    ("retries-negative", lambda: ep(retries=-1), ConfigError, ("retries", "whole number >= 0")),
    ("retries-float", lambda: ep(retries=1.5), ConfigError, ("retries", "whole number")),
    ("retries-str", lambda: ep(retries="2"), ConfigError, ("retries", "whole number", "str")),
    ("params-type", lambda: ep(params=[1]), ConfigError, ("params", "object", "list")),
    (
        "params-json-nan",
        lambda: ep(params='{"temperature": NaN}'),
        ConfigError,
        ("params['temperature']", "NaN"),
    ),
    ("params-nan", lambda: ep(params={"temperature": NAN}), ConfigError, ("params['temperature']", "NaN")),
    ("params-set", lambda: ep(params={"stop": {"a"}}), ConfigError, ("params['stop']", "set", "list")),
    ("handler-type", lambda: ep(handler=5), ConfigError, ("handler", "string", "int")),
    ("handler-value", lambda: ep(handler="not a handler"), ConfigError, ("handler", "module:attribute")),
    # constructors
    ("replace-unknown", lambda: ep().replace(timout=5), ConfigError, ("timout", "timeout")),
    ("replace-nan", lambda: ep().replace(timeout=NAN), ConfigError, ("timeout", "finite")),
    ("from_dict-type", lambda: nbllm.Endpoint.from_dict("x"), ConfigError, ("JSON object", "str")),
    (
        "from_dict-unknown",
        lambda: nbllm.Endpoint.from_dict({"name": "x", "ulr": URL}),
        ConfigError,
        ("ulr", "url"),
    ),
    (
        "from_opencharacters-type",
        lambda: nbllm.Endpoint.from_opencharacters(5),
        UsageError,
        ("line", "string", "int"),
    ),
    (
        "from_opencharacters-bad",
        lambda: nbllm.Endpoint.from_opencharacters("{name:"),
        ConfigError,
        ("OpenCharacters",),
    ),
    (
        "from_autodev-format",
        lambda: nbllm.Endpoint.from_autodev("x", URL, request_format=5),
        ConfigError,
        ("request_format", "object"),
    ),
    ("from_autodev-name", lambda: nbllm.Endpoint.from_autodev(5, URL), ConfigError, ("name",)),
    ("stream_url-type", lambda: ep(stream_url=5), ConfigError, ("stream_url", "string", "int")),
    ("stream_url-scheme", lambda: ep(stream_url="ftp://h/s"), ConfigError, ("stream_url", "http(s) URL")),
    (
        "from_preset-unknown",
        lambda: nbllm.Endpoint.from_preset("x", "antropic"),
        ConfigError,
        ("unknown preset 'antropic'", "did you mean 'anthropic'"),
    ),
    (
        "from_preset-url",
        lambda: nbllm.Endpoint.from_preset("x", "openai", url=5),
        ConfigError,
        ("url", "int"),
    ),
    (
        "from_preset-field",
        lambda: nbllm.Endpoint.from_preset("x", "openai", timout=5),
        ConfigError,
        ("timout", "timeout"),
    ),
]

CALL_ROWS: list[Row] = [
    (
        "complete-model-none",
        lambda: nbllm.complete(None, "hi"),
        UsageError,
        ("model", "name or an Endpoint", "NoneType"),
    ),
    (
        "complete-model-int",
        lambda: nbllm.complete(123, "hi"),
        UsageError,
        ("model", "name or an Endpoint", "int"),
    ),
    (
        "complete-model-empty",
        lambda: nbllm.complete("", "hi"),
        UsageError,
        ("model", "registered name", "str"),
    ),
    (
        "complete-prompt-none",
        lambda: nbllm.complete(ep(), None),
        UsageError,
        ("prompt", "string or a list of messages", "NoneType"),
    ),
    (
        "complete-prompt-int",
        lambda: nbllm.complete(ep(), 5),
        UsageError,
        ("prompt", "string or a list of messages", "int"),
    ),
    (
        "complete-prompt-empty-list",
        lambda: nbllm.complete(ep(), []),
        UsageError,
        ("prompt", "at least one message"),
    ),
    (
        "complete-message-str",
        lambda: nbllm.complete(ep(), ["hi"]),
        ConfigError,
        ("prompt", "'role' and 'content'"),
    ),
    (
        "complete-message-role",
        lambda: nbllm.complete(ep(), [{"role": 1, "content": "x"}]),
        UsageError,
        ("prompt[0]['role']", "string"),
    ),
    (
        "complete-message-content",
        lambda: nbllm.complete(ep(), [{"role": "user", "content": 5}]),
        UsageError,
        ("prompt[0]['content']", "string or a list"),
    ),
    (
        "complete-system-int",
        lambda: nbllm.complete(ep(), "hi", system=5),
        UsageError,
        ("system", "string", "int"),
    ),
    (
        "complete-params-str",
        lambda: nbllm.complete(ep(), "hi", params="t=1"),
        UsageError,
        ("params", "dict", "str"),
    ),
    (
        "complete-param-nan",
        lambda: nbllm.complete(ep(), "hi", temperature=NAN),
        UsageError,
        ("temperature", "NaN"),
    ),
    (
        "complete-param-inf",
        lambda: nbllm.complete(ep(), "hi", params={"max_tokens": INF}),
        UsageError,
        ("max_tokens", "infinity"),
    ),
    (
        "complete-param-set",
        lambda: nbllm.complete(ep(), "hi", stop={"a", "b"}),
        UsageError,
        ("stop", "set", "list"),
    ),
    (
        "complete-param-object",
        lambda: nbllm.complete(ep(), "hi", temperature=object()),
        UsageError,
        ("temperature", "JSON value", "object"),
    ),
    (
        "complete-client-str",
        lambda: nbllm.complete(ep(), "hi", client="c"),
        UsageError,
        ("client", "httpx.Client", "str"),
    ),
    ("complete-schema-int", lambda: nbllm.complete(ep(), "hi", schema=42), UsageError, ("schema", "int")),
    (
        "complete-schema-bad-type",
        lambda: nbllm.complete(ep(), "hi", schema={"when": object}),
        UsageError,
        ("schema['when']", "not supported"),
    ),
    (
        "complete-repair-negative",
        lambda: nbllm.complete(ep(), "hi", schema={"a": int}, repair=-1),
        UsageError,
        ("repair", ">= 0"),
    ),
    (
        "complete-repair-no-schema",
        lambda: nbllm.complete(ep(), "hi", repair=1),
        UsageError,
        ("repair", "schema"),
    ),
    ("stream-model-none", lambda: nbllm.stream(None, "hi"), UsageError, ("model", "NoneType")),
    ("stream-prompt-none", lambda: nbllm.stream(ep(), None), UsageError, ("prompt", "NoneType")),
    ("stream-param-nan", lambda: nbllm.stream(ep(), "hi", top_p=NAN), UsageError, ("top_p", "NaN")),
    ("acomplete-model-int", lambda: acomplete(1, "hi"), UsageError, ("model", "int")),
    ("acomplete-prompt-none", lambda: acomplete(ep(), None), UsageError, ("prompt", "NoneType")),
    (
        "acomplete-client-sync",
        lambda: acomplete(ep(), "hi", client=5),
        UsageError,
        ("client", "httpx.AsyncClient", "int"),
    ),
    ("astream-prompt-dict", lambda: nbllm.astream(ep(), {"role": "user"}), UsageError, ("prompt", "dict")),
    (
        "astream-system-list",
        lambda: nbllm.astream(ep(), "hi", system=["a"]),
        UsageError,
        ("system", "string", "list"),
    ),
    (
        "register_provider-name",
        lambda: nbllm.register_provider(5, Echo()),
        UsageError,
        ("name", "string", "int"),
    ),
    (
        "register_provider-slash",
        lambda: nbllm.register_provider("a/b", Echo()),
        NbllmError,
        ("provider name", "'/'"),
    ),
    (
        "register_provider-handler",
        lambda: nbllm.register_provider("p", 5),
        NbllmError,
        ("completion/streaming",),
    ),
]

EVAL_ROWS: list[Row] = [
    ("evaluate-schema-str", lambda: run_eval(["a"], ep(), schema="Review"), UsageError, ("schema", "str")),
    (
        "evaluate-schema-prefix-clash",
        lambda: run_eval([{"q": "a", "out_n": 1}], ep(), schema={"n": int}),
        UsageError,
        ("schema_prefix", "out_n"),
    ),
    ("evaluate-cases-none", lambda: run_eval(None, ep()), UsageError, ("cases", "DataFrame", "NoneType")),
    ("evaluate-cases-int", lambda: run_eval(5, ep()), UsageError, ("cases", "DataFrame", "int")),
    (
        "evaluate-cases-mixed",
        lambda: run_eval([{"q": "a"}, "b"], ep()),
        UsageError,
        ("cases", "list of dicts or strings"),
    ),
    (
        "evaluate-cases-missing-file",
        lambda: run_eval("/no/such/cases.csv", ep()),
        UsageError,
        ("cases", "no such file"),
    ),
    ("evaluate-cases-suffix", lambda: run_eval("cases.txt", ep()), ConfigError, ("cases", ".csv")),
    (
        "evaluate-cases-duplicate-columns",
        lambda: run_eval(pd.DataFrame([[1, 2]], columns=["q", "q"]), ep()),
        UsageError,
        ("cases", "duplicate", "'q'"),
    ),
    (
        "evaluate-cases-result-column-clash",
        lambda: run_eval([{"q": "a", "model": "m", "case_model": "n"}], ep()),
        UsageError,
        ("cases", "'model'", "case_model"),
    ),
    (
        "evaluate-cases-case-column-clash",
        lambda: run_eval([{"q": "a", "output": "o", "case_output": "p"}], ep()),
        UsageError,
        ("cases", "'output'", "case_output"),
    ),
    ("evaluate-models-none", lambda: run_eval([{"q": "a"}], None), UsageError, ("models", "NoneType")),
    ("evaluate-models-int", lambda: run_eval([{"q": "a"}], 5), UsageError, ("models", "int")),
    ("evaluate-models-empty", lambda: run_eval([{"q": "a"}], []), ConfigError, ("models", "at least one")),
    ("evaluate-models-item-none", lambda: run_eval([{"q": "a"}], [None]), UsageError, ("model", "NoneType")),
    ("evaluate-prompt-int", lambda: run_eval(prompt=5), ConfigError, ("prompt", "template string")),
    ("evaluate-system-int", lambda: run_eval(system=5), UsageError, ("system", "string", "int")),
    ("evaluate-expected-list", lambda: run_eval(expected=["q"]), UsageError, ("expected", "string", "list")),
    (
        "evaluate-expected-missing",
        lambda: run_eval(expected="gold"),
        ConfigError,
        ("expected", "not a column"),
    ),
    (
        "evaluate-scorers-unknown",
        lambda: run_eval(scorers=["nope"]),
        UsageError,
        ("scorers", "nope", "exact_match"),
    ),
    ("evaluate-scorers-int", lambda: run_eval(scorers=[5]), UsageError, ("scorers", "int")),
    ("evaluate-params-str", lambda: run_eval(params="t=1"), UsageError, ("params", "dict", "str")),
    ("evaluate-params-set", lambda: run_eval(params={"stop": {"a"}}), UsageError, ("params['stop']", "set")),
    (
        "evaluate-params-nan",
        lambda: run_eval(params={"temperature": NAN}),
        UsageError,
        ("params['temperature']", "NaN"),
    ),
    (
        "evaluate-params-list-item",
        lambda: run_eval(params=[{"t": 1}, "x"]),
        UsageError,
        ("params[1]", "dict", "str"),
    ),
    ("evaluate-grid-str", lambda: run_eval(grid="temperature"), UsageError, ("grid", "dict", "str")),
    (
        "evaluate-grid-values",
        lambda: run_eval(grid={"temperature": 5}),
        ConfigError,
        ("grid['temperature']", "non-empty list"),
    ),
    (
        "evaluate-grid-nan",
        lambda: run_eval(grid={"temperature": [0, NAN]}),
        UsageError,
        ("grid['temperature'][1]", "NaN"),
    ),
    ("evaluate-repeats-zero", lambda: run_eval(repeats=0), ConfigError, ("repeats", ">= 1")),
    (
        "evaluate-repeats-float",
        lambda: run_eval(repeats=1.5),
        UsageError,
        ("repeats", "whole number", "float"),
    ),
    ("evaluate-repeats-str", lambda: run_eval(repeats="2"), UsageError, ("repeats", "whole number", "str")),
    (
        "evaluate-concurrency-float",
        lambda: run_eval(concurrency=1.5),
        UsageError,
        ("concurrency", "whole number", "float"),
    ),
    ("evaluate-concurrency-zero", lambda: run_eval(concurrency=0), ConfigError, ("concurrency", ">= 1")),
    (
        "evaluate-concurrency-str",
        lambda: run_eval(concurrency="8"),
        UsageError,
        ("concurrency", "whole number", "str"),
    ),
    (
        "evaluate-concurrency-unknown-model",
        lambda: run_eval(concurrency={"nope": 2}),
        ConfigError,
        ("concurrency", "unknown model"),
    ),
    (
        "evaluate-concurrency-dict-value",
        lambda: run_eval(concurrency={"x": 0}),
        UsageError,
        ("concurrency['x']", ">= 1"),
    ),
    ("evaluate-rate_limit-negative", lambda: run_eval(rate_limit=-5), UsageError, ("rate_limit", "> 0")),
    ("evaluate-rate_limit-nan", lambda: run_eval(rate_limit=NAN), UsageError, ("rate_limit", "finite")),
    (
        "evaluate-rate_limit-str",
        lambda: run_eval(rate_limit="60"),
        UsageError,
        ("rate_limit", "number", "str"),
    ),
    ("evaluate-cache-int", lambda: run_eval(cache=5), UsageError, ("cache", "True, False", "int")),
    ("evaluate-budget-negative", lambda: run_eval(budget=-1), UsageError, ("budget", ">= 0")),
    ("evaluate-budget-nan", lambda: run_eval(budget=NAN), UsageError, ("budget", "finite")),
    ("evaluate-budget-str", lambda: run_eval(budget="1"), UsageError, ("budget", "number", "str")),
    (
        "evaluate-progress-str",
        lambda: run_eval(progress="no"),
        UsageError,
        ("progress", "True or False", "str"),
    ),
    (
        "aevaluate-concurrency",
        lambda: aevaluate(concurrency=1.5),
        UsageError,
        ("concurrency", "whole number"),
    ),
    ("aevaluate-budget", lambda: aevaluate(budget=-1), UsageError, ("budget", ">= 0")),
]

OTHER_ROWS: list[Row] = [
    # load testing
    ("loadtest-both", lambda: nbllm.loadtest(ep(), concurrency=1, rate=1), UsageError, ("rate", "not both")),
    ("loadtest-conc", lambda: nbllm.loadtest(ep(), concurrency=0), UsageError, ("concurrency", ">= 1")),
    ("loadtest-rate", lambda: nbllm.loadtest(ep(), rate=[NAN]), UsageError, ("rate", "finite")),
    ("loadtest-arrival", lambda: nbllm.loadtest(ep(), arrival="burst"), UsageError, ("arrival", "poisson")),
    ("loadtest-slo", lambda: nbllm.loadtest(ep(), slo={"ttft": 1}), UsageError, ("slo", "ttft_s")),
    (
        "aloadtest-requests",
        lambda: asyncio.run(nbllm.aloadtest(ep(), requests=0)),
        UsageError,
        ("requests", ">= 1"),
    ),
    # model discovery
    ("list_models-none", lambda: nbllm.list_models(None), UsageError, ("model", "NoneType", "URL")),
    ("list_models-int", lambda: nbllm.list_models(5), UsageError, ("model", "int")),
    ("list_models-timeout", lambda: nbllm.list_models(URL, timeout=0), UsageError, ("timeout", "> 0")),
    # the df.llm accessor and load_results
    ("rescore-scorer", lambda: frame().llm.rescore([5]), UsageError, ("scorers", "int")),
    (
        "rescore-expected",
        lambda: frame().llm.rescore(["exact_match"], expected="gold"),
        UsageError,
        ("expected", "not a column"),
    ),
    (
        "rescore-concurrency",
        lambda: frame().llm.rescore(["exact_match"], concurrency=0),
        UsageError,
        ("concurrency", ">= 1"),
    ),
    (
        "summary-threshold",
        lambda: frame().llm.summary(threshold="x"),
        UsageError,
        ("threshold", "number", "str"),
    ),
    (
        "side_by_side-values",
        lambda: frame().llm.side_by_side(values="nope"),
        UsageError,
        ("values", "column", "nope"),
    ),
    ("save-suffix", lambda: frame().llm.save("results.txt"), UsageError, ("path", ".csv")),
    ("load_results-type", lambda: nbllm.load_results(5), UsageError, ("path", "file path", "int")),
    ("load_results-suffix", lambda: nbllm.load_results("results.txt"), UsageError, ("path", ".csv")),
    # registry methods
    ("registry-add-type", lambda: nbllm.registry().add("x"), UsageError, ("ep", "Endpoint", "str")),
    (
        "registry-add-default",
        lambda: nbllm.registry().add(ep(), default="yes"),
        UsageError,
        ("default", "True or False"),
    ),
    (
        "registry-update-nan",
        lambda: registered().update("saved", timeout=NAN),
        ConfigError,
        ("timeout", "finite"),
    ),
    (
        "registry-update-name",
        lambda: registered().update(5, timeout=1),
        UsageError,
        ("name", "string", "int"),
    ),
    ("registry-rename-type", lambda: registered().rename("saved", 5), ConfigError, ("name", "int")),
    ("registry-remove-type", lambda: registered().remove(None), UsageError, ("name", "string", "NoneType")),
    ("registry-get-type", lambda: registered().get(5), UsageError, ("name", "string", "int")),
    ("registry-set_default-missing", lambda: registered().set_default("nope"), ConfigError, ("nope",)),
    # scorers
    (
        "exact_match-ignore_case",
        lambda: scorers.exact_match(ignore_case="yes"),
        UsageError,
        ("ignore_case", "True or False"),
    ),
    ("contains-name", lambda: scorers.contains(name="a b"), UsageError, ("name", "identifier")),
    ("regex-type", lambda: scorers.regex(5), UsageError, ("pattern", "string", "int")),
    ("regex-syntax", lambda: scorers.regex("("), UsageError, ("pattern", "regular expression")),
    ("json_valid-fences", lambda: scorers.json_valid(fences="no"), UsageError, ("fences", "True or False")),
    ("schema_valid-schema", lambda: scorers.schema_valid(schema=3), UsageError, ("schema", "int")),
    ("field_match-field", lambda: scorers.field_match(3), UsageError, ("field", "int")),
    ("field_match-tol", lambda: scorers.field_match("a", tol=-1), UsageError, ("tol", ">= 0")),
    ("numeric_close-negative", lambda: scorers.numeric_close(-1), UsageError, ("tol", ">= 0")),
    ("numeric_close-nan", lambda: scorers.numeric_close(rel_tol=NAN), UsageError, ("rel_tol", "finite")),
    ("llm_judge-model", lambda: scorers.llm_judge(5), UsageError, ("model", "int")),
    ("pairwise-model", lambda: scorers.pairwise(5), UsageError, ("model", "int")),
    ("pairwise-criteria", lambda: scorers.pairwise("j", criteria=5), UsageError, ("criteria", "str")),
    ("llm_judge-scale", lambda: scorers.llm_judge("j", scale=0), UsageError, ("scale", "> 0")),
    ("llm_judge-rubric", lambda: scorers.llm_judge("j", rubric=5), UsageError, ("rubric", "string")),
    (
        "llm_judge-params",
        lambda: scorers.llm_judge("j", params={"t": NAN}),
        UsageError,
        ("params['t']", "NaN"),
    ),
    (
        "llm_judge-concurrency",
        lambda: scorers.llm_judge("j", concurrency=0),
        UsageError,
        ("concurrency", ">= 1"),
    ),
    ("scorer-type", lambda: scorers.scorer(5), UsageError, ("fn", "function", "int")),
    ("scorer-lambda", lambda: scorers.scorer(lambda o: 1), UsageError, ("name", "lambda")),
    # demo server and form
    ("demo_server-port", lambda: nbllm.demo_server(port="x"), UsageError, ("port", "whole number", "str")),
    ("demo_server-delay", lambda: nbllm.demo_server(chunk_delay=-1), UsageError, ("chunk_delay", ">= 0")),
    ("model_form-registry", lambda: nbllm.model_form(5), UsageError, ("registry", "Registry", "int")),
]

# image generation (nbllm/_io/image_api.py): checked before anything is sent
IMG = URL + "/images/generations"
IMAGE_ROWS: list[Row] = [
    ("image_b64_path-syntax", lambda: ep(image_b64_path="$[["), ConfigError, ("image_b64_path", "JSONPath")),
    ("image_url_path-type", lambda: ep(image_url_path=5), ConfigError, ("image_url_path", "string")),
    (
        "revised_prompt_path-syntax",
        lambda: ep(revised_prompt_path="$[["),
        ConfigError,
        ("revised_prompt_path",),
    ),
    ("price_image-negative", lambda: ep(price_image=-1), ConfigError, ("price_image", ">= 0")),
    ("generate_image-prompt", lambda: nbllm.generate_image(ep(url=IMG), 5), UsageError, ("prompt", "int")),
    ("generate_image-empty", lambda: nbllm.generate_image(ep(url=IMG), " "), UsageError, ("prompt", "empty")),
    ("generate_image-n", lambda: nbllm.generate_image(ep(url=IMG), "a", n=0), UsageError, ("n", ">= 1")),
    ("generate_image-chat", lambda: nbllm.generate_image(ep(), "a"), UsageError, ("chat endpoint", "image")),
    (
        "agenerate_image-size",
        lambda: asyncio.run(nbllm.agenerate_image(ep(url=IMG), "a", size=5)),
        UsageError,
        ("size", "int"),
    ),
]

ROWS = ENDPOINT_ROWS + CALL_ROWS + EVAL_ROWS + OTHER_ROWS + IMAGE_ROWS


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # any file a wrongly accepted input writes lands here


@pytest.mark.parametrize(("call", "error", "needles"), [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_bad_input_is_refused_up_front(
    call: Callable[[], Any], error: type[BaseException], needles: tuple[str, ...]
) -> None:
    with pytest.raises(NbllmError) as info:
        call()
    exc = info.value
    assert isinstance(exc, error), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"
    assert "Traceback" not in text


def test_usage_error_is_catchable_as_the_builtin_errors() -> None:
    with pytest.raises(TypeError):
        nbllm.complete(ep(), None)
    with pytest.raises(ValueError):
        nbllm.complete(ep(), "hi", temperature=NAN)
    with pytest.raises(ValueError):
        ep(timeout=NAN)


# ---- values that look odd but are fine: converted, not refused ---------------------------------


def test_numpy_scalars_in_params_are_sent_as_python_numbers(demo: nbllm.DemoServer) -> None:
    e = ep(params={"temperature": np.float32(0.5), "n": np.int64(2)})
    assert e.params == {"temperature": 0.5, "n": 2}
    assert type(e.params["n"]) is int
    live = nbllm.Endpoint(name="live", url=demo.url)
    r = nbllm.complete(live, "hi", temperature=np.float64(0.25), max_tokens=np.int32(5), stop=("a",))
    assert r.text
    body = demo.requests[-1]["json"]
    assert (body["temperature"], body["max_tokens"], body["stop"]) == (0.25, 5, ["a"])
    df = nbllm.evaluate(
        [{"q": "a"}],
        ECHO,
        prompt="{q}",
        params={"seed": np.int64(1)},
        concurrency=np.int64(2),
        budget=np.float64(1.0),
        cache=False,
        progress=False,
    )
    assert df["params"][0] == '{"seed":1}' and df["error"][0] == ""


def test_a_plain_rename_of_a_clashing_case_column_still_works() -> None:
    df = nbllm.evaluate([{"q": "a", "model": "mine"}], ECHO, prompt="{q}", cache=False, progress=False)
    assert df["case_model"][0] == "mine" and df["model"][0] == ECHO


def test_infinite_timeout_is_refused_but_budget_inf_means_no_budget() -> None:
    with pytest.raises(ConfigError, match="finite"):
        ep(timeout=math.inf)
    df = nbllm.evaluate([{"q": "a"}], ECHO, prompt="{q}", budget=math.inf, cache=False, progress=False)
    assert df["error"][0] == ""


# ---- magics: a real IPython shell; a bad line shows one short message, never a traceback ------


@pytest.fixture(scope="module")
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance() if InteractiveShell.initialized() else get_ipython()
    shell.run_line_magic("load_ext", "nbllm")
    shell.user_ns["cases"] = [{"q": "a"}]
    yield shell
    shell.user_ns.pop("cases", None)


ADD = "%llm_model add y --url http://127.0.0.1:9/v1 "
EVAL = "%%llm_eval cases -m x -q --no-cache "
MAGIC_ROWS: list[tuple[str, str, tuple[str, ...]]] = [
    ("model-timeout-nan", ADD + "--timeout nan", ("timeout", "finite")),
    ("model-timeout-negative", ADD + "--timeout -1", ("timeout", "> 0")),
    ("model-price-inf", ADD + "--price-prompt inf", ("price", "finite")),
    ("model-retries-float", ADD + "--retries 1.5", ("--retries", "whole number")),
    ("model-param-nan", ADD + "--param temperature=NaN", ("temperature", "NaN")),
    ("model-fields-list", ADD + "--fields '[1]'", ("body_fields", "object")),
    ("model-edit-unknown", "%llm_model edit nope --timeout 5", ("nope",)),
    ("llm-temperature-nan", "%%llm x -t nan\nhi", ("--temperature", "finite")),
    ("llm-max-tokens-negative", "%%llm x --max-tokens -1\nhi", ("--max-tokens", ">= 0")),
    ("llm-output-name", "%%llm x -o 1x\nhi", ("-o", "variable name")),
    ("llm-param-inf", "%%llm x --param max_tokens=Infinity\nhi", ("max_tokens", "infinity")),
    ("eval-repeats-zero", EVAL + "-n 0\n{q}", ("repeats", ">= 1")),
    ("eval-concurrency-float", EVAL + "-c 1.5\n{q}", ("concurrency", "whole number")),
    ("eval-rpm-negative", EVAL + "--rpm -5\n{q}", ("rate_limit", "> 0")),
    ("eval-budget-nan", EVAL + "--budget nan\n{q}", ("budget", "finite")),
    ("eval-param-nan", EVAL + "-p temperature=NaN\n{q}", ("temperature", "NaN")),
    ("eval-scorer-unknown", EVAL + "-s nope\n{q}", ("nope", "exact_match")),
    ("eval-cases-missing", "%%llm_eval /no/such/cases.csv -m x -q\n{q}", ("CASES", "existing file")),
    ("eval-cases-unknown-variable", "%%llm_eval nocases -m x -q\n{q}", ("'nocases'", "variable")),
    ("eval-output-name", EVAL + "-o 1x\n{q}", ("-o", "variable name")),
]


@pytest.mark.parametrize(("line", "needles"), [pytest.param(*r[1:], id=r[0]) for r in MAGIC_ROWS])
def test_bad_magic_line_shows_one_short_message(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, needles: tuple[str, ...]
) -> None:
    nbllm.registry().add(ep(), overwrite=True)
    res = ip.run_cell(line)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert res.error_in_exec is not None, f"accepted: {text}"
    assert "Traceback" not in text and "----" not in text, text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 3, text  # the message, maybe a hint or a usage line
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"
    assert "y" not in nbllm.registry().names()  # nothing half-saved


def test_the_table_covers_every_public_entry_point() -> None:
    """The table is the contract: each public function, registry method, scorer constructor,
    Endpoint field and magic has rows (a new one without rows fails here)."""
    prefixes = {r[0].split("-")[0] for r in ROWS}
    functions = {n for n in nbllm.__all__ if n[0].islower() and callable(getattr(nbllm, n))}
    functions -= {"registry", "load_ipython_extension"}  # no arguments / the shell: not user input
    assert functions <= prefixes, functions - prefixes
    methods = {r[0].split("-")[1] for r in ROWS if r[0].startswith("registry-")}
    assert {"add", "update", "rename", "remove", "get", "set_default"} <= methods
    assert {n for n in scorers.__all__ if n[0].islower()} <= prefixes
    fields = {f.name for f in dataclasses.fields(nbllm.Endpoint) if f.init}
    same_check_as_response_path = {
        "reasoning_path",
        "stream_reasoning_path",
        "usage_prompt_path",
        "usage_completion_path",
        "finish_reason_path",
    }
    assert fields - same_check_as_response_path <= prefixes, fields - prefixes
    assert {"replace", "from_dict", "from_opencharacters", "from_autodev", "from_preset"} <= prefixes
    assert {"rescore", "summary", "side_by_side", "save"} <= prefixes  # the df.llm accessor
    assert {r[0].split("-")[0] for r in MAGIC_ROWS} == {"model", "llm", "eval"}
    assert len(MAGIC_ROWS) >= 10


# ---- the shared checkers themselves --------------------------------------------------------------


def test_json_check_returns_clean_values_as_they_are_and_converts_the_rest() -> None:
    clean = {"temperature": 0.2, "stop": ["a"], "options": {"seed": 1}, "n": None}
    assert check_json_value("params", clean) is clean  # nothing copied when nothing changes
    mixed = {
        "a": (np.int64(1), np.float32(0.5), np.float64(0.25), np.str_("s")),
        "b": np.array([[1, 2]]),
        "c": [np.bool_(True)],
    }
    out = check_json_value("params", mixed)
    assert out == {"a": [1, 0.5, 0.25, "s"], "b": [[1, 2]], "c": [True]}
    assert [type(v) for v in (*out["a"], out["c"][0])] == [int, float, float, str, bool]
    with pytest.raises(UsageError, match=r"params\['a'\]\['b'\]\[1\]: inf cannot be sent"):
        check_json_value("params", {"a": {"b": [1, INF]}})
    with pytest.raises(UsageError, match=r"params: keys must be strings, got int 1"):
        check_json_value("params", {1: "x"})


def test_number_checks_refuse_bools_and_accept_numpy_numbers() -> None:
    assert check_number("t", np.float64(0.5)) == 0.5 and check_int("n", np.int32(3)) == 3
    with pytest.raises(UsageError, match="t: must be a number, got bool True"):
        check_number("t", True)
    with pytest.raises(UsageError, match=r"n: must be a whole number >= 1, got float 2\.0"):
        check_int("n", 2.0, min=1)
    assert check_number("b", INF, allow_inf=True) == INF
