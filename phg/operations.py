"""The operations of the language: for each hyperedge kind, its abstract support rule, its unit
rule and its exact meaning on constants (versor rules are in phg.versors).

The support rule must over-approximate: a blade outside the computed support has a zero
coefficient for every input of the given supports (tests check this against clifford).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from . import multivector as mv
from . import support as sup
from .algebra import Algebra
from .units import DIMENSIONLESS, Unit

BINARY = {"add", "sub", "gp", "div", "op", "lc", "regressive", "sandwich"}
SCALAR_FUNCTIONS = ("sqrt", "sin", "cos", "tanh", "sigmoid", "relu", "gelu", "abs")
# Unary built-ins with one multivector argument; grade(x, k) and component take attributes.
UNARY = {"neg", "reverse", "involute", "even", "odd", "scalar", "dual", "inv", "norm", "norm2",
         "normalize", "exp", "log", "sum", *SCALAR_FUNCTIONS}


@dataclass(frozen=True)
class Operand:
    """What the rules need to know of a source value."""
    support: int
    versor: str | None = None              # why it is a versor (phg.versors), if it is one
    unit: Unit | None = None


class UnitClash(ValueError):
    """Operands whose units cannot combine; `operands` are the source positions involved."""

    def __init__(self, message: str, operands: tuple[int, ...]):
        super().__init__(message)
        self.operands = operands


# ---- supports -------------------------------------------------------------------------------
def infer_support(alg: Algebra, kind: str, ops: list[Operand], attrs: dict) -> int:
    s = [o.support for o in ops]
    if kind in ("add", "sub"):
        return s[0] | s[1]
    if kind in ("neg", "reverse", "involute", "normalize", "sum", "gate", "gradegate", "copy"):
        return s[0]
    if kind in ("gp", "op", "lc", "regressive"):
        return sup.product(alg, kind, s[0], s[1])
    if kind == "div":
        return sup.product(alg, "gp", s[0], sup.inverse(alg, s[1], ops[1].versor))
    if kind == "sandwich":
        vx = sup.product(alg, "gp", s[0], s[1])
        return sup.product(alg, "gp", vx, sup.inverse(alg, s[0], ops[0].versor))
    if kind == "mix":
        return sup.product(alg, "gp", s[0], s[1])
    if kind == "linear":                   # scalar weights per grade of x
        return sup.grade_filter(alg, s[1], attrs["grades"]) if s[0] & sup.SCALAR else 0
    if kind == "bilinear":
        return sup.bilinear(alg, s[0], s[1], s[2], attrs["paths"])
    if kind == "grade":
        return sup.grade_filter(alg, s[0], attrs["grades"])
    if kind == "even":
        return sup.grade_filter(alg, s[0], range(0, alg.n + 1, 2))
    if kind == "odd":
        return sup.grade_filter(alg, s[0], range(1, alg.n + 1, 2))
    if kind == "scalar":
        return s[0] & sup.SCALAR
    if kind == "dual":
        return sup.dual(alg, s[0])
    if kind == "inv":
        return sup.inverse(alg, s[0], ops[0].versor)
    if kind in ("norm", "norm2"):
        return sup.product(alg, "gp", s[0], s[0]) & sup.SCALAR
    if kind == "exp":
        return sup.SCALAR if s[0] & ~sup.SCALAR == 0 else sup.closure(alg, s[0])
    if kind == "log":
        return sup.grade_filter(alg, sup.closure(alg, s[0]), [2])
    if kind in SCALAR_FUNCTIONS:
        return sup.SCALAR
    if kind == "index":
        return s[0]
    if kind == "component":
        return sup.SCALAR if s[0] >> attrs["blade"] & 1 else 0
    raise KeyError(kind)


# ---- units ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnitRule:
    """An operation's unit rule, linear in the exponent vectors: unit(target) = prod unit(source_i)
    ** powers[i] * offset, provided the operands in `equal` have one unit and those in
    `dimensionless` have none.  The unit checker solves these; constants evaluate them."""
    powers: tuple[Fraction, ...]
    offset: Unit = DIMENSIONLESS
    equal: tuple[int, ...] = ()
    dimensionless: tuple[int, ...] = ()


_SAME = (Fraction(1),)
NEEDS_DIMENSIONLESS = ("exp", "log", "sin", "cos", "tanh", "sigmoid", "relu", "gelu")


def unit_rule_of(alg: Algebra, kind: str, attrs: dict) -> UnitRule:
    one, two = Fraction(1), (Fraction(1), Fraction(1))
    if kind in ("add", "sub"):
        return UnitRule((one, Fraction(0)), equal=(0, 1))
    if kind in ("neg", "reverse", "involute", "grade", "even", "odd", "scalar", "sum", "index", "norm", "abs",
                "copy"):
        return UnitRule(_SAME)
    if kind in ("gp", "op", "lc", "mix", "linear"):
        return UnitRule(two)
    if kind == "bilinear":
        return UnitRule((one, one, one))
    if kind == "div":
        return UnitRule((one, -one))
    if kind == "regressive":
        # The meet removes one copy of the pseudoscalar's basis vectors.
        return UnitRule(two, alg.blade_unit(alg.full) ** -1)
    if kind == "sandwich":
        return UnitRule((Fraction(0), one))          # V x V^-1: V's unit cancels
    if kind in ("gate", "gradegate"):
        return UnitRule((one, Fraction(0)), dimensionless=(1,))
    if kind == "norm2":
        return UnitRule((Fraction(2),))
    if kind == "inv":
        return UnitRule((-one,))
    if kind == "normalize":
        return UnitRule((Fraction(0),))
    if kind == "sqrt":
        return UnitRule((Fraction(1, 2),))
    if kind == "dual":
        return UnitRule(_SAME, alg.blade_unit(alg.full) ** -1)
    if kind == "component":
        return UnitRule(_SAME, alg.blade_unit(attrs["blade"]) ** -1)
    if kind in NEEDS_DIMENSIONLESS:
        return UnitRule((Fraction(0),), dimensionless=(0,))
    raise KeyError(kind)


def unit_rule(alg: Algebra, kind: str, ops: list[Operand], attrs: dict) -> Unit | None:
    """The unit of an operation on operands of known units (None if one is unknown)."""
    units = [o.unit for o in ops]
    if any(u is None for u in units):
        return None
    rule = unit_rule_of(alg, kind, attrs)
    if rule.equal and len({units[i] for i in rule.equal}) > 1:
        i, j = rule.equal
        raise UnitClash(f"cannot {'add' if kind == 'add' else 'subtract'} {units[j]} and {units[i]}", rule.equal)
    for i in rule.dimensionless:
        if not units[i].dimensionless:
            raise UnitClash(f"{kind} needs a dimensionless argument, not {units[i]}", (i,))
    out = rule.offset
    for u, k in zip(units, rule.powers):
        out = out * u ** k
    return out


# ---- constants ---------------------------------------------------------------------------------
def evaluate(alg: Algebra, kind: str, values: list[np.ndarray], attrs: dict) -> np.ndarray:
    """The exact meaning of an operation on constant multivectors (coefficients by blade mask)."""
    a = values[0]
    b = values[1] if len(values) > 1 else None
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    if kind == "neg":
        return -a
    if kind in ("gp", "op", "lc", "regressive"):
        return mv.product(alg, kind, a, b)
    if kind == "div":
        return mv.product(alg, "gp", a, mv.inverse(alg, b))
    if kind == "sandwich":
        return mv.product(alg, "gp", mv.product(alg, "gp", a, b), mv.inverse(alg, a))
    if kind == "reverse":
        return mv.reverse(alg, a)
    if kind == "involute":
        return mv.involute(alg, a)
    if kind == "grade":
        return mv.grade(alg, a, attrs["grades"])
    if kind == "even":
        return mv.grade(alg, a, range(0, alg.n + 1, 2))
    if kind == "odd":
        return mv.grade(alg, a, range(1, alg.n + 1, 2))
    if kind == "scalar":
        return mv.grade(alg, a, [0])
    if kind == "dual":
        return mv.dual(alg, a)
    if kind == "inv":
        return mv.inverse(alg, a)
    if kind == "norm2":
        return mv.blade(alg, 0, mv.norm2(alg, a))
    if kind == "norm":
        return mv.blade(alg, 0, math.sqrt(abs(mv.norm2(alg, a))))
    if kind == "normalize":
        size = math.sqrt(abs(mv.norm2(alg, a)))
        if size == 0:
            raise ZeroDivisionError("normalize of a multivector of norm 0")
        return a / size
    if kind == "exp":
        return mv.exp(alg, a)
    if kind == "gate":
        return a * _scalar_function("sigmoid", float(b[0]))
    if kind in ("sum", "index"):
        return a
    if kind == "component":
        return mv.blade(alg, 0, attrs["sign"] * a[attrs["blade"]])
    if kind in SCALAR_FUNCTIONS:
        return mv.blade(alg, 0, _scalar_function(kind, float(a[0])))
    raise NotImplementedError(f"{kind} of a constant")


def _scalar_function(name: str, x: float) -> float:
    if name == "sqrt":
        if x < 0:
            raise ValueError("sqrt of a negative number")
        return math.sqrt(x)
    if name == "sigmoid":
        return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
    if name == "relu":
        return max(x, 0.0)
    if name == "gelu":
        return 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))
    return {"sin": math.sin, "cos": math.cos, "tanh": math.tanh, "abs": abs}[name](x)
