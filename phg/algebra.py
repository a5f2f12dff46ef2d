"""Real Clifford algebras: basis vectors, blades as bitmasks, canonical order and product signs.

A blade is an int whose bit i says that the i-th declared basis vector is a factor, the factors
taken in declaration order.  Every product of two blades is a signed blade (or zero), so each
product is one table of signs over pairs of blade masks; the target blade is implied by the
product kind (xor for the geometric product, or for the outer product, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .units import DIMENSIONLESS, Unit

MAX_DIMENSION = 8


class AlgebraError(ValueError):
    """An algebra that cannot be built as declared."""


@dataclass(frozen=True)
class BasisVector:
    name: str
    square: int
    unit: Unit = DIMENSIONLESS


def popcount(mask: int) -> int:
    return mask.bit_count()


def reorder_sign(a: int, b: int) -> int:
    """Sign of bringing the factors of blade a followed by blade b into declaration order."""
    swaps = 0
    a >>= 1
    while a:
        swaps += popcount(a & b)
        a >>= 1
    return -1 if swaps & 1 else 1


class Algebra:
    """The algebra spanned by `basis`, in the declared order."""

    def __init__(self, name: str, basis: list[BasisVector] | tuple[BasisVector, ...]):
        basis = tuple(basis)
        if len(basis) > MAX_DIMENSION:
            raise AlgebraError(
                f"algebra {name} has {len(basis)} basis vectors; at most {MAX_DIMENSION} "
                f"(256 blades) are supported")
        names = [v.name for v in basis]
        seen = set()
        for v in basis:
            if v.name in seen:
                raise AlgebraError(f"basis vector {v.name!r} is declared twice in algebra {name}")
            seen.add(v.name)
            if v.square not in (-1, 0, 1):
                raise AlgebraError(f"basis vector {v.name} squares to {v.square}; expected +1, -1 or 0")
        if sum(1 for v in basis if v.square == 0) > 1:
            raise AlgebraError(f"algebra {name} has more than one null basis vector; at most one is supported")
        self.prefix, self.index_chars = _blade_naming(name, names)
        self.name = name
        self.basis = basis
        self.n = len(basis)
        self.dim = 1 << self.n
        self.full = self.dim - 1                  # the pseudoscalar's mask
        self.every_blade = (1 << self.dim) - 1    # the support holding every blade
        self.null_mask = sum(1 << i for i, v in enumerate(basis) if v.square == 0)
        self.blades = tuple(sorted(range(self.dim), key=self._canonical_key))
        self.position = {b: i for i, b in enumerate(self.blades)}

    @classmethod
    def from_signature(cls, name: str, p: int, q: int, r: int = 0,
                       units: dict[str, Unit] | None = None) -> "Algebra":
        """Cl(p, q, r): with r = 1 the null vector is e0, then e1.. square +1 (p of them), then -1."""
        if min(p, q, r) < 0:
            raise AlgebraError(f"Cl({p}, {q}, {r}): the signature counts must be non-negative")
        if r > 1:
            raise AlgebraError(f"Cl({p}, {q}, {r}): at most one null basis vector (r = 0 or 1) is supported")
        if p + q + r > MAX_DIMENSION:
            raise AlgebraError(f"Cl({p}, {q}, {r}) has {p + q + r} basis vectors; at most "
                               f"{MAX_DIMENSION} (256 blades) are supported")
        squares = [0] * r + [1] * p + [-1] * q
        first = 0 if r else 1
        basis = [BasisVector(f"e{first + i}", s) for i, s in enumerate(squares)]
        return cls(name, _with_units(name, basis, units or {}))

    @classmethod
    def from_basis(cls, name: str, squares: list[tuple[str, int]],
                   units: dict[str, Unit] | None = None) -> "Algebra":
        return cls(name, _with_units(name, [BasisVector(n, s) for n, s in squares], units or {}))

    # ----- naming -------------------------------------------------------------------------
    def _canonical_key(self, mask: int):
        return (popcount(mask), [i for i in range(self.n) if mask >> i & 1])

    def blade_name(self, mask: int) -> str:
        if mask == 0:
            return "1"
        return self.prefix + "".join(self.index_chars[i] for i in range(self.n) if mask >> i & 1)

    def parse_blade(self, text: str) -> tuple[int, int] | None:
        """(sign, mask) for a blade written as prefix + indices in any order, e.g. e21 -> (-1, e12)."""
        if not text.startswith(self.prefix) or len(text) == len(self.prefix):
            return None
        sign, mask = 1, 0
        for ch in text[len(self.prefix):]:
            if ch not in self.index_chars:
                return None
            bit = 1 << self.index_chars.index(ch)
            if mask & bit:
                return None
            sign *= reorder_sign(mask, bit)
            mask |= bit
        return sign, mask

    @cached_property
    def blade_names(self) -> list[str]:
        """Every blade's name in canonical order."""
        return [self.blade_name(b) for b in self.blades]

    @property
    def signature(self) -> tuple[int, int, int]:
        sq = [v.square for v in self.basis]
        return sq.count(1), sq.count(-1), sq.count(0)

    @property
    def degenerate(self) -> bool:
        return self.null_mask != 0

    def blade_unit(self, mask: int) -> Unit:
        unit = DIMENSIONLESS
        for i, v in enumerate(self.basis):
            if mask >> i & 1:
                unit = unit * v.unit
        return unit

    # ----- signs of blade products ----------------------------------------------------------
    @cached_property
    def tables(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """For each bilinear product kind (gp, commutator, op, lc, regressive): (sign[a, b], target[a, b])
        over all pairs of blade masks.

        sign is 0 where the product vanishes (shared factors in an outer product, a null vector
        squaring away, a contraction of a blade not contained in the other).
        """
        a = np.arange(self.dim, dtype=np.int64)[:, None]
        b = np.arange(self.dim, dtype=np.int64)[None, :]
        swaps = sum(np.bitwise_count((a >> k) & b) for k in range(1, max(self.n, 1)))
        reorder = (1 - 2 * (np.asarray(swaps) & 1)).astype(np.int8) * np.ones((self.dim, self.dim), np.int8)
        metric = np.ones((self.dim, self.dim), dtype=np.int8)
        for i, v in enumerate(self.basis):
            metric = np.where(((a & b) >> i) & 1, metric * v.square, metric).astype(np.int8)
        gp = reorder * metric
        op = np.where(a & b, 0, reorder).astype(np.int8)
        lc = np.where((a & b) == a, gp, 0).astype(np.int8)
        masks = np.arange(self.dim)
        comp = self.full ^ masks
        rc = reorder[masks, comp]            # a ^ rc(a) = +I
        lcomp = reorder[comp, masks]         # lcomp[c] * ~c is the left complement of c
        ca, cb = comp[:, None], comp[None, :]
        regressive = (rc[:, None] * rc[None, :] * op[ca, cb] * lcomp[ca | cb]).astype(np.int8)
        xor = np.broadcast_to(a ^ b, (self.dim, self.dim)).astype(np.int32)
        # (x y - y x) / 2 keeps a blade pair's product where they anticommute, nothing where they commute
        commutator = np.where(gp.T == -gp, gp, 0).astype(np.int8)
        return {"gp": (gp, xor),
                "commutator": (commutator, xor),
                "op": (op, np.broadcast_to(a | b, xor.shape).astype(np.int32)),
                "lc": (lc, xor),
                "regressive": (regressive, np.broadcast_to(a & b, xor.shape).astype(np.int32))}

    def product(self, kind: str, a: int, b: int) -> tuple[int, int]:
        """(sign, blade) of one blade product; kind is gp, commutator, op, lc or regressive."""
        sign, target = self.tables[kind]
        return int(sign[a, b]), int(target[a, b])

    def gp(self, a: int, b: int) -> tuple[int, int]:
        return self.product("gp", a, b)

    def right_complement(self, a: int) -> tuple[int, int]:
        """The blade c with a ^ c = +pseudoscalar; metric-free, so it exists in PGA."""
        c = self.full & ~a
        return reorder_sign(a, c), c

    def reverse_sign(self, a: int) -> int:
        k = popcount(a)
        return -1 if (k * (k - 1) // 2) & 1 else 1

    def involute_sign(self, a: int) -> int:
        return -1 if popcount(a) & 1 else 1

    def describe(self) -> str:
        p, q, r = self.signature
        return f"{self.name} = Cl({p}, {q}, {r})"

    def __repr__(self) -> str:
        return f"Algebra({self.describe()})"


def _blade_naming(name: str, names: list[str]) -> tuple[str, str]:
    """Blade names are a shared prefix plus one index character per basis vector (e0, e12, g013)."""
    if not names:
        return "e", ""
    prefix = names[0][:-1]
    if not prefix or any(len(n) != len(prefix) + 1 or not n.startswith(prefix) for n in names):
        raise AlgebraError(
            f"basis vectors of {name} must share a name prefix followed by one index character "
            f"(like g0, g1, g2) so that blades can be named; got {', '.join(names)}")
    chars = "".join(n[-1] for n in names)
    return prefix, chars


def _with_units(name: str, basis: list[BasisVector], units: dict[str, Unit]) -> list[BasisVector]:
    known = {v.name for v in basis}
    for key in units:
        if key not in known:
            raise AlgebraError(f"units() names {key!r}, which is not a basis vector of {name}")
    return [BasisVector(v.name, v.square, units.get(v.name, DIMENSIONLESS)) for v in basis]
