"""The kernels of a loop plan (phg.plan.loops): slabs of one workspace, one loop nest or matrix
product per op, tiles of samples; inference, and training in float accumulation.

`code` and `statement` print expressions and assignments (codegen.emit).
"""
from __future__ import annotations

import ast
import builtins
import hashlib
import math
import re

import sympy

from phg.hypergraph import Hypergraph
from phg.plan.buffers import LAID_OUT
from phg.plan.kernel import PREDICT_ARGUMENTS, SLOTS_ARGUMENTS, TRAIN_ARGUMENTS
from phg.plan.loops import TILE, Group, LoopPlan, Op, Slab, runs
from phg.plan.scalar import KERNEL_STATE, array_name, global_name, identifier
from .decorators import njit


class _Names:
    """Where a slab lives: the words of its forward (fw), adjoint (bw) and per-sample adjoint (pw)
    slabs in the workspace _ws, read by flat index."""

    def __init__(self, lp: LoopPlan):
        self.lp = lp

    def fw(self, vid: str) -> int:
        return self.lp.slabs[vid].offset

    def bw(self, vid: str) -> int:
        return self.lp.slabs[vid].adjoint

    def pw(self, vid: str) -> int:
        return self.lp.slabs[vid].per_sample

    def pairs(self, n: int) -> str:
        """The module constant of contraction n's runs of blade pairs (phg.plan.loops.runs)."""
        return global_name("pairs", self.lp.model, str(n))

    def bar(self, vid: str, op: Op, k, c: str = "_c") -> str:
        """Where op's adjoint of its source vid, blade k, channel c goes: its adjoint slab, or in
        exact sums for a boundary slab read by a varying op, that sample's own term."""
        s = self.lp.slabs[vid]
        if op.varying and not s.varying and s.per_sample is not None:
            return _at(s.per_sample, s, k, c=c, varying=True)
        return _at(s.adjoint, s, k, c=c)


def _unravel(shape: tuple[int, ...], flat: str) -> list[str]:
    """The channel indices of the flat channel `flat` of a value of channels `shape`."""
    out = []
    for k in range(len(shape)):
        inner = math.prod(shape[k + 1:])
        idx = flat if inner == 1 else f"{flat} // {inner}"
        out.append(idx if k == 0 else f"({idx}) % {shape[k]}")
    return out


def _at(offset: int, s: Slab, k, t: str = "_t", c: str = "_c", varying: bool | None = None) -> str:
    """The workspace word of a slab at `offset`: blade k, sample t (if it varies) and channel c
    (0 for one channel), laid out [K, TILE, C] or [K, C]."""
    varying = s.varying if varying is None else varying
    cs = s.channels
    rows = TILE if varying else 1
    parts = []
    if isinstance(k, int):
        base = offset + k * rows * cs
    else:
        base = offset
        parts.append(f"{k} * {rows * cs}")
    if varying:
        parts.append(f"{t} * {cs}" if cs > 1 else t)
    if cs > 1 and c != "0":
        parts.append(c if c.isidentifier() else f"({c})")
    # An unsigned index: Numba then drops its negative-index wraparound, which would keep LLVM
    # from vectorising the loop over the channels (7x slower at 32 channels).  A slab that varies
    # with the sample is read through _wv, one that does not through _wi: the same workspace, but
    # the two ranges of its words are disjoint, which a part of nests tells LLVM (codegen.opaque).
    words = "_wv" if varying else "_wi"
    return f"{words}[_phg_index({' + '.join([str(base)] * (base != 0 or not parts) + parts)})]"


def _add_to(fmt, target: str, value: str) -> str:
    """target += value; in a numeric format (fmt, its printer) the addition rounded."""
    return f"{target} += {value}" if fmt is None else f"{target} = {fmt.binary('+', target, value)}"


def _accumulate(fmt, code, target: str, expr, zero: set[str]) -> str:
    """target += expr (a scalar program's expression).  In a numeric format the addition is part
    of the sum: target and expr's terms one fused sum (the quire), rounded once; a target still
    at zero (in `zero`, which this empties of it) simply takes expr."""
    if fmt is None:
        return f"{target} += {code(expr)}"
    if target in zero:
        zero.discard(target)
        return f"{target} = {code(expr)}"
    held = sympy.Symbol("_phg_held")             # a name of the printer's, for the target's text
    return f"{target} = " + re.sub(r"\b_phg_held\b", lambda _: target, code(held + expr))


def _fused_sum(fmt, lefts: list[str], rights: list[str | None]) -> str:
    """The sum of lefts[i] * rights[i] (a right None: lefts[i] alone) in a numeric format: in a
    posit format the quire's (each product exact, the sum rounded once), in float32 a term at a
    time, each product and addition rounded (codegen.printers' rules for a sum)."""
    if not lefts:
        return "0.0"
    if not fmt.fmt.is_posit:
        terms = [a if b is None else fmt.binary("*", a, b) for a, b in zip(lefts, rights)]
        text = terms[0]
        for t in terms[1:]:
            text = fmt.binary("+", text, t)
        return text
    if all(b is None for b in rights):
        if len(lefts) == 1:
            return lefts[0]
        if len(lefts) == 2:
            return fmt.binary("+", *lefts)
        return f"_phg_posit_sum(({', '.join(lefts)},){fmt.tail})"
    return f"_phg_posit_dot(({', '.join(lefts)},), ({', '.join(b or '1.0' for b in rights)},){fmt.tail})"


def loads(g: Hypergraph, lp: LoopPlan, vids: list[str], sample: str | None, fmt=None) -> list[str]:
    """Copy parameters (sample None) or a tile of inputs into their slabs; constants' values.  In a
    numeric format (fmt) samples and constants are rounded to it; parameters are stored in it."""
    names = _Names(lp)
    out = []
    for vid in vids:
        v, s = g.values[vid], lp.slabs[vid]
        body = []
        for k, m in enumerate(s.blades):
            if v.const is not None:
                value = repr(float(v.const[m])) if fmt is None else fmt.constant(v.const[m])
                body.append(f"{_at(names.fw(vid), s, k)} = {value}")
            else:
                idx = ", ".join(([f"{sample} + _t"] if sample else []) + _unravel(s.shape, "_c") + [str(k)])
                load = f"{array_name(v)}[{idx}]"
                body.append(f"{_at(names.fw(vid), s, k)} = {fmt.round(load) if fmt is not None and sample else load}")
        if not body:                            # a value with no blades: nothing to load
            continue
        loop = [f"for _c in range({s.channels}):"] + ["    " + ln for ln in body]
        out += (["for _t in range(_m):"] + ["    " + ln for ln in loop]) if s.varying else loop
    return out


def _nest(op: Op, y: Slab, body: list[str]) -> list[str]:
    loop = [f"for _c in range({y.channels}):"] + ["    " + ln for ln in body or ["pass"]]
    return (["for _t in range(_m):"] + ["    " + ln for ln in loop]) if op.varying else loop


def _element(op: Op, position: int, k: int) -> dict:
    """The blade and channel of the k-th scalar a pointwise op loads from its source at
    `position`: blade k of channel _c, or for a source of P coefficients per channel (bilinear's
    weights) the k-th of channel _c's."""
    per = op.grouped.get(position)
    return {"k": k, "c": "_c"} if per is None else {"k": 0, "c": f"_c * {per} + {k}"}


def _regrade(lp: LoopPlan, op: Op, backward: bool, fmt=None) -> list[str]:
    """linear's weights W [Cout, Cin, P] laid out by grade, [K, Cout * Cin], and back for W's
    adjoint: K of W's P weights per channel pair from `offset` (all of them, but for a fully
    connected bilinear's grade pair)."""
    w, r = lp.slabs[op.sources[0]], lp.slabs[op.target]
    k, per, first = len(r.blades), w.shape[-1], op.edge.attrs.get("offset", 0)
    at = f"_c * {per} + {first} + _k" if first else f"_c * {per} + _k"
    if backward:
        if w.adjoint is None:
            return []
        return [f"for _k in range({k}):", f"    for _c in range({r.channels}):",
                "        " + _add_to(fmt, _at(w.adjoint, w, 0, c=at), _at(r.adjoint, r, '_k'))]
    return [f"for _k in range({k}):", f"    for _c in range({r.channels}):",
            f"        {_at(r.offset, r, '_k')} = {_at(w.offset, w, 0, c=at)}"]


def _group(g, lp: LoopPlan, grp: Group, backward: bool, code, statement, fmt=None) -> list[str]:
    """One loop nest of a group of pointwise ops (phg.plan.loops.Group): each op's channel code
    in turn (no two bodies share a name), its values passed on in registers _r<op>_<blade> and
    stored only where another nest reads them.  The adjoint recomputes the group's values, then
    runs each op's adjoint in reverse, its target's adjoint in _g<op>_<blade> (seeded from the
    slab where one is kept)."""
    names = _Names(lp)
    made: dict[str, int] = {}                 # value -> the op of this group that made it

    def loads(n: int) -> list[str]:
        op = lp.ops[n]
        out = []
        for i, (vid, syms) in enumerate(zip(op.sources, op.body.loads)):
            if g.values[vid].const is not None or vid in op.sources[:i]:
                continue
            if vid in made:
                out += [f"{sym} = _r{made[vid]}_{k}" for k, sym in enumerate(syms)]
            else:
                out += [f"{sym} = {_at(names.fw(vid), lp.slabs[vid], **_element(op, i, k))}" for k, sym in enumerate(syms)]
        return out + [statement(sym, x) for sym, x in op.body.lines]

    body = []
    for n in grp.ops:
        op = lp.ops[n]
        y = lp.slabs[op.target]
        body += loads(n) + [f"_r{n}_{k} = {code(x)}" for k, x in enumerate(op.body.outs)]
        if not backward and not y.internal:
            body += [f"{_at(y.offset, y, k)} = _r{n}_{k}" for k in range(len(y.blades))]
        made[op.target] = n
    if backward:
        zero: set[str] = set()                    # registers still at zero (in a format, the first term is taken)
        for n in grp.ops:
            y = lp.slabs[lp.ops[n].target]
            kept = not y.internal and y.adjoint is not None
            body += [f"_g{n}_{k} = {_at(y.adjoint, y, k) if kept else '0.0'}" for k in range(len(y.blades))]
            zero |= set() if kept else {f"_g{n}_{k}" for k in range(len(y.blades))}
        for n in reversed(grp.ops):
            op = lp.ops[n]
            body += [f"{seed} = _g{n}_{k}" for k, seed in enumerate(op.body.seeds) if seed is not None]
            body += [statement(sym, x) for sym, x in op.body.backward]
            for i, (vid, bars) in enumerate(zip(op.sources, op.body.bars)):
                x = lp.slabs[vid]
                for k, bar in enumerate(bars):
                    if bar == 0:
                        continue
                    if vid in made and made[vid] < n:
                        body.append(_accumulate(fmt, code, f"_g{made[vid]}_{k}", bar, zero))
                    elif x.adjoint is not None:
                        body.append(_accumulate(fmt, code, names.bar(vid, op, **_element(op, i, k)), bar, zero))
    y = lp.slabs[lp.ops[grp.ops[0]].target]
    return _nest(lp.ops[grp.ops[0]], y, body)


def _blade_map(x: Slab, y: Slab) -> list[tuple[int, int]]:
    """(target blade index, source blade index) of the blades both have (supports may narrow)."""
    return [(k, x.blades.index(m)) for k, m in enumerate(y.blades) if m in x.blades]


def _reduce(lp: LoopPlan, op: Op, backward: bool, fmt=None) -> list[str]:
    names = _Names(lp)
    (src,), dst = op.sources, op.target
    x, y = lp.slabs[src], lp.slabs[dst]
    t = ["for _t in range(_m):"] if op.varying else []
    pad = "    " * len(t)
    out = list(t)
    for ky, kx in _blade_map(x, y):
        if not backward and fmt is not None:     # the channels' fused sum
            terms = [_at(names.fw(src), x, kx, c=str(c)) for c in range(x.channels)]
            out += [pad + f"{_at(names.fw(dst), y, ky, c='0')} = {_fused_sum(fmt, terms, [None] * len(terms))}"]
        elif not backward:
            out += [pad + "_r = 0.0", pad + f"for _c in range({x.channels}):",
                    pad + f"    _r += {_at(names.fw(src), x, kx)}", pad + f"{_at(names.fw(dst), y, ky, c='0')} = _r"]
        elif x.adjoint is not None:
            out += [pad + f"for _c in range({x.channels}):",
                    pad + "    " + _add_to(fmt, _at(names.bw(src), x, kx), _at(names.bw(dst), y, ky, c='0'))]
    return out if len(out) > len(t) else []


def _select(lp: LoopPlan, op: Op, backward: bool, fmt=None) -> list[str]:
    names = _Names(lp)
    (src,), dst = op.sources, op.target
    x, y = lp.slabs[src], lp.slabs[dst]
    body = []
    for ky, kx in _blade_map(x, y):
        if not backward:
            body.append(f"{_at(names.fw(dst), y, ky)} = {_at(names.fw(src), x, kx, c=f'{op.start} + _c')}")
        elif x.adjoint is not None:
            body.append(_add_to(fmt, _at(names.bw(src), x, kx, c=f'{op.start} + _c'), _at(names.bw(dst), y, ky)))
    return _nest(op, y, body) if body else []


def _select_runs(lp: LoopPlan, op: Op, backward: bool) -> list[tuple[int, int, int]]:
    """A select of a value that does not vary with the sample, as runs (to, from, words) of the
    workspace: forward its channels' blades, backward their adjoints (added)."""
    (src,), dst = op.sources, op.target
    x, y = lp.slabs[src], lp.slabs[dst]
    if not backward:
        return [(y.offset + ky * y.channels, x.offset + kx * x.channels + op.start, y.channels)
                for ky, kx in _blade_map(x, y)]
    if x.adjoint is None:
        return []
    return [(x.adjoint + kx * x.channels + op.start, y.adjoint + ky * y.channels, y.channels)
            for ky, kx in _blade_map(x, y)]


def _contract(lp: LoopPlan, n: int, op: Op, backward: bool, fmt=None) -> list[str]:
    names = _Names(lp)
    wid, xid = op.sources
    w, x, y = lp.slabs[wid], lp.slabs[xid], lp.slabs[op.target]
    cin, cout = x.channels, y.channels
    if op.blas:
        return _contract_blas(names, n, op, w, x, y, backward)
    if fmt is not None:
        return _contract_fused(names, op, w, x, y, backward, fmt)
    t = ["for _t in range(_m):"] if op.varying else []
    pad = "    " * len(t)
    wi = "_i * " + str(cin) + " + _j"
    xref = lambda k: _at(names.fw(xid), x, k, c="_j")  # noqa: E731
    wref = lambda k: _at(names.fw(wid), w, k, c=wi)  # noqa: E731
    out = list(t) + [pad + f"for _i in range({cout}):"]
    if not backward:
        out += [pad + f"    _y{m} = 0.0" for m in range(len(y.blades))]
        out += [pad + f"    for _j in range({cin}):"]
        out += [pad + f"        _y{m} += {s} * {wref(a)} * {xref(b)}" for a, b, m, s in op.pairs] or [pad + "        pass"]
        out += [pad + f"    {_at(names.fw(op.target), y, m, c='_i')} = _y{m}" for m in range(len(y.blades))]
        return out
    body = []
    for a, b, m, s in op.pairs:
        dy = _at(names.bw(op.target), y, m, c="_i")
        if w.adjoint is not None:
            body.append(f"{names.bar(wid, op, a, c=wi)} += {s} * {dy} * {xref(b)}")
        if x.adjoint is not None:
            body.append(f"{names.bar(xid, op, b, c='_j')} += {s} * {dy} * {wref(a)}")
    if not body:
        return []
    return out + [pad + f"    for _j in range({cin}):"] + [pad + "        " + ln for ln in body]


def _contract_fused(names: _Names, op: Op, w: Slab, x: Slab, y: Slab, backward: bool, fmt) -> list[str]:
    """A contraction in a numeric format: each output a fused sum over the input channels and
    blade pairs; backward, each weight's and each input's adjoint one fused sum of what its slab
    holds and its terms."""
    wid, xid = op.sources
    cin, cout = x.channels, y.channels
    t = ["for _t in range(_m):"] if op.varying else []
    pad = "    " * len(t)
    wref = lambda a, i, j: _at(names.fw(wid), w, a, c=f"{i} * {cin} + {j}")  # noqa: E731
    signed = lambda text, sign: text if sign > 0 else f"(-{text})"  # noqa: E731
    out = []
    if not backward:
        body = []
        for m in range(len(y.blades)):
            pairs = [(a, b, sign) for a, b, mm, sign in op.pairs if mm == m]
            lefts = [signed(wref(a, "_i", j), sign) for j in range(cin) for a, b, sign in pairs]
            rights = [_at(names.fw(xid), x, b, c=str(j)) for j in range(cin) for a, b, sign in pairs]
            body.append(f"{_at(names.fw(op.target), y, m, c='_i')} = {_fused_sum(fmt, lefts, rights)}")
        return t + [pad + f"for _i in range({cout}):"] + [pad + "    " + ln for ln in body]
    dy = lambda m, i: _at(names.bw(op.target), y, m, c=str(i))  # noqa: E731
    if w.adjoint is not None:                 # W[a] of channels (i, j): its pairs' dy (i) x (j)
        body = []
        for a in range(len(w.blades)):
            pairs = [(b, m, sign) for aa, b, m, sign in op.pairs if aa == a]
            if pairs:
                bar = names.bar(wid, op, a, c=f"_i * {cin} + _j")
                body.append(f"{bar} = " + _fused_sum(fmt, [bar] + [signed(dy(m, "_i"), sign) for b, m, sign in pairs],
                                                     [None] + [_at(names.fw(xid), x, b, c="_j") for b, m, sign in pairs]))
        if body:
            out += t + [pad + f"for _i in range({cout}):", pad + f"    for _j in range({cin}):"]
            out += [pad + "        " + ln for ln in body]
    if x.adjoint is not None:                 # x[b] of channel j: its pairs' dy (i) W (i, j), over i
        body = []
        for b in range(len(x.blades)):
            pairs = [(a, m, sign) for a, bb, m, sign in op.pairs if bb == b]
            if pairs:
                bar = names.bar(xid, op, b, c="_j")
                body.append(f"{bar} = " + _fused_sum(fmt, [bar] + [signed(dy(m, i), sign) for i in range(cout) for a, m, sign in pairs],
                                                     [None] + [wref(a, i, "_j") for i in range(cout) for a, m, sign in pairs]))
        if body:
            out += t + [pad + f"for _j in range({cin}):"] + [pad + "    " + ln for ln in body]
    return out


def products(lp: LoopPlan) -> list[int]:
    """The matrix-product contractions, whose blade pairs are module constants."""
    return [n for n, op in enumerate(lp.ops) if op.kind == "contract" and op.blas]


def _contract_blas(names: _Names, n: int, op: Op, w: Slab, x: Slab, y: Slab, backward: bool) -> list[str]:
    """A call of codegen.slabs' contraction (its blade pairs a module constant, _phg_pairs_<n>)."""
    pairs = names.pairs(n)
    if not backward:
        return [f"_phg_contract(_ws, {TILE}, {x.offset}, {w.offset}, {y.offset}, {len(y.blades)}, {x.channels}, "
                f"{y.channels}, {pairs})"]
    dx = x.adjoint if x.adjoint is not None else -1
    dw = w.adjoint if w.adjoint is not None and not names.lp.exact else -1
    if dx < 0 and dw < 0:
        return []
    return [f"_phg_contract_adjoint(_ws, _m, {TILE}, {x.offset}, {dx}, {w.offset}, {dw}, {y.adjoint}, "
            f"{x.channels}, {y.channels}, {pairs})"]


def op_lines(g, lp: LoopPlan, n: int, op: Op, backward: bool, code, statement, fmt=None) -> list[str]:
    if op.kind == "regrade":
        return _regrade(lp, op, backward, fmt)
    if op.kind == "reduce":
        return _reduce(lp, op, backward, fmt)
    if op.kind == "select":
        return _select(lp, op, backward, fmt)
    return _contract(lp, n, op, backward, fmt)


def _zero(lo_hi: tuple[int, int]) -> list[str]:
    lo, hi = lo_hi
    return [f"_ws[{lo}:{hi}] = 0.0"] if hi > lo else []


def _function(name: str, args: list[str], doc: str, body: list[str]) -> str:
    return "\n".join([njit(), f"def {name}({', '.join(args)}):",
                      f"    {ascii(doc)}"] + ["    " + ln for ln in body or ["pass"]])


# Lines of ops per function the kernels call.  Numba's analyses of a function (reaching
# definitions, variable scopes) grow faster than its length, so a kernel of thousands of lines
# compiles for minutes; a function costs about 0.2 s of its own, so a few hundred lines each.
PART_LINES = 400
_BUILTINS = frozenset(dir(builtins))


def _statements(lines: list[str]) -> list[list[str]]:
    """Lines as their top-level statements (a statement's indented lines stay with it)."""
    out: list[list[str]] = []
    for ln in lines:
        if out and ln.startswith(" "):
            out[-1].append(ln)
        else:
            out.append([ln])
    return out


class Module:
    """The module-level parts of one model's loop plan (the blade pairs of its matrix products,
    the functions of PART_LINES its ops are packed into) and the code of its ops."""

    def __init__(self, g: Hypergraph, lp: LoopPlan, code, statement, fmt=None):
        self.g, self.lp, self.code, self.statement = g, lp, code, statement
        self.fmt = fmt                          # a numeric format's printer (codegen.printers), or None
        self.functions: dict[str, str] = {}
        self._called: dict[str, list[str]] = {}    # a part's lines -> what the kernels run: its call
        self.opaque: list[tuple[str, str]] = []     # (symbol, function) of the parts called by address
        self._tables: dict[tuple[str, int], str] = {}   # int64 tables (runs of copies) -> module constant
        self.parts = 0
        # Parts made while lazy are plain functions, compiled with the kernel that calls them on
        # its first call, not bound as the model is first instantiated (inputs_source's)
        self.lazy = False
        names = _Names(lp)
        for n in products(lp):
            rows = ", ".join(f"({a}, {b}, {m}, {s}, {k})" for a, b, m, s, k in runs(lp.ops[n].pairs))
            self.functions[names.pairs(n)] = (f"{names.pairs(n)} = _phg_np.array([{rows}], "
                                              "dtype=_phg_np.int64).reshape(-1, 5)")

    def ops(self, varying: bool, backward: bool, only, deposits: bool = True, after: dict | None = None) -> list[str]:
        """The nests of the groups whose ops vary with the sample (or not) and pass `only`; a run
        of channel selections of parameters, one table of copies.  Backward, without `deposits`
        no exact sum is deposited, and `after` (group -> lines) runs lines once a group is done."""
        out: list[str] = []
        done: list[str] = []                    # lines already packed into parts
        copies: list[tuple[int, int, int]] = []
        order = list(enumerate(self.lp.groups))
        for i, grp in reversed(order) if backward else order:
            n = grp.ops[0]
            op = self.lp.ops[n]
            if op.varying != varying or not only(op) or (backward and not op.trained):
                continue
            if backward and varying:            # the adjoint slabs whose lives start here (phg.plan.loops)
                out += [f"_ws[{s.adjoint}:{s.adjoint + s.words}] = 0.0" for s in self.lp.slabs.values()
                        if s.born == i]
                out += [f"_ws[{s.per_sample}:{s.per_sample + len(s.blades) * TILE * s.channels}] = 0.0"
                        for s in self.lp.slabs.values() if s.per_sample_born == i]
            if op.kind == "select" and not op.varying:
                copies += _select_runs(self.lp, op, backward)
                continue
            out += self._copies(copies, backward)
            copies = []
            out += (_group(self.g, self.lp, grp, backward, self.code, self.statement, self.fmt) if grp.pointwise else
                    op_lines(self.g, self.lp, n, op, backward, self.code, self.statement, self.fmt))
            if backward and deposits and self.lp.deposit(op) == "adjoint":        # its dy's words are free from here
                # the deposits run in the kernel (they add to its count of terms set aside); the
                # ops before them stay in parts of their own
                done += self.outline(out) + product_deposits(self, op)
                out = []
            out += (after or {}).get(i, [])
        return done + self.outline(out + self._copies(copies, backward))

    def _copies(self, runs: list[tuple[int, int, int]], backward: bool) -> list[str]:
        """The selects of parameters' channels: the workspace runs copied (backward, added; in a
        numeric format word by word, each addition rounded)."""
        if backward and self.fmt is not None:
            return [ln for to, at, words in runs for ln in
                    (f"for _q in range({words}):", "    " + _add_to(self.fmt, f"_ws[{to} + _q]", f"_ws[{at} + _q]"))]
        return self.runs("_phg_add_runs(_ws, _ws, {})" if backward else "_phg_copy_runs(_ws, _ws, {})", runs)

    def runs(self, call: str, runs: list[tuple[int, int, int]]) -> list[str]:
        """`call` (of codegen.slabs' copies) of the runs (to, from, words) as a module constant."""
        return [call.format(self.table(runs, 3))] if runs else []

    def table(self, rows: list[tuple[int, ...]], width: int) -> str:
        """The module constant of an int64 table of `rows`, each `width` long (one per distinct table)."""
        text = ", ".join(f"({', '.join(str(v) for v in r)})" for r in rows)
        if (text, width) not in self._tables:      # one constant for the same rows (inference, training)
            name = self._tables[text, width] = global_name("runs", self.lp.model, str(len(self._tables)))
            self.functions[name] = f"{name} = _phg_np.array([{text}], dtype=_phg_np.int64).reshape(-1, {width})"
        return self._tables[text, width]

    def load(self, vids: list[str], sample: str | None) -> list[str]:
        return self.outline(loads(self.g, self.lp, vids, sample, self.fmt))

    def outline(self, lines: list[str]) -> list[str]:
        """`lines` packed, statement by statement, into functions of about PART_LINES lines that
        read and write the workspace (and the arrays they name); the calls of those functions."""
        out: list[str] = []
        chunk: list[str] = []
        for stmt in _statements(lines) + [None]:
            # a nest and a call on the whole workspace go to parts of their own (codegen.opaque)
            if chunk and (stmt is None or len(chunk) + len(stmt) > PART_LINES or _calls(stmt) != _calls(chunk)):
                out += self._part(chunk)
                chunk = []
            if stmt is not None:
                chunk += stmt
        return out

    def _part(self, lines: list[str]) -> list[str]:
        """One function of `lines`, shared by every kernel that runs the same lines (inference and
        training run the same forward ops, a step's epilogue the slots' invariant ones)."""
        text = "\n".join(lines)
        if text in self._called:
            return self._called[text]
        names = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Name)]
        stored = {n.id for n in names if isinstance(n.ctx, ast.Store)}
        if stored & KERNEL_STATE:          # code that assigns a kernel's own variable stays in it
            self._called[text] = lines
            return lines
        args = sorted({n.id for n in names if isinstance(n.ctx, ast.Load)} - stored - _BUILTINS,
                      key=lambda a: (a not in _WORKSPACE, a))
        args = [a for a in args if not a.startswith("_phg_")]
        name = global_name("part", self.lp.model, str(self.parts))
        self.parts += 1
        doc = f"Ops of {self.lp.model}'s loop plan, called by its kernels."
        if set(args) <= {*_WORKSPACE, "_m"} and not self.lazy:
            nest = "_ws" not in args
            symbol, self.functions[name] = _opaque(name, doc, lines, nest)
            self.opaque.append((symbol, f"{name}_c", nest))
            self._called[text] = [f"{name}(_ws.ctypes, _ws.ctypes, _ws.size, {'_m' if '_m' in args else '0'})"]
        else:
            self.functions[name] = _function(name, args, doc, lines)
            self._called[text] = [f"{name}({', '.join(args)})"]
        return self._called[text]


# The workspace's names: the array, and its varying and invariant slabs' words (_at).
_WORKSPACE = ("_ws", "_wv", "_wi")


def _calls(lines: list[str]) -> bool:
    """Whether lines call a function on the whole workspace (a matrix product, a table of copies)."""
    return any(re.search(r"\b_ws\b", ln) for ln in lines)


def _opaque(name: str, doc: str, body: list[str], nest: bool) -> tuple[str, str]:
    """A part that reads and writes only the workspace: its symbol, and its source as a C
    function's body (`<name>_c`, compiled and bound by codegen.opaque) with the kernels' name for
    it, `name`, the external function of that symbol: they call it by address.  A nest reads the
    slabs through its two arguments; a part that calls a function on the workspace views it whole."""
    if nest:
        fn = [f"def {name}_c(_wv, _wi, _phg_length, _m):", f"    {ascii(doc)}"]
    else:
        fn = [f"def {name}_c(_phg_words, _phg_unused, _phg_length, _m):", f"    {ascii(doc)}",
              "    _ws = _phg_carray(_phg_words, _phg_length)", "    _wv = _ws", "    _wi = _ws"]
    fn += ["    " + ln for ln in body]
    # Named by its text here; the module names it by its kernel digest too (codegen.kernel_cache).
    symbol = "phg_part_" + hashlib.sha256("\n".join(fn).encode()).hexdigest()[:24]
    return symbol, "\n".join(fn) + f"\n\n\n{name} = _phg_external({symbol!r})"


def predict_source(mod: Module, name: str, inputs: list[str], params: list[str], outputs: list[str]) -> str:
    """The inference kernel."""
    g, lp = mod.g, mod.lp
    names = _Names(lp)
    cone = {u for o in outputs for u in g.cone(g.outputs[o])}
    wanted = lambda op: op.edge.target in cone  # noqa: E731
    consts = [v for v in lp.slabs if lp.slabs[v].const and v in cone]
    setup = mod.load(params + consts, None) + mod.ops(False, False, wanted)
    tile = mod.load(inputs, "_start") + mod.ops(True, False, wanted)
    for o in outputs:
        vid = g.outputs[o]
        s = lp.slabs[vid]
        for k in range(len(s.blades)):
            idx = ", ".join(["_start + _t"] + _unravel(s.shape, "_c") + [str(k)])
            tile += ["for _t in range(_m):", f"    for _c in range({s.channels}):",
                     f"        _out_{identifier(o)}[{idx}] = {_at(names.fw(vid), s, k)}"]
    args = [array_name(g.values[v]) for v in inputs + params] + [f"_out_{identifier(o)}" for o in outputs]
    doc = (f"Inference of {g.name} for the samples _from to _to, in tiles of {TILE}: channels as loops and "
           "matrix products over slabs of the share's workspace _tiles[_share], its forward slabs (phg.plan.loops).")
    body = ["_ws = _tiles[_share]", "_wv = _ws", "_wi = _ws", "_m = 0"] + setup
    body += [f"for _start in range(_from, _to, {TILE}):", f"    _m = min({TILE}, _to - _start)"]
    body += ["    " + ln for ln in tile]
    return _function(name, args + list(PREDICT_ARGUMENTS["loops"]), doc, body)


def _epilogue(mod: Module, grads: list[str]) -> list[str]:
    """The step's loss and gradient from the slots' sums: the boundary slabs' summed adjoints
    carried back to the parameters through the invariant ops, once per step.  It runs in slot 0's
    workspace, after the slots: the invariant ops' values there are the ones slot 0 computed
    from the same parameters (no tile writes them), so they are not computed again."""
    g, lp = mod.g, mod.lp
    out = ["_ws = _tiles[0]", "_wv = _ws", "_wi = _ws", "_m = 0"]
    out += _zero(lp.invariant_adjoint_range)
    if lp.exact:
        out += ["_phg_close(_acc, _rng, _dep, _grid)"]         # the totals: read side by side before (codegen.runtime)
    else:                                         # a fixed order over the slots: reproducible too
        out += ["_sums[:] = 0", "for _slot in range(_slots):", "    _sums += _acc[_slot]"]
    fmt = mod.fmt
    if fmt is None:
        out.append("_loss[0] = _sums[0] / _n")
        out += mod.runs("_phg_divide_runs(_ws, _sums, _n, {})", [(at, row, words) for row, at, words in _boundary(lp)])
    else:                                         # totals read rounded to odd (codegen.runtime): rounded once more
        mean = lambda t: fmt.binary("/", fmt.round(t), "_phg_np.float64(_n)")  # noqa: E731
        out.append(f"_loss[0] = {mean('_sums[0]')}")
        for row, at, words in _boundary(lp):
            out += [f"for _q in range({words}):", f"    _ws[{at} + _q] = {mean(f'_sums[{row} + _q]')}"]
    out += mod.ops(False, True, lambda op: op.trained)
    for p, grad in zip(g.params, grads):
        s = lp.slabs.get(p)
        if s is None or s.adjoint is None:
            out.append(f"{grad}[...] = 0.0")
            continue
        k = len(s.blades)
        out += [f"_flat = {grad}.reshape({k * s.channels})", f"for _c in range({s.channels}):"]
        out += [f"    _flat[_c * {k} + {q}] = {_at(s.adjoint, s, q)}" for q in range(k)]
    return out


def _boundary(lp: LoopPlan) -> list[tuple[int, int, int]]:
    """(row, word, words): each boundary slab's adjoint, [blades, channels] from its word of the
    workspace, is the sums' rows from its first."""
    return [(lp.first_row[vid], lp.slabs[vid].adjoint, len(lp.slabs[vid].blades) * lp.slabs[vid].channels)
            for vid in lp.boundary]


def product_deposits(mod: "Module", op: Op, parts: frozenset = frozenset()) -> list[str]:
    """The exact deposits of a matrix product's weight terms from its dy and x (codegen.deposits),
    blade by blade of its weights; those of the blades in `parts` take in the weights' per-sample
    part."""
    lp = mod.lp
    w, x, y = (lp.slabs[v] for v in (op.sources[0], op.sources[1], op.target))
    out = []
    for a in range(len(w.blades)):
        pairs = [(b, m, sign) for aa, b, m, sign in op.pairs if aa == a]
        if not pairs:
            continue
        add = w.per_sample + a * TILE * w.channels if a in parts else -1
        out.append(f"_phg_deposit_products({_STATE_ARGS}, {mod.table(pairs, 3)}, "
                   f"{lp.first_row[op.sources[0]] + a * w.channels}, {y.adjoint}, {x.offset}, {add}, 0, _m, "
                   f"{y.channels}, {x.channels}, {TILE}, {lp.scratch})")
    return out


# a deposit's pass, grid, digits, ledger, workspace, the row's locks and the thread's share
_STATE_ARGS = "_D, _G, _a, _U, _ws, _L, _share"


def _products_of(lp: LoopPlan, vid: str) -> list[Op]:
    """The matrix products whose weights' terms a boundary slab's sums take, one term per sample each."""
    return [op for op in lp.ops if lp.deposit(op) and op.sources[0] == vid]


def terms_per_sample(lp: LoopPlan) -> int:
    """The most terms one sample gives one exact sum of a loop plan's step: a boundary slab's
    weights take one from each matrix product of theirs (codegen.rounds sizes its rounds by it)."""
    return max([1] + [len(_products_of(lp, vid)) for vid in lp.boundary])


def _deposits(mod: Module) -> list[str]:
    """The tile's exact deposits at its end (codegen.deposits): the loss, each boundary slab's
    per-sample adjoint, the weight terms of the matrix products deposited there (phg.plan.loops:
    those of weights with a per-sample part, which the first product's terms take in; the others
    went in as their adjoints ran).  The pass's bookkeeping runs between rounds of tiles
    (codegen.rounds)."""
    g, lp = mod.g, mod.lp
    out = [f"_phg_deposit_rows({_STATE_ARGS}, 0, {lp.slabs[g.loss].offset}, 0, _m, 1)"]
    for vid in lp.boundary:
        s = lp.slabs[vid]
        if s.per_sample is None:
            continue
        taken: set[int] = set()                  # a blade's per-sample part goes with its first product's terms
        for op in _products_of(lp, vid):
            blades = {a for a, _, _, _ in op.pairs}
            out += product_deposits(mod, op, frozenset(blades - taken))
            taken |= blades
        for a in range(len(s.blades)):
            if a not in taken:
                out.append(f"_phg_deposit_rows({_STATE_ARGS}, {lp.first_row[vid] + a * s.channels}, "
                           f"{s.per_sample + a * TILE * s.channels}, 0, _m, {s.channels})")
    return out


def train_source(mod: Module, name: str, slot: str, slots: str, inputs: list[str]) -> str:
    """The slot function (a slot's samples, or with exact sums a range of them, in tiles: forward,
    loss, adjoint; its sums in the row _a), the slots kernel, and the step's loss and gradient from
    the sums.  Exact sums go to one row, shared by the threads: the slots kernel then runs the
    tiles _from to _to of a round (codegen.rounds), and a thread's workspace takes the invariant
    values once a pass."""
    g, lp = mod.g, mod.lp
    params = list(g.params)
    data = [array_name(g.values[v]) for v in inputs + params]
    trained = lambda op: op.trained  # noqa: E731
    consts = [v for v in lp.slabs if lp.slabs[v].const]
    invariant = mod.load([p for p in params if p in lp.slabs] + consts, None) + mod.ops(False, False, lambda op: True)
    body = ["_wv = _ws", "_wi = _ws", "_m = 0"]
    if lp.exact:                                  # only the epilogue writes the invariant adjoints
        body += ["if _layout:"] + ["    " + ln for ln in invariant or ["pass"]]
    else:
        body += invariant + _zero(lp.invariant_adjoint_range)
        body += ["_a[:] = 0", "_loss = 0.0", "_lo = _slot * _n // _slots", "_hi = (_slot + 1) * _n // _slots"]
    loss = lp.slabs[g.loss]
    tile = [f"_m = min({TILE}, _hi - _start)"]
    tile += mod.load(inputs, "_start") + mod.ops(True, False, trained)
    tile += [f"_ws[{loss.adjoint}:{loss.adjoint + loss.words}] = 0.0", "for _t in range(_m):",
             f"    {_at(loss.adjoint, loss, 0)} = 1.0"]
    if not lp.exact:
        tile += [f"    _loss += {_at(loss.offset, loss, 0)}"]
    tile += mod.ops(True, True, trained)
    if lp.exact:
        tile += _deposits(mod)
    body += [f"for _start in range(_lo, _hi, {TILE}):"] + ["    " + ln for ln in tile]
    if lp.exact:
        doc = (f"The samples _lo to _hi of {g.name}: their loss and adjoint sums deposited into the row _a, which "
               f"the threads share, in tiles of {TILE}; _layout: the workspace takes the invariant values first.")
        args = ["_n", "_lo", "_hi", "_layout", "_a", "_G", "_D", "_U", "_ws", "_L", "_share"]
    else:
        body += ["_a[0] = _loss"] + mod.runs("_phg_copy_runs(_a, _ws, {})", _boundary(lp))
        doc = f"One slot of the samples of {g.name}: their loss and adjoint sums into the row _a, in tiles of {TILE}."
        args = ["_n", "_slot", "_slots", "_a", "_G", "_D", "_U", "_ws"]
    parts = [_function(slot, data + args, doc, body)]
    if lp.exact:
        doc = (f"The tiles _from to _to of {g.name}'s n samples, the share _share of a round (codegen.rounds), "
               "deposited into the one exact row.")
        flag = f"_locks[0, {LAID_OUT} + _share]"
        share = [f"_layout = {flag} == 0", f"{flag} = 1",
                 f"{slot}({', '.join(data)}{', ' if data else ''}_n, _from * {TILE}, min(_to * {TILE}, _n), _layout, "
                 "_acc[0], _grid[0], _dep[0], _rng[0], _tiles[_share], _locks[0], _share)"]
    else:
        doc = f"The slots _from to _to of {g.name}'s _slots slots of samples, the share _share of them."
        share = ["for _slot in range(_from, _to):",
                 f"    {slot}({', '.join(data)}{', ' if data else ''}_n, _slot, _slots, _acc[_slot], _grid[0], "
                 "_dep[0], _rng[0], _tiles[_share])"]
    parts.append(_function(slots, data + list(SLOTS_ARGUMENTS), doc, share))
    grads = [f"_grad_{identifier(g.values[p].name)}" for p in params]
    args = data + list(TRAIN_ARGUMENTS) + grads
    doc = f"Loss and gradient of {g.name} from the slots' sums over n samples ({'exact' if lp.exact else 'float'} accumulation)."
    parts.append(_function(name, args, doc, _epilogue(mod, grads)))
    return "\n\n\n".join(parts)


def inputs_source(mod: Module, name: str, inputs: list[str]) -> str:
    """The kernel of the samples _from to _to's input adjoints (codegen.vjp): per tile, forward,
    loss and adjoint as a step runs them but with no sum, each input's adjoint slab copied to
    `_bar_<input>` once the last group that adds to it is done (its words are another slab's
    from there: phg.plan.loops places adjoints by their lives).  The gradient of each sample's
    loss, not of the batch mean; threads run shares of a batch side by side, as predict's."""
    mod.lazy = True                     # a model's VJP program calls it: no other model pays for its parts
    try:
        return _inputs_source(mod, name, inputs)
    finally:
        mod.lazy = False


def _inputs_source(mod: Module, name: str, inputs: list[str]) -> str:
    g, lp = mod.g, mod.lp
    params = list(g.params)
    data = [array_name(g.values[v]) for v in inputs + params]
    bars = {v: f"_bar_{identifier(g.values[v].name)}" for v in inputs}
    trained = lambda op: op.trained  # noqa: E731
    consts = [v for v in lp.slabs if lp.slabs[v].const]
    last: dict[int, list[str]] = {}                  # backward, the last group adding to an input's adjoint
    for v, bar in bars.items():
        s = lp.slabs[v]
        readers = [i for i, grp in enumerate(lp.groups) for n in grp.ops
                   if lp.ops[n].trained and lp.ops[n].varying and v in lp.ops[n].sources]
        if s.adjoint is None or not readers:
            continue
        for k in range(len(s.blades)):
            idx = ", ".join(["_start + _t"] + _unravel(s.shape, "_c") + [str(k)])
            last.setdefault(min(readers), []).extend(
                ["for _t in range(_m):", f"    for _c in range({s.channels}):",
                 f"        {bar}[{idx}] = {_at(s.adjoint, s, k)}"])
    body = ["_ws = _tiles[_share]", "_wv = _ws", "_wi = _ws", "_m = 0"]
    body += mod.load([p for p in params if p in lp.slabs] + consts, None) + mod.ops(False, False, lambda op: True)
    body += _zero(lp.invariant_adjoint_range)         # (float: a step's parameter adjoints add up there)
    loss = lp.slabs[g.loss]
    tile = [f"_m = min({TILE}, _to - _start)"]
    tile += mod.load(inputs, "_start") + mod.ops(True, False, trained)
    tile += [f"_ws[{loss.adjoint}:{loss.adjoint + loss.words}] = 0.0", "for _t in range(_m):",
             f"    {_at(loss.adjoint, loss, 0)} = 1.0"]
    tile += mod.ops(True, True, trained, deposits=False, after=last)
    body += [f"for _start in range(_from, _to, {TILE}):"] + ["    " + ln for ln in tile]
    doc = f"Per-sample input adjoints of {g.name}'s loss for the samples _from to _to, in tiles of {TILE}."
    return _function(name, data + list(bars.values()) + list(PREDICT_ARGUMENTS["loops"]), doc, body)


def population_source(mod: Module, name: str, candidate: str, inputs: list[str]) -> str:
    """optimizer cma's population kernel of a model in the loop plan (codegen.population): the
    candidate function (one parameter set's batch-mean loss: the training kernels' forward ops,
    in tiles, the loss summed as mean_lines sums it) and the kernel that runs it for the
    candidates _from to _to, each parameter's row of its stack, in its share's workspace."""
    from .population import mean_lines

    g, lp = mod.g, mod.lp
    params = list(g.params)
    data = [array_name(g.values[v]) for v in inputs + params]
    consts = [v for v in lp.slabs if lp.slabs[v].const]
    trained = lambda op: op.trained  # noqa: E731
    loss = lp.slabs[g.loss]
    start, add, end = mean_lines(_at(loss.offset, loss, 0), mod.fmt)
    body = ["_wv = _ws", "_wi = _ws", "_m = 0"] + mod.load([p for p in params if p in lp.slabs] + consts, None)
    body += mod.ops(False, False, lambda op: True) + start
    tile = [f"_m = min({TILE}, _n - _start)"] + mod.load(inputs, "_start") + mod.ops(True, False, trained)
    tile += ["for _t in range(_m):"] + ["    " + ln for ln in add]
    body += [f"for _start in range(0, _n, {TILE}):"] + ["    " + ln for ln in tile] + end + ["return _pmean"]
    doc = f"The batch-mean loss of {g.name} for one parameter set over the samples 0.._n, in tiles of {TILE}."
    parts = [_function(candidate, data + ["_n", "_ws"], doc, body)]
    rows = [array_name(g.values[v]) for v in inputs] + [f"{array_name(g.values[p])}[_k]" for p in params]
    doc = (f"The batch-mean losses of {g.name} for the candidates _from to _to, each parameter's row _k of "
           "its stack, in the workspace _tiles[_share] (LANGUAGE §12).")
    body = ["_ws = _tiles[_share]", "for _k in range(_from, _to):",
            f"    _losses[_k] = {candidate}({', '.join(rows + ['_n', '_ws'])})"]
    parts.append(_function(name, data + ["_n", "_losses", "_tiles", "_share", "_from", "_to"], doc, body))
    return "\n\n\n".join(parts)
