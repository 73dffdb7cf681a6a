"""Image generation, the pure part: request body, answer parsing, the ``ImageResult`` type.

An image endpoint (``Endpoint.type == "image"``, inferred from a URL ending in
``/images/generations``) takes OpenAI's body ``{"model", "prompt", "n", "size",
"response_format"}`` and answers ``{"created", "data": [{"b64_json"} or {"url"},
"revised_prompt"?]}``. Where the images are is data-driven: three JSONPaths on the endpoint
(``image_b64_path``, ``image_url_path``, ``revised_prompt_path``; OpenAI's by default), so other
image APIs can be configured. The I/O (POST, fetching URL answers) is in ``_image_api``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from .._base.exceptions import ExtractionError, StreamError
from .._base.redact import redact_obj
from .endpoint import Endpoint, deep_merge
from .extract import compile_path, excerpt
from .request import _USER_AGENT, RequestSpec, _render, request_secrets
from .result import Result

__all__ = [
    "GeneratedImage",
    "ImageResult",
    "build_image_request",
    "decode_b64",
    "find_sources",
    "handler_doc",
    "sniff_mime",
    "strip_b64",
]

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


class GeneratedImage(NamedTuple):
    """One image: its bytes, MIME type, the prompt the model really used (when it says), and
    the URL it was fetched from (None for a ``b64_json`` answer)."""

    data: bytes
    mime: str
    revised_prompt: str | None = None
    url: str | None = None

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """(width, height) read from a PNG or GIF header; None for other formats."""
        if self.mime == "image/png" and len(self.data) >= 24:
            w, h = struct.unpack(">II", self.data[16:24])
            return int(w), int(h)
        if self.mime == "image/gif" and len(self.data) >= 10:
            w, h = struct.unpack("<HH", self.data[6:10])
            return int(w), int(h)
        return None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def __repr__(self) -> str:
        return (
            f"GeneratedImage({self.mime}, {len(self.data):,} bytes, revised_prompt={self.revised_prompt!r})"
        )


def sniff_mime(data: bytes, fallback: str | None = None) -> str:
    """The image type from the first bytes (PNG, JPEG, GIF, WebP), else ``fallback`` (a
    Content-Type) or ``application/octet-stream``."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if fallback and fallback.split(";")[0].strip().lower().startswith("image/"):
        return fallback.split(";")[0].strip().lower()
    return "application/octet-stream"


def build_image_request(
    ep: Endpoint, prompt: str, params: Mapping[str, Any], *, api_key: str | None
) -> RequestSpec:
    """The URL, headers and JSON body of one image generation call of ``ep``.

    Precedence as for text: the base body (model, prompt), the endpoint's ``params``, its
    ``body_fields``, then the call's parameters (``n``, ``size``, ``response_format``, ...)."""
    merged = {**ep.params, **params}
    if ep.body_template is not None:
        values = {"prompt": prompt, "model": ep.model_name, "params": merged or None, **merged}
        body = deep_merge(_render(ep.body_template, values), ep.body_fields)
    else:
        body = deep_merge(deep_merge({"model": ep.model_name, "prompt": prompt}, ep.params), ep.body_fields)
        body.update(params)
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **ep.headers}
    if api_key:
        headers[ep.auth_header] = f"{ep.auth_scheme} {api_key}" if ep.auth_scheme else api_key
    try:
        raw = orjson.dumps(body)
    except TypeError:
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return RequestSpec(
        url=ep.request_url,
        body=raw,
        json=body,
        stream=False,
        headers=headers,
        secrets=request_secrets(ep, headers, api_key),
    )


def _strings(values: list[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v]


def find_sources(ep: Endpoint, doc: Any, *, url: str) -> tuple[list[tuple[str, str]], list[str | None]]:
    """``([("b64" | "url", value), ...], revised prompts)`` from an answer, one per image.

    The base64 images are taken when the answer has any, else the URLs. Revised prompts are
    paired with the images when there are as many of them (OpenAI sends one per image or none).
    A 200 answer holding ``{"error": ...}`` or no image raises, with a sample of the answer."""
    if isinstance(doc, dict) and doc.get("error"):
        from .response import message_of

        raise StreamError(
            f"the server reported an error: {message_of(redact_obj(doc))}", endpoint=ep.name, url=url
        )
    b64_path = ep.path("image_b64_path") or "$.data[*].b64_json"
    url_path = ep.path("image_url_path") or "$.data[*].url"
    revised_path = ep.path("revised_prompt_path") or "$.data[*].revised_prompt"
    b64 = _strings(compile_path(b64_path, field="image_b64_path").find(doc))
    urls = _strings(compile_path(url_path, field="image_url_path").find(doc))
    sources = [("b64", v) for v in b64] if b64 else [("url", v) for v in urls]
    if not sources:
        sample = excerpt(strip_b64(redact_obj(doc)), 300)
        raise ExtractionError(
            f"no image in the answer: neither {b64_path} nor {url_path} matched a string; body sample: {sample}",
            path=b64_path,
            sample=sample,
            endpoint=ep.name,
            url=url,
            hint="set image_b64_path (base64 images) or image_url_path (image URLs) to the JSONPath "
            "of the images in that sample",
        )
    revised_raw = compile_path(revised_path, field="revised_prompt_path").find(doc)
    revised: list[str | None] = [v if isinstance(v, str) and v else None for v in revised_raw]
    if len(revised) != len(sources):
        revised = [None] * len(sources)
    return sources, revised


def decode_b64(value: str, *, ep: Endpoint, url: str) -> bytes:
    """Bytes of a base64 image (a ``data:image/png;base64,`` prefix is allowed)."""
    text = value.strip()
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if ";base64" not in head:
            raise StreamError(
                f"the image data URL is not base64 ({excerpt(head, 60)})", endpoint=ep.name, url=url
            )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise StreamError(
            f"an image in the answer is not valid base64 ({len(text):,} characters: {excerpt(text, 40)})",
            endpoint=ep.name,
            url=url,
            hint="check image_b64_path: it should point at the base64 image data",
        ) from None


def strip_b64(doc: Any, values: frozenset[str] | None = None) -> Any:
    """``doc`` with long base64 strings replaced by ``<N base64 characters>`` (the bytes are kept
    once, in the images; ``raw`` stays small enough to print)."""
    if isinstance(doc, dict):
        return {k: strip_b64(v, values) for k, v in doc.items()}
    if isinstance(doc, list):
        return [strip_b64(v, values) for v in doc]
    if isinstance(doc, str) and (doc in values if values is not None else len(doc) > 256):
        return f"<{len(doc):,} base64 characters>"
    return doc


def _plain(obj: Any) -> Any:
    for attr in ("model_dump", "dict", "to_dict"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            try:
                return fn()
            except TypeError:
                continue
    return obj


def handler_doc(obj: Any) -> Any:
    """A handler's ``image_generation`` answer as an OpenAI-shaped document: ``bytes`` (one
    image), a URL or data-URL string, a list of those, a dict ``{"data": [...]}`` or a LiteLLM
    ``ImageResponse`` (any pydantic model)."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"data": [{"b64_json": base64.b64encode(bytes(obj)).decode()}]}
    if isinstance(obj, str):
        return {"data": [{"url": obj}]}
    if isinstance(obj, (list, tuple)):
        items: list[Any] = []
        for item in obj:
            items += handler_doc(item)["data"]
        return {"data": items}
    obj = _plain(obj)
    if isinstance(obj, dict):
        if "data" in obj:
            return obj
        if any(k in obj for k in ("b64_json", "url")):
            return {"data": [obj]}
    from .._base.exceptions import HandlerError

    raise HandlerError(
        f"image handler returned {type(obj).__name__}: return PNG bytes, an image URL, a list of "
        "those, or an OpenAI-shaped {'data': [{'b64_json': ...}]} / LiteLLM ImageResponse"
    )


class ImageResult(Result):
    """The outcome of one image generation call: a ``Result`` whose ``text`` is the revised
    prompt(s) (empty when the model gave none) and whose ``images`` hold the pictures.

    ``images``: list of ``GeneratedImage(data, mime, revised_prompt, url)``; ``data`` is the first
    image's bytes; ``pil(i)`` a PIL image (Pillow is imported only then, and is optional); in a
    notebook the result displays as its first image."""

    __slots__ = ("images", "prompt", "size")

    def __init__(
        self,
        images: list[GeneratedImage],
        endpoint: str,
        model: str | None = None,
        *,
        prompt: str = "",
        size: str | None = None,
        **kw: Any,
    ) -> None:
        text = "\n".join(dict.fromkeys(i.revised_prompt for i in images if i.revised_prompt))  # each once
        super().__init__(text, endpoint, model, **kw)
        self.images = images
        self.prompt = prompt
        self.size = size

    @property
    def image_bytes(self) -> bytes:
        """The first image's bytes (each image's are in ``.images[i].data``; ``.data`` is the
        parsed structured output of text calls, None here)."""
        return self.images[0].data if self.images else b""

    @property
    def mime(self) -> str:
        return self.images[0].mime if self.images else "application/octet-stream"

    def pil(self, i: int = 0) -> Any:
        """Image ``i`` as a ``PIL.Image.Image`` (needs Pillow: ``pip install pillow``)."""
        try:
            from PIL import Image
        except ImportError as exc:
            from .._base.exceptions import UsageError

            raise UsageError(
                "Pillow is not installed: ImageResult.pil() needs it",
                hint="pip install pillow, or use .data (the image bytes) / .images[i].data",
            ) from exc
        import io

        return Image.open(io.BytesIO(self.images[i].data))

    def save(self, path: str, i: int = 0) -> str:
        """Write image ``i`` to ``path``; returns the path."""
        with open(path, "wb") as f:
            f.write(self.images[i].data)
        return path

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self)}
        if self.images and self.mime.startswith("image/") and self.mime != "image/webp":
            bundle[self.mime] = base64.b64encode(self.image_bytes).decode()
        return bundle

    def _repr_png_(self) -> bytes | None:
        return self.image_bytes if self.mime == "image/png" else None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(
            images=[{"mime": i.mime, "bytes": len(i.data), "sha256": i.sha256} for i in self.images],
            size=self.size,
        )
        return out

    def __repr__(self) -> str:
        kinds = ", ".join(sorted({i.mime for i in self.images})) or "none"
        parts = [f"endpoint={self.endpoint!r}", f"images={len(self.images)} ({kinds})"]
        if self.text:
            text = self.text if len(self.text) <= 60 else self.text[:57] + "..."
            parts.append(f"revised_prompt={text!r}")
        if self.latency_s is not None:
            parts.append(f"latency_s={self.latency_s:.3f}")
        if self.cost is not None:
            parts.append(f"cost={self.cost:.6f}")
        return f"ImageResult({', '.join(parts)})"


def image_cost(ep: Endpoint, count: int) -> float | None:
    """``price_image`` times the number of images; None when the endpoint has no image price."""
    return None if ep.price_image is None else ep.price_image * count
