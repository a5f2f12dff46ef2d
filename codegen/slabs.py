"""The matrix products of the loop strategy's kernels (codegen.looped), compiled once for every
model.  Each has one signature, given here: Numba specialises a function on every integer
literal it is called with (a kernel's slab offsets are literals), and would compile it again for
each call site of each model.

Each product is one BLAS dgemm (SciPy's, the BLAS numba's own np.dot calls) that adds its sign
times the product into the slab it accumulates in (alpha = ±1, beta = 1), reading W or Wᵀ as it
lies: no scratch, no transposed copy, no second pass over the result.
"""
from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

_WS = types.float64[::1]
_I = types.int64
_RUNS = types.Array(types.int64, 2, "C", readonly=True)      # a module constant of the kernels

# dgemm by a symbol of our own, bound at import: a kernel that calls it by name is cached by Numba
# (one that held a ctypes pointer could not be).
llvm.add_symbol("phg_scipy_dgemm", get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
_dgemm = types.ExternalFunction("phg_scipy_dgemm", types.void(*[types.voidptr] * 13))
_N, _T = 78, 84                 # 'N' and 'T'


@numba.njit(types.void(_WS, _I, _I, _I, _I, _I, types.float64, _I, _I, _I, _I, _I), cache=True, nogil=True)
def gemm(ws, ta, tb, m, n, k, alpha, a, lda, b, ldb, c):
    """C += alpha op(A) op(B) on row-major matrices of the workspace at words a, b and c: op(A)
    m x k, op(B) k x n, C m x n; ta, tb: whether A, B are read transposed; lda, ldb: their row
    lengths as they lie.  BLAS is column-major: it computes Cᵀ += alpha op(B)ᵀ op(A)ᵀ."""
    flags = np.empty(2, np.uint8)
    flags[0] = _T if tb else _N
    flags[1] = _T if ta else _N
    ints = np.empty(6, np.int32)
    ints[0], ints[1], ints[2], ints[3], ints[4], ints[5] = n, m, k, ldb, lda, n
    scale = np.empty(2, np.float64)
    scale[0], scale[1] = alpha, 1.0
    _dgemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes, ints[2:].ctypes, scale[0:].ctypes,
           ws[b:].ctypes, ints[3:].ctypes, ws[a:].ctypes, ints[4:].ctypes, scale[1:].ctypes, ws[c:].ctypes,
           ints[5:].ctypes)


# The matrix-product contraction of a tile, y[m] = Σ s x[b] W[a]ᵀ over its runs of blade pairs
# (a, b, m, s, count) (phg.plan.loops.runs), on slabs of the workspace ws given by their offsets:
# x [blades, tile, cin], W [blades, cout, cin], y [ky, tile, cout]; a run's count blades of x, stacked,
# are one matrix of count * tile rows.  The products are of whole tiles, so that a sample's row
# takes the same path through BLAS whichever samples share its tile and however many (a product
# of m rows may round a row differently); the rows past the tile's m samples hold values of rows
# no op reads, and the adjoints' rows past m are zero.
@numba.njit(types.void(_WS, *[_I] * 7, _RUNS), cache=True, nogil=True)
def contract(ws, tile, x, w, y, ky, cin, cout, runs):
    ws[y:y + ky * tile * cout] = 0.0
    for r in range(runs.shape[0]):
        a, b, k, s, count = runs[r, 0], runs[r, 1], runs[r, 2], runs[r, 3], runs[r, 4]
        gemm(ws, 0, 1, count * tile, cout, cin, float(s), x + b * tile * cin, cin, w + a * cout * cin, cin,
             y + k * tile * cout)


@numba.njit(types.void(_WS, *[_I] * 9, _RUNS), cache=True, nogil=True)
def contract_adjoint(ws, m, tile, x, dx, w, dw, dy, cin, cout, runs):
    """The contraction's adjoint: dx[b] += s dy[m] W[a] and (dw >= 0) dW[a] += s dy[m]ᵀ x[b]
    (dx < 0: x takes none; dw < 0: W's terms are taken per sample, or it takes none).  dW sums
    the tile's samples only: a run's blades in one product when the tile is full, else blade by
    blade over its first m rows."""
    for r in range(runs.shape[0]):
        a, b, k, s, count = runs[r, 0], runs[r, 1], runs[r, 2], runs[r, 3], runs[r, 4]
        if dx >= 0:
            gemm(ws, 0, 0, count * tile, cin, cout, float(s), dy + k * tile * cout, cout, w + a * cout * cin, cin,
                 dx + b * tile * cin)
        if dw >= 0 and m == tile:
            gemm(ws, 1, 0, cout, cin, count * tile, float(s), dy + k * tile * cout, cout, x + b * tile * cin, cin,
                 dw + a * cout * cin)
        elif dw >= 0:
            for i in range(count):
                gemm(ws, 1, 0, cout, cin, m, float(s), dy + (k + i) * tile * cout, cout, x + (b + i) * tile * cin, cin,
                     dw + a * cout * cin)



# Runs (to, from, words), in order, of one array into another (or itself: distinct slabs of the
# workspace), from a module constant: a kernel's copies between slabs and sums were each a loop of
# their own, which LLVM unrolled and vectorised one by one (seconds of a wide model's build).
_COPIES = types.Array(types.int64, 2, "C", readonly=True)


@numba.njit(types.void(_WS, _WS, _COPIES), cache=True, nogil=True)
def copy_runs(dst, src, runs):
    for r in range(runs.shape[0]):
        to, at, words = runs[r, 0], runs[r, 1], runs[r, 2]
        for c in range(words):
            dst[to + c] = src[at + c]


@numba.njit(types.void(_WS, _WS, _COPIES), cache=True, nogil=True)
def add_runs(dst, src, runs):
    for r in range(runs.shape[0]):
        to, at, words = runs[r, 0], runs[r, 1], runs[r, 2]
        for c in range(words):
            dst[to + c] += src[at + c]


@numba.njit(types.void(_WS, _WS, types.float64, _COPIES), cache=True, nogil=True)
def divide_runs(dst, src, d, runs):
    for r in range(runs.shape[0]):
        to, at, words = runs[r, 0], runs[r, 1], runs[r, 2]
        for c in range(words):
            dst[to + c] = src[at + c] / d
