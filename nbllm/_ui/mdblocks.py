"""Incremental Markdown block splitter, and when a by-block view redraws what (pure, no I/O).

``BlockSplitter``: feed text deltas, get finished blocks and the open block. ``BlockRedraw``: at
each redraw, what the last part of a view (an output, a widget) must show and whether a new part
starts (used by ``%%llm``, side by side and the form's sandbox).

A streamed Markdown answer is cut into top-level blocks so that a notebook can
send each finished block ONCE as its own output and redraw only the open (last) block. A cut is
made only where rendering the pieces one by one gives the same page as rendering the whole text:

- a new block starts only at a non-blank line that begins in column 0 (no indent) and follows a
  blank line, or follows a closed top-level code fence or an ATX heading (``# ...``);
- never inside an open code fence (````` or ``~~~``, any length >= 3, closed by a fence of the same
  character at least as long; fences inside lists and blockquotes count too);
- never inside a list: after a blank line, a line that starts with a list marker or an indent
  continues it (a loose list); only a non-indented, non-list line ends it;
- never inside an HTML element that spans blank lines (``<details>`` ... ``</details>``, comments);
- setext headings and tables need no rule: a ``===``/``---`` underline or a table row never follows
  a blank line, so the paragraph or table they belong to is still open.

The decision that a block starts is taken on the first characters of its first line (one to a
dozen), the same for any split of the text into deltas: a finished block is final. Blank lines
belong to the block before them, so ``"".join(finished) + open == text`` always. Linear time:
every character is looked at a bounded number of times (an offset, never a rescan from 0).

Known limit: reference-style link definitions (``[x]: url``) are document-wide in CommonMark; a
block that uses a definition from another block renders the link as text.
"""

from __future__ import annotations

import re

__all__ = ["BlockRedraw", "BlockSplitter", "open_markdown", "split_blocks"]

_FENCE_OPEN = re.compile(r"^(?:[ \t]*(?:>|[-*+][ \t]|\d{1,9}[.)][ \t]))*[ \t]*(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE = re.compile(r"^[ \t>]*(`{3,}|~{3,})[ \t]*$")
_LIST = re.compile(r"^[ \t]{0,3}(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")
_LIST_SURE = re.compile(r"^(?:[-*+]|\d{1,9}[.)])[ \t]")  # a line that starts like this is a list item
_LIST_PREFIX = re.compile(r"^(?:[-*+]|\d{1,9}[.)]?)$")  # a partial line that may still become one
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_HTML_OPEN = re.compile(r"^[ \t>]*<(!--|[A-Za-z][A-Za-z0-9-]*)(?=[ \t/>]|$)")  # not <https://..>
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
    ]
)  # void, or closed implicitly (<p>): nothing to wait for


class BlockSplitter:
    """Feed deltas with ``feed``; ``finished`` grows with final blocks, ``open`` is the rest.

    ``take()`` hands over the finished blocks not taken yet. ``open`` is the text after the last
    finished block (it may end with a partial line). ``undecided`` is how many characters at the
    end of ``open`` belong to a line whose role (new block or not) is not known yet.
    """

    def __init__(self) -> None:
        # the open block is "".join(_lines) + _buf[_pos:]: its complete lines, kept as a list so a
        # block that cannot be cut (a long paragraph, list or code fence) is never re-copied, then
        # the text not processed yet (usually part of one line)
        self._lines: list[str] = []
        self._buf = ""  # the unprocessed text (with _tail joined); trimmed to _pos after a feed
        self._tail: list[str] = []  # deltas not joined to _buf yet (no line end, line decided)
        self._pos = 0  # start, in _buf, of the first line not fully processed yet
        self._decided = False  # the line at _pos was already checked for a block start
        self.finished: list[str] = []
        self._taken = 0
        # block state
        self._started = False  # the open block has a non-blank line
        self._blank = False  # the last complete line was blank
        self._closed = False  # the last non-blank line closed a top-level fence or was an ATX heading
        self._list = False  # the open block contains a list
        self._fence: tuple[str, int] | None = None  # open fence: (character, length)
        self._fence_top = False  # that fence opened at top level (not in a list or quote)
        self._html_end: str | None = None  # an HTML element waits for this (lowercase) text

    @property
    def open(self) -> str:
        self._join()
        return "".join(self._lines) + self._buf[self._pos :]

    def _join(self) -> None:
        if self._tail:
            self._buf += "".join(self._tail)
            self._tail.clear()

    @property
    def fence(self) -> tuple[str, int] | None:
        """The code fence open at the end of the complete lines, if any."""
        return self._fence

    @property
    def undecided(self) -> int:
        if self._decided:
            return 0
        self._join()
        return len(self._buf) - self._pos

    def take(self) -> list[str]:
        """Finished blocks not handed over yet."""
        new = self.finished[self._taken :]
        self._taken = len(self.finished)
        return new

    def feed(self, delta: str) -> None:
        if self._decided and "\n" not in delta:
            self._tail.append(delta)  # the middle of a line: nothing to decide yet
            return
        self._tail.append(delta)
        self._join()
        try:
            while True:
                if not self._decided:
                    verdict = self._starts_block(self._pos)
                    if verdict is None:
                        return
                    self._decided = True
                    if verdict:
                        self._cut()
                end = self._buf.find("\n", self._pos)
                if end < 0:
                    return
                line = self._buf[self._pos : end + 1]
                self._line(line)
                self._lines.append(line)
                self._pos = end + 1
                self._decided = False
        finally:  # drop the processed text once per feed (linear, however many lines it held)
            if self._pos:
                self._buf = self._buf[self._pos :]
                self._pos = 0

    def close(self) -> str:
        """The end of the text: the open block (also returned by ``open``) is final."""
        return self.open

    # ---- internals ----------------------------------------------------------------------------

    def _cut(self) -> None:
        self.finished.append("".join(self._lines))
        self._lines = []
        self._started = self._blank = self._closed = self._list = False

    def _starts_block(self, at: int) -> bool | None:
        """Does the line at ``at`` start a new block? None: not known from what arrived."""
        if at >= len(self._buf):
            return None
        if not self._started or self._fence is not None or self._html_end is not None:
            return False
        if not (self._blank or self._closed):
            return False
        c = self._buf[at]
        if c in " \t\n":
            return False
        if c == "\r":
            if at + 1 >= len(self._buf):
                return None
            if self._buf[at + 1] == "\n":
                return False
        if not self._list:
            return True
        head = self._buf[at : at + 12]
        nl = head.find("\n")
        if nl >= 0:
            return not _LIST.match(head[:nl])
        if _LIST_SURE.match(head):
            return False
        return None if len(head) < 12 and _LIST_PREFIX.match(head) else True

    def _line(self, line: str) -> None:
        """Update the block state with one complete line."""
        body = line.rstrip("\r\n")
        if self._fence is not None:
            m = _FENCE_CLOSE.match(body)
            if m and m[1][0] == self._fence[0] and len(m[1]) >= self._fence[1]:
                self._fence = None
                self._closed = self._fence_top and not self._list
            else:
                self._closed = False
            self._blank = False
            self._started = True
            return
        if not body.strip():
            if self._started:
                self._blank = True
            return
        self._started = True
        self._blank = False
        self._closed = False
        if self._html_end is not None:
            if self._html_end in body.lower():
                self._html_end = None
            return
        if _LIST.match(body):
            self._list = True
        m = _FENCE_OPEN.match(body)
        if m and not (m[1][0] == "`" and "`" in m[2]):
            self._fence = (m[1][0], len(m[1]))
            self._fence_top = len(body) - len(body.lstrip(" ")) <= 3 and body.lstrip(" ")[0] in "`~"
            return
        if _ATX.match(body) and not self._list:
            self._closed = True
            return
        h = _HTML_OPEN.match(body)
        if h:
            name = h[1].lower()
            end = "-->" if name == "!--" else f"</{name}"
            rest = body[h.end() :].lower()
            if name not in _VOID and end not in rest and not rest.rstrip().endswith("/>"):
                self._html_end = end


def split_blocks(text: str) -> list[str]:
    """The whole text at once: its finished blocks, then the last (open) block if not empty."""
    s = BlockSplitter()
    s.feed(text)
    return s.finished + ([s.open] if s.open else [])


def _is_row(line: str) -> bool:
    return line.lstrip(" ").startswith("|")


_DELIM = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


def open_markdown(block: str, fence: tuple[str, int] | None) -> str:
    """The open block as it may be shown while it is still growing: a half-received table row or
    fence line is held back and an open code fence is closed, so no raw Markdown shows."""
    cut = block.rfind("\n") + 1
    last = block[cut:]
    text = block
    stripped = last.lstrip(" \t>")
    if stripped.startswith("|") or any(stripped[:3] == c * 3 or c * len(stripped) == stripped for c in "`~"):
        text = block[:cut]  # a partial fence or table line: wait for the whole line
    # a table whose delimiter row has not arrived: a lone header line would show as text
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = 0
    while rows < len(lines) and _is_row(lines[len(lines) - 1 - rows]):
        rows += 1
    if rows and fence is None:
        first = len(lines) - rows
        if rows < 2 or not _DELIM.match(lines[first + 1]):
            text = "\n".join(lines[:first]) + ("\n" if first else "")
    if fence is not None:
        if not text.endswith("\n"):
            text += "\n"
        text += fence[0] * fence[1] + "\n"
    return text


class BlockRedraw:
    """When and what a by-block view redraws (pure: the caller sends). The view is a row of parts
    (notebook outputs, widgets); only the last part changes.

    ``feed`` the deltas; at each redraw the caller asks ``redraw()``, which answers ``(last, new)``:
    the text the last part must show now (None: what it shows already), and the text of a new part
    to add after it (None: no new part). When blocks have finished, the last part grows to hold
    exactly them (what it showed was a prefix of them: it never gets shorter) and a new part takes
    the open block: a finished block is sent once, in its final form. The first ``each_block``
    parts take one redraw's finished blocks each; after that finished blocks wait in the last part
    (sent again with the open block) until they add up to ``min_frozen`` characters and ``growth``
    times what is frozen already, and past ``max_parts`` nothing more is frozen: a bound on the
    number of parts for views that have one (JupyterLab renders at most 50 outputs per cell).
    ``finish()`` is the last part's exact final text.
    """

    def __init__(
        self,
        *,
        markdown: bool = True,
        each_block: float = float("inf"),
        min_frozen: int = 0,
        growth: float = 0.0,
        max_parts: float = float("inf"),
    ) -> None:
        self.markdown = markdown  # hold back a half table row, close an open fence
        self.each_block = each_block  # the first parts: one redraw's finished blocks each
        self.min_frozen = min_frozen
        self.growth = growth
        self.max_parts = max_parts
        self.split = BlockSplitter()
        self.parts = 1
        self.arrived = 0  # characters fed
        self.frozen = 0  # characters in parts that will not change again
        self._pending: list[str] = []  # finished blocks shown in the last part, not frozen yet
        self._pending_size = 0
        self.shown: str | None = None  # what the last part shows (None: not drawn yet)

    def feed(self, delta: str) -> None:
        self.split.feed(delta)
        self.arrived += len(delta)

    @property
    def unfrozen(self) -> int:
        """Characters a redraw of the last part may carry (for a byte budget)."""
        return self.arrived - self.frozen

    def open_text(self) -> str:
        """The open block as it may be shown now (Markdown: no half table row, fence closed)."""
        text = self.split.open
        text = text[: len(text) - self.split.undecided]
        return open_markdown(text, self.split.fence) if self.markdown else text

    def collect(self) -> None:
        """Take the blocks finished since the last call (``pending_size`` counts them)."""
        for block in self.split.take():
            self._pending.append(block)
            self._pending_size += len(block)

    def pending_text(self) -> str:
        return "".join(self._pending)

    def freeze(self) -> str:
        """The finished blocks not frozen yet, frozen now (the caller starts a new part)."""
        frozen = self.pending_text()
        self._pending, self._pending_size = [], 0
        self.frozen += len(frozen)
        return frozen

    @property
    def pending_size(self) -> int:
        return self._pending_size

    def due(self, parts: int, frozen: int, pending: int | None = None) -> bool:
        """Whether ``pending`` finished characters (default: this stream's) should be frozen now,
        into the last of ``parts`` parts, with ``frozen`` characters frozen before them."""
        pending = self._pending_size if pending is None else pending
        if not pending or parts >= self.max_parts:
            return False
        return parts < self.each_block or pending >= max(self.min_frozen, self.growth * frozen)

    def redraw(self) -> tuple[str | None, str | None]:
        self.collect()
        if self.due(self.parts, self.frozen):
            frozen = self.freeze()
            self.parts += 1
            last = None if frozen == self.shown else frozen
            self.shown = self.open_text()
            return last, self.shown
        text = self.pending_text() + self.open_text()
        if text == self.shown:
            return None, None
        self.shown = text
        return text, None

    def finish(self) -> str:
        """What the last part holds at the end: every character not frozen (exactly)."""
        rest = self.pending_text() + "".join(self.split.take()) + self.split.close()
        self._pending, self._pending_size = [], 0
        self.shown = rest
        return rest
