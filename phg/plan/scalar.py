"""A model's per-sample computation as straight-line scalar code over blade supports.

Each value becomes, per channel, one scalar per blade of its (checked, narrowed) support: a
Vector in G3 is three numbers.  Polynomial operations are built as sympy expressions of their
sources' scalars, expanded, restricted to the target's support and shared by common-subexpression
elimination (sympy.cse); `exp` and general inverses, which are not polynomial, are calls to
helpers emitted once per support.  The result is a list of assignments, in dependency order, that
the emitter prints.
"""
from __future__ import annotations

import builtins
import itertools
import keyword
from dataclasses import dataclass, field

import sympy

from phg import support as sup
from phg.algebra import Algebra
from phg.hypergraph import Hypergraph, Value
from phg.operations import operation

Component = dict[int, sympy.Expr]              # blade mask -> scalar expression


class Unsupported(ValueError):
    """An operation the code generator cannot emit for these supports."""


@dataclass
class Helper:
    """A non-polynomial function on one support, emitted once: exp or inverse."""
    name: str
    kind: str                          # exp, inv
    source: int                        # the argument's support
    result: int                        # the closure support it returns
    alg: Algebra


@dataclass
class ScalarProgram:
    graph: Hypergraph
    # value id -> channel -> blade -> expression (a Symbol or a number once assigned)
    values: dict[str, dict[tuple, Component]] = field(default_factory=dict)
    assignments: list[tuple[sympy.Symbol, object]] = field(default_factory=list)   # expr or HelperCall
    helpers: dict[tuple, Helper] = field(default_factory=dict)
    # symbols that depend on parameters and constants only: computed once, before the sample loop
    invariant: set = field(default_factory=set)


@dataclass
class HelperCall:
    helper: Helper
    args: list[sympy.Expr]
    targets: list[sympy.Symbol]


# ---- names ------------------------------------------------------------------------------------
# Every name the generated code gives to something of the user's (a model, a value, an algebra, a
# blade) passes through `identifier`, an escape that is injective and ASCII: letters and digits stay,
# "_" is doubled, any other character c (the grammar has none today) becomes "_x" and the six hex
# digits of ord(c).  Read left to right, a "_" is followed by "_" (an underscore) or "x" (a code),
# never by anything else, so "_0" can separate the parts of a name (`global_name`) and the parts
# are read back unambiguously: `A` and `a`, or `b_R` in `A` and `R` in `A_b`, never share a name.
# Python would fold distinct unicode letters together (NFKC), hence ASCII only.
#
# Module-level names are `_phg_<kind>_<part>_0<part>...`: the module's own imports are bound under
# `_phg_` too, so no user name ever shadows or replaces them; kernel arguments are `a_`, `_out_`,
# `_grad_` + the escaped name, and per-sample scalars are never one of RESERVED (codegen.emit
# attaches the model classes by their own names last, where that takes no name the module has).
def identifier(text: str) -> str:
    out = []
    for c in text:
        if c.isascii() and c.isalnum():
            out.append(c)
        elif c == "_":
            out.append("__")
        else:
            out.append(f"_x{ord(c):06x}")
    return "".join(out)


def global_name(kind: str, *parts: str) -> str:
    """The module-level name of one thing of a kind (predict, train, slot, tangent, retract,
    model, exp, inv, expgrad, invgrad: lowercase letters only) of the given parts."""
    assert kind.isalpha() and kind.islower(), kind
    return f"_phg_{kind}_" + "_0".join(identifier(p) for p in parts)


# What a kernel's own names may never be: Python's keywords and builtins, the module's globals and
# the kernels' internal variables.
RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))


def blade_key(alg: Algebra, mask: int) -> str:
    return "s" if mask == 0 else identifier(alg.blade_name(mask))


def array_name(v: Value) -> str:
    """A parameter's or input's argument name in a kernel: `a_` and its escaped name, which is no
    keyword, builtin, module global or kernel variable (those never start with `a_`)."""
    return "a_" + identifier(v.name)


INTERNAL = ("_n", "_i", "_q", "_c", "_f", "_a", "_t", "_acc", "_terms", "_work", "_sums", "_loss", "_slot", "_slots", "_from", "_to")


class ScalarBuilder:
    def __init__(self, graph: Hypergraph, wanted: list[str]):
        self.g = graph
        self.alg = graph.algebra
        self.p = ScalarProgram(graph)
        self.wanted = wanted
        self.cone = set()
        for w in wanted:
            self.cone.update(graph.cone(w))
        # Scalars never take the name of an array or of the kernels' own variables.
        self._names: set[str] = {array_name(graph.values[v]) for v in graph.inputs + graph.params}
        self._names.update(INTERNAL)
        self._names.update(RESERVED)
        self._names.update(f"_{kind}_{identifier(graph.values[v].name)}" for kind in ("out", "grad")
                           for v in [*graph.outputs.values(), *graph.params])
        self._coefficients: dict[str, sympy.Symbol] = {}

    # ---- naming ---------------------------------------------------------------------------------
    def symbol(self, base: str) -> sympy.Symbol:
        name, n = base, 2
        while name in self._names:
            name, n = f"{base}_{n}", n + 1
        self._names.add(name)
        return sympy.Symbol(name, real=True)

    def value_name(self, v: Value) -> str:
        if v.name:
            return identifier(v.name)
        e = self.g.producer(v.id)
        return identifier(f"{e.kind}{v.id.lstrip('%')}" if e is not None else v.id)

    def channels(self, v: Value):
        return list(itertools.product(*(range(s) for s in v.shape)))

    def leaf_symbols(self, v: Value) -> dict[tuple, Component]:
        out = {}
        for ch in self.channels(v):
            suffix = "".join(f"_{i}" for i in ch)
            out[ch] = {b: self.symbol(f"{self.value_name(v)}{suffix}_{blade_key(self.alg, b)}")
                       for b in sup.blades_of(v.support)}
        return out

    # ---- the run --------------------------------------------------------------------------------
    def build(self) -> ScalarProgram:
        g = self.g
        for vid in sorted(self.cone, key=list(g.values).index):
            v = g.values[vid]
            if g.producer(vid) is None:
                if v.const is not None:
                    self.p.values[vid] = {(): {b: sympy.Float(float(v.const[b]), 17) if v.const[b] != int(v.const[b])
                                               else sympy.Integer(int(v.const[b]))
                                               for b in sup.blades_of(v.support)}}
                else:
                    self.p.values[vid] = self.leaf_symbols(v)
                    if v.role == "param":
                        self.p.invariant.update(s for comp in self.p.values[vid].values() for s in comp.values())
        for e in g.topological_edges():
            if e.target in self.cone:
                self.edge(e)
        return self.p

    def assign(self, v: Value, ch: tuple, comp: Component) -> Component:
        """Give each non-trivial component a name: the parts that depend on parameters only become
        coefficients computed once per batch, the per-sample rest shares common subexpressions."""
        keep = {b: self.split(sympy.expand(x)) for b, x in comp.items() if v.support >> b & 1}
        keys = [b for b in keep if not (keep[b].is_Symbol or keep[b].is_Number)]
        if keys:
            shared, reduced = sympy.cse([keep[b] for b in keys], symbols=self._cse_symbols(v))
            for sym, expr in shared:
                self.bind(sym, expr)
            suffix = "".join(f"_{i}" for i in ch)
            for b, expr in zip(keys, reduced):
                sym = self.symbol(f"{self.value_name(v)}{suffix}_{blade_key(self.alg, b)}")
                self.bind(sym, expr)
                keep[b] = sym
        return {b: x for b, x in keep.items() if x != 0}

    def bind(self, sym: sympy.Symbol, expr):
        self.p.assignments.append((sym, expr))
        if expr.free_symbols <= self.p.invariant:
            self.p.invariant.add(sym)

    def split(self, expr: sympy.Expr) -> sympy.Expr:
        """expr as a polynomial in the per-sample symbols whose coefficients (functions of the
        parameters) are named and hoisted: R x ~R becomes a matrix times x."""
        varying = sorted(expr.free_symbols - self.p.invariant, key=str)
        if not varying or expr.free_symbols <= set(varying):
            return expr
        try:
            poly = sympy.Poly(expr, *varying)
        except sympy.PolynomialError:
            return expr
        out = sympy.Integer(0)
        for powers, coef in poly.terms():
            if not (coef.is_Number or coef.is_Symbol):
                key = sympy.srepr(coef)
                if key not in self._coefficients:
                    sym = self.symbol(f"k{len(self._coefficients)}")
                    self.bind(sym, coef)
                    self._coefficients[key] = sym
                coef = self._coefficients[key]
            out += coef * sympy.Mul(*(x ** k for x, k in zip(varying, powers)))
        return out

    def _cse_symbols(self, v: Value):
        base = f"c_{self.value_name(v)}"
        while True:
            yield self.symbol(base)

    def edge(self, e):
        target = self.g.values[e.target]
        srcs = [self.p.values[s] for s in e.sources]
        k = e.kind
        out: dict[tuple, Component] = {}
        if k == "sum":
            total: Component = {}
            for comp in srcs[0].values():
                total = add(total, comp)
            out[()] = total
        elif k == "index":
            n = len(e.attrs["index"])
            out = {ch[n:]: c for ch, c in srcs[0].items() if list(ch[:n]) == e.attrs["index"]}
        elif k == "mix":
            w, x = srcs
            rows = sorted({ch[0] for ch in w})
            for i in rows:
                total = {}
                for (ii, j), wc in w.items():
                    if ii == i:
                        total = add(total, self.product("gp", wc, x[(j,)]))
                out[(i,)] = total
        elif k == "linear":
            w, x = srcs
            grades, first = e.attrs["grades"], e.attrs.get("offset", 0)
            for (i, j, gk), wc in w.items():
                if 0 <= gk - first < len(grades):              # else another grade pair's weights
                    part = self.product("gp", wc, project(self.alg, x[(j,)], [grades[gk - first]]))
                    out[(i,)] = add(out.get((i,), {}), part)
        elif k == "gradegate":
            for ch in self.channels(target):
                out[ch] = self.gates(e.attrs["grades"], srcs[0][ch],
                                     [srcs[1][(*ch, i)].get(0, sympy.Integer(0)) for i in range(len(e.attrs["grades"]))])
        elif k == "bilinear":
            for ch in self.channels(target):
                out[ch] = self.bilinear(e.attrs["paths"], [srcs[0][(*ch, p)] for p in range(len(e.attrs["paths"]))],
                                        srcs[1][ch], srcs[2][ch])
        else:
            for ch in self.channels(target):
                args = [s[ch] if ch in s else s[()] for s in srcs]
                out[ch] = self.pointwise(e, target, args)
        self.p.values[e.target] = {ch: self.assign(target, ch, comp) for ch, comp in out.items()}

    # ---- operations -----------------------------------------------------------------------------
    def product(self, kind: str, a: Component, b: Component) -> Component:
        return product(self.alg, kind, a, b)

    def gates(self, grades, x: Component, s: list) -> Component:
        """One channel of gate(x, s) per grade: x's grade g_k times sigmoid(s_k)."""
        out: Component = {}
        for g, sk in zip(grades, s):
            out = add(out, {b: y * sigmoid(sk) for b, y in project(self.alg, x, [g]).items()})
        return out

    def bilinear(self, paths, weights: list[Component], x: Component, y: Component) -> Component:
        """One channel of bilinear(w, x, y): its weights (one Scalar per grade path), x and y."""
        out: Component = {}
        for (ga, gb, r), wc in zip(paths, weights):
            made = project(self.alg, self.product("gp", project(self.alg, x, [ga]), project(self.alg, y, [gb])), [r])
            out = add(out, self.product("gp", wc, made))
        return out

    def reverse(self, a: Component) -> Component:
        return reverse(self.alg, a)

    def inverse(self, v: Value, a: Component, support: int) -> Component:
        """a^-1: a declared Rotor's or Motor's reverse; ~a / (a ~a) where a ~a is a scalar
        identically (versors, vectors, blades); else a helper solving a y = 1 on a's closure."""
        if v.declared is not None and v.declared.versor in ("Rotor", "Motor") and v.role in ("param", "input"):
            return self.reverse(a)
        norm = {b: sympy.expand(x) for b, x in self.product("gp", a, self.reverse(a)).items()}
        if all(x == 0 for b, x in norm.items() if b):
            scale = 1 / norm.get(0, sympy.Integer(0))
            return {b: x * scale for b, x in self.reverse(a).items()}
        return self.call("inv", a, support, sup.closure(self.alg, support))

    def call(self, kind: str, a: Component, support: int, result: int) -> Component:
        key = (kind, support)
        if key not in self.p.helpers:
            self.p.helpers[key] = Helper(f"_{kind}_{len(self.p.helpers)}", kind, support, result, self.alg)
        helper = self.p.helpers[key]
        args = [a.get(b, sympy.Integer(0)) for b in sup.blades_of(support)]
        targets = [self.symbol(f"{helper.name[1:]}_{blade_key(self.alg, b)}") for b in sup.blades_of(result)]
        self.p.assignments.append((None, HelperCall(helper, args, targets)))
        return dict(zip(sup.blades_of(result), targets))

    def pointwise(self, e, target: Value, a: list[Component]) -> Component:
        k, x = e.kind, a[0]
        alg = self.alg
        srcs = [self.g.values[s] for s in e.sources]
        if k == "add":
            return add(x, a[1])
        if k == "sub":
            return add(x, {b: -y for b, y in a[1].items()})
        if k == "neg":
            return {b: -y for b, y in x.items()}
        if k in ("copy", "index"):
            return dict(x)
        if k in ("gp", "op", "lc", "regressive"):
            return self.product(k, x, a[1])
        if k == "div":
            return self.product("gp", x, self.inverse(srcs[1], a[1], srcs[1].support))
        if k == "sandwich":
            return self.product("gp", self.product("gp", x, a[1]), self.inverse(srcs[0], x, srcs[0].support))
        if k == "inv":
            return self.inverse(srcs[0], x, srcs[0].support)
        if k == "reverse":
            return self.reverse(x)
        if k == "involute":
            return {b: alg.involute_sign(b) * y for b, y in x.items()}
        if k in ("grade", "even", "odd", "scalar"):
            return dict(x)                     # assign() keeps the target's (projected) support
        if k == "dual":
            out = {}
            for b, y in x.items():
                s, m = alg.right_complement(b)
                out[m] = out.get(m, 0) + s * y
            return out
        if k in ("norm2", "norm", "normalize"):
            n2 = self.product("gp", x, self.reverse(x)).get(0, sympy.Integer(0))
            if k == "norm2":
                return {0: n2}
            size = sympy.sqrt(sympy.Abs(n2))
            return {0: size} if k == "norm" else {b: y / size for b, y in x.items()}
        if k == "exp":
            if srcs[0].support & ~sup.SCALAR == 0:
                return {0: sympy.exp(x.get(0, 0))}
            return self.call("exp", x, srcs[0].support, sup.closure(alg, srcs[0].support))
        if k == "gate":
            s = a[1].get(0, sympy.Integer(0))
            return {b: y * sigmoid(s) for b, y in x.items()}
        if k == "component":
            return {0: e.attrs["sign"] * x.get(e.attrs["blade"], sympy.Integer(0))}
        if operation(k).loop is None:
            raise Unsupported(f"{k}() is not generated yet")
        s = x.get(0, sympy.Integer(0))
        fn = {"sqrt": sympy.sqrt, "sin": sympy.sin, "cos": sympy.cos, "tanh": sympy.tanh, "abs": sympy.Abs,
              "sigmoid": sigmoid, "relu": lambda t: sympy.Max(t, 0),
              "gelu": lambda t: t * (1 + sympy.erf(t / sympy.sqrt(2))) / 2}[k]
        return {0: fn(s)}


def product(alg: Algebra, kind: str, a: Component, b: Component) -> Component:
    """The product of two multivectors of symbolic coefficients, blade by blade."""
    out: Component = {}
    for i, x in a.items():
        for j, y in b.items():
            s, m = alg.product(kind, i, j)
            if s:
                out[m] = out.get(m, 0) + s * x * y
    return out


def project(alg: Algebra, a: Component, grades) -> Component:
    """a's part of the given grades."""
    keep = sup.of_grades(alg, grades)
    return {b: x for b, x in a.items() if keep >> b & 1}


def reverse(alg: Algebra, a: Component) -> Component:
    return {b: alg.reverse_sign(b) * x for b, x in a.items()}


def sigmoid(t):
    return 1 / (1 + sympy.exp(-t))


def add(a: Component, b: Component) -> Component:
    out = dict(a)
    for m, y in b.items():
        out[m] = out.get(m, 0) + y
    return out


def scalar_program(graph: Hypergraph, wanted: list[str]) -> ScalarProgram:
    return ScalarBuilder(graph, wanted).build()
