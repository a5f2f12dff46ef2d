"""Scalar factors of the closed-form exponential of a bivector.

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
