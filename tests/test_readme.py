"""The README's Python examples run as written, in order, and print what they claim."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_examples_run() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 4
    namespace: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    text = out.getvalue()
    assert "You said: Hello there" in text
    assert "You said: Stream this" in text
    assert "You said: renamed keys" in text
    assert "You said: filter the events" in text
    assert "You said: Hello Claude" in text and "You said: Stream from Claude" in text
    assert "You said: Hello Gemini" in text and ":streamGenerateContent?alt=sse" in text
    assert "You said: Stream from Gemini" in text
    assert 'You said: JSON braces {"survive": true}' in text
    assert "SHOUT THIS" in text
    assert "image/png b'\\x89PNG' A 64x64 gradient for: a lighthouse at dusk 0.02" in text
    assert "cannot connect" in text and "hint: is the server running" in text
    assert "score_exact_match" in text and "the capital of France" in text
    assert "\n50 50\n" in text and "200 rows from the cluster" in text  # "Scaling up"
    assert "request_throughput" in text and "c=8" in text  # the load-testing example
