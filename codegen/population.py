"""The population kernel of `optimizer cma` (LANGUAGE §12): the batch-mean loss of a generation's
lambda parameter sets in one call.

Fused models: the fused step's forward and loss program (phg.plan.fused) without the adjoint: per
candidate, its parameters loaded from row _c of each parameter's stack, the parameter-only
coefficients computed once, then the samples in order with the loss summed.  Models in the loop
plan: its forward ops (codegen.looped) per candidate, in the workspace of the thread's share.
Either way the sum is Neumaier's compensated sum, so a candidate's mean is as accurate as one
rounding of the exact mean, give or take a few units in the last place, and the same bits on any
thread count: each candidate is summed by one thread, in sample order; in a numeric format, the
training kernels' mean (see mean_lines).  Threads take shares of the candidates (codegen.spread).
"""
from __future__ import annotations

from phg.hypergraph import Hypergraph
from phg.plan.fused import FusedStep
from phg.plan.scalar import array_name

from .decorators import njit


def mean_lines(loss: str, printer=None) -> tuple[list[str], list[str], list[str]]:
    """The lines that start a candidate's sum, add one sample's `loss` to it, and leave the batch
    mean in _pmean.  `printer`: the model's numeric format's (codegen.printers; None: float64).
    In a format the mean is the training kernels' (the exact sum of the samples' losses rounded
    once, then divided by N, rounded): the sum by TwoSum with a certified bound (codegen.formats'
    settle_pair), and NaN where the bound leaves its rounding open, for the caller to take that
    candidate's loss with a training pass."""
    start = ["_ps = 0.0", "_pe = 0.0", "_pm = 0.0", "_pexact = True"]
    if printer is None:                # Neumaier: the sum and the running error of its additions
        add = [f"_px = {loss}", "_pt = _ps + _px",
               "_pe += (_ps - _pt) + _px if abs(_ps) >= abs(_px) else (_px - _pt) + _ps", "_ps = _pt"]
        return start, add, ["_pmean = (_ps + _pe) / _n"]
    add = [f"_px = {loss}", "_pt = _ps + _px", "_pv = _pt - _ps", "_pr = (_ps - (_pt - _pv)) + (_px - _pv)",
           "_ps = _pt", "_pe += _pr", "_pm += abs(_px)", "_pexact = _pexact and _pr == 0.0"]
    mean = printer.binary("/", printer.pair("_phi", "_plo"), "_phg_np.float64(_n)")
    return start, add, ["_pok, _phi, _plo = _phg_settle_pair(_ps, _pe, _pm, _n, _pexact)",
                        f"_pmean = {mean} if _pok else _phg_np.nan"]


def population_source(g: Hypergraph, step: FusedStep, name: str, code, statement, loads, printer=None) -> str:
    """A fused model's population kernel; `printer` as mean_lines'."""
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
    start, add, end = mean_lines(loss, printer)
    body = [ln for v in step.inputs for ln in loads(g, sp, v, "_i")]
    body += [statement(s, e) for s, e in step.per_sample]
    lines += ["        " + ln for ln in start] + ["        for _i in range(_n):"]
    lines += ["            " + ln for ln in body + add]
    lines += ["        " + ln for ln in end] + ["        _losses[_c] = _pmean"]
    return "\n".join(lines)
