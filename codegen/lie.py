"""The exponential map of Rotor and Motor parameters: the scalar factors of the closed form of a
bivector's exponential where the algebra has one, and a table-driven R exp(B) where it has not.

Where a bivector squares to B^2 = -l + 2 mu I with l >= 0 and I a pseudoscalar with I^2 = 0 (G2,
G3, 2D and 3D PGA; mu = 0 without such an I), write a = sqrt(l).  Then, using I^2 = 0,

    exp(B) = cos a + mu f(a) I + f(a) B - mu g(a) B I,
    f(a) = sin(a) / a,   g(a) = (a cos a - sin a) / a^3,

(B^2 = -(a - mu I / a)^2, and cos, sin(x)/x expanded to first order in I).  f and g are taken from
their Taylor series near 0, where the quotients lose digits.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from phg.algebra import Algebra, BasisVector, popcount

# Below this a^2 the series (truncated after a^8) are exact to double rounding.
SERIES_BELOW = 1e-2


@numba.njit(cache=True)
def exp_factors(l):
    """(cos a, f(a), g(a)) for a = sqrt(l), l >= 0."""
    if l < SERIES_BELOW:
        f = 1.0 - l / 6.0 * (1.0 - l / 20.0 * (1.0 - l / 42.0 * (1.0 - l / 72.0)))
        g = -1.0 / 3.0 + l * (1.0 / 30.0 - l * (1.0 / 840.0 - l * (1.0 / 45360.0 - l / 3991680.0)))
        c = 1.0 - l / 2.0 * (1.0 - l / 12.0 * (1.0 - l / 30.0 * (1.0 - l / 56.0 * (1.0 - l / 90.0))))
        return c, f, g
    a = math.sqrt(l)
    s, c = math.sin(a), math.cos(a)
    return c, s / a, (a * c - s) / (a * l)


# ---- the exponential map of any algebra, from its product table ---------------------------------
# Taylor terms after scaling the argument to 1-norm <= 1/2: the 1-norm is submultiplicative (a
# blade product is one signed blade), so the first term left out is below 2^-19 / 19! < 1e-22.
TAYLOR_TERMS = 18


class RotorManifold:
    """The tangent and the retraction R <- R exp(scale B), renormalised, of a Rotor or Motor
    without a closed form (G4 and up, mixed signatures), on the even subalgebra's product table:
    the compiled code is the same few functions for every algebra, where unrolled products took
    a compile time growing with the square of the even dimension (minutes from G7 on).
    Coefficients are in the algebra's canonical order throughout: `layout` (the stored blades),
    `tangent` (B's coordinates) and the table's rows.

    tangent: b_i = <G, R e_i>, G the Euclidean gradient on the stored coefficients.
    retract: renormalisation maps R ~R = s + p I back to 1 by R <- R (s^-1/2 - p s^-3/2 I / 2),
    with p only for a null pseudoscalar I (`pseudo` its mask, else None)."""

    def __init__(self, squares: tuple[int, ...], layout: tuple[int, ...], tangent: tuple[int, ...],
                 pseudo: int | None):
        alg = Algebra("rotors", [BasisVector(f"e{i}", s) for i, s in enumerate(squares)])
        even = [b for b in alg.blades if popcount(b) % 2 == 0]          # closed under products
        where = {b: k for k, b in enumerate(even)}
        self.sign = np.array([[alg.gp(a, b)[0] for b in even] for a in even], dtype=np.float64)
        self.index = np.array([[where[a ^ b] for b in even] for a in even], dtype=np.int64)
        self.reverse = np.array([alg.reverse_sign(b) for b in even], dtype=np.float64)
        self.layout = np.array([where[b] for b in layout], dtype=np.int64)
        self.bivectors = np.array([where[b] for b in tangent], dtype=np.int64)
        self.pseudo = where[pseudo] if pseudo is not None else -1
        self.work = np.zeros((6, len(even)))         # allocated once, not per step

    def tangent(self, r, grad, out):
        _tangent(self.sign, self.index, self.layout, self.bivectors, r, grad, out, self.work)

    def retract(self, r, b, scale, out):
        """R exp(scale B) per channel, renormalised; out may be r."""
        _retract(self.sign, self.index, self.reverse, self.layout, self.bivectors, self.pseudo,
                 r, b, float(scale), out, self.work)


@numba.njit(cache=True)
def _tangent(sign, index, layout, bivectors, r, grad, out, work):
    rr, g = work[0], work[1]
    for c in range(r.shape[0]):
        rr[:] = 0.0
        g[:] = 0.0
        for i in range(layout.shape[0]):
            rr[layout[i]] = r[c, i]
            g[layout[i]] = grad[c, i]
        for i in range(bivectors.shape[0]):
            e = bivectors[i]
            total = 0.0
            for j in range(rr.shape[0]):
                total += rr[j] * sign[j, e] * g[index[j, e]]
            out[c, i] = total


@numba.njit(cache=True)
def _product(sign, index, a, b, out):
    out[:] = 0.0
    for i in range(a.shape[0]):
        if a[i] != 0.0:
            for j in range(b.shape[0]):
                out[index[i, j]] += sign[i, j] * a[i] * b[j]


@numba.njit(cache=True)
def _exp(sign, index, x, y, t, u):
    """y = exp(x) by Taylor terms and squarings; x is scaled in place.  Position 0 is the scalar."""
    size = np.abs(x).sum()
    if size == math.inf:                       # no exp to scale towards: let it propagate as NaN
        size = math.nan
    k = 0
    while size > 0.5:
        size *= 0.5
        k += 1
    x *= math.ldexp(1.0, -k)
    y[:] = 0.0
    y[0] = 1.0
    t[:] = y
    for n in range(1, TAYLOR_TERMS + 1):
        _product(sign, index, t, x, u)
        t[:] = u / n
        y += t
    for _ in range(k):
        _product(sign, index, y, y, u)
        y[:] = u


@numba.njit(cache=True)
def _retract(sign, index, reverse, layout, bivectors, pseudo, r, b, scale, out, work):
    x, e, t, u, rr, y = work[0], work[1], work[2], work[3], work[4], work[5]
    for c in range(r.shape[0]):
        x[:] = 0.0
        for i in range(bivectors.shape[0]):
            x[bivectors[i]] = scale * b[c, i]
        _exp(sign, index, x, e, t, u)
        rr[:] = 0.0
        for i in range(layout.shape[0]):
            rr[layout[i]] = r[c, i]
        _product(sign, index, rr, e, y)
        s, p = 0.0, 0.0                        # y ~y = s + p I
        for i in range(y.shape[0]):
            for j in range(y.shape[0]):
                k = index[i, j]
                if k == 0 or k == pseudo:
                    term = sign[i, j] * y[i] * reverse[j] * y[j]
                    if k == 0:
                        s += term
                    else:
                        p += term
        scale_s = 1.0 / math.sqrt(s)
        t[:] = scale_s * y
        if pseudo >= 0:                         # + y (-p s^-3/2 / 2) I
            w = -0.5 * p * scale_s * scale_s * scale_s
            for i in range(y.shape[0]):
                t[index[i, pseudo]] += sign[i, pseudo] * w * y[i]
        for i in range(layout.shape[0]):
            out[c, i] = t[layout[i]]
