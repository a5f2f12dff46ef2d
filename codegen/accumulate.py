"""Exact sums of doubles, for gradients that are bit-identical in any sample order.

A long accumulator: the value sum(x) * 2^1074 is an integer, kept as DIGITS signed 64-bit
digits of weight 2^(32 d).  Integer addition is associative, so the digits, and the double they
round to, do not depend on the order of the terms or on how they were split across slots.

Terms reach it in blocks of BLOCK (per slot and quantity): a block is pre-rounded onto a fixed
exponent grid 2^g, g from the block's largest magnitude, by the float trick t = y + 1.5 * 2^52
(which rounds y = x 2^-g to an integer whose bits are t's low bits, read without frexp): two such
levels give every term's bits down to 2^(g - 52) as two int64s, summed in registers (and
vectorisable), and added to the digits once per block.  A term with bits below the grid (more
than 2^52 times smaller than the block's largest) adds its remainder exactly, from its own bits.
Carries are propagated (normalise) after a block that needed that, and every NORMALISE_EVERY
blocks; the quire obligation (verifier.memory) checks that no digit can overflow in between.

The training kernels give every slot (a fixed share of the batch, run by whichever thread) its
own accumulator row and block buffer, and read the total once per step.
"""
from __future__ import annotations

import math

import numba
import numpy as np

# The sizes are the memory plan's and the quire obligation's (verifier.memory).
from verifier.memory import BLOCK, DIGITS, NORMALISE_EVERY, SLOTS  # noqa: F401

_MASK32 = 0xFFFFFFFF
_MAGIC = 6755399441055744.0                        # 1.5 * 2^52: y + _MAGIC rounds y to an integer
_MAGIC_BITS = 0x4338000000000000                   # its bits; (t's bits - these) is that integer
_TWO52 = 4503599627370496.0


@numba.njit(cache=True, inline="always")
def _add_bits(digits, m, q, sign):
    """digits += (-1)^sign m 2^(q - 1074) for 0 <= m < 2^62 (sign 0 or -1): three pieces below
    2^32, each added to its digit."""
    d = q >> 5
    s = q & 31
    lo = (m << s) & _MASK32
    mid = (m >> (32 - s)) & _MASK32
    hi = (m >> 32) >> (32 - s)
    digits[d] += (lo ^ sign) - sign
    digits[d + 1] += (mid ^ sign) - sign
    digits[d + 2] += (hi ^ sign) - sign


@numba.njit(cache=True, inline="always")
def exact_add(digits, x):
    """digits += x, exactly (x finite)."""
    b = np.float64(x).view(np.int64)
    e = (b >> 52) & 0x7FF
    normal = np.int64(e != 0)
    m = (b & 0xFFFFFFFFFFFFF) | (normal << 52)      # x = +-m * 2^(e - normal - 1074)
    _add_bits(digits, m, e - normal, b >> 63)


@numba.njit(cache=True, inline="always")
def _add_int(digits, v, g):
    """digits += v 2^g, exactly, for |v| < 2^62 and g >= -1074."""
    sign = v >> 63
    _add_bits(digits, (v ^ sign) - sign, g + 1074, sign)


# The top digit only ever takes carries (far below 2^61); a non-finite term marks it with 2^62.
NONFINITE = 1 << 62


@numba.njit(cache=True)
def block_add(terms, count, rows):
    """rows[q] += the first `count` terms of terms[q], exactly, for every quantity q; returns
    whether some term had bits below its block's grid (then the rows must be normalised)."""
    below = False
    for q in range(terms.shape[0]):
        block = terms[q]
        b0 = b1 = b2 = b3 = 0.0                    # four running maxima: no chain of dependent max
        for j in range(0, count - 3, 4):
            b0 = max(b0, abs(block[j]))
            b1 = max(b1, abs(block[j + 1]))
            b2 = max(b2, abs(block[j + 2]))
            b3 = max(b3, abs(block[j + 3]))
        for j in range(count - count % 4, count):
            b0 = max(b0, abs(block[j]))
        big = max(max(b0, b1), max(b2, b3))
        if big == 0.0:
            continue
        if not math.isfinite(big):                 # an inf or a NaN: the sum is NaN
            rows[q, DIGITS - 1] = NONFINITE
            continue
        e = ((np.float64(big).view(np.int64) >> 52) & 0x7FF) - 1022    # big < 2^e
        g = max(e - 50, -1022)                     # |x| 2^-g < 2^50; the grid's 2^(g-52) >= 2^-1074
        scale = math.ldexp(1.0, -g)
        tiny = math.ldexp(1.0, g - 52)             # below the grid's unit x 2^-g may not be exact
        s1 = np.int64(0)
        s2 = np.int64(0)
        inexact = False
        for j in range(count):                     # (straight-line: vectorised by LLVM)
            x = block[j]
            y = x * scale                          # exact (a power of two) unless |x| < tiny
            t = y + _MAGIC
            r = (y - (t - _MAGIC)) * _TWO52        # exact: the part below 1, scaled to 2^52
            t2 = r + _MAGIC
            s1 += np.float64(t).view(np.int64) - _MAGIC_BITS
            s2 += np.float64(t2).view(np.int64) - _MAGIC_BITS
            inexact |= (r != t2 - _MAGIC) | (abs(x) < tiny)
        if not inexact:
            _add_int(rows[q], s1, g)
            _add_int(rows[q], s2, g - 52)
        else:                                      # bits below 2^(g - 52), or a NaN: term by term
            below = True
            for j in range(count):
                if not math.isfinite(block[j]):
                    rows[q, DIGITS - 1] = NONFINITE
                    break
                exact_add(rows[q], block[j])
    return below


@numba.njit(cache=True)
def _normalise(digits):
    """Carries propagated: every digit in [0, 2^32) but the top one, which holds the sign."""
    for d in range(digits.shape[0] - 1):
        carry = digits[d] >> 32
        digits[d] -= carry << 32
        digits[d + 1] += carry


@numba.njit(cache=True)
def normalise(rows):
    """Every accumulator of one slot ([quantities, DIGITS]) normalised."""
    for q in range(rows.shape[0]):
        _normalise(rows[q])


@numba.njit(cache=True)
def exact_total(acc, q, work):
    """The double nearest to the exact sum of accumulator q over every slot of acc
    [slots, quantities, DIGITS] (round to nearest, ties to even).  `work` is DIGITS int64s."""
    work[:] = 0
    for s in range(acc.shape[0]):
        row = acc[s, q]
        if abs(row[DIGITS - 1]) >= NONFINITE // 2:     # marked (carries may have moved it a little)
            return math.nan
        for d in range(DIGITS - 1):
            work[d] += row[d] & _MASK32              # split, so that many slots cannot overflow
            work[d + 1] += row[d] >> 32
        work[DIGITS - 1] += row[DIGITS - 1]          # only carries reach the top digit
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
