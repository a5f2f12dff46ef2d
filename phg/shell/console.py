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
    """A line per kernel on stderr as phg build or train compiles it; `.seconds` sums them,
    `.kernels` counts them and `.cached` those Numba loaded from its cache."""
    from phg.codegen.compiling import printer

    line = printer(lambda t: err.print(text(t.removesuffix("\n")), end="\n" if t.endswith("\n") else ""))

    def report(model: str, kernel: str, seconds: float | None, cached: bool = False) -> None:
        line(model, kernel, seconds, cached=cached)
        if seconds is not None:
            report.seconds += seconds
            report.cached += cached
            report.kernels += 1
    report.seconds, report.cached, report.kernels = 0.0, 0, 0
    report.shows_cached = True
    return report


def cached_kernels(report) -> str:
    """What a compile_progress report saw, in words: how many kernels Numba loaded from its cache."""
    if report.kernels == 0:
        return "none to compile"
    if report.cached == report.kernels:
        return f"all {report.kernels} cached, none compiled"
    if report.cached == 0:
        return f"all {report.kernels} compiled"
    return f"{report.kernels - report.cached} of {report.kernels} compiled, {report.cached} cached"
