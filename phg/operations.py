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
    if kind in ("neg", "reverse", "involute", "normalize", "sum", "gate", "copy"):
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


# ---- units (of constants; the unit checker owns the general case) ------------------------------
def unit_rule(alg: Algebra, kind: str, ops: list[Operand], attrs: dict) -> Unit | None:
    units = [o.unit for o in ops]
    if any(u is None for u in units):
        return None
    if kind in ("add", "sub"):
        if units[0] != units[1]:
            raise UnitClash(f"cannot {'add' if kind == 'add' else 'subtract'} {units[1]} and {units[0]}", (0, 1))
        return units[0]
    if kind in ("gp", "op", "lc", "mix"):
        return units[0] * units[1]
    if kind == "div":
        return units[0] / units[1]
    if kind == "regressive":
        # The meet removes one copy of the pseudoscalar's basis vectors.
        return units[0] * units[1] / alg.blade_unit(alg.full)
    if kind == "sandwich":
        return units[1]
    if kind in ("neg", "reverse", "involute", "grade", "even", "odd", "scalar", "sum", "index", "norm"):
        return units[0]
    if kind == "gate":
        _require_dimensionless(units[1], kind, 1)
        return units[0]
    if kind == "norm2":
        return units[0] ** 2
    if kind == "inv":
        return units[0] ** -1
    if kind == "normalize":
        return DIMENSIONLESS
    if kind == "sqrt":
        return units[0] ** Fraction(1, 2)
    if kind == "abs":
        return units[0]
    if kind == "dual":
        return units[0] / alg.blade_unit(alg.full)
    if kind == "component":
        return units[0] / alg.blade_unit(attrs["blade"])
    if kind in ("exp", "log", *SCALAR_FUNCTIONS):
        _require_dimensionless(units[0], kind, 0)
        return DIMENSIONLESS
    raise KeyError(kind)


def _require_dimensionless(unit: Unit, kind: str, position: int):
    if not unit.dimensionless:
        raise UnitClash(f"{kind} needs a dimensionless argument, not {unit}", (position,))


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
