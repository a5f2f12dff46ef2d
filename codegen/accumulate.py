"""Exact sums of doubles, for gradients that are bit-identical in any sample order.

A long accumulator: the value sum(x) * 2^1074 is an integer, kept as DIGITS signed 64-bit
digits of weight 2^(32 d).  A double is split at a 32-bit boundary into three pieces below 2^32
and each is added to its digit, so no bit is ever rounded away.  A digit takes at most
CAPACITY such additions before it could overflow; sums are normalised (carries propagated)
only when they are read.  Integer addition is associative, so the digits, and the double they
round to, do not depend on the order of the terms or on how they were split across slots.

The training kernels give every slot (a fixed share of the batch, run by whichever thread) its
own accumulator row, and read the total once per step.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from verifier.memory import CAPACITY, DIGITS, SLOTS  # noqa: F401

# The sizes are the memory plan's (verifier.memory): DIGITS digits of (sum * 2^1074), of which a
# finite double reaches digit 65, two more take the carries of sums far beyond the largest
# double and the top one is only ever written by carries; each addition puts less than 2^32
# into a digit, so CAPACITY = 2^31 - 1 of them cannot reach 2^63; batches are split into SLOTS
# slots, each with its own accumulator, whatever the thread count, so memory is static and
# `accumulate float` sums are reproducible too.

_MASK32 = 0xFFFFFFFF


@numba.njit(cache=True, inline="always")
def exact_add(digits, x):
    """digits += x, exactly (x finite)."""
    b = np.float64(x).view(np.int64)
    e = (b >> 52) & 0x7FF
    normal = np.int64(e != 0)
    m = (b & 0xFFFFFFFFFFFFF) | (normal << 52)      # x = +-m * 2^(e - normal - 1074)
    q = e - normal
    d = q >> 5
    s = q & 31
    sign = b >> 63                                   # 0 or -1: (v ^ sign) - sign negates
    lo = (m << s) & _MASK32
    mid = (m >> (32 - s)) & _MASK32
    hi = (m >> 32) >> (32 - s)
    digits[d] += (lo ^ sign) - sign
    digits[d + 1] += (mid ^ sign) - sign
    digits[d + 2] += (hi ^ sign) - sign


@numba.njit(cache=True)
def _normalise(digits):
    """Carries propagated: every digit in [0, 2^32) but the top one, which holds the sign."""
    for d in range(digits.shape[0] - 1):
        carry = digits[d] >> 32
        digits[d] -= carry << 32
        digits[d + 1] += carry


@numba.njit(cache=True)
def exact_total(acc, q, work):
    """The double nearest to the exact sum of accumulator q over every slot of acc
    [slots, quantities, DIGITS] (round to nearest, ties to even).  `work` is DIGITS int64s."""
    work[:] = 0
    for s in range(acc.shape[0]):
        row = acc[s, q]
        for d in range(DIGITS - 1):                  # the top digit is never written by exact_add
            work[d] += row[d] & _MASK32              # split, so that many slots cannot overflow
            work[d + 1] += row[d] >> 32
    _normalise(work)
    negative = work[DIGITS - 1] < 0
    if negative:
        for d in range(DIGITS):
            work[d] = -work[d]
        _normalise(work)
    h = DIGITS - 1
    while h >= 0 and work[h] == 0:
        h -= 1
    if h < 0:
        return 0.0
    top = work[h]
    p = 0
    while top >> (p + 1):
        p += 1                                       # leading bit of the top digit
    window = np.uint64(top) << np.uint64(63 - p)
    if h >= 1:
        window |= np.uint64(work[h - 1]) << np.uint64(31 - p)
    sticky = False
    if h >= 2:
        window |= np.uint64(work[h - 2]) >> np.uint64(p + 1)
        sticky = (work[h - 2] & ((1 << (p + 1)) - 1)) != 0
    for d in range(h - 3, -1, -1):
        sticky = sticky or work[d] != 0
    mant = window >> np.uint64(11)
    rest = window & np.uint64(0x7FF)
    if rest > 0x400 or (rest == 0x400 and (sticky or (mant & np.uint64(1)))):
        mant += np.uint64(1)
    # window's bit 63 is bit 32 h + p of the integer, so mant's bit 0 has weight 2^(32 h + p - 52).
    value = math.ldexp(float(mant), 32 * h + p - 52 - 1074)
    return -value if negative else value
