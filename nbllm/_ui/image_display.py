"""``%%llm -m IMAGE_ENDPOINT``: the generated image(s) inline, the revised prompt, a footer.

In a notebook each image is one ``display_data`` output of its own MIME type (``image/png``,
``image/jpeg``, ...), followed by the revised prompt (when the model gave one) and the usual
grey footer (endpoint, model, size, count, latency, cost). In a terminal the same is printed as
text lines. Only the public API is called (``nbllm.generate_image``).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._base.exceptions import NbllmError
from .._base.format import money, plural
from .display import duration, show, show_footer
from .magic_hints import for_magic

if TYPE_CHECKING:
    from .._core.endpoint import Endpoint
    from .._core.images import ImageResult
    from .magic_types import Call, Outcome, View

__all__ = ["check_image", "image_footer", "is_image_endpoint", "run_image"]

_SHOWN = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml")


def is_image_endpoint(name: str) -> bool:
    """Whether ``name`` is a registered image endpoint, or ``"provider/model"`` of a handler that
    only generates images (anything else: False; the text path reports unknown names)."""
    from .._io.providers import implements, providers
    from .._io.registry import registry

    try:
        reg = registry()
        if name in reg:
            return reg.get(name).type == "image"
    except NbllmError:
        return False
    handler = providers().get(name.partition("/")[0]) if "/" in name else None
    if handler is None:
        return False
    text = ("completion", "streaming", "acompletion", "astreaming")
    images = ("image_generation", "aimage_generation")
    return any(implements(handler, m) for m in images) and not any(implements(handler, m) for m in text)


def _prompt_text(prompt: str | Sequence[Mapping[str, Any]]) -> str:
    if isinstance(prompt, str):
        return prompt
    for message in reversed(prompt):  # --chat: the history is for text; the last user turn counts
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def image_footer(name: str, result: ImageResult | None, state: str = "done") -> str:
    """``demo-image · gpt-image · 64x64 · 1 image · total 12 ms · $0.02``."""
    parts = [name] if state == "done" else [name, state]
    if result is not None:
        if result.model and result.model != name:
            parts.append(result.model)
        dims = result.images[0].dimensions if result.images else None
        if dims is not None:  # what arrived, which may differ from what was asked
            parts.append(f"{dims[0]}x{dims[1]}")
        elif result.size:
            parts.append(result.size)
        parts.append(plural(len(result.images), "image"))
        if result.latency_s is not None:
            parts.append(f"total {duration(result.latency_s)}")
        if result.cost is not None:
            parts.append(money(result.cost))
    return " · ".join(parts)


def _show_image(data: bytes, mime: str, rich: bool, index: int, count: int) -> None:
    label = f"image {index + 1} of {count}" if count > 1 else "image"
    summary = f"[{label}: {mime}, {len(data):,} bytes]"
    if rich and mime in _SHOWN:
        payload: str = (
            data.decode("utf-8", "replace") if mime == "image/svg+xml" else base64.b64encode(data).decode()
        )
        show({mime: payload, "text/plain": summary})
    else:
        print(summary, flush=True)


def _show_caption(text: str, rich: bool) -> None:
    if rich:
        show(
            {
                "text/plain": f"revised prompt: {text}",
                "text/html": f"<div><em>revised prompt:</em> {html.escape(text)}</div>",
            }
        )
    else:
        print(f"revised prompt: {text}", flush=True)


def run_image(call: Call, view: View) -> Outcome:
    """Generate and show image(s) for one ``%%llm`` call on an image endpoint."""
    from .._io.image_api import generate_image
    from .magic_types import Outcome

    out = Outcome(call.name)
    result: ImageResult | None = None
    try:
        result = generate_image(call.name, _prompt_text(call.prompt), params=call.params)
    except KeyboardInterrupt:
        out.interrupted = True
    except NbllmError as exc:
        out.error = for_magic(exc, "llm", call.name)
    out.result = result
    if result is not None:
        captions = [img.revised_prompt for img in result.images]
        same = len(set(captions)) == 1  # one caption after the last image, else one per image
        for i, img in enumerate(result.images):
            _show_image(img.data, img.mime, view.rich, i, len(result.images))
            if img.revised_prompt and (not same or i == len(result.images) - 1):
                _show_caption(img.revised_prompt, view.rich)
        show_footer(image_footer(call.name, result), rich=view.rich)
    elif out.interrupted:
        show_footer(image_footer(call.name, None, "interrupted"), rich=view.rich)
    out.updates = 0
    return out


def check_image(name: str, ep: Endpoint, diagnose: Callable[[NbllmError], str]) -> bool:
    """``%llm_model test`` for an image endpoint: generate one image, print a ✓/✗ line."""
    from .._io.image_api import generate_image

    try:
        r = generate_image(name, "A small test picture.", n=1)
    except NbllmError as exc:
        print(f"  ✗ image       {diagnose(exc)}")
        return False
    img = r.images[0]
    dims = f"{img.dimensions[0]}x{img.dimensions[1]} " if img.dimensions else ""
    status = f"HTTP {r.status_code} · " if r.status_code else ""
    source = "url" if img.url else "b64_json"
    print(
        f"  ✓ image       {status}{duration(r.latency_s)} · {plural(len(r.images), 'image')} · "
        f"{dims}{img.mime}, {len(img.data):,} bytes ({source})"
    )
    return True
