"""A model's per-sample computation as straight-line scalar code over blade supports.

Each value becomes, per channel, one scalar per blade of its (checked, narrowed) support: a
Vector in G3 is three numbers.  The operations' meanings (phg.operations, evaluated by
phg.evaluation with sympy as the number system) build sympy expressions of their sources'
scalars, expanded, restricted to the target's support and shared by common-subexpression
elimination (sympy.cse); `exp` and general inverses, which are not polynomial, are calls to
helpers emitted once per support.  The result is a list of assignments, in dependency order, that
the emitter prints.
"""
from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass, field

import sympy

from phg import support as sup
from phg.algebra import Algebra
from phg.evaluation import Evaluator, Numbers, channels
from phg.hypergraph import Hypergraph, Value
from phg.sparse import reverse

Component = dict[int, sympy.Expr]              # blade mask -> scalar expression


@dataclass
class Helper:
    """A non-polynomial function on one support, emitted once per module: exp, inverse or log, or
    the adjoint of one (exp_grad, inv_grad, log_grad).  Its module-level name is made from what it
    computes."""
    kind: str                          # exp, inv, log, exp_grad, inv_grad, log_grad
    source: int                        # the argument's support
    result: int                        # the closure support it returns
    alg: Algebra

    @property
    def name(self) -> str:
        return global_name(self.kind.replace("_", ""), self.alg.name, str(self.source))

    @property
    def key(self) -> tuple:
        return self.alg.name, self.kind, self.source


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


# The loop kernels' own state (codegen.looped keeps code that assigns one of these in the kernel,
# not in a part), and with the fused kernels' variables, every name a kernel keeps for itself: no
# scalar takes one of those.
KERNEL_STATE = frozenset({"_m", "_loss", "_bad", "_aside", "_f", "_start", "_lo", "_hi", "_ws", "_wv", "_wi", "_a",
                          "_slots", "_flat", "_share", "_tiles", "_i0", "_i1", "_step", "_retry", "_n", "_slot"})
INTERNAL = KERNEL_STATE | {"_i", "_q", "_c", "_t", "_acc", "_terms", "_work", "_sums", "_from", "_to"}


class ScalarBuilder(Numbers):
    """The scalar program of the values `wanted` depend on: the registry's meanings evaluated over
    sympy expressions (phg.evaluation), each value's blades named and shared as they are made."""

    PRIMITIVES = {"sqrt": sympy.sqrt, "abs": sympy.Abs, "relu": lambda t: sympy.Max(t, 0), "sin": sympy.sin,
                  "cos": sympy.cos, "tanh": sympy.tanh, "exp": sympy.exp, "erf": sympy.erf}

    def __init__(self, graph: Hypergraph, wanted: list[str]):
        super().__init__(graph.algebra)
        self.g = graph
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
        self.evaluator = Evaluator(self, graph, self.p.values)

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

    def leaf_symbols(self, v: Value) -> dict[tuple, Component]:
        out = {}
        for ch in channels(v):
            suffix = "".join(f"_{i}" for i in ch)
            out[ch] = {b: self.symbol(f"{self.value_name(v)}{suffix}_{blade_key(self.alg, b)}")
                       for b in sup.blades_of(v.support)}
        return out

    # ---- the run --------------------------------------------------------------------------------
    def build(self) -> ScalarProgram:
        g = self.g
        # Leaves first, in the graph's order, then values in topological order: the order in which
        # symbols are named and assignments made.
        for vid in sorted(self.cone, key=list(g.values).index):
            if g.producer(vid) is None:
                self.evaluator.value(vid)
        for e in g.topological_edges():
            if e.target in self.cone:
                self.evaluator.value(e.target)
        return self.p

    # ---- the number system (phg.evaluation): sympy expressions ------------------------------------
    def leaf(self, v: Value) -> dict[tuple, Component]:
        if v.const is not None:
            return {(): {b: sympy.Float(float(v.const[b]), 17) if v.const[b] != int(v.const[b])
                         else sympy.Integer(int(v.const[b])) for b in sup.blades_of(v.support)}}
        out = self.leaf_symbols(v)
        if v.role == "param":
            self.p.invariant.update(s for comp in out.values() for s in comp.values())
        return out

    def settle(self, v: Value, value: dict) -> dict:
        return {ch: self.assign(v, ch, comp) for ch, comp in value.items()}

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

    def inverse(self, a: Component, source: Value | None) -> Component:
        """a^-1: a declared Rotor's or Motor's reverse; ~a / (a ~a) where a ~a is a scalar
        identically (versors, vectors, blades); else a helper solving a y = 1 on a's closure."""
        v = source
        if v.declared is not None and v.declared.versor in ("Rotor", "Motor") and v.role in ("param", "input"):
            return reverse(self.alg, a)
        norm = {b: sympy.expand(x) for b, x in self.product("gp", a, reverse(self.alg, a)).items()}
        if all(x == 0 for b, x in norm.items() if b):
            scale = 1 / norm.get(0, sympy.Integer(0))
            return {b: x * scale for b, x in reverse(self.alg, a).items()}
        return self.call("inv", a, v.support, sup.closure(self.alg, v.support))

    def exp(self, a: Component, source: Value | None, target: Value | None) -> Component:
        if source.support & ~sup.SCALAR == 0:
            return {0: sympy.exp(a.get(0, 0))}
        return self.call("exp", a, source.support, sup.closure(self.alg, source.support))

    def log(self, a: Component, source: Value | None, target: Value | None) -> Component:
        # onto the bivectors of the argument's closure, as exp returns its closure: one helper a support
        return self.call("log", a, source.support, sup.grade_filter(self.alg, sup.closure(self.alg, source.support), [2]))

    def call(self, kind: str, a: Component, support: int, result: int) -> Component:
        key = (kind, support)
        if key not in self.p.helpers:
            self.p.helpers[key] = Helper(kind, support, result, self.alg)
        helper = self.p.helpers[key]
        args = [a.get(b, sympy.Integer(0)) for b in sup.blades_of(support)]
        local = f"{kind}_{list(self.p.helpers).index(key)}"        # its results' names in this program
        targets = [self.symbol(f"{local}_{blade_key(self.alg, b)}") for b in sup.blades_of(result)]
        self.p.assignments.append((None, HelperCall(helper, args, targets)))
        return dict(zip(sup.blades_of(result), targets))
