"""The loop kernels' exact deposits: a tile's terms onto their sums' grids, a row at a time.

A loop plan's exact step has a term per sample for each of its sums (the loss, every coefficient
of a boundary slab: codegen.looped), tens of thousands of them in a wide layer's weights.  Each
row of terms (one sample's terms of consecutive sums) is deposited in one loop over the sums that
the compiler vectorises: the term scaled onto its sum's grid and split into two int64 level sums
(codegen.accumulate), and a term the grid cannot keep exactly (above its top, below its lowest
magnitude, or not finite) masked out and flagged.  A row with such a term then deposits those
alone, each exactly into the sum's digits (add_double), so no pass is ever summed again: the
result is the exact sum whatever the grids were.

A matrix product's weights take their per-sample term, Σ s dy[m] x[b] over the product's blade
pairs of one weight blade, for one output channel and every input channel at a time, into a row of
scratch that the same loop then deposits.

The loops are C functions with noalias pointer arguments (codegen.opaque.NoAliasCFunc) and
unsigned indices (no negative-index wraparound), compiled once for every model and bound to
symbols at import: without either LLVM deposits one term at a time (about 4 ns a term, against
about 1 ns vectorised).  The kernels call them through deposit_rows and deposit_products, which
take arrays.

The threads of a step deposit into one row (phg.plan.buffers): a block of sums is locked while a
thread deposits into it (codegen.locks), and the digits, where set-aside terms take room from the
whole row, under a lock of their own, taken after a block's and never before.  Threads running
the same deposits at once start at different blocks of them.  The grids do not move while the
threads deposit; the pass's bookkeeping (settling, new grids) runs between rounds of tiles, when
none does (codegen.rounds).
"""
from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import carray, types, uint64

from phg.plan.buffers import ASIDE, DIGITS_LOCK, LOCK_HEADER, LOCK_STRIDE, LOCK_SUMS

from .accumulate import ABS, DIGITS, LEDGER, MAGIC, MAGIC_BITS, TWO52, add_double, kept, with_aside
from .caches import kernels_cached_for_this_user
from .locks import lock, unlock
from .opaque import NoAliasCFunc

_F = types.CPointer(types.float64)
_Q = types.CPointer(types.int64)
_I = types.int64


@numba.njit(cache=True, inline="always")
def _row(hi, lo, grid, terms, base, q0, width):
    """terms[base + c] onto sum q0 + c, c < width; whether one of them did not fit its grid."""
    bad = False
    for c in range(width):
        x = terms[uint64(base + c)]
        q = uint64(q0 + c)
        b = np.float64(x).view(np.int64) & ABS
        on = kept(b, grid[q]) & (b != 0)          # a zero adds nothing (and on no grid, a NaN)
        y = x * grid[q]
        t = y + MAGIC
        h = np.float64(t).view(np.int64) - MAGIC_BITS
        w = np.float64((y - (t - MAGIC)) * TWO52 + MAGIC).view(np.int64) - MAGIC_BITS
        hi[q] += h if on else 0
        lo[q] += w if on else 0
        bad |= not (on | (b == 0))
    return bad


@numba.njit(cache=True, inline="always")
def _aside(acc, ranges, grid, terms, base, q0, width):
    """The terms _row masked out, each into its sum's digits, the largest of them kept in the sum's
    ledger entry (whence settling moves the grid: codegen.accumulate); how many."""
    n = 0
    for c in range(width):
        x = terms[uint64(base + c)]
        q = uint64(q0 + c)
        b = np.float64(x).view(np.int64) & ABS
        if not ((b == 0) | kept(b, grid[q])):
            add_double(acc, ranges, q, x)
            ranges[q] = with_aside(ranges[q], b)
            n += 1
    return n


@numba.njit(cache=True, inline="always")
def _views(hip, lop, gridp, wsp, accp, rangesp, sums, columns, words):
    """The views of a pass's level sums and grids, of the workspace, and of the row's digit columns
    and ledger, from the C functions' pointers."""
    return (carray(hip, sums), carray(lop, sums), carray(gridp, sums), carray(wsp, words),
            carray(accp, (DIGITS, columns)), carray(rangesp, sums + LEDGER))


# Each C function does either half of a deposit: its terms onto their grids (`aside` 0: whether one
# did not fit), or those terms alone into the digits (`aside` 1, under the digits' lock: how many).
def _rows_c(hip, lop, gridp, wsp, accp, rangesp, q0, at, t0, t1, width, stride, sums, columns, words, aside):
    hi, lo, grid, ws, acc, ranges = _views(hip, lop, gridp, wsp, accp, rangesp, sums, columns, words)
    n = 0
    for t in range(t0, t1):
        if aside:
            n += _aside(acc, ranges, grid, ws, at + t * stride, q0, width)
        else:
            n |= _row(hi, lo, grid, ws, at + t * stride, q0, width)
    return n


@numba.njit(cache=True, inline="always")
def _terms(ws, term, pairs, npairs, dy, x, add, i, t, cout, cin, tile):
    """Sample t's terms of a matrix product's weights of output channel i, one per input channel,
    into `term`: Σ s dy[m][t, i] x[b][t, j] over the pairs (b, m, s), plus (add >= 0) the
    per-sample part."""
    for p in range(npairs):
        f = pairs[3 * p + 2] * ws[dy + pairs[3 * p + 1] * tile * cout + t * cout + i]
        xs = x + pairs[3 * p] * tile * cin + t * cin
        if p > 0:
            for j in range(cin):
                term[uint64(j)] += f * ws[uint64(xs + j)]
        elif add >= 0:                       # the per-sample part first, as the sample's own sum
            at = add + t * cout * cin + i * cin
            for j in range(cin):
                term[uint64(j)] = ws[uint64(at + j)] + f * ws[uint64(xs + j)]
        else:
            for j in range(cin):
                term[uint64(j)] = f * ws[uint64(xs + j)]


def _products_c(hip, lop, gridp, wsp, accp, rangesp, scratchp, pairsp, npairs, q, dy, x, add, i, t0, t1, cout, cin,
                tile, sums, columns, words, aside):
    hi, lo, grid, ws, acc, ranges = _views(hip, lop, gridp, wsp, accp, rangesp, sums, columns, words)
    term, pairs = carray(scratchp, cin), carray(pairsp, 3 * npairs)
    n = 0
    for t in range(t0, t1):
        _terms(ws, term, pairs, npairs, dy, x, add, i, t, cout, cin, tile)
        if aside:
            n += _aside(acc, ranges, grid, term, 0, q, cin)
        else:
            n |= _row(hi, lo, grid, term, 0, q, cin)
    return n


_ROWS = types.int64(_Q, _Q, _F, _F, _Q, _Q, *[_I] * 10)
_PRODUCTS = types.int64(_Q, _Q, _F, _F, _Q, _Q, _F, _Q, *[_I] * 15)


def _bind(symbol: str, function, signature) -> types.ExternalFunction:
    with kernels_cached_for_this_user():
        compiled = NoAliasCFunc(function, signature)
        compiled.enable_caching()
        compiled.compile()
    llvm.add_symbol(symbol, compiled.address)
    _KEEP.append(compiled)
    return types.ExternalFunction(symbol, signature.return_type(*[types.voidptr if isinstance(a, types.CPointer) else a
                                                                  for a in signature.args]))


_KEEP: list = []                # the compiled functions, alive as long as the process: kernels call their code
_rows_call = _bind("phg_deposit_rows", _rows_c, _ROWS)
_products_call = _bind("phg_deposit_products", _products_c, _PRODUCTS)

_STATE = types.int64[:, ::1]
_WS = types.float64[::1]
_LOCKS = types.int64[::1]
_PAIRS = types.Array(types.int64, 2, "C", readonly=True)      # a module constant of the kernels


@numba.njit(cache=True, inline="always")
def _first(share, count):
    """Where the thread running share `share` starts a round of `count` blocks of sums: spread
    over them (the golden ratio's multiples), so that threads running the same deposits at once
    seldom wait for each other's locks."""
    return int(((share * 0.6180339887498949) % 1.0) * count)


@numba.njit(cache=True, inline="always")
def _lock_span(locks, q0, q1, take):
    """The locks of the blocks of sums q0 to q1 - 1 taken (in ascending order, so that two
    threads never wait for each other) or released."""
    for b in range(q0 // LOCK_SUMS, (q1 - 1) // LOCK_SUMS + 1):
        if take:
            lock(locks.ctypes, LOCK_HEADER + b * LOCK_STRIDE)
        else:
            unlock(locks.ctypes, LOCK_HEADER + b * LOCK_STRIDE)


@numba.njit(types.int64(_STATE, _WS, _STATE, types.int64[::1], _WS, _LOCKS, *[_I] * 6), cache=True, nogil=True)
def deposit_rows(state, grid, acc, ranges, ws, locks, share, q0, at, t0, t1, width):
    """Samples t0 to t1 of a slab of the workspace at word `at`, [tile, width], deposited onto the
    sums q0 to q0 + width of the pass `state` (codegen.accumulate) on `grid`, the terms no grid
    keeps into acc (with its ledger `ranges`), a block of sums at a time under its lock (the row
    is shared by the threads; `share`: the caller's); returns how many terms went to the digits,
    which it also adds to the round's count (locks[ASIDE])."""
    if width <= 0 or t1 <= t0:
        return 0
    first, last = q0 // LOCK_SUMS, (q0 + width - 1) // LOCK_SUMS
    blocks = last - first + 1
    start = _first(share, blocks)
    aside = 0
    for k in range(blocks):
        b = first + (start + k) % blocks
        s0, s1 = max(q0, b * LOCK_SUMS), min(q0 + width, (b + 1) * LOCK_SUMS)
        _lock_span(locks, s0, s1, True)
        row = (state[0].ctypes, state[1].ctypes, grid.ctypes, ws.ctypes, acc.ctypes, ranges.ctypes, s0, at + s0 - q0,
               t0, t1, s1 - s0, width, state.shape[1], acc.shape[1], ws.size)
        if _rows_call(*row, 0):
            lock(locks.ctypes, DIGITS_LOCK)
            n = _rows_call(*row, 1)
            locks[ASIDE] += n
            unlock(locks.ctypes, DIGITS_LOCK)
            aside += n
        _lock_span(locks, s0, s1, False)
    return aside


@numba.njit(types.int64(_STATE, _WS, _STATE, types.int64[::1], _WS, _LOCKS, _I, _PAIRS, *[_I] * 10), cache=True,
            nogil=True)
def deposit_products(state, grid, acc, ranges, ws, locks, share, pairs, q0, dy, x, add, t0, t1, cout, cin, tile,
                     scratch):
    """A matrix product's weight terms of samples t0 to t1: for output channel i and input channel
    j, Σ s dy[m][t, i] x[b][t, j] over `pairs` (b, m, s), at least one, plus (add >= 0) the
    per-sample slab at `add`, [tile, cout * cin], deposited onto the sums q0 + i cin + j as
    deposit_rows does, an output channel's sums at a time under their locks; a row of terms is
    made in the workspace's cin words at `scratch`, which no slab uses."""
    if t1 <= t0:
        return 0
    start = _first(share, cout)
    words, term = ws[:scratch], ws[scratch:]
    aside = 0
    for k in range(cout):
        i = (start + k) % cout
        q = q0 + i * cin
        _lock_span(locks, q, q + cin, True)
        row = (state[0].ctypes, state[1].ctypes, grid.ctypes, words.ctypes, acc.ctypes, ranges.ctypes, term.ctypes,
               pairs.ctypes, pairs.shape[0], q, dy, x, add, i, t0, t1, cout, cin, tile, state.shape[1], acc.shape[1],
               scratch)
        if _products_call(*row, 0):
            lock(locks.ctypes, DIGITS_LOCK)
            n = _products_call(*row, 1)
            locks[ASIDE] += n
            unlock(locks.ctypes, DIGITS_LOCK)
            aside += n
        _lock_span(locks, q, q + cin, False)
    return aside
