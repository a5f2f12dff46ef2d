"""Programs derived from a model's source (LANGUAGE §13): the distillation program, the same
model with its loss replaced by the squared distance of its outputs to a teacher's, read as
inputs (phg.codegen.distill builds and trains it).  Text in, text out, through the parser's
spans: nothing of the source is executed.
"""
from __future__ import annotations

import re

from .ast import ModelDecl, TrainDecl
from .parser import parse


def distillation_source(source: str, model: str, outputs: dict, path: str = "<text>") -> tuple[str, dict]:
    """The text of the distillation program of `model` in `source`, and for each output the
    teacher input that holds its target.  `outputs`: the model's SPEC["outputs"] (shape, layout
    and unit of each).  Lines keep their numbers: the other models and train blocks are blanked,
    the loss is replaced (or the statements added before the model's closing brace)."""
    tree = parse(source, path)
    taken = {getattr(d, "name", None) for d in tree.decls} | {"teacher", "loss"}
    taken |= {st.name for d in tree.decls if isinstance(d, ModelDecl) for st in d.body if getattr(st, "name", None)}
    names: dict[str, str] = {}
    statements, terms = [], []
    for o, spec in sorted(outputs.items()):
        teacher, diff = _fresh(f"teacher_{o}", taken), _fresh(f"miss_{o}", taken)
        blades, unit = spec["layout"], spec.get("unit")
        shape = f"[{', '.join(map(str, spec['shape']))}]" if spec["shape"] else ""
        statements.append(f"input {teacher}{shape}: Blades({', '.join(blades)}){f'[{unit}]' if unit else ''}")
        statements.append(f"let {diff} = {o} - {teacher}")
        squares = " + ".join(f"scalar({diff}) * scalar({diff})" if b == "1" else f"{diff}.{b} * {diff}.{b}"
                             for b in blades)
        term = f"sum({squares})" if spec["shape"] else f"({squares})"
        terms.append(term + (f" / 1[({unit})^2]" if unit else ""))
        names[o] = teacher
    statements.append("loss " + " + ".join(terms))
    # where each line starts, its breaks as the lexer reads them (LF, CRLF or CR)
    starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", source)]
    at = lambda line, col: starts[line - 1] + col - 1  # noqa: E731
    edits = []                                    # (start, end, text): offsets into source
    block = "\n    ".join(statements)
    for d in tree.decls:
        s = d.span
        if isinstance(d, (ModelDecl, TrainDecl)) and (d.name if isinstance(d, ModelDecl) else d.model) != model:
            edits.append((at(s.line, s.col), at(s.end_line, s.end_col), "\n" * (s.end_line - s.line)))
        elif isinstance(d, ModelDecl):
            loss = next((st for st in d.body if getattr(st, "kind", None) == "loss"), None)
            if loss is not None:
                edits.append((at(loss.span.line, loss.span.col), at(loss.span.end_line, loss.span.end_col), block))
            else:                                 # before the closing brace
                brace = at(s.end_line, s.end_col) - 1
                edits.append((brace, brace, "    " + block + "\n"))
    for a, b, text in sorted(edits, reverse=True):
        source = source[:a] + text + source[b:]
    return source, names


def _fresh(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name += "_"
    taken.add(name)
    return name
