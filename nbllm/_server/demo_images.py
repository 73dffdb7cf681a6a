"""The demo server's image generation (pure: no I/O, no model, no network).

``POST /v1/images/generations`` gets a small PNG made with zlib + struct: a gradient whose two
colours come from a SHA-256 of the prompt (and the image's index), so the same prompt always
gives the same picture. ``n`` (1-4), ``size`` (``WxH``, each capped at 256; default 64x64) and
``response_format`` (``b64_json``, the default, or ``url``: served by the demo server itself at
``/v1/images/files/<id>.png``) are honoured. A prompt holding ``[[policy]]`` is refused with a
400 ``content_policy_violation``, as OpenAI refuses a prompt its safety system rejects.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = ["POLICY_MARKER", "ImageRefused", "image_answer", "make_png"]

POLICY_MARKER = "[[policy]]"
MAX_SIDE = 256
MAX_N = 4
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})\Z")


class ImageRefused(Exception):
    """A request the demo refuses with 400: ``message``, OpenAI's ``code`` and ``param``."""

    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def make_png(prompt: str, width: int = 64, height: int = 64, index: int = 0) -> bytes:
    """A deterministic RGB PNG: a diagonal gradient between two colours taken from the prompt."""
    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest()
    a, b = digest[0:3], digest[3:6]
    rows = bytearray()
    span = max(width + height - 2, 1)
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            t = (x + y) / span
            rows += bytes(int(a[c] + (b[c] - a[c]) * t) for c in range(3))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + _chunk(b"IEND", b"")
    )


def _size(value: Any) -> tuple[int, int]:
    if value is None:
        return 64, 64
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m or not int(m.group(1)) or not int(m.group(2)):
        raise ImageRefused(
            f"Invalid size {value!r}: use WIDTHxHEIGHT, e.g. '256x256'", "invalid_size", "size"
        )
    return min(int(m.group(1)), MAX_SIDE), min(int(m.group(2)), MAX_SIDE)


@dataclass(frozen=True)
class ImageAnswer:
    """What to send: the JSON body, and the PNGs to serve by id when ``url`` was asked."""

    body: dict[str, Any]
    files: dict[str, bytes]


def image_answer(body: dict[str, Any], base_url: str, counter: int) -> ImageAnswer:
    """The answer to one ``/v1/images/generations`` request (``ImageRefused`` for a 400)."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ImageRefused("'prompt' is required and must be a non-empty string", "invalid_prompt", "prompt")
    if POLICY_MARKER in prompt:
        raise ImageRefused(
            "Your request was rejected as a result of our safety system. Your prompt may contain text "
            "that is not allowed by our safety system (demo: the prompt holds [[policy]]).",
            "content_policy_violation",
        )
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N:
        raise ImageRefused(f"'n' must be an integer from 1 to {MAX_N}, got {n!r}", "invalid_n", "n")
    width, height = _size(body.get("size"))
    fmt = body.get("response_format") or "b64_json"
    if fmt not in ("b64_json", "url"):
        raise ImageRefused(
            f"Invalid response_format {fmt!r}: use 'b64_json' or 'url'",
            "invalid_response_format",
            "response_format",
        )
    clean = prompt.strip()
    data, files = [], {}
    for i in range(n):
        png = make_png(clean, width, height, i)
        item: dict[str, Any] = {"revised_prompt": f"A {width}x{height} gradient for: {clean}"}
        if fmt == "url":
            name = f"{counter}-{i}-{hashlib.sha256(png).hexdigest()[:12]}.png"
            files[name] = png
            item["url"] = f"{base_url}/v1/images/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(png).decode()
        data.append(item)
    return ImageAnswer({"created": int(time.time()), "data": data}, files)
