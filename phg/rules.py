"""Support rules as data: each operation's abstract support rule (phg.operations) is written once,
as a term of the combinators below, and read by two interpreters: `support` here, over the
integer supports of its operands, and the verifier's, over Z3 bit-vectors (verifier.smt).  A
rule must over-approximate: a blade outside the support it gives has a zero coefficient for
every input of the operands' supports (tests check this against clifford).

Where a combinator's two readings differ, its docstring says how: the bit-vector reading may
use a theorem the integer one does not (a versor's sandwich keeps grades), and its static
branches (IfSupport) test the operands' supports as inferred, which the integer reading is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import support as sup
from .algebra import Algebra

# A mask of blades from the algebra and the edge's attributes (grades, a blade).
Mask = Callable[[Algebra, dict], int]


class Rule:
    """A support rule's term."""


@dataclass(frozen=True)
class Arg(Rule):
    """The support of source i."""
    i: int


@dataclass(frozen=True)
class Blades(Rule):
    """A constant support."""
    mask: Mask


@dataclass(frozen=True)
class Union(Rule):
    """Either operand's blades (a sum)."""
    a: Rule
    b: Rule


@dataclass(frozen=True)
class Product(Rule):
    """The blades a bilinear product (gp, commutator, op, lc, regressive) of the two may reach."""
    kind: str
    a: Rule
    b: Rule


@dataclass(frozen=True)
class Keep(Rule):
    """The operand's blades within a mask (a grade projection).  `mask_first`: the bit-vector
    reading makes the mask's term before the operand's; Z3 numbers terms as they are made, and
    the recorded queries of existing certificates name them so."""
    a: Rule
    mask: Mask
    mask_first: bool = False


@dataclass(frozen=True)
class Inverse(Rule):
    """Source i's inverse: its own support if it is a versor (its reverse over a scalar), else
    the subalgebra it generates (a polynomial in it)."""
    i: int


@dataclass(frozen=True)
class Closure(Rule):
    """The subalgebra the operand generates, with 1 (powers, exponentials, logarithms)."""
    a: Rule


@dataclass(frozen=True)
class Dual(Rule):
    """Each blade's complement in the pseudoscalar."""
    a: Rule


@dataclass(frozen=True)
class IfBlade(Rule):
    """`then` where source i may have the blade `blade` (of the attributes), else `other`: a test
    of the operand's support itself, symbolic in the bit-vector reading."""
    i: int
    blade: Mask
    then: Rule
    other: Rule


@dataclass(frozen=True)
class IfSupport(Rule):
    """`then` where source i's inferred support passes `test`, else `other`: a static branch in
    both readings."""
    i: int
    test: Callable[[int], bool]
    then: Rule
    other: Rule


@dataclass(frozen=True)
class Sandwich(Rule):
    """V x V^-1 for V source v and x source x: the product V x times V's inverse.  The bit-vector
    reading, for a versor V, also keeps x's grades (verifier.smt, versors.SANDWICH_THEOREM)."""
    v: int
    x: int


@dataclass(frozen=True)
class Paths(Rule):
    """bilinear's blades: the union over the edge's grade paths (grade of x, grade of y, grade
    made) of that grade of x times that grade of y, projected to the grade made."""
    x: int
    y: int


def grades(attr: str = "grades") -> Mask:
    """The blades of the grades listed in the attribute `attr`."""
    return lambda alg, attrs: sup.of_grades(alg, attrs[attr])


def of_grades(*gs: int) -> Mask:
    return lambda alg, attrs: sup.of_grades(alg, gs)


def parity(odd: int) -> Mask:
    """The even (0) or odd (1) grades."""
    return lambda alg, attrs: sup.of_grades(alg, range(odd, alg.n + 1, 2))


SCALAR: Mask = lambda alg, attrs: sup.SCALAR  # noqa: E731
NOTHING: Mask = lambda alg, attrs: 0  # noqa: E731
BLADE: Mask = lambda alg, attrs: attrs["blade"]  # noqa: E731  (IfBlade: the blade of the attribute)
SCALAR_BLADE: Mask = lambda alg, attrs: 0  # noqa: E731  (IfBlade: the scalar blade, mask 0)


def support(rule: Rule, alg: Algebra, supports: list[int], versors: list, attrs: dict) -> int:
    """The integer reading: the support `rule` gives for sources of `supports` (and versor marks)."""
    def go(r: Rule) -> int:
        if isinstance(r, Arg):
            return supports[r.i]
        if isinstance(r, Blades):
            return r.mask(alg, attrs)
        if isinstance(r, Union):
            return go(r.a) | go(r.b)
        if isinstance(r, Product):
            return sup.product(alg, r.kind, go(r.a), go(r.b))
        if isinstance(r, Keep):
            return go(r.a) & r.mask(alg, attrs)
        if isinstance(r, Inverse):
            return sup.inverse(alg, supports[r.i], bool(versors[r.i]))
        if isinstance(r, Closure):
            return sup.closure(alg, go(r.a))
        if isinstance(r, Dual):
            return sup.dual(alg, go(r.a))
        if isinstance(r, IfBlade):
            return go(r.then) if supports[r.i] >> r.blade(alg, attrs) & 1 else go(r.other)
        if isinstance(r, IfSupport):
            return go(r.then) if r.test(supports[r.i]) else go(r.other)
        if isinstance(r, Sandwich):
            return go(Product("gp", Product("gp", Arg(r.v), Arg(r.x)), Inverse(r.v)))
        if isinstance(r, Paths):
            return sup.bilinear(alg, sup.SCALAR, supports[r.x], supports[r.y], attrs["paths"])
        raise TypeError(f"no integer reading of the support rule {r!r}")
    return go(rule)
