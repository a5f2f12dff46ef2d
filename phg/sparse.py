"""Sparse multivectors over any number type: a dict blade mask -> number (floats, fractions, sympy
expressions, polynomials).  The operations' meanings (phg.operations) are written in these."""
from __future__ import annotations

from . import support as sup
from .algebra import Algebra


# A product's terms are summed from the integer 0 in the order written here, for every number type
# (floats, fractions, sympy, polynomial rings): the scalar programs and constants depend on that order.
def add(a: dict, b: dict, sign: int = 1) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k] + sign * v if k in out else sign * v
    return out


def scale(a: dict, s) -> dict:
    return {k: v * s for k, v in a.items()}


def product(alg: Algebra, kind: str, a: dict, b: dict) -> dict:
    sign, target = alg.tables[kind]
    out: dict = {}
    for i, x in a.items():
        for j, y in b.items():
            s = int(sign[i, j])
            if s:
                t = int(target[i, j])
                out[t] = out.get(t, 0) + (x * y if s > 0 else -(x * y))
    return out


def keep(a: dict, mask: int) -> dict:
    return {k: v for k, v in a.items() if mask >> k & 1}


def project(alg: Algebra, a: dict, grades) -> dict:
    """a's part of the given grades."""
    return keep(a, sup.of_grades(alg, grades))


def _signed(a: dict, sign) -> dict:
    return {k: v if sign(k) > 0 else -v for k, v in a.items()}


def reverse(alg: Algebra, a: dict) -> dict:
    return _signed(a, alg.reverse_sign)


def involute(alg: Algebra, a: dict) -> dict:
    return _signed(a, alg.involute_sign)


def dual(alg: Algebra, a: dict) -> dict:
    out: dict = {}
    for k, v in a.items():
        s, m = alg.right_complement(k)
        out[m] = out.get(m, 0) + s * v
    return out
