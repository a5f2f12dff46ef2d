"""Exact evaluation of a hypergraph's values, blade by blade.

Two modes share the operation rules:
- symbolic: every input coefficient is a polynomial variable, and every operation that is not a
  polynomial (an inverse, exp, a scalar function, a normalisation) becomes fresh variables for its
  blades, or a fresh scalar factor where it only rescales its argument (normalize, gate, the inverse
  of a versor ~V / (V ~V)).  A coefficient that is the zero polynomial is zero for every input:
  fresh variables only widen what is covered.
- concrete: inputs are rationals; rational operations stay exact (fractions), the others (square
  roots that are not rational, exp, trigonometry) are evaluated with 50 significant digits.

A multivector is a dict blade mask -> number; a value with channels is a dict channel -> multivector.
"""
from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction

import numpy as np

import mpmath
from sympy import QQ, Float, Rational, sqrt
from sympy.polys.matrices import DomainMatrix
from sympy.polys.matrices.exceptions import DMNonInvertibleMatrixError
from sympy.polys.rings import ring

from phg import multivector as mv
from phg import support as sup
from phg.algebra import Algebra
from phg.hypergraph import Hypergraph

mpmath.mp.dps = 50
DIGITS = 50


class Undefined(ArithmeticError):
    """The value does not exist at these inputs (division by zero, a non-invertible element)."""


# An exact inverse or exponential solves a linear system on the subalgebra its argument generates;
# over the rationals (or at 50 digits) that costs the cube of its dimension times the growth of the
# numbers: a minute for the 128 even blades of G8.  Past this dimension it is not attempted.
SUBALGEBRA_BLADES = 64


class Budget(Exception):
    """An exact evaluation would exceed its deterministic budget; the claim stays unknown."""


# ---- multivector arithmetic over any number type -------------------------------------------
def mv_add(a: dict, b: dict, sign: int = 1) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + sign * v if k in out else sign * v
    return out


def mv_scale(a: dict, s) -> dict:
    return {k: v * s for k, v in a.items()}


def mv_product(alg: Algebra, kind: str, a: dict, b: dict) -> dict:
    sign, target = alg.tables[kind]
    out: dict = {}
    for i, x in a.items():
        for j, y in b.items():
            s = int(sign[i, j])
            if s:
                t = int(target[i, j])
                term = x * y if s > 0 else -(x * y)
                out[t] = out[t] + term if t in out else term
    return out


def mv_map(alg: Algebra, a: dict, fn) -> dict:
    """Blade-wise signed permutation: fn(mask) -> (sign, mask)."""
    out = {}
    for k, v in a.items():
        s, t = fn(k)
        out[t] = v if s > 0 else -v
    return out


def mv_filter(a: dict, keep: int) -> dict:
    return {k: v for k, v in a.items() if keep >> k & 1}


class Evaluator:
    """Evaluates values of one hypergraph in one mode; `leaf(value)` gives a source value."""

    def __init__(self, graph: Hypergraph, leaf, opaque, budget=None, before_product=None):
        self.g = graph
        self.alg = graph.algebra
        self.leaf = leaf              # value -> {channel: mv}
        self.opaque = opaque          # (edge, channel, kind, argument mv) -> mv for non-polynomial operations
        self.budget = budget          # called on each new value; may raise Undefined
        self.before_product = before_product    # called with both factors of a product; may raise Undefined
        self.memo: dict[str, dict] = {}

    def product(self, kind: str, a: dict, b: dict) -> dict:
        if self.before_product is not None:
            self.before_product(a, b)
        return mv_product(self.alg, kind, a, b)

    def value(self, value_id: str) -> dict:
        if value_id not in self.memo:
            v = self.g.values[value_id]
            e = self.g.producer(value_id)
            self.memo[value_id] = self.leaf(v) if e is None else self.edge(e)
            if self.budget is not None:
                self.budget(self.memo[value_id])
        return self.memo[value_id]

    def edge(self, e) -> dict:
        alg = self.alg
        srcs = [self.value(s) for s in e.sources]
        k = e.kind
        if k == "sum":
            total: dict = {}
            for m in srcs[0].values():
                total = mv_add(total, m)
            return {(): total}
        if k == "index":
            n = len(e.attrs["index"])
            return {ch[n:]: m for ch, m in srcs[0].items() if list(ch[:n]) == e.attrs["index"]}
        if k == "mix":
            w, x = srcs
            out: dict = {}
            for (i, j), wm in sorted(w.items()):           # row by row, each row's terms in order
                out[(i,)] = mv_add(out.get((i,), {}), self.product("gp", wm, x[(j,)]))
            return out
        if k == "gradegate":                   # each grade gated by its own scalar
            x, s = srcs
            return {ch: functools.reduce(mv_add, [self.opaque(e, ch, "gate", mv_filter(m, sup.of_grades(alg, [g])), None,
                                                              s[(*ch, i)]) for i, g in enumerate(e.attrs["grades"])], {})
                    for ch, m in x.items()}
        if k == "linear":
            w, x = srcs
            grades, first = e.attrs["grades"], e.attrs.get("offset", 0)
            out = {}
            for (i, j, g), wm in w.items():
                if not 0 <= g - first < len(grades):        # another grade pair's weights
                    continue
                part = self.product("gp", wm, mv_filter(x[(j,)], sup.of_grades(alg, [grades[g - first]])))
                out[(i,)] = mv_add(out.get((i,), {}), part)
            return out
        if k == "bilinear":
            w, x, y = srcs
            out = {}
            for (c, p), wm in w.items():
                ga, gb, r = e.attrs["paths"][p]
                made = self.product("gp", mv_filter(x[(c,)], sup.of_grades(alg, [ga])),
                                    mv_filter(y[(c,)], sup.of_grades(alg, [gb])))
                out[(c,)] = mv_add(out.get((c,), {}), self.product("gp", wm, mv_filter(made, sup.of_grades(alg, [r]))))
            return out
        return {ch: self.pointwise(e, ch, [s[ch] if ch in s else s[()] for s in srcs])
                for ch in _channels(srcs)}

    def pointwise(self, e, ch, args: list[dict]) -> dict:
        alg, k = self.alg, e.kind
        a = args[0]
        if k == "add":
            return mv_add(a, args[1])
        if k == "sub":
            return mv_add(a, args[1], -1)
        if k == "neg":
            return mv_scale(a, -1)
        if k == "copy":
            return a
        if k in ("gp", "op", "lc", "regressive"):
            return self.product(k, a, args[1])
        if k == "reverse":
            return mv_map(alg, a, lambda m: (alg.reverse_sign(m), m))
        if k == "involute":
            return mv_map(alg, a, lambda m: (alg.involute_sign(m), m))
        if k == "dual":
            return mv_map(alg, a, alg.right_complement)
        if k == "grade":
            return mv_filter(a, sup.of_grades(alg, e.attrs["grades"]))
        if k == "even":
            return mv_filter(a, sup.of_grades(alg, range(0, alg.n + 1, 2)))
        if k == "odd":
            return mv_filter(a, sup.of_grades(alg, range(1, alg.n + 1, 2)))
        if k == "scalar":
            return mv_filter(a, sup.SCALAR)
        if k == "norm2":
            return mv_filter(self.product("gp", a, mv_map(alg, a, lambda m: (alg.reverse_sign(m), m))), sup.SCALAR)
        if k == "component":
            c = a.get(e.attrs["blade"], 0)
            return {0: c if e.attrs["sign"] > 0 else -c}
        if k in ("div", "sandwich"):
            versor = self.g.values[e.sources[0 if k == "sandwich" else 1]].versor
            v, x = (args[1], a) if k == "div" else (a, args[1])
            inverse = self.opaque(e, ch, "inv", v, versor)
            return self.product("gp", x, inverse) if k == "div" else \
                self.product("gp", self.product("gp", v, x), inverse)
        return self.opaque(e, ch, k, a, self.g.values[e.sources[0]].versor, *args[1:])


# Operations the symbolic mode cannot expand as polynomials.
OPAQUE = {"inv", "div", "sandwich", "normalize", "gate", "gradegate", "norm", "exp", "log", "sqrt", "sin", "cos", "tanh",
          "sigmoid", "relu", "gelu", "abs"}


def _channels(srcs: list[dict]) -> list[tuple]:
    shaped = [s for s in srcs if () not in s]
    return sorted(shaped[0]) if shaped else [()]


# ---- symbolic mode ----------------------------------------------------------------------------
SCALING = ("normalize", "gate")          # operations that only rescale their argument


class Symbolic:
    """Coefficients as polynomials over QQ in the inputs' coefficients and fresh variables, for the
    values of one hypergraph (evaluated once each, on demand)."""

    # Beyond these the expansion is abandoned (no narrowing, no harm): terms of one value, and pairs
    # of terms multiplied, per product and in all (sympy takes some microseconds a pair).
    MAX_TERMS = 20_000
    MAX_PRODUCT_PAIRS = 100_000
    MAX_PAIRS = 500_000
    # Variables of the ring: each monomial is a tuple over all of them, so making the ring and
    # every product of terms take time in proportion (26,672 variables: 17 s to make the ring,
    # 2.4 ms a product of two terms).  The pairs above are counted as if the ring had at most
    # WIDTH variables, and as that many times more for every WIDTH more.
    MAX_VARIABLES = 4_096
    WIDTH = 256

    def __init__(self, graph: Hypergraph):
        self.g = graph
        self.alg = graph.algebra
        self.leaf_index: dict[tuple, int] = {}
        fresh = 0
        for v in graph.values.values():
            e = graph.producer(v.id)
            channels = list(itertools.product(*(range(s) for s in v.shape)))
            if e is None and v.const is None:
                for ch in channels:
                    for b in sup.blades_of(v.support):
                        self.leaf_index[(v.id, ch, b)] = len(self.leaf_index)
            elif e is not None and e.kind in OPAQUE:
                fresh += len(channels) * (1 if e.kind in SCALING else self.alg.dim)
        total = len(self.leaf_index) + fresh
        if total > self.MAX_VARIABLES:
            raise Undefined("the exact expansion is too large")
        self.ring, *self.gens = ring([f"g{i}" for i in range(max(total, 1))], QQ)
        self.next_fresh = len(self.leaf_index)
        self.pairs = 0
        self.width = max(1, -(-total // self.WIDTH))     # pairs are this many times the work
        self.eval = Evaluator(graph, self.leaf, self.opaque, self.within_budget, self.product_within_budget)

    def within_budget(self, value: dict):
        if sum(_terms(m) for m in value.values()) > self.MAX_TERMS:
            raise Undefined("the exact expansion is too large")

    def product_within_budget(self, a: dict, b: dict):
        """Refuses a product before it is formed: its cost is the pairs of terms it multiplies."""
        pairs = _terms(a) * _terms(b) * self.width
        self.pairs += pairs
        if pairs > self.MAX_PRODUCT_PAIRS or self.pairs > self.MAX_PAIRS:
            raise Undefined("the exact expansion is too large")

    def fresh(self):
        g = self.gens[self.next_fresh]
        self.next_fresh += 1
        return g

    def leaf(self, v) -> dict:
        if v.const is not None:
            return {(): {b: self.ring(QQ.convert(Fraction(float(v.const[b])))) for b in sup.blades_of(v.support)}}
        return {ch: {b: self.gens[self.leaf_index[(v.id, ch, b)]] for b in sup.blades_of(v.support)}
                for ch in itertools.product(*(range(s) for s in v.shape))}

    def opaque(self, e, ch, kind, a, versor, *rest):
        alg = self.alg
        if kind == "inv" and versor:
            return mv_scale(mv_map(alg, a, lambda m: (alg.reverse_sign(m), m)), self.fresh())
        if kind in ("normalize", "gate"):
            return mv_scale(a, self.fresh())
        target = self.g.values[e.target]
        blades = sup.blades_of(target.support) if kind != "inv" else sup.blades_of(sup.closure(alg, self.support_of(a)))
        return {b: self.fresh() for b in blades}

    @staticmethod
    def support_of(a: dict) -> int:
        return sup.from_blades(k for k, v in a.items() if v != 0)

    def coefficients(self, value_id: str) -> dict:
        return self.eval.value(value_id)


def _terms(m: dict) -> int:
    """Terms of a multivector's polynomial coefficients (a number counts as one)."""
    return sum(len(c) if hasattr(c, "terms") else 1 for c in m.values())


# ---- floating-point mode (a fast first look before an exact confirmation) -------------------------
class Floating:
    """Values at given inputs in float64, to find candidate counterexamples quickly."""

    def __init__(self, graph: Hypergraph, inputs: dict):
        self.g = graph
        self.alg = graph.algebra
        self.inputs = inputs
        self.eval = Evaluator(graph, self.leaf, self.opaque)

    def leaf(self, v) -> dict:
        if v.const is not None:
            return {(): {b: float(v.const[b]) for b in sup.blades_of(v.support)}}
        return {ch: {b: float(c) for b, c in m.items()} for ch, m in self.inputs[v.id].items()}

    def zero(self, x) -> bool:
        return abs(x) <= 1e-9

    def dense(self, a: dict) -> np.ndarray:
        out = np.zeros(self.alg.dim)
        for b, c in a.items():
            out[b] = c
        return out

    def sparse(self, x: np.ndarray) -> dict:
        return {b: float(x[b]) for b in np.flatnonzero(x)}

    def opaque(self, e, ch, kind, a, versor, *rest):
        alg = self.alg
        if kind == "inv":
            try:
                return self.sparse(mv.inverse(alg, self.dense(a)))
            except mv.NotInvertible:
                raise Undefined("the value has no inverse") from None
        if kind in ("norm", "normalize"):
            n = math.sqrt(abs(mv.norm2(alg, self.dense(a))))
            if kind == "norm":
                return {0: n}
            if n == 0:
                raise Undefined("normalize of a value of norm 0")
            return {k: v / n for k, v in a.items()}
        if kind == "gate":
            return mv_scale(a, 1 / (1 + math.exp(-rest[0].get(0, 0.0))))
        if kind == "exp":
            return self.sparse(mv.exp(alg, self.dense(a)))
        if kind == "log":
            raise Undefined("log is not evaluated")
        x = a.get(0, 0.0)
        if kind == "sqrt" and x < 0:
            raise Undefined("sqrt of a negative number")
        fn = {"sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tanh": math.tanh, "abs": abs,
              "relu": lambda t: max(t, 0.0), "sigmoid": lambda t: 1 / (1 + math.exp(-t)),
              "gelu": lambda t: t * (1 + math.erf(t / math.sqrt(2))) / 2}[kind]
        return {0: fn(x)}

    def coefficients(self, value_id: str) -> dict:
        return self.eval.value(value_id)


# ---- concrete mode ----------------------------------------------------------------------------
def is_exact(x) -> bool:
    return isinstance(x, (int, Rational))


def nonzero(x) -> bool:
    return x != 0 if is_exact(x) else abs(x) > Float(10, DIGITS) ** (-(DIGITS - 20))


def _mp(x):
    return mpmath.mpf(x.p) / x.q if isinstance(x, Rational) else mpmath.mpf(x)


def _float(x) -> Float:
    return Float(x, DIGITS)


class Concrete:
    """Values at given inputs: {value id: {channel: {blade: sympy Rational}}}; operations that leave
    the rationals give 50-digit Floats, and `exact` records whether that happened."""

    def __init__(self, graph: Hypergraph, inputs: dict):
        self.g = graph
        self.alg = graph.algebra
        self.inputs = inputs
        self.exact = True
        self.eval = Evaluator(graph, self.leaf, self.opaque)

    def leaf(self, v) -> dict:
        if v.const is not None:
            return {(): {b: Rational(Fraction(float(v.const[b]))) for b in sup.blades_of(v.support)}}
        return self.inputs[v.id]

    def zero(self, x) -> bool:
        return not nonzero(x)

    def approximate(self, x) -> Float:
        self.exact = False
        return _float(x)

    def opaque(self, e, ch, kind, a, versor, *rest):
        alg = self.alg
        if kind == "inv":
            return self.inverse(a)
        if kind in ("norm", "normalize"):
            n2 = mv_product(alg, "gp", a, mv_map(alg, a, lambda m: (alg.reverse_sign(m), m))).get(0, 0)
            n = self.sqrt(abs(n2))
            if kind == "norm":
                return {0: n}
            if not nonzero(n):
                raise Undefined("normalize of a value of norm 0")
            return {k: v / n for k, v in a.items()}
        if kind == "gate":
            return mv_scale(a, self.scalar_fn("sigmoid", rest[0].get(0, 0)))
        if kind == "exp":
            return self.exp(a)
        if kind == "log":
            raise Undefined("log is not evaluated exactly")
        return {0: self.scalar_fn(kind, a.get(0, 0))}

    def sqrt(self, x):
        if is_exact(x):
            root = sqrt(Rational(x))
            if isinstance(root, Rational):
                return root
        return self.approximate(mpmath.sqrt(_mp(x)))

    def scalar_fn(self, kind: str, x):
        if kind == "sqrt":
            if x < 0:
                raise Undefined("sqrt of a negative number")
            return self.sqrt(x)
        if kind == "abs":
            return abs(x)
        if kind == "relu":
            return max(x, 0)
        if kind in ("sin", "tanh") and x == 0:
            return Rational(0)
        if kind in ("cos", "exp") and x == 0:
            return Rational(1)
        y = _mp(x)
        fn = {"sin": mpmath.sin, "cos": mpmath.cos, "tanh": mpmath.tanh,
              "sigmoid": lambda t: 1 / (1 + mpmath.exp(-t)),
              "gelu": lambda t: t * (1 + mpmath.erf(t / mpmath.sqrt(2))) / 2,
              "exp": mpmath.exp}[kind]
        return self.approximate(fn(y))

    def subalgebra(self, a: dict, what: str) -> list[int]:
        """The blades of the subalgebra a generates (where its inverse and exponential live), scalar
        first; Budget when it is too large to solve in exactly."""
        blades = sup.blades_of(sup.closure(self.alg, sup.from_blades(a)))
        if len(blades) > SUBALGEBRA_BLADES:
            raise Budget(f"an exact {what} on {len(blades)} blades is beyond the budget of {SUBALGEBRA_BLADES}")
        return blades

    def matrix(self, a: dict, blades: list[int]) -> list[list]:
        """Left multiplication by a on the span of `blades` (closed under it), as rows of numbers."""
        sign, target = self.alg.tables["gp"]
        row = {b: r for r, b in enumerate(blades)}
        m = [[Rational(0)] * len(blades) for _ in blades]
        for i, x in a.items():
            for c, j in enumerate(blades):
                s = int(sign[i, j])
                if s:
                    m[row[int(target[i, j])]][c] += s * x
        return m

    def inverse(self, a: dict) -> dict:
        blades = self.subalgebra(a, "inverse")
        m = self.matrix(a, blades)
        dim = len(blades)
        if all(is_exact(x) for row in m for x in row):
            dm = DomainMatrix([[QQ.convert(x) for x in row] for row in m], (dim, dim), QQ)
            rhs = DomainMatrix([[QQ(int(i == 0))] for i in range(dim)], (dim, 1), QQ)
            try:
                sol = dm.lu_solve(rhs).to_Matrix()
            except DMNonInvertibleMatrixError:
                raise Undefined("the value has no inverse") from None
            return {b: Rational(sol[r]) for r, b in enumerate(blades) if sol[r] != 0}
        mm = mpmath.matrix([[_mp(x) for x in row] for row in m])
        if not nonzero(_float(mpmath.det(mm))):
            raise Undefined("the value has no inverse")
        sol = mpmath.lu_solve(mm, mpmath.matrix([int(i == 0) for i in range(dim)]))
        return {b: self.approximate(sol[r]) for r, b in enumerate(blades) if sol[r] != 0}

    def exp(self, a: dict) -> dict:
        if all(k == 0 for k in a):
            return {0: self.scalar_fn("exp", a.get(0, 0))}
        blades = self.subalgebra(a, "exponential")
        col = mpmath.expm(mpmath.matrix([[_mp(x) for x in row] for row in self.matrix(a, blades)]))
        return {b: self.approximate(col[r, 0]) for r, b in enumerate(blades) if col[r, 0] != 0}

    def coefficients(self, value_id: str) -> dict:
        return self.eval.value(value_id)
