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
"""
from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import carray, types, uint64

from .accumulate import ABS, DIGITS, LEDGER, MAGIC, MAGIC_BITS, TWO52, add_double, kept
from .caches import kernels_cached_for_this_user
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
def _aside(acc, ranges, top, grid, terms, base, q0, width):
    """The terms _row masked out, each into its sum's digits, the largest of them kept as the
    pass's `top` (whence settling moves the grid); how many."""
    n = 0
    for c in range(width):
        x = terms[uint64(base + c)]
        q = uint64(q0 + c)
        b = np.float64(x).view(np.int64) & ABS
        if not ((b == 0) | kept(b, grid[q])):
            add_double(acc, ranges, q, x)
            top[q] = max(top[q], b)
            n += 1
    return n


@numba.njit(cache=True, inline="always")
def _pass(hip, lop, topp, gridp, accp, rangesp, sums, columns):
    """The views of a pass's state (its level sums, largest term set aside, grid) and of the row's
    digit columns and ledger, from the C functions' pointers."""
    return (carray(hip, sums), carray(lop, sums), carray(topp, sums), carray(gridp, sums),
            carray(accp, (DIGITS, columns)), carray(rangesp, sums + LEDGER))


def _rows_c(hip, lop, topp, gridp, wsp, accp, rangesp, q0, at, t0, t1, width, sums, columns, words):
    hi, lo, top, grid, acc, ranges = _pass(hip, lop, topp, gridp, accp, rangesp, sums, columns)
    ws = carray(wsp, words)
    aside = 0
    for t in range(t0, t1):
        if _row(hi, lo, grid, ws, at + t * width, q0, width):
            aside += _aside(acc, ranges, top, grid, ws, at + t * width, q0, width)
    return aside


def _products_c(hip, lop, topp, gridp, wsp, scratchp, accp, rangesp, pairsp, npairs, q0, dy, x, add,
                t0, t1, cout, cin, tile, sums, columns, words):
    hi, lo, top, grid, acc, ranges = _pass(hip, lop, topp, gridp, accp, rangesp, sums, columns)
    ws, term, pairs = carray(wsp, words), carray(scratchp, cin), carray(pairsp, 3 * npairs)
    aside = 0
    for i in range(cout):
        q = q0 + i * cin
        for t in range(t0, t1):
            for p in range(npairs):
                f = pairs[3 * p + 2] * ws[dy + pairs[3 * p + 1] * tile * cout + t * cout + i]
                xs = x + pairs[3 * p] * tile * cin + t * cin
                if p > 0:
                    for j in range(cin):
                        term[uint64(j)] += f * ws[uint64(xs + j)]
                elif add >= 0:                   # the per-sample part first, as the sample's own sum
                    at = add + t * cout * cin + i * cin
                    for j in range(cin):
                        term[uint64(j)] = ws[uint64(at + j)] + f * ws[uint64(xs + j)]
                else:
                    for j in range(cin):
                        term[uint64(j)] = f * ws[uint64(xs + j)]
            if _row(hi, lo, grid, term, 0, q, cin):
                aside += _aside(acc, ranges, top, grid, term, 0, q, cin)
    return aside


_ROWS = types.int64(_Q, _Q, _Q, _F, _F, _Q, _Q, *[_I] * 8)
_PRODUCTS = types.int64(_Q, _Q, _Q, _F, _F, _F, _Q, _Q, _Q, *[_I] * 13)


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
_PAIRS = types.Array(types.int64, 2, "C", readonly=True)      # a module constant of the kernels


@numba.njit(types.int64(_STATE, _WS, _STATE, types.int64[::1], _WS, *[_I] * 5), cache=True, nogil=True)
def deposit_rows(state, grid, acc, ranges, ws, q0, at, t0, t1, width):
    """Samples t0 to t1 of a slab of the workspace at word `at`, [tile, width], deposited onto the
    sums q0 to q0 + width of the pass `state` (codegen.accumulate) on `grid`, the terms no grid
    keeps into acc (with its ledger `ranges`); returns how many of those."""
    return _rows_call(state[0].ctypes, state[1].ctypes, state[2].ctypes, grid.ctypes, ws.ctypes, acc.ctypes,
                      ranges.ctypes, q0, at, t0, t1, width, state.shape[1], acc.shape[1], ws.size)


@numba.njit(types.int64(_STATE, _WS, _STATE, types.int64[::1], _WS, _PAIRS, *[_I] * 10), cache=True, nogil=True)
def deposit_products(state, grid, acc, ranges, ws, pairs, q0, dy, x, add, t0, t1, cout, cin, tile, scratch):
    """A matrix product's weight terms of samples t0 to t1: for output channel i and input channel
    j, Σ s dy[m][t, i] x[b][t, j] over `pairs` (b, m, s), at least one, plus (add >= 0) the
    per-sample slab at `add`, [tile, cout * cin], deposited onto the sums q0 + i cin + j as
    deposit_rows does; a row of terms is made in the workspace's cin words at `scratch`, which no
    slab uses."""
    return _products_call(state[0].ctypes, state[1].ctypes, state[2].ctypes, grid.ctypes, ws[:scratch].ctypes,
                          ws[scratch:].ctypes, acc.ctypes, ranges.ctypes, pairs.ctypes, pairs.shape[0], q0, dy, x, add,
                          t0, t1, cout, cin, tile, state.shape[1], acc.shape[1], scratch)
