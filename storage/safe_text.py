"""Neutralise untrusted text before it reaches a terminal: the screen, the log file, CLI output.

Agent-supplied strings may carry terminal escapes (ESC, CSI, OSC 8 links, OSC 52 clipboard writes), C1 controls,
bidirectional overrides and invisible characters that make the operator read something other than what will run.
`clean()` replaces every such character with a visible stand-in, so what is shown is what is in the data. It is pure
text work (no terminal library), so the engine's log formatter and the CLI use it as the widgets do.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NEWLINE_MARK", "TAB_MARK", "clean"]

NEWLINE_MARK: Final = "⏎"
TAB_MARK: Final = "␉"

# Characters that are never shown as themselves (besides C0, handled per mode):
# DEL and C1 controls (0x9B is a one-byte CSI on some terminals);
# Unicode format characters (category Cf): bidi embeddings/overrides/isolates and marks, zero-width space/joiners,
# word joiner, invisible operators, BOM, interlinear annotations, tag characters (used to smuggle hidden text);
# line/paragraph separators (U+2028/9, split lines in Python and some terminals);
# lone surrogates (valid in JSON "\ud800", but they crash the terminal encoder);
# invisible fillers and variation selectors that render as nothing (Hangul fillers, CGJ, Mongolian FVS, VS17-256).
# tests/test_widgets.py checks this against unicodedata, so a new Cf character in a later Unicode fails a test.
_ALWAYS: Final = (
    "\x7f-\x9f"
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164"
    "\ud800-\udfff"
    "\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
)
# Multi-line text keeps \t and \n; \r is shown (a bare CR would move the cursor to the start of the line).
_MULTILINE: Final = re.compile(f"[\x00-\x08\x0b-\x1f{_ALWAYS}]")
_SINGLE_LINE: Final = re.compile(f"[\x00-\x1f{_ALWAYS}]")


def _stand_in(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # U+2400 control pictures: ␀ … ␛ …
    if code == 0x7F:
        return "␡"
    return f"⟨U+{code:04X}⟩"


def _multiline_sub(match: re.Match[str]) -> str:
    return _stand_in(match.group())


def _single_line_sub(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\n":
        return NEWLINE_MARK
    if char == "\t":
        return TAB_MARK
    return _stand_in(char)


def clean(text: str, *, multiline: bool = True) -> str:
    """Return `text` with every control, bidi and invisible character replaced by a visible stand-in.

    With `multiline=False` newlines become "⏎" and tabs "␉", so the result is one line.
    Printable text (including "[", "]", "$", "@") is returned unchanged: markup is not this function's job.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    pattern = _MULTILINE if multiline else _SINGLE_LINE
    if pattern.search(text) is None:
        return text  # the common case: no copy, no per-character work
    return pattern.sub(_multiline_sub if multiline else _single_line_sub, text)
