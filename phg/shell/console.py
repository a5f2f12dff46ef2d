"""What the shell prints on a terminal: lines whose text from outside phg is escaped, and the
compile progress `phg build` and `phg train` show."""
from __future__ import annotations

from rich.console import Console
from rich.text import Text

from phg.terminal import printable


def text(line: str, style: str | None = None) -> Text:
    """One line of output; text from outside phg in it (file names, recorded paths, key names)
    is printed with its control characters escaped (phg.terminal)."""
    return Text(printable(line), style=style or "")


def compile_progress(err: Console):
    """A line per kernel on stderr as phg build or train compiles it; `.seconds` sums them."""
    from phg.codegen.compiling import printer

    line = printer(lambda t: err.print(text(t.removesuffix("\n")), end="\n" if t.endswith("\n") else ""))

    def report(model: str, kernel: str, seconds: float | None) -> None:
        line(model, kernel, seconds)
        if seconds is not None:
            report.seconds += seconds
    report.seconds = 0.0
    return report
