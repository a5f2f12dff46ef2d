"""Updates of Rotor and Motor parameters on their manifold, as generated Numba functions.

A parameter R moves along R -> R exp(B) with B a bivector (the Lie algebra of the rotor group,
in body coordinates), so:

- the tangent of the loss at R in bivector coordinates is b_i = <G, R e_i>, where G is the
  Euclidean gradient on R's stored coefficients and e_i the basis bivectors;
- an optimizer step d (in those coordinates) is applied as R <- R exp(-d), with the closed form
  of codegen.lie where the algebra has one (G2, G3, 2D/3D PGA), else by scaling and squaring on
  the even subalgebra's product table (codegen.lie.Retraction);
- every list of blades here (the stored layout, the tangent, the table's rows) is in the
  algebra's canonical order, so the coordinates a step reads are the ones the tangent wrote;
- the result is renormalised against rounding drift: R ~R = s + p I (p only with a null
  pseudoscalar I) is mapped back to 1 by R <- R (s^-1/2 - p s^-3/2 I / 2), which restores the
  study condition of a motor as well as the norm.

Odd coefficients are not stored (a Rotor's layout is its even support), so they stay zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from phg.algebra import Algebra
from phg.bivectors import bivectors, closed_form, null_pseudoscalar
from phg.hypergraph import Value

from phg.plan.scalar import blade_key, global_name
from phg.sparse import product, reverse

from .decorators import njit


@dataclass
class ManifoldParam:
    name: str
    layout: list[int]            # stored blades
    tangent: list[int]           # bivector blades, the coordinates of a step
    tangent_fn: str
    retract_fn: str


def _symbols(prefix: str, alg: Algebra, blades: list[int]) -> dict[int, sympy.Symbol]:
    return {b: sympy.Symbol(f"{prefix}_{blade_key(alg, b)}", real=True) for b in blades}


def _gp(alg: Algebra, a: dict, b: dict) -> dict:
    return {m: sympy.expand(x) for m, x in product(alg, "gp", a, b).items()}


def source(alg: Algebra, v: Value, model: str, code) -> tuple[str, ManifoldParam]:
    """The tangent and retraction functions of one Rotor/Motor parameter of the model named
    `model`.  `code` prints a sympy expression."""
    layout = [b for b in alg.blades if v.support >> b & 1]          # canonical order, as stored
    biv = bivectors(alg)
    tangent_fn, retract_fn = global_name("tangent", model, v.name), global_name("retract", model, v.name)
    if not closed_form(alg):
        # One table-driven pair of functions for every other algebra, in the same canonical order
        # as the layout (codegen.lie.RotorManifold).
        table = global_name("manifold", model, v.name)
        text = "\n".join([
            f"{table} = _phg_RotorManifold({tuple(x.square for x in alg.basis)}, {tuple(layout)}, "
            f"{tuple(biv)}, {null_pseudoscalar(alg)})",
            f"{tangent_fn} = {table}.tangent",
            f"{retract_fn} = {table}.retract"])
        return text, ManifoldParam(v.name, layout, biv, tangent_fn, retract_fn)

    r = _symbols("r", alg, layout)
    loads = [f"    {r[m]} = r[c, {k}]" for k, m in enumerate(layout)]
    names = ", ".join(alg.blade_name(m) for m in layout)
    bnames = ", ".join(alg.blade_name(m) for m in biv)

    # tangent: b_i = <G, R e_i> over the stored blades
    doc = f"Bivector coordinates ({bnames}) of the gradient of {v.name} ({names}), per channel."
    lines = [njit(nogil=False), f"def {tangent_fn}(r, grad, out):", f"    {ascii(doc)}",
             "    for c in range(r.shape[0]):"]
    lines += ["    " + ln for ln in loads]
    index = {m: k for k, m in enumerate(layout)}
    for i, e in enumerate(biv):
        re = _gp(alg, r, {e: sympy.Integer(1)})
        terms = [sympy.Symbol(f"grad[c, {index[m]}]") * x for m, x in re.items() if m in index]
        lines.append(f"        out[c, {i}] = {code(sympy.Add(*terms))}")
    tangent = "\n".join(lines)

    retract = _closed_form_retraction(alg, v, layout, biv, r, loads, retract_fn, code)
    return tangent + "\n\n\n" + retract, ManifoldParam(v.name, layout, biv, tangent_fn, retract_fn)


def _closed_form_retraction(alg: Algebra, v: Value, layout: list[int], biv: list[int], r: dict, loads: list[str],
                            retract_fn: str, code) -> str:
    """R exp(scale B), renormalised, unrolled, with exp(B) in the closed form of codegen.lie."""
    b = _symbols("b", alg, biv)
    bnames = ", ".join(alg.blade_name(m) for m in biv)
    doc = f"{v.name} exp(scale B) per channel, renormalised; B on ({bnames}).  out may be r."
    lines = [njit(nogil=False), f"def {retract_fn}(r, b, scale, out):", f"    {ascii(doc)}",
             "    for c in range(r.shape[0]):"]
    lines += ["    " + ln for ln in loads]
    lines += [f"        {b[m]} = scale * b[c, {k}]" for k, m in enumerate(biv)]
    signs = {m: alg.product("gp", m, m)[0] for m in biv}
    l = sympy.Add(*(b[m] ** 2 for m in biv if signs[m] == -1))
    cos, f, gg, mu = sympy.symbols("cos_a f_a g_a mu", real=True)
    lines.append(f"        cos_a, f_a, g_a = _phg_exp_factors({code(l)})")
    e = {0: cos}
    for m in biv:
        e[m] = f * b[m]
    pseudo = null_pseudoscalar(alg)
    if pseudo is not None:
        lines.append(f"        mu = {code(_gp(alg, b, b).get(pseudo, 0) / 2)}")
        e[pseudo] = mu * f
        for m, x in _gp(alg, b, {pseudo: sympy.Integer(1)}).items():
            e[m] = e.get(m, 0) - mu * gg * x
    ex = {m: sympy.Symbol(f"x_{blade_key(alg, m)}", real=True) for m in e}
    lines += [f"        {ex[m]} = {code(x)}" for m, x in e.items()]
    y = {m: x for m, x in _gp(alg, r, ex).items() if v.support >> m & 1}
    ys = {m: sympy.Symbol(f"y_{blade_key(alg, m)}", real=True) for m in layout}
    lines += [f"        {ys[m]} = {code(y.get(m, 0))}" for m in layout]
    norm = _gp(alg, ys, reverse(alg, ys))
    lines.append(f"        u = 1.0 / _phg_math.sqrt({code(norm.get(0, 0))})")
    if pseudo is not None and norm.get(pseudo, 0) != 0:
        lines.append(f"        w = -0.5 * ({code(norm[pseudo])}) * u * u * u")
        scaled = _gp(alg, ys, {0: sympy.Symbol("u"), pseudo: sympy.Symbol("w")})
    else:
        scaled = {m: ys[m] * sympy.Symbol("u") for m in layout}
    lines += [f"        out[c, {k}] = {code(scaled.get(m, 0))}" for k, m in enumerate(layout)]
    return "\n".join(lines)
