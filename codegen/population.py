"""The population kernel of `optimizer cma` (LANGUAGE §12): the batch-mean loss of a generation's
lambda parameter sets in one call.

It is the fused step's forward and loss program (phg.plan.fused) without the adjoint: per
candidate, its parameters loaded from row _c of each parameter's stack, the parameter-only
coefficients computed once, then the samples in order with the loss summed (Neumaier's
compensated sum, so a candidate's mean is as accurate as one rounding of the exact mean, give or
take a few units in the last place, and the same bits on any thread count: each candidate is
summed by one thread, in sample order); in a numeric format, the training kernels' mean (see
population_source).  Threads take shares of the candidates (codegen.spread).
"""
from __future__ import annotations

from phg.hypergraph import Hypergraph
from phg.plan.fused import FusedStep
from phg.plan.scalar import array_name

from .decorators import njit


def population_source(g: Hypergraph, step: FusedStep, name: str, code, statement, loads, printer=None) -> str:
    """`printer`: the model's numeric format's (codegen.printers; None: float64).  In a format a
    candidate's mean is the training kernels' (the exact sum of the samples' losses rounded once,
    then divided by N, rounded): the sum by TwoSum with a certified bound (codegen.formats'
    settle_pair), and NaN where the bound leaves its rounding open, for the caller to take that
    candidate's loss with a training pass."""
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
    lines += ["        _s = 0.0", "        _e = 0.0", "        _m = 0.0", "        _exact = True",
              "        for _i in range(_n):"]
    body = [ln for v in step.inputs for ln in loads(g, sp, v, "_i")]
    body += [statement(s, e) for s, e in step.per_sample]
    if printer is None:                # Neumaier: the sum and the running error of its additions
        body += [f"_x = {loss}", "_t = _s + _x",
                 "_e += (_s - _t) + _x if abs(_s) >= abs(_x) else (_x - _t) + _s", "_s = _t"]
    else:                              # TwoSum, its errors' sum, the terms' magnitudes
        body += [f"_x = {loss}", "_t = _s + _x", "_v = _t - _s", "_r = (_s - (_t - _v)) + (_x - _v)", "_s = _t",
                 "_e += _r", "_m += abs(_x)", "_exact = _exact and _r == 0.0"]
    lines += ["            " + ln for ln in body]
    if printer is None:
        lines.append("        _losses[_c] = (_s + _e) / _n")
    else:
        mean = printer.binary("/", printer.pair("_hi", "_lo"), "_phg_np.float64(_n)")
        lines += ["        _ok, _hi, _lo = _phg_settle_pair(_s, _e, _m, _n, _exact)",
                  f"        _losses[_c] = {mean} if _ok else _phg_np.nan"]
    return "\n".join(lines)
