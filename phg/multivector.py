"""Dense multivector arithmetic for compile-time constants (`const`, literals, blades).

Coefficients are indexed by blade mask.  Constants are small and few, so clarity wins over speed.
"""
from __future__ import annotations

import math

import numpy as np

from .algebra import Algebra, popcount


class NotInvertible(ArithmeticError):
    pass


def zero(alg: Algebra) -> np.ndarray:
    return np.zeros(alg.dim)


def blade(alg: Algebra, mask: int, coef: float = 1.0) -> np.ndarray:
    v = zero(alg)
    v[mask] = coef
    return v


def product(alg: Algebra, kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sign, target = alg.tables[kind]
    out = zero(alg)
    np.add.at(out, target, sign * np.outer(a, b))
    return out


def _signs(alg: Algebra, which: str) -> np.ndarray:
    fn = alg.reverse_sign if which == "reverse" else alg.involute_sign
    return np.array([fn(b) for b in range(alg.dim)], dtype=float)


def reverse(alg: Algebra, a: np.ndarray) -> np.ndarray:
    return a * _signs(alg, "reverse")


def involute(alg: Algebra, a: np.ndarray) -> np.ndarray:
    return a * _signs(alg, "involute")


def dual(alg: Algebra, a: np.ndarray) -> np.ndarray:
    out = zero(alg)
    for b in range(alg.dim):
        s, c = alg.right_complement(b)
        out[c] += s * a[b]
    return out


def grade(alg: Algebra, a: np.ndarray, grades) -> np.ndarray:
    keep = np.array([popcount(b) in grades for b in range(alg.dim)])
    return np.where(keep, a, 0.0)


def left_matrix(alg: Algebra, a: np.ndarray) -> np.ndarray:
    """The matrix of y -> a * y."""
    sign, target = alg.tables["gp"]
    m = np.zeros((alg.dim, alg.dim))
    for i in range(alg.dim):
        if a[i]:
            np.add.at(m, (target[i], np.arange(alg.dim)), sign[i] * a[i])
    return m


def inverse(alg: Algebra, a: np.ndarray) -> np.ndarray:
    """a^-1 by solving a * y = 1; works in every signature, degenerate ones included."""
    m = left_matrix(alg, a)
    one = blade(alg, 0)
    y, *_ = np.linalg.lstsq(m, one, rcond=None)
    if not np.allclose(m @ y, one, atol=1e-12 * max(1.0, np.abs(m).max())):
        raise NotInvertible("the multivector has no inverse")
    return y


def exp(alg: Algebra, a: np.ndarray) -> np.ndarray:
    """exp by scaling and squaring of a Taylor series."""
    size = float(np.abs(a).sum())
    k = max(0, math.ceil(math.log2(size)) + 1) if size > 0 else 0
    x = a / 2 ** k
    term, total = blade(alg, 0), blade(alg, 0)
    for i in range(1, 30):
        term = product(alg, "gp", term, x) / i
        total = total + term
    for _ in range(k):
        total = product(alg, "gp", total, total)
    return total


def norm2(alg: Algebra, a: np.ndarray) -> float:
    return float(product(alg, "gp", a, reverse(alg, a))[0])
