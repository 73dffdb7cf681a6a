"""``evaluate`` with image endpoints: one call per row as usual, then one frame row per image.

The bytes stay out of the frame: each image is written once to ``<nbllm config dir>/images/
<sha256>.<ext>`` (content-addressed: the same picture is stored once, and a cached row's path
stays valid), and the row holds ``image_sha256``, ``image_path`` and ``image_mime``; ``output``
is that image's revised prompt (or ""). A call's cost is split evenly over its images.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.images import ImageResult

if TYPE_CHECKING:
    import httpx
    import pandas as pd

    from .._core.endpoint import Endpoint

__all__ = ["IMAGE_COLUMNS", "explode_images", "generate_row", "images_dir"]

IMAGE_COLUMNS = ("image_sha256", "image_path", "image_mime")
_EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}


def images_dir() -> Path:
    """Where evaluation images are written: ``images`` in the nbllm config directory."""
    from .._io.registry import config_dir

    return config_dir() / "images"


def _save(data: bytes, sha: str, mime: str, folder: Path) -> str:
    path = folder / f"{sha}{_EXT.get(mime, '.bin')}"
    if not path.exists():  # content-addressed: an existing file already holds these bytes
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: a reader never sees half an image
    return str(path)


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    for message in reversed(list(prompt)):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


async def generate_row(
    ep: Endpoint, prompt: Any, params: Mapping[str, Any], client: httpx.AsyncClient | None
) -> tuple[ImageResult, list[dict[str, str]]]:
    """One evaluation call on an image endpoint: the result and its saved images."""
    from .._io.image_api import agenerate_image

    r = await agenerate_image(ep, _prompt_text(prompt), params=params, client=client)
    folder = images_dir()
    saved = [
        {
            "sha256": img.sha256,
            "path": _save(img.data, img.sha256, img.mime, folder),
            "mime": img.mime,
            "revised_prompt": img.revised_prompt or "",
        }
        for img in r.images
    ]
    return r, saved


def explode_images(df: pd.DataFrame, images: Mapping[int, Sequence[Mapping[str, str]]]) -> pd.DataFrame:
    """``df`` (one row per call) with a row per image for the calls that made images; other rows
    (text endpoints, failures) stay one row with empty image columns."""
    import numpy as np
    import pandas as pd

    counts = np.ones(len(df), dtype=np.int64)
    for i, saved in images.items():
        counts[i] = max(len(saved), 1)
    out = df.take(np.repeat(np.arange(len(df)), counts)).reset_index(drop=True)
    columns: dict[str, list[str]] = {name: [] for name in IMAGE_COLUMNS}
    output = out["output"].tolist()
    cost = out["cost"].to_numpy(dtype=np.float64, copy=True)
    row = 0
    for i in range(len(df)):
        saved = images.get(i) or []
        for k in range(int(counts[i])):
            img = saved[k] if k < len(saved) else None
            columns["image_sha256"].append(img["sha256"] if img else "")
            columns["image_path"].append(img["path"] if img else "")
            columns["image_mime"].append(img["mime"] if img else "")
            if img is not None:
                output[row] = img.get("revised_prompt", "")
                cost[row] = cost[row] / len(saved)
            row += 1
    out["output"] = pd.array(output, dtype="string")
    out["cost"] = cost
    for name, values in columns.items():
        out[name] = pd.array(values, dtype="string")
    return out
