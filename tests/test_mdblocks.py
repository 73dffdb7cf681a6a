"""The incremental Markdown block splitter (nbllm/_ui/mdblocks.py): where it cuts, that any split of
the text into deltas gives the same final blocks, that the pieces render like the whole, and
that the open block never shows a half-received fence or table row."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbllm._ui.mdblocks import BlockRedraw, BlockSplitter, open_markdown, split_blocks

CASES: list[tuple[str, list[str]]] = [
    ("one paragraph", ["one paragraph"]),
    ("a\n\nb", ["a\n\n", "b"]),
    ("\n\na\n\n\nb\n", ["\n\na\n\n\n", "b\n"]),  # blank lines belong to the block before them
    ("# Title\ntext", ["# Title\n", "text"]),  # an ATX heading ends its block by itself
    ("para\n---\n\nnext", ["para\n---\n\n", "next"]),  # setext heading stays with its paragraph
    ("para\n===\nmore", ["para\n===\nmore"]),
    ("- a\n- b\n\n- c\n\nafter", ["- a\n- b\n\n- c\n\n", "after"]),  # a loose list is one block
    ("1. a\n\n   more of a\n\n2) b\n\nend", ["1. a\n\n   more of a\n\n2) b\n\n", "end"]),
    ("text\n- a\n\n- b\n\nx", ["text\n- a\n\n- b\n\n", "x"]),  # a list after a paragraph
    ("- a\n\n---\n", ["- a\n\n", "---\n"]),  # a thematic break is not a list item
    ("```py\nx = 1\n\n\ny = 2\n```\nafter", ["```py\nx = 1\n\n\ny = 2\n```\n", "after"]),
    ("~~~~\n~~~\n\n```\n~~~~~\nz", ["~~~~\n~~~\n\n```\n~~~~~\n", "z"]),  # closer >= opener, same char
    ("````\n```\n\nstill code\n````\n\nout", ["````\n```\n\nstill code\n````\n\n", "out"]),
    ("``` a`b\nnot a fence\n\nnext", ["``` a`b\nnot a fence\n\n", "next"]),  # backtick in info
    ("- item\n  ```\n  a\n\n  b\n  ```\n\nend", ["- item\n  ```\n  a\n\n  b\n  ```\n\n", "end"]),
    ("> q\n> ```\n>\n\n> x\n> ```\n\nend", ["> q\n> ```\n>\n\n> x\n> ```\n\n", "end"]),
    ("| a | b |\n|---|---|\n| 1 | 2 |\n\nnext", ["| a | b |\n|---|---|\n| 1 | 2 |\n\n", "next"]),
    ("> quote\n\n> other", ["> quote\n\n", "> other"]),
    ("para\n\n    code\n\n    more\n\nend", ["para\n\n    code\n\n    more\n\n", "end"]),
    ("<details>\n\n*md*\n\n</details>\n\nend", ["<details>\n\n*md*\n\n</details>\n\n", "end"]),
    ("<!-- a\n\nb -->\n\nc", ["<!-- a\n\nb -->\n\n", "c"]),
    ("<https://x.org>\n\nnext", ["<https://x.org>\n\n", "next"]),  # an autolink is not HTML
    ("<br>\n\nnext", ["<br>\n\n", "next"]),
    ("a\r\n\r\nb", ["a\r\n\r\n", "b"]),
]


@pytest.mark.parametrize(("text", "blocks"), CASES, ids=[c[0][:20] for c in CASES])
def test_cuts(text: str, blocks: list[str]) -> None:
    assert split_blocks(text) == blocks
    one = BlockSplitter()  # character by character: the same blocks
    for ch in text:
        one.feed(ch)
    assert [*one.finished, one.close()] == blocks


def test_a_block_is_finished_as_soon_as_the_next_one_starts() -> None:
    s = BlockSplitter()
    s.feed("first paragraph\n\n")
    assert s.take() == []  # a blank line alone does not end it (an indented line could follow)
    s.feed("S")
    assert s.take() == ["first paragraph\n\n"] and s.open == "S"
    s.feed("econd\n\n- a\n\n")
    assert s.take() == ["Second\n\n"]
    s.feed("-")  # "-" may be the next item of the list: undecided until the next character
    assert s.take() == [] and s.undecided == 1
    s.feed(" b\n\nnot a list")
    assert s.take() == ["- a\n\n- b\n\n"] and s.open == "not a list"


MD_PIECES = [
    "word",
    " ",
    "\n",
    "\n\n",
    "# ",
    "- ",
    "1. ",
    "  ",
    "    ",
    "> ",
    "```",
    "```py",
    "~~~",
    "````",
    "| a | b |",
    "|---|---|",
    "---",
    "===",
    "<details>",
    "</details>",
    "<!--",
    "-->",
    "*",
    "\r\n",
    "\t",
    "2)",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(MD_PIECES), max_size=40).map("".join) | st.text(max_size=60),
    st.lists(st.integers(0, 80), max_size=12),
)
def test_any_split_gives_the_same_final_blocks(text: str, cuts: list[int]) -> None:
    whole = split_blocks(text)
    assert "".join(whole) == text
    assert all(whole[:-1])  # no empty finished block
    s = BlockSplitter()
    seen: list[str] = []
    prev = 0
    for cut in sorted({min(c, len(text)) for c in cuts} | {len(text)}):
        s.feed(text[prev:cut])
        prev = cut
        seen += s.take()
        assert "".join(seen) + s.open == text[:cut]  # nothing lost, nothing twice
        assert seen == whole[: len(seen)]  # every finished block is final
    assert seen + ([s.close()] if s.close() else []) == whole


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(MD_PIECES), max_size=40).map("".join),
    st.lists(st.integers(0, 80), max_size=12),
    st.integers(0, 4),
    st.integers(2, 6),
)
def test_block_redraw_parts_only_grow_and_hold_the_text_once(
    text: str, cuts: list[int], each_block: int, max_parts: int
) -> None:
    # plain text (no fence closed for display): every part only ever grows, a part that is not
    # the last is never sent again, and the parts hold the text exactly once
    plan = BlockRedraw(markdown=False, each_block=each_block, min_frozen=30, growth=0.5, max_parts=max_parts)
    parts: list[list[str]] = [[]]  # every text each part was sent
    prev = 0
    for cut in sorted({min(c, len(text)) for c in cuts} | {len(text)}):
        plan.feed(text[prev:cut])
        prev = cut
        last, new = plan.redraw()
        if last is not None:
            parts[-1].append(last)
        if new is not None:
            parts.append([new])
        assert "".join(p[-1] for p in parts[:-1]) == text[: plan.frozen]  # frozen: exactly, once
        assert text[plan.frozen : cut].startswith(parts[-1][-1] if parts[-1] else "")  # what is open
    shown = plan.shown
    rest = plan.finish()
    if rest != shown:  # (the caller sends the final text only when it differs)
        parts[-1].append(rest)
    assert "".join(p[-1] if p else "" for p in parts) == text
    assert len(parts) == plan.parts <= max_parts
    for sent in parts:
        assert all(b.startswith(a) for a, b in itertools.pairwise(sent))  # never shorter
        assert len(sent) == len(set(sent))  # the same text is never sent twice


RENDER_DOCS = [
    "# Title\nIntro *para*\nline two\n\n- a\n- b\n\n- c\n\nAfter list\n\n```py\nx=1\n\ny=2\n```\nNext\n\n"
    "| a | b |\n|---|---|\n| 1 | 2 |\n\nSetext\n---\n\n> quote\n> more\n\n1. one\n2. two\n\n    code\n\nend\n",
    "Para\n\n* x\n\n  continued\n* y\n\n***\n\n## H2 ##\ntext after heading\n~~~\n~~~\n",
]


@pytest.mark.parametrize("doc", RENDER_DOCS)
def test_blocks_render_like_the_whole_text(doc: str) -> None:
    mistune = pytest.importorskip("mistune")
    md = mistune.create_markdown(plugins=["table"])
    blocks = split_blocks(doc)
    assert len(blocks) >= 5
    assert "".join(md(b) for b in blocks) == md(doc)


def test_open_block_never_shows_raw_fences_or_half_rows() -> None:
    fence = ("`", 3)
    assert open_markdown("text\n```py\nx = 1\n", fence) == "text\n```py\nx = 1\n```\n"  # closed
    assert open_markdown("text\n```py\nx = 1\n``", fence) == "text\n```py\nx = 1\n```\n"  # partial close
    assert open_markdown("intro\n``", None) == "intro\n"  # a fence being typed
    assert open_markdown("intro\n`code` here", None) == "intro\n`code` here"  # inline code is fine
    assert open_markdown("intro\n| a | b |\n", None) == "intro\n"  # header without delimiter row
    assert open_markdown("| a |\n|---|\n| 1 | 2", None) == "| a |\n|---|\n"  # half a row
    assert open_markdown("| a |\n|---|\n| 1 |\n", None) == "| a |\n|---|\n| 1 |\n"
    s = BlockSplitter()
    s.feed("~~~~\ncode\n")
    assert s.fence == ("~", 4) and open_markdown(s.open, s.fence).endswith("\n~~~~\n")


def _feed_time(text: str, piece: int) -> float:
    s = BlockSplitter()
    t0 = time.process_time()
    for i in range(0, len(text), piece):
        s.feed(text[i : i + piece])
    s.close()
    return time.process_time() - t0


@pytest.mark.parametrize(
    "unit",
    ["tok ", "word and more words\n", "para text here\n\n", "- item\n", "```\ncode\n```\n\n"],
)
def test_linear_time(unit: str) -> None:
    small, big = unit * 2_000, unit * 16_000  # 8 times more text: at most ~8 times the work
    _feed_time(small, 3)  # warm up
    t_small = min(_feed_time(small, 3) for _ in range(3))
    t_big = min(_feed_time(big, 3) for _ in range(2))
    assert t_big < 8 * t_small * 2.5, (t_small, t_big)
