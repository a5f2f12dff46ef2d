"""A Rotor or Motor parameter's body-frame coordinates relative to a prior's mean (LANGUAGE §13):
b = log(~R0 R), so that R = R0 exp(b), per channel, in the tangent's bivector order
(codegen.manifold: the algebra's canonical order); and the adjoint that adds d<v, b>/dR to a
gradient on R's stored coefficients.  log is the module's helper (codegen.logarithm) on R's
support; ~R0 R and its derivative in R, unrolled from the product table.
"""
from __future__ import annotations

import sympy

from phg import support as sup
from phg.algebra import Algebra
from phg.bivectors import bivectors, closed_form
from phg.hypergraph import Value
from phg.plan.scalar import Helper, blade_key, global_name
from phg.sparse import product, reverse

from .decorators import njit


def relative_source(alg: Algebra, v: Value, model: str, code) -> tuple[str, tuple[str, str], list[Helper]] | None:
    """The two functions of one Rotor/Motor parameter (their text and names) and the helpers they
    call; None where log() has no closed form in the algebra."""
    if not closed_form(alg):
        return None
    layout = [b for b in alg.blades if v.support >> b & 1]          # stored order
    tangent = bivectors(alg)
    result = sup.grade_filter(alg, sup.closure(alg, v.support), [2])
    log, grad = Helper("log", v.support, result, alg), Helper("log_grad", v.support, result, alg)
    r = {m: sympy.Symbol(f"r_{blade_key(alg, m)}", real=True) for m in layout}
    r0 = {m: sympy.Symbol(f"q_{blade_key(alg, m)}", real=True) for m in layout}
    x = {m: sympy.expand(e) for m, e in product(alg, "gp", reverse(alg, r0), r).items()}
    args = [x.get(m, sympy.Integer(0)) for m in sup.blades_of(v.support)]
    outs = sup.blades_of(result)
    loads = [f"        {r[m]} = r[c, {k}]" for k, m in enumerate(layout)]
    loads += [f"        {r0[m]} = r0[c, {k}]" for k, m in enumerate(layout)]
    call_args = ", ".join(code(a) for a in args)
    log_fn, grad_fn = global_name("relative", model, v.name), global_name("relativegrad", model, v.name)
    names = ", ".join(alg.blade_name(m) for m in tangent)

    doc = f"log(~r0 r) per channel of {v.name}, on ({names}): R = R0 exp(b)."
    lines = [njit(nogil=False), f"def {log_fn}(r, r0, out):", f"    {ascii(doc)}", "    for c in range(r.shape[0]):"]
    lines += loads + [f"        _y = {log.name}({call_args})"]
    lines += [f"        out[c, {i}] = " + (f"_y[{outs.index(m)}]" if m in outs else "0.0") for i, m in enumerate(tangent)]
    text = "\n".join(lines)

    doc = f"Adds the derivative of <v, log(~r0 r)> in {v.name}'s stored coefficients to grad, per channel."
    lines = [njit(nogil=False), f"def {grad_fn}(r, r0, v, grad):", f"    {ascii(doc)}", "    for c in range(r.shape[0]):"]
    seeds = ", ".join(f"v[c, {tangent.index(m)}]" for m in outs)
    lines += loads + [f"        _g = {grad.name}({call_args}, {seeds})"]
    for k, m in enumerate(layout):
        terms = [sympy.Symbol(f"_g[{i}]") * sympy.diff(a, r[m]) for i, a in enumerate(args)]
        lines.append(f"        grad[c, {k}] += {code(sympy.Add(*terms))}")
    return text + "\n\n\n" + "\n".join(lines), (log_fn, grad_fn), [log, grad]
