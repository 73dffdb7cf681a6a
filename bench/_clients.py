"""Benchmark worker: one client library, measured in its own process (run by bench/run.py).

    <venv>/bin/python bench/_clients.py CLIENT BASE_URL

reads one JSON command per line on stdin and answers one JSON line per command:

    {"op": "stream", "n": 20000}            one streamed answer of n chunks
    {"op": "ttft", "calls": 50}             sequential short streamed calls, time to first delta
    {"op": "conc", "calls": 2000, "concurrency": 16}   non-streaming calls, asyncio.Semaphore

Every measurement reports this process's CPU time (``time.process_time``: all threads) and
wall time, and the number of deltas and characters the client really decoded, so run.py can
assert the count. Library output on stdout is sent to stderr: stdout carries only answers.
The clients are kept warm (one client object, one event loop) for the life of the worker.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import socket
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

STREAM_PROMPT = "[[tokens:{n}]]"
SHORT_PROMPT = "hello"
SHORT_REPLY = "You said: hello"
MODEL = "demo"
HEADERS = {"Content-Type": "application/json", "User-Agent": "bench"}


def body(prompt: str, stream: bool) -> bytes:
    """Exactly the body nbllm sends for a chat endpoint named ``demo`` (stream_options included)."""
    doc: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        doc["stream"] = True
        doc["stream_options"] = {"include_usage": True}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def messages(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


# A client: stream(n) -> (deltas, chars); first(prompt, mark) streams a short answer and calls
# mark() at the first content delta; call() -> reply text (non-streaming). Each may be sync or async.
Client = dict[str, Callable[..., Any]]


# ---------------------------------------------------------------- raw httpx (the floor)


def _floor_line(line: str, parts: list[str], loads: Callable[[str], Any]) -> bool:
    """One SSE line, parsed the way the floor does it; True when it carried content."""
    if not line.startswith("data: "):
        return False
    data = line[6:]
    if data == "[DONE]":
        return False
    doc = loads(data)
    choices = doc.get("choices")
    if choices:
        content = choices[0].get("delta", {}).get("content")
        if content:
            parts.append(content)
            return True
    return False


def httpx_async(base: str, loads: Callable[[str], Any] = json.loads, **limits: Any) -> Client:
    import httpx

    client = httpx.AsyncClient(limits=httpx.Limits(**limits)) if limits else httpx.AsyncClient()
    url = base + "/chat/completions"

    async def stream(n: int) -> tuple[int, int]:
        parts: list[str] = []
        count = 0
        async with client.stream(
            "POST", url, content=body(STREAM_PROMPT.format(n=n), True), headers=HEADERS
        ) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                count += _floor_line(line, parts, loads)
        return count, len("".join(parts))

    async def first(prompt: str, mark: Callable[[], None]) -> str:
        parts: list[str] = []
        async with client.stream("POST", url, content=body(prompt, True), headers=HEADERS) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if _floor_line(line, parts, loads) and len(parts) == 1:
                    mark()
        return "".join(parts)

    async def call() -> str:
        r = await client.post(url, content=body(SHORT_PROMPT, False), headers=HEADERS)
        r.raise_for_status()
        return str(r.json()["choices"][0]["message"]["content"])

    return {"stream": stream, "first": first, "call": call}


def httpx_bytes(base: str) -> Client:
    """Transport only: httpx ``aiter_bytes`` with no parsing at all (what any httpx client pays)."""
    import httpx

    client = httpx.AsyncClient()
    url = base + "/chat/completions"

    async def stream(n: int) -> tuple[int, int]:
        size = 0
        tail = b""
        async with client.stream(
            "POST", url, content=body(STREAM_PROMPT.format(n=n), True), headers=HEADERS
        ) as r:
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                tail = chunk
        assert tail.endswith(b"data: [DONE]\n\n"), tail[-40:]
        return n, size  # counted by bytes only: the size is checked against the floor's

    return {"stream": stream}


def httpx_sync(base: str) -> Client:
    import httpx

    client = httpx.Client()
    url = base + "/chat/completions"

    def stream(n: int) -> tuple[int, int]:
        parts: list[str] = []
        count = 0
        with client.stream("POST", url, content=body(STREAM_PROMPT.format(n=n), True), headers=HEADERS) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                count += _floor_line(line, parts, json.loads)
        return count, len("".join(parts))

    def first(prompt: str, mark: Callable[[], None]) -> str:
        parts: list[str] = []
        with client.stream("POST", url, content=body(prompt, True), headers=HEADERS) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if _floor_line(line, parts, json.loads) and len(parts) == 1:
                    mark()
        return "".join(parts)

    return {"stream": stream, "first": first}


def httpx_sse_async(base: str) -> Client:
    import httpx
    from httpx_sse import aconnect_sse

    client = httpx.AsyncClient()
    url = base + "/chat/completions"

    async def stream(n: int) -> tuple[int, int]:
        parts: list[str] = []
        count = 0
        data = body(STREAM_PROMPT.format(n=n), True)
        async with aconnect_sse(client, "POST", url, content=data, headers=HEADERS) as source:
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    continue
                choices = json.loads(event.data).get("choices")
                if choices:
                    content = choices[0].get("delta", {}).get("content")
                    if content:
                        parts.append(content)
                        count += 1
        return count, len("".join(parts))

    return {"stream": stream}


# ---------------------------------------------------------------- nbllm


def _nbllm_ep(base: str, **paths: Any) -> Any:
    import nbllm

    return nbllm.Endpoint(name=MODEL, url=base, **paths)


def nbllm_async(base: str, **paths: Any) -> Client:
    import nbllm

    ep = _nbllm_ep(base, **paths)

    async def stream(n: int) -> tuple[int, int]:
        count = 0
        async with nbllm.astream(ep, STREAM_PROMPT.format(n=n)) as s:
            async for _text in s:
                count += 1
        assert s.result is not None and s.result.finish_reason == "stop", s.result
        return count, len(s.text)

    async def first(prompt: str, mark: Callable[[], None]) -> str:
        seen = False
        async with nbllm.astream(ep, prompt) as s:
            async for _text in s:
                if not seen:
                    mark()
                    seen = True
        return s.text

    async def call() -> str:
        return (await nbllm.acomplete(ep, SHORT_PROMPT)).text

    return {"stream": stream, "first": first, "call": call}


def nbllm_sync(base: str, **paths: Any) -> Client:
    import nbllm

    ep = _nbllm_ep(base, **paths)

    def stream(n: int) -> tuple[int, int]:
        count = 0
        with nbllm.stream(ep, STREAM_PROMPT.format(n=n)) as s:
            for _text in s:
                count += 1
        assert s.result is not None and s.result.finish_reason == "stop", s.result
        return count, len(s.text)

    def first(prompt: str, mark: Callable[[], None]) -> str:
        seen = False
        with nbllm.stream(ep, prompt) as s:
            for _text in s:
                if not seen:
                    mark()
                    seen = True
        return s.text

    return {"stream": stream, "first": first}


# ---------------------------------------------------------------- openai SDK


def openai_sync(base: str) -> Client:
    import openai

    client = openai.OpenAI(base_url=base, api_key="dummy", max_retries=0)

    def stream(n: int) -> tuple[int, int]:
        parts: list[str] = []
        out = client.chat.completions.create(
            model=MODEL,
            messages=messages(STREAM_PROMPT.format(n=n)),  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in out:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return len(parts), len("".join(parts))

    def first(prompt: str, mark: Callable[[], None]) -> str:
        parts: list[str] = []
        out = client.chat.completions.create(
            model=MODEL,
            messages=messages(prompt),
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
        for chunk in out:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                if len(parts) == 1:
                    mark()
        return "".join(parts)

    return {"stream": stream, "first": first}


def openai_async(base: str) -> Client:
    import openai

    client = openai.AsyncOpenAI(base_url=base, api_key="dummy", max_retries=0)

    async def stream(n: int) -> tuple[int, int]:
        parts: list[str] = []
        out = await client.chat.completions.create(
            model=MODEL,
            messages=messages(STREAM_PROMPT.format(n=n)),  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in out:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return len(parts), len("".join(parts))

    async def first(prompt: str, mark: Callable[[], None]) -> str:
        parts: list[str] = []
        out = await client.chat.completions.create(
            model=MODEL,
            messages=messages(prompt),
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
        async for chunk in out:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                if len(parts) == 1:
                    mark()
        return "".join(parts)

    async def call() -> str:
        r = await client.chat.completions.create(model=MODEL, messages=messages(SHORT_PROMPT))  # type: ignore[arg-type]
        return str(r.choices[0].message.content)

    return {"stream": stream, "first": first, "call": call}


# ---------------------------------------------------------------- litellm


def _litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.disable_streaming_logging = True  # 2.6x faster per chunk: the fairer comparison
    litellm.telemetry = False
    # litellm raises InternalServerError("The model is repeating the same chunk") after 100
    # identical chunks, and the demo's [[tokens:N]] answer is N identical "tok " chunks.
    litellm.REPEATED_STREAMING_CHUNK_LIMIT = 10**9
    return litellm


def litellm_async(base: str) -> Client:
    litellm = _litellm()
    kw = {"model": f"openai/{MODEL}", "api_base": base, "api_key": "dummy"}

    async def stream(n: int) -> tuple[int, int]:
        parts: list[str] = []
        out = await litellm.acompletion(
            messages=messages(STREAM_PROMPT.format(n=n)),
            stream=True,
            stream_options={"include_usage": True},
            **kw,
        )
        async for chunk in out:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return len(parts), len("".join(parts))

    async def first(prompt: str, mark: Callable[[], None]) -> str:
        parts: list[str] = []
        out = await litellm.acompletion(
            messages=messages(prompt), stream=True, stream_options={"include_usage": True}, **kw
        )
        async for chunk in out:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
                if len(parts) == 1:
                    mark()
        return "".join(parts)

    async def call() -> str:
        r = await litellm.acompletion(messages=messages(SHORT_PROMPT), **kw)
        return str(r.choices[0].message.content)

    return {"stream": stream, "first": first, "call": call}


def litellm_sync(base: str) -> Client:
    litellm = _litellm()
    kw = {"model": f"openai/{MODEL}", "api_base": base, "api_key": "dummy"}

    def stream(n: int) -> tuple[int, int]:
        parts: list[str] = []
        out = litellm.completion(
            messages=messages(STREAM_PROMPT.format(n=n)),
            stream=True,
            stream_options={"include_usage": True},
            **kw,
        )
        for chunk in out:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return len(parts), len("".join(parts))

    return {"stream": stream}


# ---------------------------------------------------------------- raw socket (server capacity)


def rawsock(base: str) -> Client:
    """A keep-alive socket that sends the request and reads the whole chunked body, no parsing:
    how fast the demo server can deliver (the ceiling any client could reach)."""
    hostport = base.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def stream(n: int) -> tuple[int, int]:
        data = body(STREAM_PROMPT.format(n=n), True)
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {hostport}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        sock.sendall(head + data)
        chunks = []
        tail = b""
        while not tail.endswith(b"\r\n0\r\n\r\n"):
            got = sock.recv(1 << 20)
            if not got:
                raise ConnectionError("server closed the connection")
            chunks.append(got)
            tail = (tail + got)[-16:]
        whole = b"".join(chunks)
        return whole.count(b'"content":"tok "'), len(whole)

    return {"stream": stream}


# ---------------------------------------------------------------- the worker loop

CLIENTS: dict[str, Callable[[str], Client]] = {
    "httpx-async": httpx_async,
    "httpx-async-orjson": lambda b: httpx_async(b, loads=__import__("orjson").loads),
    "httpx-async-big-limits": lambda b: httpx_async(b, max_connections=256, max_keepalive_connections=64),
    "httpx-bytes": httpx_bytes,
    "httpx-sync": httpx_sync,
    "httpx-sse": httpx_sse_async,
    "nbllm-async": nbllm_async,
    "nbllm-sync": nbllm_sync,
    "nbllm-async-path-simple": lambda b: nbllm_async(b, stream_path="$.choices[0].delta['content']"),
    "nbllm-async-path-simple2": lambda b: nbllm_async(b, stream_path="$['choices'][-1]['delta']['content']"),
    "nbllm-async-path-filter": lambda b: nbllm_async(
        b, stream_path="$.choices[?(@.index == 0)].delta.content"
    ),
    # Anthropic's preset shape, `$[?(@.type == 'content_block_delta')].delta.text`: a filter on
    # a key of the chunk itself, then keys; here on the demo server's OpenAI chunks.
    "nbllm-async-path-filter-root": lambda b: nbllm_async(
        b, stream_path="$[?(@.object == 'chat.completion.chunk')].choices[0].delta.content"
    ),
    "openai-sync": openai_sync,
    "openai-async": openai_async,
    "litellm-async": litellm_async,
    "litellm-sync": litellm_sync,
    "rawsock": rawsock,
}


def _stamp(marks: list[float]) -> None:
    marks.append(time.perf_counter())


class Worker:
    def __init__(self, name: str, base: str) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.client = self.run(_make(name, base))

    def run(self, value: Any) -> Any:
        return self.loop.run_until_complete(value) if asyncio.iscoroutine(value) else value

    def stream(self, n: int) -> dict[str, Any]:
        fn = self.client["stream"]
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        deltas, chars = self.run(fn(n))
        w1, c1 = time.perf_counter(), time.process_time()
        return {"cpu": c1 - c0, "wall": w1 - w0, "deltas": deltas, "chars": chars}

    def ttft(self, calls: int) -> dict[str, Any]:
        fn = self.client["first"]
        ttfts: list[float] = []
        cpus: list[float] = []
        texts: set[str] = set()
        for _ in range(calls):
            marks: list[float] = []
            mark = functools.partial(_stamp, marks)
            c0, t0 = time.process_time(), time.perf_counter()
            texts.add(self.run(fn(SHORT_PROMPT, mark)))
            cpus.append(time.process_time() - c0)
            assert len(marks) == 1, marks
            ttfts.append(marks[0] - t0)
        assert texts == {SHORT_REPLY}, texts
        return {"ttft": ttfts, "cpu": cpus}

    def conc(self, calls: int, concurrency: int) -> dict[str, Any]:
        fn: Callable[[], Awaitable[str]] = self.client["call"]

        async def main() -> list[str]:
            sem = asyncio.Semaphore(concurrency)

            async def one() -> str:
                async with sem:
                    return await fn()

            return await asyncio.gather(*(one() for _ in range(calls)))

        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        texts = self.loop.run_until_complete(main())
        w1, c1 = time.perf_counter(), time.process_time()
        ok = sum(t == SHORT_REPLY for t in texts)
        return {"cpu": c1 - c0, "wall": w1 - w0, "ok": ok}


async def _amake(fn: Callable[[str], Client], base: str) -> Client:
    return fn(base)  # async clients are created inside the worker's loop


def _make(name: str, base: str) -> Any:
    return _amake(CLIENTS[name], base)


def main() -> None:
    name, base = sys.argv[1], sys.argv[2]
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the protocol
    sys.stdout = sys.stderr
    try:
        worker = Worker(name, base)
        out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    except Exception:
        out.write(json.dumps({"ready": False, "error": traceback.format_exc()}) + "\n")
        return
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["op"] == "stream":
                res = worker.stream(cmd["n"])
            elif cmd["op"] == "ttft":
                res = worker.ttft(cmd["calls"])
            elif cmd["op"] == "conc":
                res = worker.conc(cmd["calls"], cmd["concurrency"])
            elif cmd["op"] == "exit":
                break
            else:
                raise ValueError(f"unknown op {cmd['op']!r}")
        except Exception:
            res = {"error": traceback.format_exc()}
        out.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
