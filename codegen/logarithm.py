"""log() of a Rotor or Motor (LANGUAGE §5, §13): the bivector B with exp(B) = R, in closed form
where the algebra's exponential has one (codegen.lie: G2, G3, 2D and 3D PGA), and its adjoint.

Write the even argument X = c + P + q I (P its bivector part, I a null pseudoscalar where the
algebra has one), P = Pe + Pn with Pe on the bivectors that square to -1 and Pn on the null ones.
codegen.lie's exp(B) = cos a + mu f(a) I + f(a) B - mu g(a) B I, with a = |Be| and
f(a) = sin(a) / a, g(a) = (a cos a - sin a) / a^3, is inverted term by term on a unit versor:

    a = atan2(|Pe|, c),  Be = Pe / f(a),  mu = q / f(a),  Bn = (Pn + mu g(a) <Be I>_2) / f(a).

Without a null pseudoscalar, X ~X is a scalar and the result does not depend on X's scale, so
X is used as it is; with one, X is first normalised as codegen.manifold renormalises (X ~X =
s + t I mapped to 1), so log is defined on every even X with s > 0, that of its normalisation.
The principal range is a < pi; at a = pi (R = -1 up to a translation) log is not defined.

Near the identity (|Pe|^2 < SERIES_BELOW c^2, c > 0) 1 / f(a) and g(a) lose digits as
quotients: there they are Taylor series in u = |Pe|^2 / c^2 (atan(t) / t = sum (-1)^j u^j / (2j+1),
a^2 = u (atan(t) / t)^2).  Both branches are sympy expressions of the coefficients, and the
adjoint of each is its exact derivative (sympy's), so a gradient through log is the
derivative of the function the forward computes on either side of the switch.
"""
from __future__ import annotations

import sympy

from phg import support as sup
from phg.algebra import Algebra
from phg.bivectors import bivectors, closed_form, null_pseudoscalar
from phg.sparse import product, reverse

from .lie import SERIES_BELOW

# Terms of atan(t) / t in u = t^2: the first left out, u^9 / 19, is below 2^-53 for u < 1e-2.
TERMS = 9


def _gp(alg: Algebra, a: dict, b: dict) -> dict:
    return {m: x for m, x in product(alg, "gp", a, b).items()}


def _atan_over(u):
    """atan(t) / t as a series in u = t^2."""
    return sympy.Add(*(sympy.Rational((-1) ** j, 2 * j + 1) * u ** j for j in range(TERMS)))


def _g_series(l):
    """g(a) = (a cos a - sin a) / a^3 as a series in l = a^2 (codegen.lie.exp_factors')."""
    return -sympy.Rational(1, 3) + l * (sympy.Rational(1, 30) - l * (sympy.Rational(1, 840) - l * (
        sympy.Rational(1, 45360) - l * sympy.Rational(1, 3991680))))


class Logarithm:
    """log on the even support `source` of `alg`, onto the bivectors `outputs` (default: those of
    `result`, in sup.blades_of order): straight-line assignments of the arguments a0, a1, ...
    (the source's blades in sup.blades_of order), those both branches share (up to the test that
    picks the series: u < SERIES_BELOW and c > 0) and each branch's own, ending in y0, y1, ..."""

    def __init__(self, alg: Algebra, source: int, result: int, outputs: list[int] | None = None):
        if not closed_form(alg):
            raise ValueError(f"log() has no closed form in {alg.name}")
        self.alg = alg
        self.blades = sup.blades_of(source)
        self.outputs = outputs if outputs is not None else sup.blades_of(result)
        self.args = [sympy.Symbol(f"a{i}", real=True) for i in range(len(self.blades))]
        self.shared: list[tuple[sympy.Symbol, sympy.Expr]] = []
        zero = sympy.Integer(0)
        x = dict(zip(self.blades, self.args))
        pseudo = null_pseudoscalar(alg)
        biv = bivectors(alg)
        euclidean = [m for m in biv if alg.product("gp", m, m)[0] == -1]
        if pseudo is not None:                # normalised: X (s^-1/2 - t s^-3/2 I / 2)
            norm = _gp(alg, x, reverse(alg, x))
            s = self._let(self.shared, "_s", norm.get(0, zero))
            t = self._let(self.shared, "_t", norm.get(pseudo, zero))
            alpha = self._let(self.shared, "_al", s ** sympy.Rational(-1, 2))
            beta = self._let(self.shared, "_be", -t * alpha / (2 * s))
            x = {m: self._let(self.shared, f"_x{k}", e)
                 for k, (m, e) in enumerate(_gp(alg, x, {0: alpha, pseudo: beta}).items())}
        c = self.c = self._let(self.shared, "_c", x.get(0, zero))
        pe = {m: x.get(m, zero) for m in euclidean}
        p2 = self._let(self.shared, "_p2", sympy.Add(*(v ** 2 for v in pe.values())))
        self.u = self._let(self.shared, "_u", p2 / c ** 2)
        self.branches: dict[str, list] = {}
        for branch in ("closed", "series"):
            out: list = []
            if branch == "closed":            # 1 / f(a) and g(a) as quotients
                p = self._let(out, "_p", sympy.sqrt(p2))
                a = self._let(out, "_a", sympy.atan2(p, c))
                k = self._let(out, "_k", a / p)
                g = (a * c - p) / a ** 3
            else:                             # as series in u near the identity
                ratio = self._let(out, "_r", _atan_over(self.u))
                k = self._let(out, "_k", ratio / c)
                g = _g_series(self.u * ratio ** 2)
            y = {m: k * pe[m] for m in euclidean}
            if pseudo is not None:
                be = {m: self._let(out, f"_b{i}", y[m]) for i, m in enumerate(euclidean)}
                mug = self._let(out, "_mg", k * x.get(pseudo, zero) * g)
                turned = _gp(alg, be, {pseudo: sympy.Integer(1)})
                y = dict(be)
                for m in biv:
                    if m not in euclidean:
                        y[m] = k * (x.get(m, zero) + mug * turned.get(m, zero))
            else:
                for m in biv:
                    if m not in euclidean:
                        y[m] = k * x.get(m, zero)
            for i, m in enumerate(self.outputs):
                self._let(out, f"y{i}", y.get(m, zero))
            self.branches[branch] = out

    @staticmethod
    def _let(lines: list, name: str, expr) -> sympy.Symbol:
        sym = sympy.Symbol(name, real=True)
        lines.append((sym, expr))
        return sym

    def lines(self, code, adjoint: bool) -> list[str]:
        """The body of the helper: log's coefficients y0, y1, ... or, with `adjoint`, the
        arguments' adjoints r0, r1, ... for the result's adjoints g0, g1, ...; then a return."""
        from phg.plan.adjoint import reverse as adjoints

        lines = [f"{s} = {code(e)}" for s, e in self.shared]
        lines.append(f"if _u < {SERIES_BELOW!r} and _c > 0.0:")
        names = [f"r{i}" for i in range(len(self.args))] if adjoint else [f"y{k}" for k in range(len(self.outputs))]
        for branch in ("series", "closed"):
            body = self.shared + self.branches[branch] if adjoint else self.branches[branch]
            text = [f"{s} = {code(e)}" for s, e in self.branches[branch]]
            if adjoint:
                seeds = {sympy.Symbol(f"y{k}", real=True): sympy.Symbol(f"g{k}", real=True)
                         for k in range(len(self.outputs))}
                count = iter(range(10**6))
                back, bars = adjoints(body, seeds, lambda base: sympy.Symbol(f"_d{next(count)}", real=True))
                text += [f"{s} = {code(e)}" for s, e in back]
                text += [f"r{i} = {code(bars.get(a, sympy.Integer(0)))}" for i, a in enumerate(self.args)]
            if branch == "closed":
                lines.append("else:")
            lines += ["    " + ln for ln in text]
        return lines + ["return (" + "".join(f"{n}, " for n in names) + ")"]
