"""Physical units as rational exponent vectors over the SI base units."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

BASE_UNITS = ("kg", "m", "s", "A", "K", "mol", "cd")
# Names that denote the dimensionless unit.
DIMENSIONLESS_NAMES = ("rad", "1")


@dataclass(frozen=True)
class Unit:
    """A product of base units with rational exponents; zero exponents are never stored."""
    exponents: tuple[tuple[str, Fraction], ...] = ()

    @classmethod
    def of(cls, mapping: dict[str, Fraction | int]) -> "Unit":
        items = [(b, Fraction(mapping[b])) for b in BASE_UNITS if Fraction(mapping.get(b, 0)) != 0]
        return cls(tuple(items))

    @classmethod
    def base(cls, name: str) -> "Unit":
        return cls.of({name: 1})

    def as_dict(self) -> dict[str, Fraction]:
        return dict(self.exponents)

    def __mul__(self, other: "Unit") -> "Unit":
        d = self.as_dict()
        for b, e in other.exponents:
            d[b] = d.get(b, 0) + e
        return Unit.of(d)

    def __truediv__(self, other: "Unit") -> "Unit":
        return self * other ** -1

    def __pow__(self, k: Fraction | int) -> "Unit":
        k = Fraction(k)
        return Unit.of({b: e * k for b, e in self.exponents})

    @property
    def dimensionless(self) -> bool:
        return not self.exponents

    def __str__(self) -> str:
        if not self.exponents:
            return "1"
        num = [(b, e) for b, e in self.exponents if e > 0]
        den = [(b, -e) for b, e in self.exponents if e < 0]
        text = "*".join(_power(b, e) for b, e in num) or "1"
        if den:
            text += "/" + "/".join(_power(b, e) for b, e in den)
        return text


def _power(base: str, e: Fraction) -> str:
    if e == 1:
        return base
    if e.denominator == 1:
        return f"{base}^{e.numerator}"
    return f"{base}^({e.numerator}/{e.denominator})"


DIMENSIONLESS = Unit()


def builtin_units() -> dict[str, Unit]:
    units = {b: Unit.base(b) for b in BASE_UNITS}
    units.update({n: DIMENSIONLESS for n in DIMENSIONLESS_NAMES})
    return units
