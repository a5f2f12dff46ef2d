"""Python text of the scalar programs' expressions: float64 (the default), the loop strategy's
(its exp vectorises), and a numeric format's (LANGUAGE §11), where every operation is rounded.
"""
from __future__ import annotations

import functools
import math

import sympy
from sympy.printing.pycode import PythonCodePrinter

from phg.numeric import DEFAULT, FORMATS, NumericFormat
from phg.plan.scalar import HelperCall


class _Printer(PythonCodePrinter):
    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _module_format(self, fqn, register=True):
        # The module imports math as _phg_math (phg.plan.scalar, names).
        return super()._module_format("_phg_" + fqn if fqn.startswith("math.") else fqn, register)

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        # Small integer powers of a name as products: one multiplication, no call to pow.
        base, exp = expr.args
        if exp.is_Integer and 2 <= exp <= 4 and base.is_Symbol:
            return "(" + "*".join([self._print(base)] * int(exp)) + ")"
        return super()._print_Pow(expr, rational)

    # The derivatives of relu and abs (phg.plan.adjoint): subgradients 0 at the kink.
    def _print_Heaviside(self, expr):
        return f"(1.0 if {self._print(expr.args[0])} > 0 else 0.0)"

    def _print_sign(self, expr):
        x = self._print(expr.args[0])
        return f"(0.0 if {x} == 0 else _phg_math.copysign(1.0, {x}))"


class _LoopPrinter(_Printer):
    """The loop strategy's printer: its exp is codegen.vexp's, which LLVM vectorises."""

    def _print_exp(self, expr):
        return f"_phg_exp({self._print(expr.args[0])})"


_PRINTER = _Printer()
_LOOP_PRINTER = _LoopPrinter()


def code(expr) -> str:
    return _PRINTER.doprint(expr)


def loop_code(expr) -> str:
    return _LOOP_PRINTER.doprint(expr)




class _FormatPrinter(_Printer):
    """Every operation of an expression of format values rounded to the format, in the order the
    expression lists its terms and factors (sympy's canonical order, so the same expression always
    prints the same operations):

    - a sum: in a posit format a fused dot product (the quire: each term a product of two format
      values, taken exactly, the sum rounded once; a term of more factors has the others' rounded
      product as its left factor, a quotient is rounded and taken whole; a sum of values alone is
      their exact sum rounded once), in float32 rounded a term at a time;
    - a product: factors from left to right, each multiplication (a division for a negative power)
      rounded; a coefficient -1 is exact, another is the first factor (a power of two scales
      exactly in float64, then rounds);
    - an integer power: repeated multiplication; a square root, rounded once;
    - every other function (exp, sigmoid's parts, erf, ...): computed in float64 from format values
      and its result rounded once;
    - a number: rounded to the format where printed.
    """

    def __init__(self, fmt: NumericFormat, fast: bool = False):
        super().__init__()
        self.fmt = fmt
        p = fmt.posit
        self.tail = f", {p.n}, {p.es}, {p.longest_run}" if p else ""
        # a posit format's functions: codegen.formats' exact ones, or its fast path (NaN where it
        # cannot decide), which a training kernel runs first (codegen.training)
        self.prefix = "_phg_fast" if fast else "_phg_posit"

    # ---- the format's operations, on printed operands
    def round(self, text: str) -> str:
        return f"{self.prefix}({text}{self.tail})" if self.fmt.is_posit else f"_phg_single({text})"

    def pair(self, hi: str, lo: str) -> str:
        """An exact pair hi + lo rounded once to the format."""
        return f"_phg_posit_pair({hi}, {lo}{self.tail})" if self.fmt.is_posit else f"_phg_single_pair({hi}, {lo})"

    def binary(self, op: str, a: str, b: str) -> str:
        # a posit's division is a function in every format: NaR for a zero divisor
        if self.fmt.double_rounds_once and not (op == "/" and self.fmt.is_posit):
            return self.round(f"{a} {op} {b}")
        name = {"+": "add", "*": "mul", "/": "div"}[op]
        return f"{self.prefix}_{name}({a}, {b}{self.tail})"

    def constant(self, value) -> str:
        return f"({self.fmt.round(float(value))!r})"

    # ---- sympy's nodes
    def _print_Float(self, expr):
        return self.constant(expr)

    def _print_Rational(self, expr):
        return self.constant(expr)

    _print_Integer = _print_Rational

    def _print(self, expr, **kwargs):
        if isinstance(expr, sympy.Function):
            return self.round(super()._print(expr, **kwargs))
        return super()._print(expr, **kwargs)

    def _print_Add(self, expr, order=None):
        terms = list(expr.args)
        if not self.fmt.is_posit:
            text = self._print(terms[0])
            for t in terms[1:]:
                text = self.binary("+", text, self._print(t))
            return text
        pairs = [self._pair(t) for t in terms]
        if all(right is None for _, right in pairs):      # values alone: their exact sum, rounded once
            values = [left for left, _ in pairs]
            if len(values) == 2:
                return self.binary("+", *values)
            return f"{self.prefix}_sum(({', '.join(values)},){self.tail})"
        lefts = ", ".join(left for left, _ in pairs)
        rights = ", ".join(right or "1.0" for _, right in pairs)
        return f"{self.prefix}_dot(({lefts},), ({rights},){self.tail})"

    def _pair(self, term) -> tuple[str, str | None]:
        """A term of a fused sum as (left, right), their product exact in the quire; right None
        where the term is one value (a quotient is rounded first and taken whole)."""
        coeff, factors = term.as_coeff_mul()
        if any(_denominator(f) for f in factors):
            return self._print(term), None
        flat = [b for f in factors
                for b in ([f.base] * int(f.exp) if f.is_Pow and f.exp.is_Integer and f.exp > 1 else [f])]
        if not flat:
            return self.constant(coeff), None
        if len(flat) == 1 and coeff in (1, -1):
            value = self._print(flat[0])
            return (value if coeff == 1 else f"(-{value})"), None
        return self._product(coeff, flat[:-1]), self._print(flat[-1])

    def _print_Mul(self, expr):
        coeff, factors = expr.as_coeff_mul()
        return self._product(coeff, factors)

    def _product(self, coeff, factors) -> str:
        text = None
        for f in factors:
            if _denominator(f):
                text = self.binary("/", text or "1.0", self._power(f.base, -int(f.exp)) if f.exp.is_Integer
                                   else self._print(1 / f))
            else:
                printed = self._print(f)
                text = printed if text is None else self.binary("*", text, printed)
        if text is None:
            return self.constant(coeff)
        if coeff == 1:
            return text
        if coeff == -1:
            return f"(-{text})"
        c = float(coeff)
        if math.frexp(abs(c))[0] == 0.5 and self.fmt.round(c) == c:    # a power of two: exact in float64
            return self.round(f"{self.constant(coeff)} * {text}")
        return self.binary("*", self.constant(coeff), text)

    def _power(self, base, k: int) -> str:
        b = self._print(base)
        text = b
        for _ in range(k - 1):
            text = self.binary("*", text, b)
        return text

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.args
        if exp.is_Integer and exp >= 1:
            return self._power(base, int(exp))
        if exp.is_Integer:
            return self.binary("/", "1.0", self._power(base, -int(exp)))
        if exp == sympy.Rational(1, 2):
            return self._sqrt(self._print(base))
        if exp == sympy.Rational(-1, 2):
            return self.binary("/", "1.0", self._sqrt(self._print(base)))
        # the exponent is the function's, not a value of the format
        return self.round(f"{self._print(base)} ** {float(exp)!r}" if exp.is_number else
                          f"{self._print(base)} ** {self._print(exp)}")

    def _sqrt(self, text: str) -> str:
        if not self.fmt.is_posit:
            return self.round(f"_phg_math.sqrt({text})")
        return f"{self.prefix}_sqrt({text}{self.tail})"


def _denominator(f) -> bool:
    """A factor that divides: a negative power."""
    return f.is_Pow and f.exp.is_number and f.exp < 0


@functools.cache
def format_printer(numeric: str, fast: bool = False) -> _Printer:
    """The printer of a model's format (the float64 one for float64); `fast`: a posit format's
    fast path (codegen.formats), None for a format that has none."""
    if numeric == DEFAULT or (fast and not FORMATS[numeric].is_posit):
        return None if fast else _PRINTER
    return _FormatPrinter(FORMATS[numeric], fast)


def statement(sym, expr, code=code, rounding=None) -> str:
    """One assignment; `rounding` (a format's) rounds a helper's results, which it computes in float64."""
    if isinstance(expr, HelperCall):
        targets = ", ".join(str(t) for t in expr.targets) + ("," if len(expr.targets) == 1 else "")
        text = f"{targets} = {expr.helper.name}({', '.join(code(a) for a in expr.args)})"
        if rounding is not None:
            text += "".join(f"; {t} = {rounding(str(t))}" for t in expr.targets)
        return text
    return f"{sym} = {code(expr)}"


def loop_statement(sym, expr) -> str:
    return statement(sym, expr, loop_code)
