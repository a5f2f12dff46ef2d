"""Text from outside phg, made safe to print on a terminal.

A file name, a path recorded in a certificate or a key's name is chosen by whoever made it.  Raw
control characters in it (ESC starts a terminal command: colours, cursor moves, a window title),
format characters (a right-to-left override reorders what follows) and line or paragraph
separators could redraw the screen, so that a forged certificate shows as "valid".  Rich passes
ESC through, so every such string is printed through `printable`, which writes these characters
as visible escapes (\\x1b, \\u202e) and leaves the rest of the text as it is.
"""
from __future__ import annotations

import unicodedata

# Control, format, line and paragraph separators, and lone surrogates (a file name that was not
# UTF-8, as Python decodes it).
UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def unsafe(c: str) -> bool:
    return unicodedata.category(c) in UNSAFE


def escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(text: str) -> str:
    """The text with each unsafe character written as an escape: one line, nothing it can redraw."""
    return "".join(escape(c) if unsafe(c) else c for c in str(text))


def printable_lines(text: str) -> str:
    """A message phg composed of several lines: each line made printable, the line breaks kept."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def first_unsafe(text: str) -> int | None:
    """The index of the first unsafe character of the text, or None."""
    return next((i for i, c in enumerate(text) if unsafe(c)), None)
