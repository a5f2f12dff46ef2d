"""Reverse-mode adjoints, source to source, of the straight-line scalar code of phg.plan.scalar.

Every hyperedge has already become assignments `s = f(a, b, ...)` over blade coefficients (one
per blade of the target's support), so one adjoint rule per assignment covers every operation
kind: the partial derivatives of f, taken by sympy, times the adjoint of s, added into the
adjoints of a, b, ...  Walking the assignments backwards, a symbol's adjoint is complete when its
own assignment is reached (all its uses come later), so it is named once and then used.

A helper (exp by scaling and squaring, inverse by a linear solve) gets an adjoint helper.
The rules of the non-smooth scalar functions are the usual subgradient choices: relu' = 1 for
x > 0 and 0 otherwise, abs' = sign(x) (0 at 0).
"""
from __future__ import annotations

from collections.abc import Callable

import sympy

from .scalar import Helper, HelperCall


def reverse(assignments: list, seeds: dict, fresh: Callable[[str], sympy.Symbol],
            helpers: list | None = None) -> tuple[list, dict]:
    """Adjoint assignments for `assignments` run backwards from `seeds` (symbol -> adjoint),
    and the adjoints that reach symbols not assigned there (the leaves: parameters, hoisted
    coefficients, inputs), keyed by symbol.  A helper call (exp, inv) gets a call of its adjoint
    helper, added to `helpers`."""
    bars: dict = {s: g for s, g in seeds.items() if g != 0}
    lines = []
    for sym, expr in reversed(assignments):
        if isinstance(expr, HelperCall):
            adjoints = [bars.pop(t, sympy.Integer(0)) for t in expr.targets]
            if all(g == 0 for g in adjoints):
                continue
            h = expr.helper
            grad = Helper(f"{h.kind}_grad", h.source, h.result, h.alg)
            if helpers is not None:
                helpers.append(grad)
            outs = [fresh(f"d_{grad.name[1:]}_{i}") for i in range(len(expr.args))]
            lines.append((None, HelperCall(grad, list(expr.args) + adjoints, outs)))
            for arg, out in zip(expr.args, outs):
                for u in sorted(sympy.sympify(arg).free_symbols, key=str):
                    bars[u] = bars.get(u, 0) + out * partial(sympy.sympify(arg), u)
            continue
        g = bars.pop(sym, None)
        if g is None:
            continue
        if not (g.is_Symbol or g.is_Number):
            named = fresh(f"d_{sym}")
            lines.append((named, g))
            g = named
        for u in sorted(expr.free_symbols, key=str):
            d = partial(expr, u)
            if d != 0:
                bars[u] = bars.get(u, 0) + g * d
    return lines, bars


def partial(expr, u):
    """d expr / d u.  Sums, products and constant powers of u by their rules, built from sympy's own
    constructors (so the result is the expression sympy.diff gives), anything else by sympy.diff:
    ten times faster on the polynomials the plans are made of, whose Derivative machinery is
    most of a large model's build."""
    if expr.is_Symbol:
        return sympy.Integer(1 if expr == u else 0)
    if expr.is_Atom:
        return sympy.Integer(0)
    if expr.is_Add:
        return sympy.Add(*[partial(a, u) for a in expr.args if u in a.free_symbols])
    if expr.is_Mul:
        args = expr.args
        return sympy.Add(*[sympy.Mul(*args[:i], partial(a, u), *args[i + 1:])
                           for i, a in enumerate(args) if u in a.free_symbols])
    if expr.is_Pow and expr.exp.is_Number and expr.base == u:
        return expr.exp * sympy.Pow(u, expr.exp - 1)
    return sympy.diff(expr, u)
