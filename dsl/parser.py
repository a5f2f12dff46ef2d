"""Parsing .phg text into the syntax tree, with located errors."""
from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr
from lark.visitors import Transformer_NonRecursive

from phg.diagnostics import PhgError, Span, normalise_line_ends, source_lines

from . import ast

# How deeply the syntax may nest (an operand of an operand ..., a call's argument, a bracket's
# content): a sum of 5,000 terms nests 5,000 deep.  Later stages walk expressions recursively, so
# deeper input is refused here, located, rather than overflowing a stack there.
MAX_NESTING = 5_000
_LARGEST = 1.7976931348623157e308          # the largest finite double

_OPENERS = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSERS = set(_OPENERS.values())


class _LineJoiner:
    """Drops line ends inside ( ), [ ] and set braces, so such a line continues on the next.

    A `{` opens a set only after `in` (grade claims); any other `{` opens a block, whose line ends
    separate statements.
    """
    always_accept = ("_NL",)

    def process(self, stream):
        stack: list[str] = []
        previous = None
        for tok in stream:
            if tok.type == "_NL":
                if stack and stack[-1] != "block":
                    continue
            elif tok.type in _OPENERS:
                is_set = tok.type == "LBRACE" and previous == "IN"
                stack.append("block" if tok.type == "LBRACE" and not is_set else tok.type)
            elif tok.type in _CLOSERS and stack:
                stack.pop()
            previous = tok.type
            yield tok


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("phg.lark")).read_text()
    return Lark(grammar, parser="lalr", postlex=_LineJoiner(), propagate_positions=True,
                maybe_placeholders=True)


def parse(source: str, filename: str = "<text>") -> ast.File:
    """Parse source text; raises PhgError (kind 'syntax') located at the first problem."""
    parser = _parser()
    # The lexer counts LF alone as a line end; CR and CRLF files are read as LF ones (same columns).
    text = normalise_line_ends(source)
    try:
        tree = parser.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, filename, parser) from None
    _check_nesting(tree, filename, source)
    try:
        decls = _ToAst(filename).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, PhgError):
            err = exc.orig_exc
            err.source = source
            raise err from None
        raise
    return ast.File(filename, source, decls)


def _check_nesting(tree: Tree, filename: str, source: str):
    """Refuses a tree nested deeper than MAX_NESTING, at the outermost expression on its deepest
    path."""
    depth: dict[int, int] = {}
    for t in tree.iter_subtrees():              # children before parents, without recursion
        depth[id(t)] = 1 + max((depth[id(c)] for c in t.children if isinstance(c, Tree)), default=0)
    deepest = depth[id(tree)]
    if deepest <= MAX_NESTING:
        return
    node = tree
    while node.data not in _EXPRESSIONS and depth[id(node)] > MAX_NESTING + 1:
        node = max((c for c in node.children if isinstance(c, Tree)), key=lambda c: depth[id(c)])
    raise PhgError("syntax", f"too deeply nested: {depth[id(node)]:,} levels", _meta_span(filename, node.meta),
                   expected=f"at most {MAX_NESTING:,} levels of nested operations, calls and brackets",
                   hint="name parts of it with `let`", source=source)


_EXPRESSIONS = {"add", "sub", "mul", "div", "wedge", "lcontract", "regressive", "sandwich", "neg", "reverse",
                "name", "call", "index", "component", "literal", "unit_mul", "unit_div", "unit_pow"}


# ---- error messages ------------------------------------------------------------------------
def _describe_terminal(name: str, parser: Lark) -> str:
    special = {"NAME": "a name", "INT": "an integer", "NUMBER": "a number", "_NL": "end of line",
               "$END": "end of file", "SIGN": "'+' or '-'"}
    if name in special:
        return special[name]
    for term in parser.terminals:
        if term.name == name and isinstance(term.pattern, PatternStr):
            return repr(term.pattern.value)
    return name.lower()


def _describe_token(tok: Token) -> str:
    if tok.type == "_NL":
        return "end of line"
    if tok.type == "$END":
        return "end of file"
    return repr(str(tok))


def _syntax_error(exc: UnexpectedInput, source: str, filename: str, parser: Lark) -> PhgError:
    line = getattr(exc, "line", None)
    col = getattr(exc, "column", None)
    if isinstance(exc, UnexpectedEOF) or line in (None, -1):
        lines = source_lines(source.rstrip("\n"))
        line, col = len(lines), len(lines[-1]) + 1
    if isinstance(exc, UnexpectedCharacters):
        found = repr(source[exc.pos_in_stream]) if exc.pos_in_stream < len(source) else "end of file"
        expected = exc.allowed or set()
        message = f"unexpected character {found}"
    elif isinstance(exc, UnexpectedToken):
        expected = exc.accepts or exc.expected
        message = f"unexpected {_describe_token(exc.token)}"
        if exc.token.type == "_NL" and exc.token.line:
            line, col = exc.token.line, exc.token.column
    else:
        expected = getattr(exc, "expected", set()) or set()
        message = "unexpected end of file"
    wanted = sorted({_describe_terminal(t, parser) for t in expected if not t.startswith("__")})
    if len(wanted) > 12:
        wanted = wanted[:12] + ["..."]
    return PhgError("syntax", message, Span(filename, line, col),
                    expected=", ".join(wanted) if wanted else None, source=source,
                    hint=_channels_in_unit(source, line, col))


def _channels_in_unit(source: str, line: int, col: int) -> str | None:
    """A hint where a type's unit brackets hold a list (`Scalar[8, 3, 1]`, PyTorch's way of writing
    a shape): the brackets after a type are its unit, a value's channels follow its name."""
    lines = source_lines(source)
    if not 1 <= line <= len(lines):
        return None
    before = lines[line - 1][:col - 1]
    typed = re.search(r"\b(param|input|output|let)\s+(\w+)\s*:\s*([A-Z]\w*)\[[^\]]*$", before)
    if typed is None or not lines[line - 1][col - 1:].startswith(","):
        return None
    kind, name, type_name = typed.groups()
    shape = lines[line - 1][typed.end(3) + 1:].split("]", 1)[0]
    return (f"the brackets after a type hold its unit ({type_name}[m/s]); a value's channels follow its name: "
            f"{kind} {name}[{shape.strip()}]: {type_name}")


# ---- tree to syntax tree ---------------------------------------------------------------------
def _meta_span(file: str, meta) -> Span:
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


class _Shape(list):
    pass


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    def __init__(self, filename: str):
        super().__init__()
        self.file = filename

    def _span(self, meta):
        return _meta_span(self.file, meta)

    def _tspan(self, tok):
        return _tok_span(self.file, tok)

    # ---- top level
    def start(self, meta, children):
        return [c for c in children if c is not None and not isinstance(c, Token)]

    def signed_int(self, meta, children):
        sign = children[0] if len(children) == 2 else None
        value = int(children[-1])
        return -value if sign == "-" else value

    def number(self, meta, children):
        sign = children[0] if len(children) == 2 else None
        value = self._finite(children[-1])
        return -value if sign == "-" else value

    def _finite(self, tok: Token) -> float:
        value = float(tok)
        if not math.isfinite(value):
            raise PhgError("syntax", f"the number {tok} is too large", self._tspan(tok),
                           expected=f"a finite number, at most {_LARGEST:.4g} in size")
        return value

    # ---- algebra
    def algebra_decl(self, meta, children):
        name, sig, *rest = children
        units = rest[0] if rest and rest[0] is not None else []
        kind, payload = sig
        return ast.AlgebraDecl(str(name), payload if kind == "cl" else None,
                               payload if kind == "basis" else None, units,
                               self._span(meta), self._tspan(name))

    def cl_signature(self, meta, children):
        return "cl", tuple(int(c) for c in children)

    def basis_signature(self, meta, children):
        return "basis", list(children)

    def basis_item(self, meta, children):
        name, square = children
        return str(name), square, self._tspan(name)

    def units_suffix(self, meta, children):
        return list(children)

    def unit_item(self, meta, children):
        name, unit = children
        return str(name), unit, self._tspan(name)

    # ---- units
    def unit_decl(self, meta, children):
        name, unit = children
        return ast.UnitDecl(str(name), unit, self._span(meta))

    def unit_name(self, meta, children):
        return ast.UnitName(str(children[0]), self._span(meta))

    def unit_one(self, meta, children):
        return ast.UnitOne(int(children[0]), self._span(meta))

    def unit_mul(self, meta, children):
        return ast.UnitBinary("*", children[0], children[1], self._span(meta))

    def unit_div(self, meta, children):
        return ast.UnitBinary("/", children[0], children[1], self._span(meta))

    def unit_pow(self, meta, children):
        return ast.UnitPower(children[0], children[1], self._span(meta))

    def unit_power(self, meta, children):
        num = children[0]
        den = int(children[1]) if len(children) > 1 and children[1] is not None else 1
        if den == 0:
            raise PhgError("syntax", "a unit exponent has denominator 0", self._span(meta),
                           expected="a non-zero denominator")
        return Fraction(num, den)

    # ---- const and def
    def const_decl(self, meta, children):
        name, *rest = children
        type_ = rest[0] if len(rest) == 2 else None
        return ast.ConstDecl(str(name), type_, rest[-1], self._span(meta))

    def def_decl(self, meta, children):
        name, *rest = children
        args = [c for c in rest if isinstance(c, ast.DefArg)]
        others = [c for c in rest if not isinstance(c, ast.DefArg) and c is not None]
        returns = others[0] if len(others) == 2 else None
        return ast.DefDecl(str(name), args, returns, others[-1], self._span(meta))

    def def_arg(self, meta, children):
        name, type_ = children[0], (children[1] if len(children) > 1 else None)
        return ast.DefArg(str(name), type_, self._span(meta))

    # ---- types
    def named_type(self, meta, children):
        return ast.TypeExpr(str(children[0]), [], children[1] if len(children) > 1 else None, self._span(meta))

    def grades_type(self, meta, children):
        grades = [int(c) for c in children if isinstance(c, Token)]
        unit = children[-1] if not isinstance(children[-1], Token) else None
        return ast.TypeExpr("Grades", grades, unit, self._span(meta))

    def blades_type(self, meta, children):
        blades = [c for c in children if isinstance(c, tuple)]
        unit = children[-1] if not isinstance(children[-1], tuple) else None
        return ast.TypeExpr("Blades", blades, unit, self._span(meta))

    def blade_ref(self, meta, children):
        return str(children[0]), self._span(meta)

    # ---- model
    def model_decl(self, meta, children):
        name, algebra, *body = children
        return ast.ModelDecl(str(name), str(algebra), self._tspan(algebra),
                             [b for b in body if b is not None and not isinstance(b, Token)],
                             self._span(meta))

    def shape(self, meta, children):
        return _Shape(children)

    def dim(self, meta, children):
        tok = children[0]
        value = int(tok) if tok.type == "INT" else str(tok)
        return value, self._tspan(tok)

    def _statement(self, kind, meta, children):
        name = children[0]
        rest = [c for c in children[1:] if c is not None]
        shape = next((c for c in rest if isinstance(c, _Shape)), None)
        type_ = next((c for c in rest if isinstance(c, ast.TypeExpr)), None)
        values = [c for c in rest if not isinstance(c, (_Shape, ast.TypeExpr))]
        return ast.Statement(kind, str(name), list(shape) if shape is not None else None, type_,
                             values[0] if values else None, self._span(meta))

    def param_stmt(self, meta, children):
        return self._statement("param", meta, children)

    def input_stmt(self, meta, children):
        return self._statement("input", meta, children)

    def let_stmt(self, meta, children):
        return self._statement("let", meta, children)

    def output_stmt(self, meta, children):
        return self._statement("output", meta, children)

    def loss_stmt(self, meta, children):
        return ast.Statement("loss", None, None, None, children[0], self._span(meta))

    def grade_claim(self, meta, children):
        return ast.Ensure("grade", children[0], [int(c) for c in children[1:]], None, self._span(meta))

    def unit_claim(self, meta, children):
        return ast.Ensure("unit", children[0], None, children[1], self._span(meta))

    def versor_claim(self, meta, children):
        return ast.Ensure("versor", children[0], None, None, self._span(meta))

    def numeric_stmt(self, meta, children):
        return ast.Numeric(str(children[0]), self._tspan(children[0]), self._span(meta))

    def symmetry_stmt(self, meta, children):
        kind, n, *names = children
        first, last = self._tspan(kind), self._tspan(n)
        return ast.Symmetry(str(kind), int(n), Span(first.file, first.line, first.col, last.end_line, last.end_col + 1),
                            [(str(t), self._tspan(t)) for t in names], self._span(meta))

    def ensure_stmt(self, meta, children):
        return children[0]

    # ---- spiking networks (LANGUAGE §16)
    def network_decl(self, meta, children):
        name, algebra, *body = children
        return ast.NetworkDecl(str(name), str(algebra), self._tspan(algebra),
                               [b for b in body if b is not None and not isinstance(b, Token)], self._span(meta))

    def spikes_stmt(self, meta, children):
        name, shape, payload, type_ = (list(children) + [None, None])[:4]
        carried = None
        if payload is not None:
            carried = ast.Statement("payload", str(payload), None, type_, None,
                                    Span(self.file, payload.line, payload.column, type_.span.end_line,
                                         type_.span.end_col))
        return ast.SpikesInput(str(name), list(shape), self._span(meta), carried)

    def neurons_decl(self, meta, children):
        name, shape, *body = children
        body = [b for b in body if b is not None and not isinstance(b, Token)]
        spikes = [b for b in body if isinstance(b, tuple) and b[0] == "spike"]
        resets = [b for b in body if isinstance(b, tuple) and b[0] == "reset"]
        for kind, found in (("spike", spikes), ("reset", resets)):
            if len(found) > 1:
                raise PhgError("syntax", f"neurons {name} has more than one `{kind}` statement", found[1][-1],
                               expected=f"at most one `{kind}`")
        return ast.Neurons(str(name), list(shape), [b for b in body if isinstance(b, ast.Statement)],
                           [b[1:] for b in body if isinstance(b, tuple) and b[0] == "ode"],
                           spikes[0][1:] if spikes else None, resets[0][1] if resets else [], self._span(meta),
                           resets[0][2] if resets else None)

    def state_stmt(self, meta, children):
        return self._statement("state", meta, children)

    def ode_stmt(self, meta, children):
        tok, value = children
        state = str(tok)[1:].split("/")[0].strip()
        return "ode", state, value, self._span(meta)

    def spike_stmt(self, meta, children):
        left, op, right = children
        return "spike", left, str(op), right, self._span(meta)

    def reset_stmt(self, meta, children):
        return "reset", [c for c in children if isinstance(c, ast.Assignment)], self._span(meta)

    def synapses_decl(self, meta, children):
        name, source, target, *body = children
        body = [b for b in body if b is not None and not isinstance(b, Token)]
        return ast.Synapses(str(name), str(source), self._tspan(source), str(target), self._tspan(target),
                            [b for b in body if isinstance(b, ast.Statement)],
                            [b for b in body if isinstance(b, ast.Trace)],
                            [b for b in body if isinstance(b, ast.OnBlock)], self._span(meta))

    def trace_stmt(self, meta, children):
        name, type_, *rest = children
        rest = [c for c in rest if c is not None]
        value, tau = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
        return ast.Trace(str(name), type_, value, tau, self._span(meta))

    def on_block(self, meta, children):
        side, *body = children
        return ast.OnBlock(str(side), self._tspan(side), [c for c in body if isinstance(c, ast.Assignment)],
                           self._span(meta))

    def assignment(self, meta, children):
        target, op, value = children
        return ast.Assignment(str(target), str(op), value, self._span(meta), self._tspan(target))

    def simulate_decl(self, meta, children):
        network, *items = children
        return ast.SimulateDecl(str(network), [i for i in items if isinstance(i, ast.TrainItem)],
                                self._span(meta), self._tspan(network))

    def sim_dt(self, meta, children):
        item = ast.TrainItem("dt", children[0], self._span(meta))
        item.value_span = children[0].span
        return item

    def sim_method(self, meta, children):
        return self._train_value("method", meta, children)

    # ---- train
    def train_decl(self, meta, children):
        model, *items = children
        return ast.TrainDecl(str(model), [i for i in items if isinstance(i, ast.TrainItem)],
                             self._span(meta), self._tspan(model))

    def optimizer(self, meta, children):
        name, *kwargs = children
        item = ast.TrainItem("optimizer", str(name), self._span(meta))
        item.value_span = self._tspan(name)
        for kw in kwargs:
            if kw is None:
                continue
            key, value, span = kw
            if key in item.kwargs:
                raise PhgError("syntax", f"optimizer argument {key!r} is given twice", span,
                               expected="each argument once")
            item.kwargs[key] = (value, span)
        return item

    def kwarg(self, meta, children):
        return str(children[0]), children[1], self._tspan(children[0])

    def _train_value(self, key, meta, children):
        tok = children[0]
        value = int(tok) if isinstance(tok, Token) and tok.type == "INT" else (
            str(tok) if isinstance(tok, Token) else tok)
        item = ast.TrainItem(key, value, self._span(meta))
        item.value_span = self._tspan(tok) if isinstance(tok, Token) else self._span(meta)
        return item

    def batch(self, meta, children):
        return self._train_value("batch", meta, children)

    def steps(self, meta, children):
        return self._train_value("steps", meta, children)

    def epochs(self, meta, children):
        return self._train_value("epochs", meta, children)

    def accumulate(self, meta, children):
        return self._train_value("accumulate", meta, children)

    def seed(self, meta, children):
        return self._train_value("seed", meta, children)

    def memory(self, meta, children):
        return self._train_value("memory", meta, children)

    # ---- expressions
    def _binary(op):
        def handler(self, meta, children):
            return ast.Binary(op, children[0], children[1], self._span(meta))
        return handler

    add, sub, mul, div = _binary("add"), _binary("sub"), _binary("mul"), _binary("div")
    wedge, lcontract = _binary("wedge"), _binary("lcontract")
    regressive, sandwich = _binary("regressive"), _binary("sandwich")

    def neg(self, meta, children):
        return ast.Unary("neg", children[0], self._span(meta))

    def reverse(self, meta, children):
        return ast.Unary("reverse", children[0], self._span(meta))

    def name(self, meta, children):
        return ast.Name(str(children[0]), self._span(meta))

    def call(self, meta, children):
        func, *args = children
        return ast.Call(str(func), [a for a in args if a is not None], self._span(meta), self._tspan(func))

    def index(self, meta, children):
        return ast.Index(children[0], list(children[1:]), self._span(meta))

    def component(self, meta, children):
        return ast.Component(children[0], str(children[1]), self._span(meta), self._tspan(children[1]))

    def literal(self, meta, children):
        return ast.Literal(self._finite(children[0]), children[1] if len(children) > 1 else None, self._span(meta))
