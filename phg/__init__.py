"""phg: a geometric-algebra compiler and static verifier.

    import phg
    program = phg.load("model.phg")      # parse and lower to the Program Hypergraph
    cert = phg.check(program)            # prove its obligations
"""
from __future__ import annotations

from pathlib import Path

from .diagnostics import PhgError, Span
from .program import Program

__version__ = "0.1.0"
__all__ = ["load", "loads", "check", "Program", "PhgError", "Span", "__version__"]


def loads(text: str, filename: str = "<text>") -> Program:
    """Parse and lower model text; raises PhgError, located in `filename`, when it is malformed."""
    from dsl.lower import lower
    from dsl.parser import parse
    return lower(parse(text, filename))


def load(path: str | Path) -> Program:
    """Read a .phg file (UTF-8) and lower it; unreadable files raise PhgError too."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PhgError("io", f"cannot read {path}: {exc.strerror or exc}", Span(path, 1, 1),
                       expected="a readable .phg file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise PhgError("io", f"byte 0x{data[exc.start]:02x} is not valid UTF-8", Span(path, line, col),
                       expected="a UTF-8 text file") from None
    return loads(text, filename=path)


def check(program: Program):
    """Discharge every obligation of a loaded program; returns a Certificate (`.ok`,
    `.obligations`, `.to_dict()`, `.write(path)` signs and writes it).  Narrowed blade supports
    are written back into the program's hypergraphs."""
    from verifier.certificate import certify
    return certify(program)
