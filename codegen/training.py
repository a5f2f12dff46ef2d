"""The fused training kernels of a model, printed from the kernel plan's step (phg.plan.fused):
per sample, forward, loss and reverse-mode adjoint in registers; per slot, the loss and some
adjoints summed into an accumulator (in float, or exactly: codegen.accumulate); once per batch,
the sums carried back to the parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

from phg.hypergraph import Hypergraph
from phg.plan.buffers import CHUNK, NORMALISE_EVERY, many_sums
from phg.plan.kernel import PREDICT_ARGUMENTS, SLOTS_ARGUMENTS, TRAIN_ARGUMENTS, TrainPlan
from phg.plan.scalar import HelperCall, array_name, global_name, identifier

from .accumulate import ABS, MAGIC, MAGIC_BITS, TWO52
from .decorators import njit


@dataclass
class TrainKernel:
    source: str
    name: str                  # loss and gradient from the slots' sums
    slots: str                 # the slots' sums, for a range of slots
    inputs: list[str]          # value ids, in argument order
    params: list[str]          # every parameter, in argument order
    quantities: int            # accumulated sums: the loss, then one per invariant adjoint
    rows: int                  # accumulator rows the memory plan gives it
    stack_symbols: int         # scalars live in one sample's forward and adjoint


def train_kernel(g: Hypergraph, planned: TrainPlan, name: str, accumulate: str, code, statement, loads,
                 printer=None, fast=None) -> TrainKernel:
    """The kernels of the kernel plan's fused training step (phg.plan.fused); `code`, `statement`,
    `loads` print expressions, assignments and array loads (codegen.emit), and `printer` is the
    model's numeric format's (codegen.printers; None: float64).  In a format the per-sample terms are
    format values; exact batch sums are read rounded to odd, which the format's rounding then
    rounds as it would the exact sum (the quire's single rounding), float sums round each addition.
    `fast`, a posit format's fast path (code, statement, loads: codegen.formats' fast functions),
    runs each sample first; a sample where any value it made is NaN runs again with the exact
    functions (_exact_slot)."""
    step = planned.fused
    sp, plan, adjoint = step.program, step.sums, step.adjoint
    quantities = adjoint.quantities
    inputs = step.inputs
    params = list(g.params)
    exact = accumulate == "exact"
    rounding = printer.round if printer is not None else None
    data = [array_name(g.values[v]) for v in inputs + params]
    preamble = [ln for p in params if p in sp.values for ln in loads(g, sp, p, None)]
    preamble += [statement(s, e) for s, e in adjoint.invariant]
    # A slot's work is a function of its own.  With many sums it stays one (inlined into a
    # parallel loop, the 129 sums of examples/signed_volume.phg took 290 s to compile, 81 s with
    # this and the array deposits); with few it is inlined into the loop over slots, where the
    # compiler makes the per-sample loop faster (rigid registration's exact gradient: 10 ms
    # against 12).
    slot = global_name("slot", g.name)
    inline = "never" if many_sums(plan.rows) else "always"
    doc = f"One slot of the samples of {g.name}: their loss and adjoint sums into the row _a (on the grids _G)."
    lines = [njit(nogil=False, inline=inline),
             f"def {slot}({', '.join(data + ['_n', '_slot', '_slots', '_a', '_G', '_D', '_U'])}):", f"    {ascii(doc)}"]
    lines += ["    " + ln for ln in preamble]
    lines += ["    _phg_clear(_a, _U)" if exact else "    _a[:] = 0"]
    live = [q for q, expr in enumerate(quantities) if expr != 0]
    body = [ln for v in inputs for ln in loads(g, sp, v, "_i")]
    body += [statement(s, e) for s, e in step.per_sample]
    body += [statement(s, e) for s, e in adjoint.backward]
    in_array = exact and many_sums(plan.rows)
    own = "_slot" if exact else "0"
    if exact:
        quick = None
        if fast is not None:
            fcode, fstatement, floads = fast
            made = [str(sym) for v in inputs for comp in sp.values[v].values() for sym in comp.values()]
            made += [str(t) for s, e in (*step.per_sample, *adjoint.backward)
                     for t in (e.targets if isinstance(e, HelperCall) else (s,))]
            quick = ([ln for v in inputs for ln in floads(g, sp, v, "_i")]
                     + [fstatement(s, e) for s, e in (*step.per_sample, *adjoint.backward)],
                     [fcode(quantities[q]) for q in live], made)
        lines += ["    " + ln for ln in _exact_slot(live, body, [code(quantities[q]) for q in live], in_array, quick)]
    else:
        # Local sums: the row is an argument, which the compiler cannot keep in registers.
        lines += [f"    _sum{q} = 0.0" for q in live]
        lines += ["    for _i in range(_slot * _n // _slots, (_slot + 1) * _n // _slots):"]
        adds = [f"_sum{q} += {code(quantities[q])}" if rounding is None else
                f"_sum{q} = {rounding(f'_sum{q} + {code(quantities[q])}')}" for q in live]
        lines += ["        " + ln for ln in body + adds or ["pass"]]
        lines += [f"    _a[{q}] = _sum{q}" for q in live]
    # The slots _from to _to; threads run shares of the slots side by side (codegen.spread), each
    # slot a fixed share of the batch, so the sums do not depend on the thread count.
    slots = global_name("slots", g.name)
    doc = f"The slots _from to _to of {g.name}'s _slots slots of samples (the share _share of them)."
    lines += ["", "", njit(),
              f"def {slots}({', '.join(data + list(SLOTS_ARGUMENTS))}):",
              f"    {ascii(doc)}", "    for _slot in range(_from, _to):",
              f"        {slot}({', '.join(data)}{', ' if data else ''}_n, _slot, _slots, _acc[_slot], _grid[{own}], _dep[{own if in_array else 0}], _rng[{own}])"]
    args = data + list(TRAIN_ARGUMENTS) + \
        [f"_grad_{identifier(g.values[p].name)}" for p in params]
    doc = f"Loss and gradient of {g.name} from the slots' sums over n samples ({accumulate} accumulation)."
    lines += ["", "", njit(), f"def {name}({', '.join(args)}):", f"    {ascii(doc)}"]
    lines += ["    " + ln for ln in preamble]
    if exact and rounding is None:
        pass                                      # the totals: read before, in _sums (codegen.runtime)
    elif exact:                                   # read rounded to odd (codegen.runtime): rounded once more
        lines += ["    for _q in range(_sums.shape[0]):", f"        _sums[_q] = {rounding('_sums[_q]')}"]
    elif rounding is None:                        # a fixed order over the slots: reproducible too
        lines += ["    _sums[:] = 0", "    for _slot in range(_slots):", "        _sums += _acc[_slot]"]
    else:
        lines += ["    _sums[:] = 0", "    for _slot in range(_slots):", "        for _q in range(_sums.shape[0]):",
                  f"            _sums[_q] = {rounding('_sums[_q] + _acc[_slot, _q]')}"]
    # the mean: in a format the rounded sum divided by N, rounded (codegen.printers' division)
    mean = (lambda t: f"{t} / _n") if printer is None else (lambda t: printer.binary("/", t, "_phg_np.float64(_n)"))
    lines.append(f"    _loss[0] = {mean('_sums[0]')}")
    lines += [f"    {t} = _sums[{q + 1}]" for q, t in enumerate(adjoint.totals.values())]
    lines += [f"    {statement(s, e)}" for s, e in adjoint.epilogue]
    for p in params:
        v = g.values[p]
        arr = f"_grad_{identifier(v.name)}"
        if p not in sp.values:
            lines.append(f"    {arr}[...] = 0.0")
            continue
        for ch, comp in sp.values[p].items():
            for k, b in enumerate(sorted(comp, key=lambda m: g.algebra.position[m])):
                idx = ", ".join([str(i) for i in ch] + [str(k)])
                lines.append(f"    {arr}[{idx}] = {mean('(' + code(adjoint.param_bars.get(comp[b], 0)) + ')')}")
    return TrainKernel("\n".join(lines), name, slots, inputs, params, len(quantities), plan.rows, adjoint.stack_symbols)


def inputs_kernel(g: Hypergraph, planned: TrainPlan, name: str, code, statement, loads) -> str:
    """The kernel of the samples _from to _to's input adjoints: per sample, forward, loss and the
    adjoint of the fused step (phg.plan.fused), with each input coefficient's adjoint written to
    `_bar_<input>` (the gradient of that sample's loss, not of the batch mean).  Samples are
    independent: threads run shares of a batch side by side, as predict's (codegen.spread)."""
    step = planned.fused
    sp, adjoint = step.program, step.adjoint
    params = list(g.params)
    data = [array_name(g.values[v]) for v in step.inputs + params]
    bars = [f"_bar_{identifier(g.values[v].name)}" for v in step.inputs]
    doc = f"Per-sample input adjoints of {g.name}'s loss for the samples _from to _to."
    lines = [njit(), f"def {name}({', '.join(data + bars + list(PREDICT_ARGUMENTS['fused']))}):", f"    {ascii(doc)}"]
    lines += ["    " + ln for p in params if p in sp.values for ln in loads(g, sp, p, None)]
    lines += ["    " + statement(s, e) for s, e in adjoint.invariant]
    body = [ln for v in step.inputs for ln in loads(g, sp, v, "_i")]
    body += [statement(s, e) for s, e in step.per_sample]
    body += [statement(s, e) for s, e in adjoint.backward]
    for v, bar in zip(step.inputs, bars):
        for ch, comp in sp.values[v].items():
            for k, (_, sym) in enumerate(sorted(comp.items(), key=lambda t: g.algebra.position[t[0]])):
                idx = ", ".join(["_i"] + [str(c) for c in ch] + [str(k)])
                body.append(f"{bar}[{idx}] = {code(adjoint.inputs[sym])}")
    lines += ["    for _i in range(_from, _to):"] + ["        " + ln for ln in body or ["pass"]]
    return "\n".join(lines)


_MAGIC, _MAGIC_BITS, _TWO52, _ABS = repr(MAGIC), hex(MAGIC_BITS), repr(TWO52), hex(ABS)


def _exact_slot(live: list[int], body: list[str], terms: list[str], in_array: bool, fast=None) -> list[str]:
    """One slot's samples in passes over chunks (codegen.accumulate): the per-sample code once, in
    a branch-free loop that deposits each quantity's term on its grid in two int64 sums, tracks
    the largest magnitude as bits and flags terms below the grid; after the pass, the sums are
    settled, or the chunk is summed again on a grid from its largest terms, or sample by sample.
    The pass's state is in registers, or with many sums in the slot's array _D (codegen.accumulate).

    `fast` (body, terms, the names the body assigns) is a posit format's fast path: a chunk's
    samples run it first, each noting whether any value it made is NaN (ors of comparisons, which
    the compiler may regroup: a float sum would chain every value one after another) in a flag on
    the stack; such a sample deposits nothing, and a second loop runs `body` for the flagged
    samples alone and deposits their terms (the values are the same wherever the fast path
    decided, and NaR where it is; the sums are exact, so their order does not matter)."""
    out = ["_f = 0"] + ([f"_opened = _phg_numba.carray(_phg_stack_flags({CHUNK}), {CHUNK})"] if fast is not None else []) + ["_end = (_slot + 1) * _n // _slots",
           f"for _start in range(_slot * _n // _slots, _end, {CHUNK}):",
           f"    _stop = min(_start + {CHUNK}, _end)",
           "    _i0 = _start", "    _i1 = _stop", "    _step = _stop - _start", "    _retry = False",
           "    while _i0 < _stop:"]
    pre = ["_bad = 0"]

    def sample_loop(code: list[str], sums: list[str]) -> list[str]:
        loop = ["for _i in range(_i0, _i1):"] + ["    " + ln for ln in code]
        if in_array:
            return loop + [f"    _bad |= _phg_deposit(_D, {q}, {term}, _G[{q}])" for q, term in zip(live, sums)]
        for q, term in zip(live, sums):
            loop += [f"    _e{q} = {term}",
                     f"    _b{q} = _phg_np.float64(_e{q}).view(_phg_np.int64) & {_ABS}",
                     f"    _m{q} = max(_m{q}, _b{q})",
                     f"    _bad |= (_b{q} < _lo{q}) & (_b{q} != 0)",
                     f"    _y{q} = _e{q} * _sc{q}",
                     f"    _t{q} = _y{q} + {_MAGIC}",
                     f"    _h{q} += _phg_np.float64(_t{q}).view(_phg_np.int64) - {_MAGIC_BITS}",
                     f"    _w{q} += _phg_np.float64((_y{q} - (_t{q} - {_MAGIC})) * {_TWO52} + {_MAGIC}).view(_phg_np.int64) - {_MAGIC_BITS}"]
        return loop + (["    pass"] if len(loop) == 1 else [])

    if in_array:
        pre += ["_phg_begin_pass(_D, _G)"]
        fit, settled, regridded = "_phg_pass_fits(_D, _G)", ["    _phg_settle_pass(_a, _U, _D, _G)"], ["    _phg_regrid_pass(_D, _G)"]
    else:
        for q in live:
            pre += [f"_sc{q} = _G[{q}]", f"_lo{q} = _phg_low_bits(_sc{q})", f"_h{q} = 0", f"_w{q} = 0", f"_m{q} = 0"]
        fit = " and ".join([f"_phg_fits(_sc{q}, _m{q})" for q in live] or ["True"])
        settled = [f"    _phg_settle(_a, _U, {q}, _h{q}, _w{q}, _sc{q}, _m{q})" for q in live]
        regridded = [f"    _G[{q}] = _phg_regrid(_m{q})" for q in live]
    if fast is None:
        loop = sample_loop(body, terms)
        again = []
    else:
        quick_body, quick_terms, made = fast
        values = made + [f"_v{q}" for q in live]
        checked = quick_body + [f"_v{q} = {term}" for q, term in zip(live, quick_terms)]
        checked += ["_open = " + " | ".join(f"({v} != {v})" for v in values[:32])]
        checked += [f"_open |= {' | '.join(f'({v} != {v})' for v in values[k:k + 32])}" for k in range(32, len(values), 32)]
        checked += ["_opened[_i - _i0] = _open", "_any |= _open"]
        # a sample the fast path left open deposits nothing here (a zero term), and all of its
        # terms in a second loop, with the exact functions: calls stay out of the first loop
        pre += ["_any = False"]
        loop = sample_loop(checked, [f"(0.0 if _open else _v{q})" for q in live])
        again = ["if _any:"] + ["    " + ln for ln in sample_loop(["if not _opened[_i - _i0]:", "    continue"] + body, terms)]
    after = [f"if (_bad == 0 and {fit}) or (_retry and _i1 - _i0 == 1):"] + settled
    after += ["    _f += 1", f"    if _f == {NORMALISE_EVERY}:", "        _phg_normalise(_a, _U)", "        _f = 0",
              "    _i0 = _i1", "    _i1 = min(_i0 + _step, _stop)", "    _retry = False"]
    after += ["elif not _retry:"] + regridded + ["    _retry = True",
              "else:", "    _step = 1", "    _i1 = _i0 + 1", "    _retry = False"]
    out += ["        " + ln for ln in pre + loop + again + after]
    return out
