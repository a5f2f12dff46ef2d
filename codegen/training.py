"""The fused training kernel of a model: per sample, forward, loss and reverse-mode adjoint in
registers; per slot, the loss and some adjoints summed into an accumulator; once per batch, the
sums carried back to the parameters.

Hoisting makes this cheap: the coefficients that depend on parameters only (k0 = s^2 - a^2 ...,
the matrix of R x ~R) are computed before the sample loop, so the per-sample adjoint stops at
them (9 products for R x ~R), and the chain from their summed adjoints to the parameters runs once
per batch.  When a model hoists many more coefficients than it has parameter coefficients, the
chain runs per sample instead, so that a step keeps fewer sums: `sums(g)` decides, and the
memory plan (verifier.memory) sizes the accumulators from it.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import sympy

from phg import support as sup
from phg.hypergraph import Hypergraph
from verifier.memory import BLOCK, NORMALISE_EVERY

from .adjoint import reverse
from .scalar import HelperCall, ScalarBuilder, array_name, identifier


@dataclass
class TrainKernel:
    source: str
    name: str
    inputs: list[str]          # value ids, in argument order
    params: list[str]          # every parameter, in argument order
    quantities: int            # accumulated sums: the loss, then one per invariant adjoint
    rows: int                  # accumulator rows the memory plan gives it
    stack_symbols: int         # scalars live in one sample's forward and adjoint


@dataclass
class Sums:
    """What a step accumulates: the loss and the adjoints of the hoisted coefficients the
    per-sample code uses (hoisted), or the loss and the adjoints of the parameter coefficients."""
    hoisted: bool
    rows: int                  # accumulator rows, the loss included (an upper bound on those used)


def _analysis(g: Hypergraph):
    builder = ScalarBuilder(g, [g.loss])
    sp = builder.build()
    used = set()
    for sym, e in sp.assignments:
        if sym not in sp.invariant:
            args = e.args if isinstance(e, HelperCall) else [e]
            used |= {u for a in args for u in sympy.sympify(a).free_symbols if u in sp.invariant}
    loss = sp.values[g.loss][()].get(0, sympy.Integer(0))
    if loss in sp.invariant:                   # a loss no sample changes: its own adjoint is summed
        used.add(loss)
    coefficients = [(p, ch, k, sym) for p in g.params if p in sp.values for ch, comp in sp.values[p].items()
                    for k, sym in enumerate(c for _, c in sorted(comp.items(), key=lambda t: g.algebra.position[t[0]]))]
    # Summing a hoisted adjoint costs one addition; chaining it per sample, one product-sum per
    # parameter coefficient it reaches: hoisting wins unless it needs many more sums.
    hoisted = len(used) <= 2 * max(len(coefficients), 1)
    return builder, sp, Sums(hoisted, 1 + (len(used) if hoisted else len(coefficients))), coefficients


_SUMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sums(g: Hypergraph) -> Sums:
    """The accumulation a step of g does (asked by the memory plan and the emitter, for the same,
    checked graph: kept while its supports stay as they are)."""
    key = tuple((v.id, v.support) for v in g.values.values())
    if g not in _SUMS or _SUMS[g][0] != key:
        _SUMS[g] = (key, _analysis(g)[2])
    return _SUMS[g][1]


def train_kernel(g: Hypergraph, name: str, accumulate: str, code, statement, loads, share) -> TrainKernel:
    """`code`, `statement`, `loads` print expressions, assignments and array loads (codegen.emit);
    `share(helper)` names a helper module-wide."""
    builder, sp, plan, coefficients = _analysis(g)
    for h in sp.helpers.values():
        h.name = share(h)
    loss = sp.values[g.loss][()].get(0, sympy.Integer(0))
    per_sample = [(s, e) for s, e in sp.assignments if s not in sp.invariant]
    invariant = [(s, e) for s, e in sp.assignments if s in sp.invariant]
    seeds = {loss: sympy.Integer(1)} if isinstance(loss, sympy.Symbol) else {}
    backward, leaves = reverse(per_sample, seeds, builder.symbol, share)
    summed = [s for s in sorted(leaves, key=str) if s in sp.invariant]
    if not plan.hoisted:
        # Chain to the parameters per sample, so a step never sums more than
        # 1 + (parameter coefficients) quantities.
        chained, bars = reverse(invariant, {s: leaves[s] for s in summed}, builder.symbol, share)
        # The chain's factors depend on the parameters only: hoisted, like the forward's.
        backward += [(sym, builder.split(sympy.expand(e)) if sym is not None else e) for sym, e in chained]
        quantities = [loss] + [builder.split(sympy.expand(bars.get(sym, sympy.Integer(0)))) for *_, sym in coefficients]
        invariant = [(s, e) for s, e in sp.assignments if s in sp.invariant]
        epilogue, param_bars = [], {sym: sympy.Symbol(f"_sums[{q + 1}]") for q, (*_, sym) in enumerate(coefficients)}
        totals = {}
    else:
        quantities = [loss] + [leaves[s] for s in summed]
        totals = {s: builder.symbol(f"total_{s}") for s in summed}
        epilogue, param_bars = reverse(invariant, dict(totals), builder.symbol, share)
    assert len(quantities) <= plan.rows

    inputs = [v for v in g.inputs if v in builder.cone]
    params = list(g.params)
    args = ([array_name(g.values[v]) for v in inputs + params] +
            ["_n", "_acc", "_terms", "_work", "_sums", "_loss"] + [f"_grad_{identifier(g.values[p].name)}" for p in params])
    exact = accumulate == "exact"
    lines = ["@numba.njit(cache=True, parallel=True)", f"def {name}({', '.join(args)}):",
             f'    """Loss and gradient sums of {g.name} over n samples ({accumulate} accumulation)."""']
    for p in params:
        if p in sp.values:
            lines += ["    " + ln for ln in loads(g, sp, p, None)]
    lines += [f"    {statement(s, e)}" for s, e in invariant]
    lines += ["    _slots = _acc.shape[0]", "    for _slot in numba.prange(_slots):", "        _a = _acc[_slot]",
              "        _a[:] = 0"]
    if exact:                                     # the slot's block buffer
        lines += ["        _t = _terms[_slot]", "        _c = 0", "        _f = 0"]
    lines += ["        for _i in range(_slot * _n // _slots, (_slot + 1) * _n // _slots):"]
    body = [ln for v in inputs for ln in loads(g, sp, v, "_i")]
    body += [statement(s, e) for s, e in per_sample]
    body += [statement(s, e) for s, e in backward]
    if exact:
        # One call site for the exact additions keeps the kernel small (and quick to compile).
        # Terms go to the slot's block buffer; a full block is added exactly, all at once.
        body += [f"_t[{q}, _c] = {code(expr)}" for q, expr in enumerate(quantities)]
        body += ["_c += 1", f"if _c == {BLOCK}:", "    _f += 1",
                 f"    if block_add(_t, _c, _a) or _f == {NORMALISE_EVERY}:", "        normalise(_a)",
                 "        _f = 0", "    _c = 0"]
    else:
        # Local sums: the slot's row is an argument, which the compiler cannot keep in registers.
        live = [q for q, expr in enumerate(quantities) if expr != 0]
        loop = lines.pop()
        lines += [f"        _sum{q} = 0.0" for q in live] + [loop]
        body += [f"_sum{q} += {code(quantities[q])}" for q in live]
    lines += ["            " + ln for ln in body]
    if exact:
        lines += ["        block_add(_t, _c, _a)", "        normalise(_a)"]
    else:
        lines += [f"        _a[{q}] = _sum{q}" for q in live]
    if exact:
        lines.append(f"    for _q in range({len(quantities)}):")
        lines.append("        _sums[_q] = exact_total(_acc, _q, _work)")
    else:                                         # a fixed order over the slots: reproducible too
        lines += ["    _sums[:] = 0", "    for _slot in range(_slots):", "        _sums += _acc[_slot]"]
    lines.append("    _loss[0] = _sums[0] / _n")
    lines += [f"    {t} = _sums[{q + 1}]" for q, t in enumerate(totals.values())]
    lines += [f"    {statement(s, e)}" for s, e in epilogue]
    for p in params:
        v = g.values[p]
        arr = f"_grad_{identifier(v.name)}"
        if p not in sp.values:
            lines.append(f"    {arr}[...] = 0.0")
            continue
        for ch, comp in sp.values[p].items():
            for k, b in enumerate(sorted(comp, key=lambda m: g.algebra.position[m])):
                idx = ", ".join([str(i) for i in ch] + [str(k)])
                lines.append(f"    {arr}[{idx}] = ({code(param_bars.get(comp[b], 0))}) / _n")
    stack = len(per_sample) + len(backward) + sum(len(sup.blades_of(g.values[v].support)) for v in inputs)
    return TrainKernel("\n".join(lines), name, inputs, params, len(quantities), plan.rows, stack)
