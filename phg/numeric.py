"""The numeric formats a model's kernels compute in (LANGUAGE §11): `numeric FORMAT`.

Every value of every format here is a double, so kernels keep values in float64 registers and
arrays and round each operation's result to the format (codegen.formats).  A format is IEEE
(float64, float32) or a posit (phg.posit: the 2022 standard's posits and the b-posits of
Jonnalagadda, Thotli and Gustafson, arXiv 2603.01615).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from phg import posit


@dataclass(frozen=True)
class NumericFormat:
    name: str
    bits: int
    significand: int               # q: the most significand bits a value has (the hidden one too)
    posit: posit.Format | None = None

    @property
    def is_posit(self) -> bool:
        return self.posit is not None

    @property
    def double_rounds_once(self) -> bool:
        """Whether an operation computed in float64 and rounded to the format is the operation
        rounded once: 53 >= 2q + 2 (add, sub, mul, div and sqrt; Figueroa's condition)."""
        return 53 >= 2 * self.significand + 2

    @property
    def quire_bits(self) -> int | None:
        """The quire's width (posits: 16n bits, b-posits 800); IEEE formats have none: their sums
        round a term at a time."""
        return self.posit.quire_bits if self.posit else None

    @property
    def range(self) -> tuple[float, float]:
        """(the smallest positive value, the largest finite value), both doubles."""
        if self.posit:
            lo, hi = posit.value_range(self.posit)
            return float(lo), float(hi)
        info = np.finfo(np.float32 if self.bits == 32 else np.float64)
        return float(info.smallest_subnormal), float(info.max)

    @property
    def unit_roundoff(self) -> float:
        """Half the distance from 1 to the next value: a relative error an operation near 1 makes."""
        if self.posit:
            one = posit.encode(self.posit, 1)
            return float((posit.decode(self.posit, one + 1) - 1) / 2)
        return 2.0 ** -self.significand

    @property
    def versor_tolerance(self) -> float:
        """How far V ~V of a stored Rotor or Motor may be from 1: a versor's coefficients rounded to
        the format move it by at most 2u + u^2 for coefficients whose own spacing is u's; smaller
        coefficients, whose relative spacing is coarser, add less than u (their squares are small)."""
        return 3 * self.unit_roundoff

    def round(self, x: float) -> float:
        """x rounded to the format, a double (NaR and NaN as NaN)."""
        if self.posit:
            if not math.isfinite(x):
                return math.nan
            value = posit.decode(self.posit, posit.encode(self.posit, Fraction(x)))
            return math.nan if value is None else float(value)
        if self.bits == 32:
            return float(np.float32(x))
        return float(x)


def _posit(name: str) -> NumericFormat:
    fmt = posit.FORMATS[name]
    # the fraction bits where the regime is shortest (2 bits), and the hidden one
    return NumericFormat(name, fmt.n, fmt.n - 1 - 2 - fmt.es + 1, fmt)


FORMATS: dict[str, NumericFormat] = {
    "float64": NumericFormat("float64", 64, 53),
    "float32": NumericFormat("float32", 32, 24),
    **{name: _posit(name) for name in ("posit8", "posit16", "posit32", "bposit16", "bposit32")},
}
DEFAULT = "float64"
# The products a posit quire sums without overflow (the 2022 standard's 31 carry guard bits): a
# batch of more samples is refused.
QUIRE_PRODUCTS = 2**31 - 1


def numeric_format(name: str) -> NumericFormat:
    return FORMATS[name]
