"""Located diagnostics: every user-facing error names file:line:col, quotes the line with a caret
and says what was expected."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

# Line ends of a source file: LF, CRLF and a lone CR, nothing else.  The parser reads the text with
# these normalised to LF, so its line numbers and every quote of a line count the same way (a form
# feed, U+0085 or U+2028 is a character within a line, as the lexer sees it).
_LINE_END = re.compile(r"\r\n|\r|\n")


def source_lines(text: str) -> list[str]:
    """The lines of a source text, as the parser numbers them (the last one may be empty)."""
    return _LINE_END.split(text)


def normalise_line_ends(text: str) -> str:
    """The text with every line end written LF: lines and columns stay those of source_lines."""
    return _LINE_END.sub("\n", text)


@dataclass(frozen=True)
class Span:
    file: str
    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def to_dict(self) -> dict:
        d = {"line": self.line, "col": self.col}
        if self.end_line is not None:
            d.update(end_line=self.end_line, end_col=self.end_col)
        return d


@dataclass
class Note:
    span: Span
    message: str


@dataclass
class PhgError(Exception):
    """An error in the user's model, located in its source."""
    kind: str                       # syntax, name, type, shape, unit, algebra, recursion, io, ...
    message: str
    span: Span | None = None
    expected: str | None = None
    hint: str | None = None
    notes: list[Note] = field(default_factory=list)
    source: str | None = None      # the whole source text, for quoting lines

    def __str__(self) -> str:
        return self.render()

    def render(self) -> str:
        head = f"{self.span}: " if self.span else ""
        label = self.kind if self.kind in ("refuted", "unknown") else f"{self.kind} error"
        lines = [f"{head}{label}: {self.message}"]
        lines += _quote(self.source, self.span)
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        for note in self.notes:
            lines.append(f"  note: {note.span}: {note.message}")
            lines += _quote(self.source, note.span)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def _quote(source: str | None, span: Span | None) -> list[str]:
    if source is None or span is None:
        return []
    text_lines = source_lines(source)
    if not 1 <= span.line <= len(text_lines):
        return []
    # One printed column per source column: a tab, form feed or other control character shows as
    # a space, so the caret stays under the character the column counts.
    line = "".join(c if c.isprintable() else " " for c in text_lines[span.line - 1])
    width = 1
    if span.end_line == span.line and span.end_col and span.end_col > span.col:
        width = span.end_col - span.col
    gutter = f"{span.line:>5} | "
    return [gutter + line, " " * (len(gutter) - 2) + "| " + " " * (span.col - 1) + "^" * width]


def did_you_mean(word: str, candidates) -> str | None:
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.5)
    return f"did you mean {close[0]!r}?" if close else None
