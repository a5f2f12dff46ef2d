"""exp in arithmetic alone, so that LLVM vectorises the loops that call it.

`math.exp` is a call into the C library, which LLVM cannot vectorise (it has no vector form of it
without Intel's SVML): a loop nest of a loop plan that gates by a sigmoid ran one sample-channel at
a time.  This exp reduces x by the nearest multiple k of ln 2 (Cody and Waite's two-part ln 2, so
k ln2_hi is exact), sums the Taylor series of e^r to degree 13 (|r| <= ln2 / 2: the first term
dropped is below 6e-18 of the result), and scales by 2^k in two halves, so that results in the
subnormal range round once and those past the largest double are infinite.  It is within one ulp
of the C library's exp over the whole range (tests/test_loops.py); NaN stays NaN, exp(-inf) = 0,
exp(inf) = inf.  Integer k comes from the bits of x log2(e) + 1.5 * 2^52 rather than from a
conversion, which AVX2 has no vector instruction for.
"""
from __future__ import annotations

import numba
import numpy as np

_ROUND = 6755399441055744.0                     # 1.5 * 2^52: adding it rounds to an integer
_ROUND_BITS = int(np.float64(_ROUND).view(np.int64))
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01            # fdlibm's: its low 32 bits are zero
_LN2_LO = 1.90821492927058770002e-10
_LARGEST = 709.8                                # e^709.8 is past the largest double
_SMALLEST = -745.2                              # e^-745.2 rounds to 0
# 1/n! for n = 13 down to 2
_C13, _C12, _C11, _C10 = 1 / 6227020800.0, 1 / 479001600.0, 1 / 39916800.0, 1 / 3628800.0
_C9, _C8, _C7, _C6, _C5 = 1 / 362880.0, 1 / 40320.0, 1 / 5040.0, 1 / 720.0, 1 / 120.0
_C4, _C3, _C2 = 1 / 24.0, 1 / 6.0, 0.5


@numba.njit(cache=True, nogil=True, error_model="numpy")
def exp(x):
    xc = x if x < _LARGEST else _LARGEST            # NaN takes the bound here, and is put back below
    xc = xc if xc > _SMALLEST else _SMALLEST
    shifted = xc * _LOG2E + _ROUND
    k = shifted - _ROUND
    ki = np.float64(shifted).view(np.int64) - _ROUND_BITS
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = _C13 * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + 1.0
    p = p * r + 1.0
    half = ki >> 1
    y = p * np.int64((half + 1023) << 52).view(np.float64) * np.int64((ki - half + 1023) << 52).view(np.float64)
    return y if x == x else x
