"""Programs derived from a model's source (LANGUAGE §13): the distillation program, the same
model with its loss replaced by the squared distance of its outputs to a teacher's, read as
inputs (phg.codegen.distill builds and trains it); the penalty program, whose checked outputs
are a prior's deviations (phg release records what the verifier proves of them).  Text in, text out, through the parser's
spans: nothing of the source is executed.
"""
from __future__ import annotations

import re

from .ast import ModelDecl, Symmetry, TrainDecl
from .parser import parse


def distillation_source(source: str, model: str, outputs: dict, path: str = "<text>") -> tuple[str, dict]:
    """The text of the distillation program of `model` in `source`, and for each output the
    teacher input that holds its target.  `outputs`: the model's SPEC["outputs"] (shape, layout
    and unit of each).  Lines keep their numbers: the other models and train blocks are blanked,
    the loss is replaced (or the statements added before the model's closing brace)."""
    tree = parse(source, path)
    taken = _names(tree)
    names: dict[str, str] = {}
    statements, terms = [], []
    for o, spec in sorted(outputs.items()):
        teacher, diff = _fresh(f"teacher_{o}", taken), _fresh(f"miss_{o}", taken)
        unit = spec.get("unit")
        statements.append(_input(teacher, spec, unit))
        statements.append(f"let {diff} = {o} - {teacher}")
        terms.append(_summed(diff, diff, spec, f"({unit})^2" if unit else None))
        names[o] = teacher
    statements.append("loss " + " + ".join(terms))
    return _with_loss_replaced(source, tree, model, statements), names


def vjp_source(source: str, model: str, outputs: dict, path: str = "<text>") -> tuple[str, dict]:
    """The text of the vector-Jacobian-product program of `model` in `source`, and for each output
    the input that holds its cotangent: the model with its loss replaced by the sum over outputs
    o of <c_o, o> / 1[unit of o], each c_o a dimensionless input of o's shape and blades, summed
    over channels and blades.  One sample's gradient of that loss is the product of the
    cotangents with the Jacobian of the outputs (codegen.vjp).  Lines keep their numbers."""
    tree = parse(source, path)
    taken = _names(tree)
    names: dict[str, str] = {}
    statements, terms = [], []
    for o, spec in sorted(outputs.items()):
        cotangent = _fresh(f"cotangent_{o}", taken)
        statements.append(_input(cotangent, spec, None))
        terms.append(_summed(cotangent, o, spec, spec.get("unit")))
        names[o] = cotangent
    statements.append("loss " + " + ".join(terms))
    return _with_loss_replaced(source, tree, model, statements), names


def _names(tree) -> set[str]:
    """Every name the declarations and models of `tree` take, and the loss's."""
    taken = {getattr(d, "name", None) for d in tree.decls} | {"teacher", "loss"}
    return taken | {st.name for d in tree.decls if isinstance(d, ModelDecl) for st in d.body if getattr(st, "name", None)}


def _input(name: str, spec: dict, unit: str | None) -> str:
    """An input declaration of an output's shape and blades (SPEC["outputs"]' entry), in `unit`."""
    shape = f"[{', '.join(map(str, spec['shape']))}]" if spec["shape"] else ""
    return f"input {name}{shape}: Blades({', '.join(spec['layout'])}){f'[{unit}]' if unit else ''}"


def _summed(a: str, b: str, spec: dict, unit: str | None) -> str:
    """The sum over channels and blades of a.b * b.b, over 1[unit] (None: dimensionless)."""
    products = " + ".join(f"scalar({a}) * scalar({b})" if blade == "1" else f"{a}.{blade} * {b}.{blade}"
                          for blade in spec["layout"])
    term = f"sum({products})" if spec["shape"] else f"({products})"
    return term + (f" / 1[{unit}]" if unit else "")


def penalty_source(source: str, model: str, path: str = "<text>") -> tuple[str, dict[str, str]]:
    """The text of the penalty program of `model` in `source`: the model without its loss, with,
    for each parameter p, an input of p's written type and shape holding the prior's mean and an
    output, typed as the prior's coordinates claim, of p's deviation from it: `log(~mean * p)`,
    a Bivector, for a Rotor or Motor, `p - mean`, of p's type, for any other parameter.  What the
    verifier proves of those outputs is what a prior's penalty rests on.  Also each parameter's
    deviation output."""
    tree = parse(source, path)
    decl = next(d for d in tree.decls if isinstance(d, ModelDecl) and d.name == model)
    taken = {getattr(d, "name", None) for d in tree.decls} | {st.name for st in decl.body if getattr(st, "name", None)}
    starts = _line_starts(source)
    names, statements = {}, []
    for st in decl.body:
        if getattr(st, "kind", None) != "param":
            continue
        mean, deviation = _fresh(f"mean_{st.name}", taken), _fresh(f"deviation_{st.name}", taken)
        shape = f"[{', '.join(str(d) for d, _ in st.shape)}]" if st.shape else ""
        written = source[_at(starts, st.type.span.line, st.type.span.col):_at(starts, st.type.span.end_line,
                                                                              st.type.span.end_col)]
        statements.append(f"input {mean}{shape}: {written}")
        if st.type.kind in ("Rotor", "Motor"):
            statements.append(f"output {deviation}{shape}: Bivector = log(~{mean} * {st.name})")
        else:
            statements.append(f"output {deviation}{shape}: {written} = {st.name} - {mean}")
        names[st.name] = deviation
    return _with_loss_replaced(source, tree, model, statements, train=False), names


def _line_starts(source: str) -> list[int]:
    """Where each line starts, its breaks as the lexer reads them (LF, CRLF or CR)."""
    return [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", source)]


def _at(starts: list[int], line: int, col: int) -> int:
    return starts[line - 1] + col - 1


def _with_loss_replaced(source: str, tree, model: str, statements: list[str], train: bool = True) -> str:
    """`source` with `model`'s loss replaced by `statements` (or those added before its closing
    brace), its symmetry statement and every other model and train block blanked (and the model's
    own train block unless `train`); lines keep their numbers."""
    starts = _line_starts(source)
    edits = []                                    # (start, end, text): offsets into source
    block = "\n    ".join(statements)
    for d in tree.decls:
        s = d.span
        if isinstance(d, (ModelDecl, TrainDecl)) and ((d.name if isinstance(d, ModelDecl) else d.model) != model
                                                      or (isinstance(d, TrainDecl) and not train)):
            edits.append((_at(starts, s.line, s.col), _at(starts, s.end_line, s.end_col), "\n" * (s.end_line - s.line)))
        elif isinstance(d, ModelDecl):
            # a derived program makes no claim of symmetry: its new inputs (targets, cotangents,
            # means) are not the model's, and its own claims are the model's certificate's
            for st in d.body:
                if isinstance(st, Symmetry):
                    edits.append((_at(starts, st.span.line, st.span.col), _at(starts, st.span.end_line, st.span.end_col), ""))
            loss = next((st for st in d.body if getattr(st, "kind", None) == "loss"), None)
            if loss is not None:
                ls = loss.span
                edits.append((_at(starts, ls.line, ls.col), _at(starts, ls.end_line, ls.end_col), block))
            else:                                 # before the closing brace
                brace = _at(starts, s.end_line, s.end_col) - 1
                edits.append((brace, brace, "    " + block + "\n"))
    for a, b, text in sorted(edits, reverse=True):
        source = source[:a] + text + source[b:]
    return source


def _fresh(base: str, taken: set[str]) -> str:
    name = base
    while name in taken:
        name += "_"
    taken.add(name)
    return name
