"""Exact evaluation of a hypergraph's values, blade by blade: number systems of phg.evaluation.

Two modes (and a floating-point first look) share the operations' meanings:
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

from fractions import Fraction

import mpmath
from sympy import QQ, Float, Rational, sqrt
from sympy.polys.matrices import DomainMatrix
from sympy.polys.matrices.exceptions import DMNonInvertibleMatrixError
from sympy.polys.rings import ring

from phg import sparse
from phg import support as sup
from phg.evaluation import Evaluator, Floats, Numbers, Undefined, channels
from phg.hypergraph import Hypergraph, Value
from phg.sparse import reverse, scale

mpmath.mp.dps = 50
DIGITS = 50


# An exact inverse or exponential solves a linear system on the subalgebra its argument generates;
# over the rationals (or at 50 digits) that costs the cube of its dimension times the growth of the
# numbers: a minute for the 128 even blades of G8.  Past this dimension it is not attempted.
SUBALGEBRA_BLADES = 64


class Budget(Exception):
    """An exact evaluation would exceed its deterministic budget; the claim stays unknown."""


# ---- symbolic mode ----------------------------------------------------------------------------
# Operations whose values are fresh variables (_Polynomials), and those of them that only rescale
# their argument (one fresh factor a channel): the ring is made with room for them.
OPAQUE = {"inv", "div", "sandwich", "normalize", "gate", "gradegate", "norm", "exp", "log", "sqrt", "sin", "cos", "tanh",
          "sigmoid", "relu", "gelu", "abs"}
SCALING = ("normalize", "gate")


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
            if e is None and v.const is None:
                for ch in channels(v):
                    for b in sup.blades_of(v.support):
                        self.leaf_index[(v.id, ch, b)] = len(self.leaf_index)
            elif e is not None and e.kind in OPAQUE:
                fresh += len(channels(v)) * (1 if e.kind in SCALING else self.alg.dim)
        total = len(self.leaf_index) + fresh
        if total > self.MAX_VARIABLES:
            raise Undefined("the exact expansion is too large")
        self.ring, *self.gens = ring([f"g{i}" for i in range(max(total, 1))], QQ)
        self.next_fresh = len(self.leaf_index)
        self.pairs = 0
        self.width = max(1, -(-total // self.WIDTH))     # pairs are this many times the work
        self.eval = Evaluator(_Polynomials(self), graph)

    def fresh(self):
        g = self.gens[self.next_fresh]
        self.next_fresh += 1
        return g

    def coefficients(self, value_id: str) -> dict:
        return self.eval.value(value_id)


class _Polynomials(Numbers):
    """Symbolic's number system: polynomials over QQ; what is not a polynomial is fresh variables
    (its blades), or a fresh factor where it only rescales its argument."""

    def __init__(self, owner: Symbolic):
        super().__init__(owner.alg)
        self.owner = owner

    def leaf(self, v: Value) -> dict:
        o = self.owner
        if v.const is not None:
            return {(): {b: o.ring(QQ.convert(Fraction(float(v.const[b])))) for b in sup.blades_of(v.support)}}
        return {ch: {b: o.gens[o.leaf_index[(v.id, ch, b)]] for b in sup.blades_of(v.support)}
                for ch in channels(v)}

    def settle(self, v: Value, value: dict) -> dict:
        if sum(_terms(m) for m in value.values()) > self.owner.MAX_TERMS:
            raise Undefined("the exact expansion is too large")
        return value

    def product(self, kind: str, a: dict, b: dict) -> dict:
        """Refuses a product before it is formed: its cost is the pairs of terms it multiplies."""
        o = self.owner
        pairs = _terms(a) * _terms(b) * o.width
        o.pairs += pairs
        if pairs > o.MAX_PRODUCT_PAIRS or o.pairs > o.MAX_PAIRS:
            raise Undefined("the exact expansion is too large")
        return sparse.product(self.alg, kind, a, b)

    def _blades(self, support: int) -> dict:
        return {b: self.owner.fresh() for b in sup.blades_of(support)}

    def function(self, kind: str, x):
        return self.owner.fresh()

    def norm(self, a: dict, target: Value | None) -> dict:
        return self._blades(target.support)

    def normalize(self, a: dict) -> dict:
        return scale(a, self.owner.fresh())

    def inverse(self, a: dict, source: Value | None) -> dict:
        if source is not None and source.versor:
            return scale(reverse(self.alg, a), self.owner.fresh())
        return self._blades(sup.closure(self.alg, sup.from_blades(k for k, v in a.items() if v != 0)))

    def exp(self, a: dict, source: Value | None, target: Value | None) -> dict:
        return self._blades(target.support)

    def log(self, a: dict, source: Value | None, target: Value | None) -> dict:
        return self._blades(target.support)


def _terms(m: dict) -> int:
    """Terms of a multivector's polynomial coefficients (a number counts as one)."""
    return sum(len(c) if hasattr(c, "terms") else 1 for c in m.values())


# ---- floating-point mode (a fast first look before an exact confirmation) -------------------------
class AtInputs:
    """Number systems that evaluate a graph at given inputs ({value id: {channel: {blade: number}}}):
    the graph, the inputs and the evaluator, set up once for all of them."""

    def __init__(self, graph: Hypergraph, inputs: dict):
        super().__init__(graph.algebra)
        self.g = graph
        self.inputs = inputs
        self.eval = Evaluator(self, graph)


class Floating(AtInputs, Floats):
    """Values at given inputs in float64, to find candidate counterexamples quickly."""

    def leaf(self, v: Value) -> dict:
        if v.const is not None:
            return {(): {b: float(v.const[b]) for b in sup.blades_of(v.support)}}
        return {ch: {b: float(c) for b, c in m.items()} for ch, m in self.inputs[v.id].items()}

    def zero(self, x) -> bool:
        return abs(x) <= 1e-9

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


class _Mp(Numbers):
    PRIMITIVES = {"sqrt": mpmath.sqrt, "sin": mpmath.sin, "cos": mpmath.cos, "tanh": mpmath.tanh, "exp": mpmath.exp,
                  "erf": mpmath.erf}


_MP = _Mp(None)          # the scalar functions at 50 digits


class Concrete(AtInputs, Numbers):
    """Values at given inputs: {value id: {channel: {blade: sympy Rational}}}; operations that leave
    the rationals give 50-digit Floats, and `exact` records whether that happened."""

    def __init__(self, graph: Hypergraph, inputs: dict):
        super().__init__(graph, inputs)
        self.exact = True

    def leaf(self, v: Value) -> dict:
        if v.const is not None:
            return {(): {b: Rational(Fraction(float(v.const[b]))) for b in sup.blades_of(v.support)}}
        return self.inputs[v.id]

    def zero(self, x) -> bool:
        return not nonzero(x)

    def nonzero(self, x) -> bool:
        return nonzero(x)

    def approximate(self, x) -> Float:
        self.exact = False
        return _float(x)

    def log(self, a: dict, source: Value | None, target: Value | None) -> dict:
        raise Undefined("log is not evaluated exactly")

    def sqrt(self, x):
        if is_exact(x):
            root = sqrt(Rational(x))
            if isinstance(root, Rational):
                return root
        return self.approximate(mpmath.sqrt(_mp(x)))

    def function(self, kind: str, x):
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
        return self.approximate(_MP.function(kind, _mp(x)))

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

    def inverse(self, a: dict, source: Value | None) -> dict:
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

    def exp(self, a: dict, source: Value | None, target: Value | None) -> dict:
        if all(k == 0 for k in a):
            return {0: self.function("exp", a.get(0, 0))}
        blades = self.subalgebra(a, "exponential")
        col = mpmath.expm(mpmath.matrix([[_mp(x) for x in row] for row in self.matrix(a, blades)]))
        return {b: self.approximate(col[r, 0]) for r, b in enumerate(blades) if col[r, 0] != 0}

    def coefficients(self, value_id: str) -> dict:
        return self.eval.value(value_id)


# ---- enclosures -------------------------------------------------------------------------------------
_IV = mpmath.iv


def enclosed(x):
    """An interval containing x (a rational, an int, or an interval already)."""
    if isinstance(x, _IV.mpf):
        return x
    x = Rational(x)
    return _IV.mpf(int(x.p)) / _IV.mpf(int(x.q))


class Enclosure(AtInputs, Numbers):
    """Values at rational inputs as intervals that contain them (mpmath's interval arithmetic, 50
    digits, rounded outwards): where the interval of a difference excludes 0, the difference is not
    0, a proof where Concrete's 50-digit floats are evidence.  An operation with no enclosure here
    (a multivector's exponential beyond a scalar's, log, erf) is Undefined."""

    def __init__(self, graph: Hypergraph, inputs: dict):
        super().__init__(graph, inputs)
        _IV.dps = DIGITS

    def leaf(self, v: Value) -> dict:
        if v.const is not None:
            return {(): {b: enclosed(Fraction(float(v.const[b]))) for b in sup.blades_of(v.support)}}
        return {ch: {b: enclosed(c) for b, c in m.items()} for ch, m in self.inputs[v.id].items()}

    def nonzero(self, x) -> bool:
        return 0 not in enclosed(x)

    def function(self, kind: str, x):
        x = enclosed(x)
        if kind == "sqrt":
            if x.b < 0:
                raise Undefined("sqrt of a negative number")
            return _IV.sqrt(_IV.mpf([max(x.a, 0), x.b]))
        if kind == "abs":
            return abs(x)
        if kind == "relu":
            return _IV.mpf([max(x.a, 0), max(x.b, 0)])
        if kind == "sigmoid":
            return 1 / (1 + _IV.exp(-x))
        if kind == "tanh":
            return 1 - 2 / (_IV.exp(2 * x) + 1)
        if kind in ("exp", "sin", "cos"):
            return getattr(_IV, kind)(x)
        raise Undefined(f"no enclosure of {kind}")

    def inverse(self, a: dict, source: Value | None) -> dict:
        """The solution x of a x = 1 on the subalgebra a generates, by Gaussian elimination in
        intervals (rigorous; Undefined where a pivot's interval holds 0)."""
        if all(k == 0 for k in a):
            if not self.nonzero(a.get(0, 0)):
                raise Undefined("no enclosure of this inverse")
            return {0: 1 / enclosed(a[0])}
        blades = sup.blades_of(sup.closure(self.alg, sup.from_blades(a)))
        if len(blades) > SUBALGEBRA_BLADES:
            raise Budget(f"an enclosed inverse on {len(blades)} blades is beyond the budget of {SUBALGEBRA_BLADES}")
        sign, target = self.alg.tables["gp"]
        row = {b: r for r, b in enumerate(blades)}
        n = len(blades)
        m = [[enclosed(0)] * n + [enclosed(int(r == 0))] for r in range(n)]
        for i, x in a.items():
            for c, j in enumerate(blades):
                if int(sign[i, j]):
                    m[row[int(target[i, j])]][c] += int(sign[i, j]) * enclosed(x)
        for c in range(n):                        # Gauss-Jordan, the widest-margin pivot first
            p = max(range(c, n), key=lambda r: float(abs(m[r][c]).a))
            if 0 in m[p][c]:
                raise Undefined("no enclosure of this inverse")
            m[c], m[p] = m[p], m[c]
            pivot = m[c][c]
            m[c] = [x / pivot for x in m[c]]
            for r in range(n):
                if r != c:
                    f = m[r][c]
                    m[r] = [x - f * y for x, y in zip(m[r], m[c])]
        return {b: m[r][n] for r, b in enumerate(blades)}

    def exp(self, a: dict, source: Value | None, target: Value | None) -> dict:
        if any(k != 0 for k in a):
            raise Undefined("no enclosure of a multivector's exponential")
        return {0: self.function("exp", a.get(0, 0))}

    def log(self, a: dict, source: Value | None, target: Value | None) -> dict:
        raise Undefined("no enclosure of log")

    def coefficients(self, value_id: str) -> dict:
        return self.eval.value(value_id)
