"""The bivectors of an algebra and how they square: whether a bivector's exponential, and so a
Rotor's or Motor's logarithm, has the closed form of codegen.lie (G2, G3, 2D and 3D PGA).
"""
from __future__ import annotations

import functools

import sympy

from .algebra import Algebra
from .sparse import product


def bivectors(alg: Algebra) -> list[int]:
    return [b for b in alg.blades if bin(b).count("1") == 2]


def null_pseudoscalar(alg: Algebra) -> int | None:
    """The pseudoscalar I when I^2 = 0 and I commutes with even elements (even n), else None."""
    full = (1 << alg.n) - 1
    sign, _ = alg.product("gp", full, full)
    return full if sign == 0 and alg.n % 2 == 0 else None


@functools.lru_cache(maxsize=64)
def closed_form(alg: Algebra) -> bool:
    """Whether every bivector B has B^2 = -l + 2 mu I as codegen.lie needs: each basis
    bivector squares to -1 or 0, the scalar part is minus the sum of squares of the non-null
    coefficients, and any other part is on a null, central pseudoscalar."""
    biv = bivectors(alg)
    b = {m: sympy.Symbol(f"b{m}", real=True) for m in biv}
    square = {m: sympy.expand(x) for m, x in product(alg, "gp", b, b).items()}
    signs = {m: alg.product("gp", m, m)[0] for m in biv}
    if any(s not in (-1, 0) for s in signs.values()):
        return False
    l = sum(b[m] ** 2 for m in biv if signs[m] == -1)
    if sympy.expand(square.get(0, 0) + l) != 0:
        return False
    rest = {m for m, x in square.items() if m != 0 and x != 0}
    return not rest or (null_pseudoscalar(alg) is not None and rest == {null_pseudoscalar(alg)})
