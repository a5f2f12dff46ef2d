"""Random expressions of the language, written as .phg text and evaluated independently with
clifford, for property tests of the abstract rules."""
from __future__ import annotations

import clifford
import numpy as np
from hypothesis import strategies as st

from phg.algebra import Algebra

ALGEBRAS = {"G2": (2, 0, 0), "G3": (3, 0, 0), "PGA": (3, 0, 1), "STA": (1, 3, 0), "H2": (0, 2, 0),
            "PGA2": (2, 0, 1)}

BINARY = ["+", "-", "*", "/", "^", "|", "&", ">>"]
UNARY = ["-", "~", "even", "odd", "scalar", "dual", "involute", "inv", "norm2", "normalize", "exp",
         "grade", "component", "sqrt", "sin"]


class Reference:
    """An algebra both as ours and as clifford's, with a way between their coefficient arrays."""

    def __init__(self, name: str):
        p, q, r = ALGEBRAS[name]
        self.name = name
        self.ours = Algebra.from_signature(name, p, q, r)
        self.layout, _ = clifford.Cl(p, q, r)
        first = min((i for t in self.layout.bladeTupList for i in t), default=1)
        self.mask_of = [sum(1 << (k - first) for k in t) for t in self.layout.bladeTupList]
        self.index_of = {m: i for i, m in enumerate(self.mask_of)}

    def mv(self, coefs: dict[int, float]):
        v = np.zeros(self.layout.gaDims)
        for mask, c in coefs.items():
            v[self.index_of[mask]] = c
        return self.layout.MultiVector(v)

    def support_of(self, x, rel: float = 1e-9) -> set[int]:
        scale = max(1.0, float(np.abs(x.value).max()))
        return {self.mask_of[i] for i in np.flatnonzero(np.abs(x.value) > rel * scale)}


_REFERENCES: dict[str, Reference] = {}


def reference(name: str) -> Reference:
    if name not in _REFERENCES:
        _REFERENCES[name] = Reference(name)
    return _REFERENCES[name]


class NotDefined(ArithmeticError):
    """The random expression has no value here (an inverse of a non-invertible element)."""


def evaluate(ref: Reference, tree, inputs: dict):
    """Evaluate an expression tree with clifford's own products."""
    kind = tree[0]
    if kind == "input":
        return inputs[tree[1]]
    if kind == "num":
        return ref.layout.scalar * tree[1]
    if kind == "blade":
        return ref.mv({tree[1]: 1.0})
    if kind == "bin":
        a, b = evaluate(ref, tree[2], inputs), evaluate(ref, tree[3], inputs)
        op = tree[1]
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "^":
            return a ^ b
        if op == "|":
            return a.lc(b)
        if op == "&":
            return a & b
        if op == "/":
            return a * _inv(ref, b)
        if op == ">>":
            return a * b * _inv(ref, a)
    a = evaluate(ref, tree[2], inputs)
    op = tree[1]
    if op == "-":
        return -a
    if op == "~":
        return ~a
    if op == "even":
        return a.even
    if op == "odd":
        return a.odd
    if op == "scalar":
        return a(0)
    if op == "dual":
        return a.right_complement()
    if op == "involute":
        return a.gradeInvol()
    if op == "inv":
        return _inv(ref, a)
    if op == "norm2":
        return (a * ~a)(0)
    if op == "normalize":
        n = np.sqrt(abs(float((a * ~a)(0))))
        if n < 1e-9:
            raise NotDefined("normalize of a null value")
        return a / n
    if op == "exp":
        return a(2).exp()
    if op == "grade":
        return a(tree[3])
    if op == "component":
        return ref.layout.scalar * float(a.value[ref.index_of[tree[3]]])
    if op == "sqrt":
        return ref.layout.scalar * np.sqrt(abs(float(a(0))))
    if op == "sin":
        return ref.layout.scalar * np.sin(float(a(0)))
    raise KeyError(op)


def _inv(ref: Reference, a):
    size = float(np.abs(a.value).max())
    if size < 1e-9:
        raise NotDefined("inverse of zero")
    try:
        inv = a.inv()
    except ValueError as exc:
        raise NotDefined(str(exc)) from None
    err = np.abs((a * inv - 1).value).max()
    if not np.isfinite(inv.value).all() or err > 1e-6:
        raise NotDefined("not invertible")
    return inv


def text(ref: Reference, tree) -> str:
    """The expression as .phg source."""
    kind = tree[0]
    if kind == "input":
        return tree[1]
    if kind == "num":
        return repr(tree[1])
    if kind == "blade":
        return ref.ours.blade_name(tree[1]) if tree[1] else "1"
    if kind == "bin":
        return f"({text(ref, tree[2])} {tree[1]} {text(ref, tree[3])})"
    op, inner = tree[1], text(ref, tree[2])
    if op in ("-", "~"):
        return f"{op}({inner})"
    if op == "exp":
        return f"exp(grade({inner}, 2))"
    if op == "grade":
        return f"grade({inner}, {tree[3]})"
    if op == "component":
        return f"({inner}).{ref.ours.blade_name(tree[3])}" if tree[3] else f"scalar({inner})"
    if op in ("sqrt", "sin"):
        return f"{op}(abs(scalar({inner})))" if op == "sqrt" else f"sin(scalar({inner}))"
    return f"{op}({inner})"


@st.composite
def trees(draw, ref: Reference, names: list[str], depth: int):
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        leaf = draw(st.integers(0, 9))
        if leaf == 0:
            return ("num", draw(st.sampled_from([0.5, 2.0, -1.5])))
        if leaf == 1:
            return ("blade", draw(st.sampled_from(range(1, ref.ours.dim))))
        return ("input", draw(st.sampled_from(names)))
    if draw(st.booleans()):
        op = draw(st.sampled_from(BINARY))
        return ("bin", op, draw(trees(ref, names, depth - 1)), draw(trees(ref, names, depth - 1)))
    op = draw(st.sampled_from(UNARY))
    sub = draw(trees(ref, names, depth - 1))
    if op == "grade":
        return ("un", op, sub, draw(st.integers(0, ref.ours.n)))
    if op == "component":
        return ("un", op, sub, draw(st.sampled_from(range(ref.ours.dim))))
    return ("un", op, sub)
