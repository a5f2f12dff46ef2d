"""The fused training kernel of a model: per sample, forward, loss and reverse-mode adjoint in
registers; per slot, the loss and the adjoints of the batch-invariant symbols summed into an
accumulator; once per batch, the sums carried back to the parameters.

Hoisting makes this cheap: the coefficients that depend on parameters only (k0 = s^2 - a^2 ...,
the matrix of R x ~R) are computed before the sample loop, so the per-sample adjoint stops at
them, and the chain from their summed adjoints to the parameters runs once per batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy

from phg import support as sup
from phg.hypergraph import Hypergraph

from .adjoint import reverse
from .scalar import ScalarBuilder, array_name, identifier


@dataclass
class TrainKernel:
    source: str
    name: str
    inputs: list[str]          # value ids, in argument order
    params: list[str]          # every parameter, in argument order
    quantities: int            # accumulated sums: the loss, then one per invariant adjoint
    stack_symbols: int         # scalars live in one sample's forward and adjoint


def train_kernel(g: Hypergraph, name: str, accumulate: str, code, statement, loads, share) -> TrainKernel:
    """`code`, `statement`, `loads` print expressions, assignments and array loads (codegen.emit);
    `share(helper)` names a helper module-wide."""
    builder = ScalarBuilder(g, [g.loss])
    sp = builder.build()
    for h in sp.helpers.values():
        h.name = share(h)
    loss = sp.values[g.loss][()].get(0, sympy.Integer(0))
    per_sample = [(s, e) for s, e in sp.assignments if s not in sp.invariant]
    invariant = [(s, e) for s, e in sp.assignments if s in sp.invariant]
    seeds = {loss: sympy.Integer(1)} if isinstance(loss, sympy.Symbol) else {}
    backward, leaves = reverse(per_sample, seeds, builder.symbol, share)
    summed = [s for s in sorted(leaves, key=str) if s in sp.invariant]
    coefficients = [(p, ch, k, sym) for p in g.params if p in sp.values for ch, comp in sp.values[p].items()
                    for k, sym in enumerate(c for _, c in sorted(comp.items(), key=lambda t: g.algebra.position[t[0]]))]
    if len(summed) > len(coefficients):
        # More hoisted adjoints than parameter coefficients: chain to the parameters per sample,
        # so a step never sums more than 1 + (parameter coefficients) quantities.
        chained, bars = reverse(invariant, {s: leaves[s] for s in summed}, builder.symbol, share)
        backward += chained
        quantities = [loss] + [bars.get(sym, sympy.Integer(0)) for *_, sym in coefficients]
        epilogue, param_bars = [], {sym: sympy.Symbol(f"_sums[{q + 1}]") for q, (*_, sym) in enumerate(coefficients)}
        totals = {}
    else:
        quantities = [loss] + [leaves[s] for s in summed]
        totals = {s: builder.symbol(f"total_{s}") for s in summed}
        epilogue, param_bars = reverse(invariant, dict(totals), builder.symbol, share)

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
              "        _t = _terms[_slot]", "        _a[:] = 0", "        for _i in range(_slot * _n // _slots, (_slot + 1) * _n // _slots):"]
    body = [ln for v in inputs for ln in loads(g, sp, v, "_i")]
    body += [statement(s, e) for s, e in per_sample]
    body += [statement(s, e) for s, e in backward]
    if exact:
        # One call site for the exact additions keeps the kernel small (and quick to compile).
        body += [f"_t[{q}] = {code(expr)}" for q, expr in enumerate(quantities)]
        body += [f"for _q in range({len(quantities)}):", "    exact_add(_a[_q], _t[_q])"]
    else:
        body += [f"_a[{q}] += {code(expr)}" for q, expr in enumerate(quantities) if expr != 0]
    lines += ["            " + ln for ln in body]
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
    return TrainKernel("\n".join(lines), name, inputs, params, len(quantities), stack)
