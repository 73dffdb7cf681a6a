"""Replay real servers' wire bytes through the client, cut at awkward network boundaries.

The expected values come from a naive, independent parse of each capture (line by line,
``json.loads``), never from nbllm's own decoders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import nbllm
from nbllm import Endpoint

HERE = Path(__file__).parent / "fixtures" / "shared_captures"
CAPTURES = sorted(p.stem for p in HERE.glob("*.body") if not p.stem.endswith("models"))


def load(name: str) -> tuple[int, dict[str, str], bytes]:
    lines = (HERE / f"{name}.headers").read_text().splitlines()
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, sep, value = line.partition(":")
        if sep and key.lower() not in ("transfer-encoding", "content-length", "content-encoding"):
            headers[key.strip().lower()] = value.strip()
    return status, headers, (HERE / f"{name}.body").read_bytes()


def oracle(body: bytes, completion: bool) -> dict[str, Any]:
    """What a careful human reads off the capture."""
    key = "text" if completion else "content"
    docs = []
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        docs = [json.loads(text)]
        streamed = False
    else:
        streamed = True
        for line in text.replace("\r\n", "\n").split("\n"):
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                docs.append(json.loads(line[5:]))
    out: dict[str, Any] = {"text": "", "usage": None, "error": None, "finish": None}
    for doc in docs:
        if doc.get("error"):
            out["error"] = doc["error"]["message"]
            break
        for choice in doc.get("choices") or []:
            part = (
                choice.get("delta")
                if streamed and not completion
                else choice.get("message")
                if not completion
                else choice
            )
            if part and part.get(key):
                out["text"] += part[key]
            if choice.get("finish_reason"):
                out["finish"] = choice["finish_reason"]
        if doc.get("usage"):
            out["usage"] = (doc["usage"]["prompt_tokens"], doc["usage"]["completion_tokens"])
    return out


class Cut(httpx.SyncByteStream):
    def __init__(self, body: bytes, size: int) -> None:
        self.body, self.size = body, size

    def __iter__(self) -> Iterator[bytes]:
        for i in range(0, len(self.body), self.size):
            yield self.body[i : i + self.size]


@pytest.mark.parametrize("size", [1, 7, 4096])
@pytest.mark.parametrize("name", CAPTURES)
def test_replay_capture(name: str, size: int) -> None:
    status, headers, body = load(name)
    completion = "completion" in name and "chat" not in name
    ep = Endpoint(
        name=name, url="http://peer.test/v1", type="completion" if completion else "chat", retries=0
    )

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, stream=Cut(body, size))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        if status >= 400:
            with pytest.raises(nbllm.HTTPStatusError) as info:
                nbllm.complete(ep, "hi", client=client)
            err = info.value
            assert err.status_code == status
            assert err.server_message and f"HTTP {status}" in str(err)
            plain = body.decode("utf-8", "replace")
            # the server's own words reach the user (JSON error message, detail, or plain text)
            assert err.server_message.split(" ")[0].strip('"[{') in plain
            return
        expected = oracle(body, completion)
        if expected["error"]:
            with pytest.raises(nbllm.StreamError) as serr:
                nbllm.complete(ep, "hi", client=client)
            assert expected["error"] in str(serr.value)
            assert serr.value.partial_text == expected["text"]
            return
        result = nbllm.complete(ep, "hi", client=client)
    assert result.text == expected["text"]
    assert result.finish_reason == expected["finish"]
    if expected["usage"]:
        assert (result.usage.prompt_tokens, result.usage.completion_tokens) == expected["usage"]
    assert result.streamed == ("event-stream" in headers.get("content-type", ""))


def test_captures_cover_each_server_and_quirk() -> None:
    names = set(CAPTURES)
    for server in ("litellm", "hf-serve", "llama-server", "llamacpp"):
        assert any(n.startswith(server) for n in names), server
    assert "litellm-x-echo-fail-stream" in names  # an error after the 200
    assert b"[DONE]" not in (HERE / "hf-serve-chat-stream.body").read_bytes()  # stream just ends
    assert b": ping" in (HERE / "litellm-x-echo-slow-ka-stream.body").read_bytes()  # keep-alives
