"""The matrix products of the loop strategy's kernels (codegen.looped), compiled once for every
model.  Each has one signature, given here: Numba specialises a function on every integer
literal it is called with (a kernel's slab offsets are literals), and would compile it again for
each call site of each model."""
from __future__ import annotations

import numba
import numpy as np
from numba import types

_WS = types.float64[::1]
_I = types.int64
_PAIRS = types.Array(types.int64, 2, "C", readonly=True)     # a module constant of the kernels


# The matrix-product contraction of a tile, y[m] = Σ s x[b] W[a]ᵀ over its blade pairs (a, b, m, s)
# (phg.plan.loops), on slabs of the workspace ws given by their offsets: x [kx, tile, cin],
# W [ka, cout, cin] and its transpose [ka, cin, cout], y [ky, tile, cout].  The products are of
# whole tiles, so that a sample's row takes the same path through BLAS whichever samples share its
# tile and however many (a product of m rows may round a row differently); only the first m rows,
# the tile's samples, are written, and the adjoints' rows past m are zero.
@numba.njit(types.void(_WS, *[_I] * 11, _PAIRS, _I), cache=True, nogil=True)
def contract(ws, m, tile, x, kx, w, wt, ka, y, ky, cin, cout, pairs, scratch):
    xs = ws[x:x + kx * tile * cin].reshape((kx, tile, cin))
    wts = ws[wt:wt + ka * cin * cout].reshape((ka, cin, cout))
    ys = ws[y:y + ky * tile * cout].reshape((ky, tile, cout))
    sc = ws[scratch:scratch + tile * cout].reshape((tile, cout))
    for k in range(ky):
        for t in range(m):
            for c in range(cout):
                ys[k, t, c] = 0.0
    for p in range(pairs.shape[0]):
        a, b, k, s = pairs[p, 0], pairs[p, 1], pairs[p, 2], pairs[p, 3]
        np.dot(xs[b], wts[a], sc)
        for t in range(m):
            for c in range(cout):
                ys[k, t, c] += s * sc[t, c]


@numba.njit(types.void(_WS, *[_I] * 5), cache=True, nogil=True)
def transpose(ws, w, wt, ka, cout, cin):
    """Wᵀ [ka, cin, cout] of the weights W [ka, cout, cin]."""
    for a in range(ka):
        for i in range(cout):
            for j in range(cin):
                ws[wt + (a * cin + j) * cout + i] = ws[w + (a * cout + i) * cin + j]


@numba.njit(types.void(_WS, *[_I] * 12, _PAIRS, _I), cache=True, nogil=True)
def contract_adjoint(ws, m, tile, x, dx, kx, w, dw, ka, dy, ky, cin, cout, pairs, scratch):
    """The contraction's adjoint: dx[b] += s dy[m] W[a] and (dw >= 0) dW[a] += s dy[m]ᵀ x[b]
    (dx < 0: x takes none; dw < 0: W's terms are taken per sample, or it takes none)."""
    dys = ws[dy:dy + ky * tile * cout].reshape((ky, tile, cout))
    ws_ = ws[w:w + ka * cout * cin].reshape((ka, cout, cin))
    xs = ws[x:x + kx * tile * cin].reshape((kx, tile, cin))
    for p in range(pairs.shape[0]):
        a, b, k, s = pairs[p, 0], pairs[p, 1], pairs[p, 2], pairs[p, 3]
        if dx >= 0:
            sc = ws[scratch:scratch + tile * cin].reshape((tile, cin))
            np.dot(dys[k], ws_[a], sc)
            for t in range(m):
                for j in range(cin):
                    ws[dx + (b * tile + t) * cin + j] += s * sc[t, j]
        if dw >= 0:
            sc = ws[scratch:scratch + cout * cin].reshape((cout, cin))
            np.dot(dys[k, :m].T, xs[b, :m], sc)     # (float sums: the tile's samples only)
            for i in range(cout):
                for j in range(cin):
                    ws[dw + a * cout * cin + i * cin + j] += s * sc[i, j]
