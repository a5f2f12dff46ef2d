"""The population kernel of `optimizer cma` (LANGUAGE §12): the batch-mean loss of a generation's
lambda parameter sets in one call.

It is the fused step's forward and loss program (phg.plan.fused) without the adjoint: per
candidate, its parameters loaded from row _c of each parameter's stack, the parameter-only
coefficients computed once, then the samples in order with the loss summed (Neumaier's
compensated sum, so a candidate's mean is as accurate as one rounding of the exact mean, give or
take a few units in the last place, and the same bits on any thread count: each candidate is
summed by one thread, in sample order).  Threads take shares of the candidates (codegen.spread).
"""
from __future__ import annotations

from phg.hypergraph import Hypergraph
from phg.plan.fused import FusedStep
from phg.plan.scalar import array_name

from .decorators import njit


def population_source(g: Hypergraph, step: FusedStep, name: str, code, statement, loads) -> str:
    sp = step.program
    params = list(g.params)
    data = [array_name(g.values[v]) for v in step.inputs + params]
    doc = (f"The batch-mean loss of {g.name} for the candidates _from to _to, each parameter's row _c of "
           "its stack, over the samples 0.._n (LANGUAGE §12).")
    lines = [njit(), f"def {name}({', '.join(data + ['_n', '_losses', '_from', '_to'])}):", f"    {ascii(doc)}",
             "    for _c in range(_from, _to):"]
    for p in params:
        if p in sp.values:
            for ln in loads(g, sp, p, None):
                target, _, load = ln.partition(" = ")
                array, _, index = load.partition("[")
                lines.append(f"        {target} = {array}[_c, {index}")
    lines += [f"        {statement(s, e)}" for s, e in sp.assignments if s in sp.invariant]
    loss = code(step.loss)
    if step.loss in sp.invariant or not step.inputs:
        lines.append(f"        _losses[_c] = {loss}")
        return "\n".join(lines)
    lines += ["        _s = 0.0", "        _e = 0.0", "        for _i in range(_n):"]
    body = [ln for v in step.inputs for ln in loads(g, sp, v, "_i")]
    body += [statement(s, e) for s, e in step.per_sample]
    # Neumaier: the sum and the running error of its additions
    body += [f"_x = {loss}", "_t = _s + _x",
             "_e += (_s - _t) + _x if abs(_s) >= abs(_x) else (_x - _t) + _s", "_s = _t"]
    lines += ["            " + ln for ln in body]
    lines.append("        _losses[_c] = (_s + _e) / _n")
    return "\n".join(lines)
