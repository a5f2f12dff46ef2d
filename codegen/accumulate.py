"""Exact sums of doubles, for gradients that are bit-identical in any sample order.

A long accumulator: the value sum(x) * 2^1074 is an integer, kept as DIGITS signed 64-bit
digits of weight 2^(32 d).  Integer addition is associative, so the digits, and the double they
round to, do not depend on the order of the terms or on how they were split across slots.

Terms reach it in chunks of CHUNK samples (per slot and quantity), deposited in registers
onto a fixed exponent grid 2^g per quantity, kept from chunk to chunk and step to step: y = x 2^(51 - g)
is split by the float trick t = y + 1.5 * 2^52 (which rounds y to an integer whose bits are t's
low bits, read without frexp) into an integer and a remainder in units of 2^-52, two int64 sums
that the compiler vectorises, added to the digits once per chunk (settle).  The pass is exact when
every term lies in [2^(g - 51), 2^g) or is zero (`fits` and the pass's low check; the largest
magnitude is tracked as bits).  Otherwise the chunk is summed again on a grid from its largest
term, and if its terms span more than 51 binades, sample by sample, each on a grid of its own
terms, which is always exact.  A NaN or an infinity marks the sum NaN.  Carries are propagated
(normalise) every NORMALISE_EVERY passes; the quire obligation (verifier.memory) checks that no
digit can overflow in between.

The training kernels give every slot (a fixed share of the batch, run by whichever thread) its
own accumulator row and grid, and read the total once per step.
"""
from __future__ import annotations

import math

import numba
import numpy as np

# The sizes are the kernel plan's (phg.plan.buffers), which the quire obligation checks (verifier.memory).
from phg.plan.buffers import CHUNK, DIGITS, NORMALISE_EVERY, SLOTS, many_sums  # noqa: F401

_MASK32 = 0xFFFFFFFF
# The deposit's constants, printed into the training kernels (codegen.training).
MAGIC = 6755399441055744.0                         # 1.5 * 2^52: y + MAGIC rounds y to an integer
MAGIC_BITS = 0x4338000000000000                    # its bits; (t's bits - these) is that integer
TWO52 = 4503599627370496.0
ABS = 0x7FFFFFFFFFFFFFFF                           # a double's bits without the sign


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
def _add_int(digits, v, g):
    """digits += v 2^g, exactly, for |v| < 2^62 and g >= -1074."""
    sign = v >> 63
    _add_bits(digits, (v ^ sign) - sign, g + 1074, sign)


# The top digit only ever takes carries (far below 2^61); a non-finite term marks it with 2^62.
NONFINITE = 1 << 62
_INF_BITS = 0x7FF0000000000000
_LOWEST = -971                                     # the finest grid: its 2^(g - 103) is 2^-1074
_HEADROOM = 3                                      # binades above a regridded chunk's largest term


@numba.njit(cache=True, inline="always")
def _grid_of(scale):
    """g of a grid scale 2^(51 - g)."""
    return 51 - (((np.float64(scale).view(np.int64) >> 52) & 0x7FF) - 1023)


@numba.njit(cache=True)
def regrid(top):
    """The grid scale 2^(51 - g) for terms whose largest magnitude has the bits `top`: all of
    them below 2^(g - _HEADROOM), so that the next chunk's rarely outgrow it; NaN when one is not
    finite."""
    if top >= _INF_BITS:
        return math.nan
    e = ((top >> 52) & 0x7FF) - 1022 + _HEADROOM   # |x| < 2^(e - headroom)
    return math.ldexp(1.0, 51 - min(max(e, _LOWEST), 1024))


@numba.njit(cache=True)
def low_bits(scale):
    """The bits of the smallest magnitude the grid keeps exactly, 2^(g - 51) (0 on the finest
    grid, which keeps every double; anything for an unknown grid, which `fits` refuses)."""
    if not math.isfinite(scale):
        return np.int64(0)
    g = _grid_of(scale)
    return np.int64(0) if g == _LOWEST else np.float64(math.ldexp(1.0, g - 51)).view(np.int64)


@numba.njit(cache=True)
def fits(scale, top):
    """Whether terms of largest magnitude `top` (bits) were below the grid's 2^g."""
    return math.isfinite(scale) and top < np.float64(math.ldexp(1.0, _grid_of(scale))).view(np.int64)


@numba.njit(cache=True)
def settle(digits, high, low, scale, top):
    """digits += the two level sums of a pass (units 2^(g - 51) and 2^(g - 103)), or the mark of
    a non-finite term."""
    if top >= _INF_BITS:
        digits[DIGITS - 1] = NONFINITE
    elif top != 0:
        g = _grid_of(scale)
        _add_int(digits, high, g - 51)
        _add_int(digits, low, g - 103)


# A model with many sums keeps each pass's state in an array, [rows, 4] int64 per slot (the two
# level sums, the largest magnitude and the grid's lowest magnitude, as bits): one call per term
# in the per-sample code instead of a dozen statements and three loop-carried scalars, which
# Numba's compiler passes handle in time that grows faster than linearly (see codegen.training).
@numba.njit(cache=True)
def begin_pass(state, grid):
    for q in range(state.shape[0]):
        state[q, 0] = 0
        state[q, 1] = 0
        state[q, 2] = 0
        state[q, 3] = low_bits(grid[q])


# One signature: the kernels call deposit with the sum's index as a literal, on which Numba would
# otherwise compile a copy per sum (129 of them for examples/signed_volume.phg).
@numba.njit(numba.types.boolean(numba.types.int64[:, ::1], numba.types.int64, numba.types.float64,
                                numba.types.float64), cache=True)
def deposit(state, q, x, scale):
    """Term x of sum q deposited on its grid; whether it lies below the grid (nonzero)."""
    b = np.float64(x).view(np.int64) & ABS
    y = x * scale
    t = y + MAGIC
    state[q, 0] += np.float64(t).view(np.int64) - MAGIC_BITS
    state[q, 1] += np.float64((y - (t - MAGIC)) * TWO52 + MAGIC).view(np.int64) - MAGIC_BITS
    state[q, 2] = max(state[q, 2], b)
    return (b < state[q, 3]) & (b != 0)


@numba.njit(cache=True)
def pass_fits(state, grid):
    for q in range(state.shape[0]):
        if not fits(grid[q], state[q, 2]):
            return False
    return True


@numba.njit(cache=True)
def settle_pass(rows, state, grid):
    for q in range(state.shape[0]):
        settle(rows[q], state[q, 0], state[q, 1], grid[q], state[q, 2])


@numba.njit(cache=True)
def regrid_pass(state, grid):
    for q in range(state.shape[0]):
        grid[q] = regrid(state[q, 2])


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
