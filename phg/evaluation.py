"""One evaluator of a hypergraph's operations, over any number system.

What an operation means is written once, in its registry entry (`Operation.meaning`, phg.operations),
in terms of sparse multivector arithmetic (phg.sparse) and of a number system (`Numbers`).  The number
system supplies what is not a polynomial: an inverse, an exponential, the scalar functions, a norm.
The systems in use: floats (constant folding here, the verifier's quick look), exact rationals and
polynomials with fresh variables (verifier.exact), sympy expressions (phg.plan.scalar, the per-sample
scalar programs the code generator prints).

A multivector is a dict blade mask -> number; a value with channels is a dict channel -> multivector.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from . import multivector as mv
from . import sparse
from .algebra import Algebra
from .hypergraph import Edge, Hypergraph, Value
from .operations import operation
from .sparse import reverse, scale


class Undefined(ArithmeticError):
    """The value does not exist at these inputs (division by zero, a non-invertible element)."""


# ---- number systems ---------------------------------------------------------------------------
class Numbers:
    """A number system: the meaning of what the operations' polynomial parts do not say.  The
    defaults compute from the primitives of `PRIMITIVES` (sqrt, abs, relu, sin, cos, tanh, exp,
    erf: name -> function); a system overrides what it computes otherwise (exactly, as fresh
    variables, as a call of a generated helper)."""

    PRIMITIVES: dict = {}

    def __init__(self, alg: Algebra):
        self.alg = alg

    # the walk's hooks
    def leaf(self, v: Value) -> dict:
        raise NotImplementedError(f"{type(self).__name__} has no leaves")

    def settle(self, v: Value, value: dict) -> dict:
        """What is kept of a value the walk computed (a budget's check, names for its scalars)."""
        return value

    def product(self, kind: str, a: dict, b: dict) -> dict:
        return sparse.product(self.alg, kind, a, b)

    # scalars
    def function(self, kind: str, x):
        """A scalar function of the language (sqrt, sin, cos, tanh, sigmoid, relu, gelu, abs, exp)."""
        f = self.PRIMITIVES
        if kind == "sigmoid":
            return 1 / (1 + f["exp"](-x))
        if kind == "gelu":
            return x * (1 + f["erf"](x / f["sqrt"](2))) / 2
        return f[kind](x)

    def nonzero(self, x) -> bool:
        """Whether a divisor is known to be nonzero (a system that cannot tell says so)."""
        return True

    # multivectors; `source` and `target` are the hyperedge's values (None for a constant)
    def norm(self, a: dict, target: Value | None) -> dict:
        n2 = self.product("gp", a, reverse(self.alg, a)).get(0, 0)
        return {0: self.function("sqrt", self.function("abs", n2))}

    def normalize(self, a: dict) -> dict:
        size = self.norm(a, None)[0]
        if not self.nonzero(size):
            raise Undefined("normalize of a multivector of norm 0")
        return {k: v / size for k, v in a.items()}

    def gate(self, a: dict, s: dict) -> dict:
        return scale(a, self.function("sigmoid", s.get(0, 0)))

    def inverse(self, a: dict, source: Value | None) -> dict:
        raise NotImplementedError

    def exp(self, a: dict, source: Value | None, target: Value | None) -> dict:
        raise NotImplementedError

    def log(self, a: dict, source: Value | None, target: Value | None) -> dict:
        raise Undefined("log is not evaluated")


def _sqrt(x: float) -> float:
    if x < 0:
        raise Undefined("sqrt of a negative number")
    return math.sqrt(x)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class Floats(Numbers):
    """float64, the non-polynomial operations by phg.multivector's dense arithmetic."""

    PRIMITIVES = {"sqrt": _sqrt, "abs": abs, "relu": lambda x: max(x, 0.0), "sin": math.sin, "cos": math.cos,
                  "tanh": math.tanh, "exp": math.exp, "erf": math.erf}

    def function(self, kind: str, x):
        return _sigmoid(x) if kind == "sigmoid" else super().function(kind, float(x))

    def nonzero(self, x) -> bool:
        return x != 0

    def dense(self, a: dict) -> np.ndarray:
        out = mv.zero(self.alg)
        for b, c in a.items():
            out[b] = c
        return out

    def inverse(self, a: dict, source: Value | None) -> dict:
        try:
            return dict(enumerate(mv.inverse(self.alg, self.dense(a)).tolist()))
        except mv.NotInvertible:
            raise Undefined("the multivector has no inverse") from None

    def exp(self, a: dict, source: Value | None, target: Value | None) -> dict:
        return dict(enumerate(mv.exp(self.alg, self.dense(a)).tolist()))


# ---- the walk ---------------------------------------------------------------------------------
def channels(v: Value) -> list[tuple]:
    return list(itertools.product(*(range(s) for s in v.shape)))


class Evaluator:
    """Evaluates the values of one hypergraph (on demand, each once) in one number system; without
    a graph it applies single operations (constants)."""

    def __init__(self, numbers: Numbers, graph: Hypergraph | None = None, memo: dict | None = None):
        self.n = numbers
        self.g = graph
        self.alg = numbers.alg
        self.memo: dict[str, dict] = {} if memo is None else memo

    def value(self, value_id: str) -> dict:
        if value_id not in self.memo:
            v = self.g.values[value_id]
            e = self.g.producer(value_id)
            self.memo[value_id] = self.n.leaf(v) if e is None else self.n.settle(v, self.edge(e))
        return self.memo[value_id]

    def edge(self, e: Edge) -> dict:
        """The target's channels from the sources' values."""
        op = operation(e.kind)
        srcs = [self.value(s) for s in e.sources]
        if op.whole:
            return op.meaning(self, e, srcs)
        groups = op.grouped(e.attrs)
        shaped = [s for i, s in enumerate(srcs) if i not in groups and () not in s]
        out = {}
        for ch in (sorted(shaped[0]) if shaped else [()]):
            args = [[s[(*ch, k)] for k in range(groups[i])] if i in groups else s[ch] if ch in s else s[()]
                    for i, s in enumerate(srcs)]
            out[ch] = op.meaning(self, e, args)
        return out

    def channel(self, e: Edge, args: list) -> dict:
        """One channel of a pointwise edge from its sources' multivectors at that channel (a grouped
        source's as a list, one multivector a group member)."""
        return operation(e.kind).meaning(self, e, args)

    # what the meanings ask of the number system, with the hyperedge's values
    def source(self, e: Edge, i: int) -> Value | None:
        return self.g.values[e.sources[i]] if self.g is not None else None

    def target(self, e: Edge) -> Value | None:
        return self.g.values[e.target] if self.g is not None else None

    def product(self, kind: str, a: dict, b: dict) -> dict:
        return self.n.product(kind, a, b)

    def inverse(self, e: Edge, i: int, a: dict) -> dict:
        return self.n.inverse(a, self.source(e, i))

    def exp(self, e: Edge, a: dict) -> dict:
        return self.n.exp(a, self.source(e, 0), self.target(e))

    def log(self, e: Edge, a: dict) -> dict:
        return self.n.log(a, self.source(e, 0), self.target(e))

    def norm(self, e: Edge, a: dict) -> dict:
        return self.n.norm(a, self.target(e))


def fold(alg: Algebra, kind: str, values: list[np.ndarray], attrs: dict) -> np.ndarray:
    """The meaning of an operation on constant multivectors (dense, coefficients by blade mask), in
    floats; NotImplementedError where constants of this kind are not folded, Undefined where the
    value does not exist."""
    op = operation(kind)
    if not op.folds:
        raise NotImplementedError(f"{kind} of a constant")
    args = [dict(enumerate(v.tolist())) for v in values]
    floats = Floats(alg)
    ev = Evaluator(floats)
    e = Edge("", kind, (), "", attrs)
    out = op.meaning(ev, e, [{(): a} for a in args]).get((), {}) if op.whole else op.meaning(ev, e, args)
    return floats.dense(out)
