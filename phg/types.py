"""Value types: a blade support, an optional versor property and a unit (LANGUAGE §4)."""
from __future__ import annotations

from dataclasses import dataclass

from . import support as sup
from .algebra import Algebra
from .units import Unit

GRADE_TYPES = {"Scalar": 0, "Vector": 1, "Bivector": 2, "Trivector": 3}
VERSOR_TYPES = ("Rotor", "Motor", "Versor")
TYPE_NAMES = (*GRADE_TYPES, "Pseudoscalar", "Even", "Odd", "Multivector", *VERSOR_TYPES, "Grades", "Blades")


class TypeProblem(ValueError):
    """A written type that makes no sense in its algebra; `index` points at the offending argument."""

    def __init__(self, message: str, expected: str, index: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.expected = expected
        self.index = index
        self.hint = hint


@dataclass(frozen=True)
class ValueType:
    """A written type, resolved in an algebra."""
    text: str
    support: int
    versor: str | None = None          # Rotor, Motor, Versor or None
    unit: Unit | None = None           # None: not written

    def describe(self) -> str:
        return self.text if self.unit is None else f"{self.text}[{self.unit}]"


def resolve(alg: Algebra, kind: str, args: list, unit: Unit | None) -> ValueType:
    """The type `kind(args)[unit]` in `alg`; raises TypeProblem when it does not exist there."""
    n = alg.n
    if kind in GRADE_TYPES:
        k = GRADE_TYPES[kind]
        if k > n:
            raise TypeProblem(f"{alg.name} has {n} basis vectors, so no grade-{k} {kind}",
                              f"a type with grades at most {n}")
        return ValueType(kind, sup.of_grades(alg, [k]), None, unit)
    if kind == "Pseudoscalar":
        return ValueType(kind, sup.of_grades(alg, [n]), None, unit)
    if kind in ("Even", "Odd"):
        return ValueType(kind, sup.of_grades(alg, range(kind == "Odd", n + 1, 2)), None, unit)
    if kind == "Multivector":
        return ValueType(kind, sup.of_grades(alg, range(n + 1)), None, unit)
    if kind == "Rotor":
        return ValueType(kind, sup.of_grades(alg, range(0, n + 1, 2)), "Rotor", unit)
    if kind == "Motor":
        if not alg.degenerate:
            raise TypeProblem(f"Motor needs a degenerate algebra (one null basis vector); {alg.name} has none",
                              "Rotor, or an algebra like Cl(3, 0, 1)", hint="use Rotor in a non-degenerate algebra")
        return ValueType(kind, sup.of_grades(alg, range(0, n + 1, 2)), "Motor", unit)
    if kind == "Versor":
        return ValueType(kind, sup.of_grades(alg, range(n + 1)), "Versor", unit)
    if kind == "Grades":
        for i, g in enumerate(args):
            if g > n:
                raise TypeProblem(f"grade {g} does not exist in {alg.name}", f"grades 0 to {n}", i)
        return ValueType(f"Grades({', '.join(map(str, args))})", sup.of_grades(alg, args), None, unit)
    if kind == "Blades":
        masks = []
        for i, name in enumerate(args):
            parsed = alg.parse_blade(name) if name != "1" else (1, 0)
            if parsed is None:
                raise TypeProblem(f"{name!r} is not a blade of {alg.name}",
                                  f"a blade such as {alg.blade_names[min(1, alg.dim - 1)]}", i)
            masks.append(parsed[1])
        return ValueType(f"Blades({', '.join(args)})", sup.from_blades(masks), None, unit)
    raise TypeProblem(f"unknown type {kind!r}", "a type: " + ", ".join(TYPE_NAMES))
