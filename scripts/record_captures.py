"""Re-record wire captures from the REAL servers into tests/fixtures/captures/.

    bash scripts/setup_realservers.sh            # once
    python scripts/record_captures.py [--out DIR] [--only litellm|hf] [--all]

Starts the LiteLLM proxy and `transformers serve` (tests/realservers/servers.py) on 127.0.0.1,
sends each request below, and writes, in the format of shared/captures/:

- ``NAME.headers``: the status line and the response headers exactly as received (original
  order and case), CRLF-terminated, then an empty line (what ``curl -D`` writes);
- ``NAME.body``: the response body exactly as received after HTTP/1.1 de-chunking (no content
  encoding is asked for), i.e. SSE streams byte for byte, ``data: [DONE]`` included or not.

Plus ``MANIFEST.json``: for each capture, the server, its version and the request sent.
Only the standard library is used, so any Python 3.10+ runs this. By default a small set is
recorded (a few dozen KB, committed to the repo); ``--all`` adds the rest of the catalogue.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from realservers import (  # noqa: E402
    HF_MODEL_ID,
    ServerHandle,
    start_hf_serve,
    start_litellm_proxy,
)

PROMPT = "Say hello to the notebook."
MAX_TOKENS = 8


def chat(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": MAX_TOKENS, **kw}


def completion(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, **kw}


USAGE = {"stream_options": {"include_usage": True}}
KEY = "master"  # placeholder: the server's master key
NOKEY = None

# (name, method, path under /v1, json body or raw bytes, key, in the default set?)
Spec = tuple[str, str, str, Any, "str | None", bool]

LITELLM: list[Spec] = [
    ("models", "GET", "/models", None, KEY, True),
    ("chat", "POST", "/chat/completions", chat("echo"), KEY, True),
    ("chat-stream", "POST", "/chat/completions", chat("echo", stream=True), KEY, False),
    ("chat-stream-usage", "POST", "/chat/completions", chat("echo", stream=True, **USAGE), KEY, True),
    ("completion", "POST", "/completions", completion("echo"), KEY, False),
    ("completion-stream", "POST", "/completions", completion("echo", stream=True, **USAGE), KEY, True),
    ("mock-chat", "POST", "/chat/completions", chat("mock-gpt"), KEY, False),
    (
        "mock-chat-stream-usage",
        "POST",
        "/chat/completions",
        chat("mock-gpt", stream=True, **USAGE),
        KEY,
        True,
    ),
    ("mock-completion", "POST", "/completions", completion("mock-gpt"), KEY, False),
    ("err-401-no-key", "POST", "/chat/completions", chat("echo"), NOKEY, True),
    ("err-400-bad-key", "POST", "/chat/completions", chat("echo"), "sk-wrong", False),
    ("err-bad-model", "POST", "/chat/completions", chat("no-such-model"), KEY, True),
    ("err-bad-model-stream", "POST", "/chat/completions", chat("no-such-model", stream=True), KEY, False),
    (
        "err-missing-messages",
        "POST",
        "/chat/completions",
        {"model": "echo", "max_tokens": MAX_TOKENS},
        KEY,
        True,
    ),
    ("err-bad-json", "POST", "/chat/completions", b"{not json", KEY, False),
    ("err-404-route", "POST", "/nowhere", {}, KEY, False),
    ("x-echo-fail", "POST", "/chat/completions", chat("echo-fail"), KEY, False),
    ("x-echo-fail-stream", "POST", "/chat/completions", chat("echo-fail", stream=True), KEY, True),
    ("x-echo-slow-stream", "POST", "/chat/completions", chat("echo-slow", stream=True, **USAGE), KEY, False),
]

HF: list[Spec] = [
    ("models", "GET", "/models", None, NOKEY, True),
    ("chat", "POST", "/chat/completions", chat(HF_MODEL_ID), NOKEY, True),
    ("chat-stream", "POST", "/chat/completions", chat(HF_MODEL_ID, stream=True), NOKEY, True),
    ("chat-stream-usage", "POST", "/chat/completions", chat(HF_MODEL_ID, stream=True, **USAGE), NOKEY, False),
    ("completion", "POST", "/completions", completion(HF_MODEL_ID), NOKEY, True),
    ("completion-stream", "POST", "/completions", completion(HF_MODEL_ID, stream=True), NOKEY, True),
    ("err-bad-model", "POST", "/chat/completions", chat("no-such-model"), NOKEY, True),
    ("err-bad-model-stream", "POST", "/chat/completions", chat("no-such-model", stream=True), NOKEY, False),
    (
        "err-missing-messages",
        "POST",
        "/chat/completions",
        {"model": HF_MODEL_ID, "max_tokens": MAX_TOKENS},
        NOKEY,
        True,
    ),
    ("err-bad-json", "POST", "/chat/completions", b"{not json", NOKEY, True),
    ("err-404-route", "POST", "/nowhere", {}, NOKEY, False),
]


def fetch(srv: ServerHandle, method: str, path: str, body: Any, key: str | None) -> tuple[bytes, bytes]:
    """-> (headers block as received, body as received after de-chunking)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=120)
    headers = {"Accept": "*/*", "User-Agent": "nbllm-record-captures"}
    payload: bytes | None = None
    if body is not None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if key is not None:
        headers["Authorization"] = f"Bearer {srv.master_key if key == KEY else key}"
    try:
        conn.request(method, "/v1" + path, body=payload, headers=headers)
        r = conn.getresponse()
        data = r.read()
        version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(r.version, "HTTP/1.1")
        lines = [f"{version} {r.status} {r.reason}"]
        lines += [f"{k}: {v}" for k, v in r.msg.items()]  # original order and case
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head, data
    finally:
        conn.close()


def record(
    srv: ServerHandle, prefix: str, specs: list[Spec], out: Path, everything: bool, manifest: dict[str, Any]
) -> None:
    for name, method, path, body, key, default in specs:
        if not (default or everything):
            continue
        full = f"{prefix}-{name}"
        head, data = fetch(srv, method, path, body, key)
        (out / f"{full}.headers").write_bytes(head)
        (out / f"{full}.body").write_bytes(data)
        manifest[full] = {
            "server": srv.name,
            "version": srv.version,
            "method": method,
            "path": "/v1" + path,
            "auth": {KEY: "master key", None: "none"}.get(key, "wrong key"),
            "request": body.decode() if isinstance(body, bytes) else body,
            "status": int(head.split(b" ", 2)[1]),
        }
        print(f"  {full}: {manifest[full]['status']} ({len(data)} bytes)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "captures")
    ap.add_argument("--only", choices=["litellm", "hf"])
    ap.add_argument("--all", action="store_true", help="record the whole catalogue")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "MANIFEST.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="nbllm-captures-") as tmp:
        if args.only in (None, "litellm"):
            with start_litellm_proxy(tmp) as srv:
                print(
                    f"LiteLLM proxy {srv.version} at {srv.base_url} (ready after {srv.ready_after_s:.1f} s)"
                )
                record(srv, "litellm", LITELLM, args.out, args.all, manifest)
        if args.only in (None, "hf"):
            with start_hf_serve(tmp) as srv:
                print(
                    f"transformers serve {srv.version} at {srv.base_url} "
                    f"(ready after {srv.ready_after_s:.1f} s)"
                )
                record(srv, "hf-serve", HF, args.out, args.all, manifest)
    manifest_path.write_text(
        "{\n"
        + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(manifest.items()))
        + "\n}\n"
    )
    total = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(f"wrote {len(manifest)} captures to {args.out} ({total / 1024:.1f} KB with manifest)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
