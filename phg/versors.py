"""Which values are versors (products of invertible vectors, the Clifford group), and why.

A value's `versor` annotation is the id of the theorem below that makes it one, or None.  Only
these rules may mark a value; the verifier turns each mark into evidence.  Note what is *not*
here: an even element is not a versor in general (n >= 4 has even non-versors, and in PGA an even
element needs the study condition), so normalize() of an even value only counts in low dimension.
"""
from __future__ import annotations

from . import support as sup
from .algebra import Algebra

THEOREMS = {
    "declared": "the declared type of a parameter or input is assumed (parameters keep it by the update obligation)",
    "nonzero-scalar": "a non-zero scalar is a versor (the empty product, scaled)",
    "invertible-blade": "a blade of non-null basis vectors is the product of those invertible vectors",
    "product": "versors are closed under the geometric product and inverses, so V*W, V/W and V >> W are versors",
    "involution": "reverse, grade involution and negation map a product of vectors to a product of vectors",
    "exp-bivector": "exp of a bivector lies in the spin group (its Lie algebra is the bivectors), "
                    "in any signature with at most one null vector",
    "exp-scalar": "exp of a scalar is a positive scalar",
    "scaled": "a non-zero scalar multiple of a versor is a versor (normalize, gate)",
    "low-dimension-even": "for n <= 3 and no null vector, x v ~x of an even x has no grade-3 part, so every "
                          "invertible even element is a versor",
    "channel": "each channel of a versor-valued channelled value is a versor",
    "invertible-vector": "a vector v with v^2 != 0 is invertible, hence a versor (a product of one vector)",
    "whole-grades": "a grade projection that keeps every blade of a versor's support is the versor itself",
    "plus-zero": "adding or subtracting a value with empty blade support (identically zero) changes nothing "
                 "but possibly the sign",
}
REVERSE_PRODUCT_THEOREM = ("for a versor V = v1...vk, V ~V = v1...vk vk...v1 = v1^2 ... vk^2, a scalar")
SANDWICH_THEOREM = ("conjugation V x V^-1 by a versor V is an algebra automorphism mapping vectors to vectors, "
                    "so it preserves every grade")


# Each operation's versor rule (phg.operations names one for every kind): the theorem making its
# result a versor, given its sources' versor marks, their supports and the result's support; None
# where no theorem applies.

def never(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    """No theorem: the result is not marked, whatever its sources."""
    return None


def involution(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    return "involution" if versors[0] else None


def product(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    return "product" if versors[0] and versors[1] else None


def channel(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    return "channel" if versors[0] else None


def exponential(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    if supports[0] & ~sup.SCALAR == 0:
        return "exp-scalar"
    if supports[0] & ~sup.of_grades(alg, [2]) == 0:
        return "exp-bivector"
    return None


def scaled(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    return "scaled" if versors[0] else None


def normalised(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    if versors[0]:
        return "scaled"
    even = sup.of_grades(alg, range(0, alg.n + 1, 2))
    if alg.n <= 3 and not alg.degenerate and supports[0] & ~even == 0:
        return "low-dimension-even"
    return None


def projection(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    return "whole-grades" if versors[0] and result == supports[0] else None


def plus_zero(alg: Algebra, versors: list, supports: list[int], result: int) -> str | None:
    if supports[1] == 0 and versors[0]:
        return "plus-zero"
    if supports[0] == 0 and versors[1]:
        return "plus-zero"
    return None


def constant_versor(alg: Algebra, value) -> str | None:
    """Why a folded constant (dense coefficients by blade mask) is a versor, when one simple theorem
    says so; None otherwise (it may still be one)."""
    nonzero = [b for b in range(alg.dim) if value[b] != 0]
    if len(nonzero) == 1:
        b = nonzero[0]
        if b == 0:
            return "nonzero-scalar"
        return None if b & alg.null_mask else "invertible-blade"
    if nonzero and all(b.bit_count() == 1 for b in nonzero):
        square = sum(value[b] * value[b] * alg.basis[b.bit_length() - 1].square for b in nonzero)
        return "invertible-vector" if square != 0 else None
    return None
