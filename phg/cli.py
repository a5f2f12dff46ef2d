"""The `phg` command (LANGUAGE §7)."""
from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__, load
from . import support as sup
from .diagnostics import PhgError
from .program import Program

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="phg", description="Geometric-algebra compiler and static verifier.")
    ap.add_argument("--version", action="version", version=f"phg {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="parse and lower models, print every value's blades, grades and shape")
    check.add_argument("files", nargs="+", metavar="FILE")
    graph = sub.add_parser("graph", help="print the Program Hypergraph")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=("dot", "json"), default="dot")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        if args.command == "check":
            for path in args.files:
                _print_values(out, load(path))
            return EXIT_OK
        program = load(args.file)
        sys.stdout.write(program.to_json() + "\n" if args.format == "json" else program.to_dot())
        return EXIT_OK
    except PhgError as exc:
        err.print(Text(exc.render()))
        return EXIT_INPUT


def _print_values(console: Console, program: Program):
    for model in program.models.values():
        alg = model.algebra
        table = Table(title=Text(f"{program.path}: model {model.name} on {alg.describe()}"), title_justify="left")
        for col in ("value", "role", "blades", "grades", "shape", "declared"):
            table.add_column(col)
        for v in model.values.values():
            if v.role == "temp" or (v.role == "const" and v.name is None):
                continue
            blades = ", ".join(alg.blade_name(b) for b in alg.blades if v.support >> b & 1) or "0"
            cells = (v.name, v.role, blades, ", ".join(map(str, sup.grades_of(v.support))) or "-",
                     f"[{', '.join(map(str, v.shape))}]" if v.shape else "-",
                     v.declared.describe() if v.declared else "")
            table.add_row(*(Text(c) for c in cells))  # Text: no rich markup in [m] or [4]
        console.print(table)
    if not program.models:
        console.print(Text(f"{program.path}: no models"))


if __name__ == "__main__":
    sys.exit(main())
