"""Exact sums of doubles, for gradients that are bit-identical in any sample order.

A long accumulator: the value sum(x) * 2^1074 is an integer, kept as DIGITS signed 64-bit
digits of weight 2^(32 d).  Integer addition is associative, so the digits, and the double they
round to, do not depend on the order of the terms or on how they were split across slots or
threads.  Each accumulator row has a ledger (`ranges`): per sum the digits it has touched since
it was last read, so that reading, clearing and propagating carries cost the few digits a sum's
terms reach, not all DIGITS of every sum; then whether the row was touched at all, and two
counters of its open pass.  Carries keep digits in [-2^31, 2^31) (balanced), so a negative sum
does not spread over every digit above it.

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

The fused kernels give every slot (a fixed share of the batch) its own accumulator row and
grid; the loop kernels one row, which every thread deposits into (codegen.deposits), whose pass
stays open from round to round of tiles (codegen.rounds).  The step reads the total once and
leaves the rows clear.
"""
from __future__ import annotations

import math

import numba
import numpy as np

# The sizes are the kernel plan's (phg.plan.buffers), which the quire obligation checks (verifier.memory).
from phg.plan.buffers import CHUNK, DIGITS, LEDGER, NORMALISE_EVERY

_MASK32 = 0xFFFFFFFF
# The deposit's constants, printed into the training kernels (codegen.training).
MAGIC = 6755399441055744.0                         # 1.5 * 2^52: y + MAGIC rounds y to an integer
MAGIC_BITS = 0x4338000000000000                    # its bits; (t's bits - these) is that integer
TWO52 = 4503599627370496.0
ABS = 0x7FFFFFFFFFFFFFFF                           # a double's bits without the sign


@numba.njit(cache=True, inline="always")
def _add_bits(acc, col, m, q, sign, off=0):
    """The digits += (-1)^sign m 2^(q - 1074) for 0 <= m < 2^62 (sign 0 or -1), digit d at
    acc[d + off, col]: three pieces below 2^32, each added to its digit."""
    d = q >> 5
    s = q & 31
    lo = (m << s) & _MASK32
    mid = (m >> (32 - s)) & _MASK32
    hi = (m >> 32) >> (32 - s)
    acc[d + off, col] += (lo ^ sign) - sign
    acc[d + 1 + off, col] += (mid ^ sign) - sign
    acc[d + 2 + off, col] += (hi ^ sign) - sign


# The top digit only ever takes carries (far below 2^61); a non-finite term marks it with 2^62.
NONFINITE = 1 << 62
_INF_BITS = 0x7FF0000000000000
_LOWEST = -971                                     # the finest grid: its 2^(g - 103) is 2^-1074
_HEADROOM = 3                                      # binades above a regridded chunk's largest term


@numba.njit(cache=True, inline="always")
def _grid_of(scale):
    """g of a grid scale 2^(51 - g)."""
    return 51 - (((np.float64(scale).view(np.int64) >> 52) & 0x7FF) - 1023)


@numba.njit(cache=True, inline="always")
def _power(e):
    """2^e for -1022 <= e <= 1023, from its bits; 2^1024 is the infinity."""
    return np.int64(min(e + 1023, 2047) << 52).view(np.float64)


@numba.njit(cache=True)
def regrid(top):
    """The grid scale 2^(51 - g) for terms whose largest magnitude has the bits `top`: all of
    them below 2^(g - _HEADROOM), so that the next chunk's rarely outgrow it; NaN when one is not
    finite."""
    if top >= _INF_BITS:
        return math.nan
    e = ((top >> 52) & 0x7FF) - 1022 + _HEADROOM   # |x| < 2^(e - headroom)
    return _power(51 - min(max(e, _LOWEST), 1024))


@numba.njit(cache=True)
def low_bits(scale):
    """The bits of the smallest magnitude the grid keeps exactly, 2^(g - 51) (0 on the finest
    grid, which keeps every double; anything for an unknown grid, which `fits` refuses)."""
    if not math.isfinite(scale):
        return np.int64(0)
    g = _grid_of(scale)
    return np.int64(0) if g == _LOWEST else np.float64(_power(g - 51)).view(np.int64)


@numba.njit(cache=True)
def top_bits(scale):
    """The bits of the grid's 2^g, which every term it keeps lies below (0 for an unknown grid)."""
    return np.float64(_power(_grid_of(scale))).view(np.int64) if math.isfinite(scale) else np.int64(0)


@numba.njit(cache=True, inline="always")
def kept(b, scale):
    """Whether a term of magnitude bits b, not zero, lies on the grid of `scale` (2^(51 - g)):
    below its 2^g and at or above its 2^(g - 51), or anywhere below 2^g on the finest grid; never
    on an unknown one (NaN).  Branch-free, from the scale's exponent field E = 1074 - g, so
    that the deposit loops vectorise (codegen.deposits)."""
    e = (np.float64(scale).view(np.int64) >> 52) & 0x7FF
    return (e != 0x7FF) & (b < ((2097 - e) << 52)) & (_below(b, e) == False)  # noqa: E712 (branch-free)


@numba.njit(cache=True, inline="always")
def _below(b, e):
    """Whether magnitude bits b lie below 2^(g - 51), the least a grid of exponent field e keeps
    (nothing does on the finest grid)."""
    return (b < ((2046 - e) << 52)) & (e != 1074 - _LOWEST)


@numba.njit(cache=True)
def fits(scale, top):
    """Whether terms of largest magnitude `top` (bits) were below the grid's 2^g."""
    return top < top_bits(scale)


# The ledger of a row: per sum q, where its digits live and which it touched, then these.  A
# sum's digits live in a window of WINDOW digits from a base digit, WINDOWS of them to a column of
# acc [DIGITS, columns], or, once its digits span more, in a whole column (digit d at acc[d, c]):
# first | end << 8 | (column + 1) << 16 | window << 39 | whole << 42 | base << 43 (0: no digits),
# and in a loop row the largest magnitude its sum set aside from bit 52 (_aside_top).
DIRTY, SAMPLES, PASSES, OPEN, NEXT, WNEXT, FULL, BLOCK_LO, BLOCK_HI = range(9)   # offsets past the
# sums: digits touched at all; the open pass's terms per sum; passes (and terms deposited on their
# own) since carries were propagated; whether the row's pass state holds an open pass, which its
# total reads as it reads its digits; the whole columns taken (from the first) and the windows
# taken (from the last column down); whether a sum found no room left (the row's sums are then
# incomplete: codegen.runtime sums the step again); and the sums BLOCK_LO to BLOCK_HI that alone
# keep digits, when BLOCK_HI is not 0 (the others' are dropped)
CLEARED = FULL + 1                           # the words a row's clearing resets: not its block
# Past a sum's entry: DROPPED, its digits found no room (its total is not exact); NEEDED, it is one
# of the sums a row's blocks sum again (kept by clearing): codegen.runtime.
DROPPED, NEEDED = 1 << 50, 1 << 51
# A window holds what a sum's digits usually span in a step: a term set aside touches three, a
# settled pass five (its two level sums 103 bits apart) and their carries one more; terms more
# than some 150 binades apart move the sum to a whole column.  (At 64 channels of the widened
# signed-volume network, every sum with digits at a batch of 4,096 spanned three.)
WINDOW = 8                                   # digits of a window: 256 bits
WINDOWS = 8                                  # windows a column holds (WINDOWS * WINDOW <= DIGITS)
_SPAN = 0xFFFF                               # a sum's digits touched, first | (end << 8)
_COLUMN = (1 << 23) - 1                      # a sum's column + 1 (none: 0)
_WHOLE = 1 << 42
_BELOW_TOP = (1 << 52) - 1                   # a loop row's entry below its largest term set aside (_aside_top)
_KEPT = _SPAN | NEEDED | ~_BELOW_TOP         # what a sum's new place leaves of its entry


@numba.njit(cache=True, inline="always")
def _touch(ranges, q, first, end):
    r = ranges[q]
    span = first | (end << 8) if r & _SPAN == 0 else min(r & 255, first) | (max((r >> 8) & 255, end) << 8)
    ranges[q] = span | (r >> 16 << 16)
    ranges[ranges.shape[0] - LEDGER + DIRTY] = 1


@numba.njit(cache=True, inline="always")
def _where(r):
    """(column, offset) of a ledger entry's digits: digit d at acc[d + offset, column]; column -1
    for none."""
    c = ((r >> 16) & _COLUMN) - 1
    if r & _WHOLE:
        return c, 0
    return c, ((r >> 39) & 7) * WINDOW - ((r >> 43) & 127)


@numba.njit(cache=True, inline="always")
def _room(acc, ranges, q, lo, hi):
    """_find_room, its common cases first: a row with a column for every sum, whose column q is
    sum q's; a sum that has a whole column, or a window that holds digits lo to hi - 1 (inline: a
    fused kernel's settling calls this per chunk and sum)."""
    r = ranges[q]
    if acc.shape[1] >= ranges.shape[0] - LEDGER:    # a column for every sum (the fused kernels): its own
        c = np.int64(q)
        if r & _WHOLE == 0:
            ranges[q] = r | ((c + 1) << 16) | _WHOLE
        return c, 0
    if (r >> 16) & _COLUMN != 0:
        if r & _WHOLE:
            return ((r >> 16) & _COLUMN) - 1, 0
        base = (r >> 43) & 127
        if base <= lo and hi <= base + WINDOW:
            return _where(r)
    return _find_room(acc, ranges, q, lo, hi)


@numba.njit(cache=True)
def _find_room(acc, ranges, q, lo, hi):
    """(column, offset) where sum q's digits lo to hi - 1 are to be written (digit d at
    acc[d + offset, column]) in a row of fewer columns than sums, where _room found none: a window
    as its terms first reach its digits, a whole column once they outgrow it (the window's digits
    moved there); (-1, 0) where there is no room (the row is marked FULL) or q lies outside the
    row's block: its digits are dropped.  A block whose BLOCK_LO is negative (from -1 - BLOCK_LO)
    gives whole columns only, so that it never runs out."""
    r = ranges[q]
    rows = ranges.shape[0] - LEDGER
    columns = acc.shape[1]
    c, off = _where(r)
    if c < 0 and ranges[rows + BLOCK_HI] != 0 and not (max(ranges[rows + BLOCK_LO], -1 - ranges[rows + BLOCK_LO]) <= q
                                                       < ranges[rows + BLOCK_HI] and r & NEEDED):
        return -1, 0
    if c < 0 and hi - lo <= WINDOW and ranges[rows + BLOCK_LO] >= 0:
        w = ranges[rows + WNEXT]                 # the next window, from the last column down
        column = columns - 1 - w // WINDOWS
        if column < ranges[rows + NEXT]:
            ranges[rows + FULL] = 1
            ranges[q] = r | DROPPED
            return -1, 0
        ranges[rows + WNEXT] = w + 1
        base = max(0, min(lo - (WINDOW - (hi - lo)) // 2, DIGITS - WINDOW))
        ranges[q] = (r & _KEPT) | ((column + 1) << 16) | ((w % WINDOWS) << 39) | (base << 43)
        return column, (w % WINDOWS) * WINDOW - base
    whole = ranges[rows + NEXT]                  # a whole column, from the first up
    if whole >= columns - (ranges[rows + WNEXT] + WINDOWS - 1) // WINDOWS:
        ranges[rows + FULL] = 1
        ranges[q] = r | DROPPED
        return -1, 0
    ranges[rows + NEXT] = whole + 1
    if c >= 0 and r & _SPAN != 0:                # the window's digits to the whole column, and it left clear
        for d in range(r & 255, (r >> 8) & 255):
            acc[d, whole] = acc[d + off, c]
            acc[d + off, c] = 0
    ranges[q] = (r & _KEPT) | ((whole + 1) << 16) | _WHOLE
    return whole, 0


@numba.njit(cache=True)
def mark_needed(ranges):
    """The sums whose digits some row dropped marked NEEDED in every row (for blocks of them to be
    summed again), the others not; how many."""
    rows = ranges.shape[1] - LEDGER
    count = 0
    for q in range(rows):
        dropped = False
        for s in range(ranges.shape[0]):
            dropped |= (ranges[s, q] & DROPPED) != 0
        for s in range(ranges.shape[0]):
            ranges[s, q] = (ranges[s, q] & ~(DROPPED | NEEDED)) | (NEEDED if dropped else 0)
        count += dropped
    return count


@numba.njit(cache=True)
def complete(ranges, lo, hi):
    """After a block's pass: its NEEDED sums that no row dropped, whose totals are now exact, no
    longer needed; how many."""
    rows = ranges.shape[1] - LEDGER
    count = 0
    for q in range(lo, hi):
        done = (ranges[0, q] & NEEDED) != 0
        for s in range(ranges.shape[0]):
            done &= (ranges[s, q] & DROPPED) == 0
        for s in range(ranges.shape[0]):
            ranges[s, q] &= ~(DROPPED | (NEEDED if done else 0))
        count += done
    return count


@numba.njit(cache=True)
def unmark(ranges):
    """Every row's sums unmarked, its block none."""
    rows = ranges.shape[1] - LEDGER
    for s in range(ranges.shape[0]):
        for q in range(rows):
            ranges[s, q] &= ~(DROPPED | NEEDED)
        ranges[s, rows + BLOCK_LO] = 0
        ranges[s, rows + BLOCK_HI] = 0


@numba.njit(cache=True)
def next_block(ranges, lo, most):
    """The end of the block of sums from lo that holds `most` NEEDED sums (or the rest); with
    `most` 0, the first NEEDED sum from lo (or the number of sums, where none is)."""
    rows = ranges.shape[1] - LEDGER
    count = 0
    q = lo
    while q < rows and (count < most or most == 0):
        if ranges[0, q] & NEEDED:
            if most == 0:
                return q
            count += 1
        q += 1
    return q


@numba.njit(cache=True, inline="always")
def _add_int(acc, col, v, g, off=0):
    """The digits (d at acc[d + off, col]) += v 2^g, exactly, for |v| < 2^62 and g >= -1074."""
    sign = v >> 63
    _add_bits(acc, col, (v ^ sign) - sign, g + 1074, sign, off)


@numba.njit(cache=True, inline="always")
def _add_at(acc, ranges, q, v, g):
    """Sum q += v 2^g (_add_int), in its digits and ledger."""
    p = g + 1074
    first, end = p >> 5, min((p >> 5) + 3, DIGITS)
    c, off = _room(acc, ranges, q, first, end)
    if c >= 0:
        _add_int(acc, c, v, g, off)
        _touch(ranges, q, first, end)


@numba.njit(cache=True, inline="always")
def _mark(acc, ranges, q):
    c, off = _room(acc, ranges, q, DIGITS - 1, DIGITS)
    if c >= 0:
        acc[DIGITS - 1 + off, c] = NONFINITE
        _touch(ranges, q, DIGITS - 1, DIGITS)


@numba.njit(cache=True)
def add_double(acc, ranges, q, x):
    """Sum q += x exactly, whatever x (a NaN or an infinity marks the sum): the deposit of a term
    no grid of its pass keeps."""
    b = np.float64(x).view(np.int64)
    a = b & ABS
    if a >= _INF_BITS:
        _mark(acc, ranges, q)
    elif a != 0:
        e = a >> 52
        m = a & 0xFFFFFFFFFFFFF
        p = 0                                        # a subnormal: m 2^-1074
        if e != 0:
            m |= 1 << 52
            p = e - 1                                # m 2^(e - 1075)
        sign = np.int64(-1) if b < 0 else np.int64(0)
        first, end = p >> 5, min((p >> 5) + 3, DIGITS)
        c, off = _room(acc, ranges, q, first, end)
        if c >= 0:
            _add_bits(acc, c, m, p, sign, off)
            _touch(ranges, q, first, end)


# One signature, as deposit's: the fused kernels call settle with the sum's index as a literal.
@numba.njit(numba.types.void(numba.types.int64[:, ::1], numba.types.int64[::1], numba.types.int64, numba.types.int64,
                             numba.types.int64, numba.types.float64, numba.types.int64), cache=True)
def settle(acc, ranges, q, high, low, scale, top):
    """Sum q += the two level sums of a pass (units 2^(g - 51) and 2^(g - 103)), or the mark of
    a non-finite term."""
    if top >= _INF_BITS:
        _mark(acc, ranges, q)
    elif (high | low) != 0:
        g = _grid_of(scale)
        _add_at(acc, ranges, q, high, g - 51)
        _add_at(acc, ranges, q, low, g - 103)


# An accumulator row is [DIGITS, columns]: a sum's digits are a window or a column given it when
# its terms first reach them (_room), a column for every sum in the fused kernels, fewer in the
# loop kernels, whose open passes fold rather than settle, so that few sums reach their digits.
# A pass's state, int64 [rows, sums] per accumulator row: the two level sums, the carry of the
# level sums folded (fold, in units 2^(g + 1)), and in the fused kernels the largest magnitude of
# its terms (bits): STATE_ROWS rows, LOOP_STATE_ROWS in the loop kernels, whose ledger keeps the
# largest magnitude of the terms a sum set aside (_aside_top).  The fused kernels' many-sum passes
# deposit one term at a time (deposit); the loop kernels a row of terms at a time.
CARRY, TOP = 2, 3
# A loop row's ledger entry holds in its top 12 bits (above the 52 its digits' place takes) the
# largest magnitude of the terms its sum set aside in the open pass, cut to its exponent field and
# whether it is zero: whether it lies below a grid's 2^g, and the grid it moves to, depend on no
# more.


@numba.njit(cache=True, inline="always")
def _aside_top(r):
    """The largest magnitude a ledger entry keeps, as the bits of a double of its exponent (0: none)."""
    t = (r >> 52) & 0xFFF
    return ((t >> 1) << 52) | (t & 1)


@numba.njit(cache=True, inline="always")
def with_aside(r, b):
    """Ledger entry r, its largest magnitude set aside raised to cover a term of magnitude bits b."""
    t = max((r >> 52) & 0xFFF, ((b >> 52) << 1) | (1 if b != 0 else 0))
    return (r & _BELOW_TOP) | (t << 52)


@numba.njit(cache=True)
def open_pass(acc, ranges, state, grid):
    """A loop kernel's pass begins: its row clear, and a pass open on its grids, which the step's
    total reads where no round settled it."""
    clear(acc, ranges)
    begin_pass(state, grid)
    ranges[ranges.shape[0] - LEDGER + OPEN] = 1


@numba.njit(cache=True)
def begin_pass(state, grid):
    state[:] = 0


# One signature: the kernels call deposit with the sum's index as a literal, on which Numba would
# otherwise compile a copy per sum (129 of them for examples/signed_volume.phg).
@numba.njit(numba.types.boolean(numba.types.int64[:, ::1], numba.types.int64, numba.types.float64,
                                numba.types.float64), cache=True)
def deposit(state, q, x, scale):
    """Term x of sum q deposited on its grid; whether it lies below the grid (nonzero; on a known
    grid: pass_fits refuses an unknown one)."""
    b = np.float64(x).view(np.int64) & ABS
    y = x * scale
    t = y + MAGIC
    state[0, q] += np.float64(t).view(np.int64) - MAGIC_BITS
    state[1, q] += np.float64((y - (t - MAGIC)) * TWO52 + MAGIC).view(np.int64) - MAGIC_BITS
    state[TOP, q] = max(state[TOP, q], b)
    return _below(b, (np.float64(scale).view(np.int64) >> 52) & 0x7FF) & (b != 0)


@numba.njit(cache=True)
def pass_fits(state, grid):
    for q in range(state.shape[1]):
        if not fits(grid[q], state[TOP, q]):
            return False
    return True


@numba.njit(cache=True)
def settle_pass(acc, ranges, state, grid):
    for q in range(state.shape[1]):
        settle(acc, ranges, q, state[0, q], state[1, q], grid[q], state[TOP, q])


@numba.njit(cache=True)
def regrid_pass(state, grid):
    for q in range(state.shape[1]):
        grid[q] = regrid(state[TOP, q])


@numba.njit(cache=True, inline="always")
def _moves(state, grid, q, top):
    """Whether sum q's grid moves to `top`, the largest of the terms it set aside (finite,
    nonzero): where one outgrew it, or where it kept none."""
    return top != 0 and top < _INF_BITS and (not fits(grid[q], top) or (state[0, q] | state[1, q]) == 0)


@numba.njit(cache=True, inline="always")
def _settle_sum(acc, ranges, state, grid, q):
    """Sum q's open pass into its digits, its grid moved where _moves says, its pass state zero."""
    top = _aside_top(ranges[q])
    moves = _moves(state, grid, q, top)
    settle(acc, ranges, q, state[0, q], state[1, q], grid[q], top)
    if state[CARRY, q] != 0 and top < _INF_BITS:
        _add_at(acc, ranges, q, state[CARRY, q], _grid_of(grid[q]) + 1)
    if moves:
        grid[q] = regrid(top)
    state[0, q] = 0
    state[1, q] = 0
    state[CARRY, q] = 0
    ranges[q] &= _BELOW_TOP


@numba.njit(cache=True, inline="always")
def _fold(state, q):
    """Sum q's level sums reduced to [0, 2^52) units, their carries into CARRY: the same value,
    and room for CHUNK more terms (each level sum below 2^52 + CHUNK 2^51 < 2^62)."""
    low = state[1, q]
    carry = low >> 52
    state[1, q] = low - (carry << 52)
    high = state[0, q] + carry
    carry = high >> 52
    state[0, q] = high - (carry << 52)
    state[CARRY, q] += carry                     # below 2^11 a fold: CHUNK terms below 2^(g + 11)


@numba.njit(cache=True)
def settle_regrid(acc, ranges, state, grid):
    """A loop kernel's open pass full: each sum's level sums folded (_fold), and the pass goes on,
    but where a sum's grid moves to the largest of the terms it could not keep (codegen.deposits):
    where one outgrew it, or where it kept none (its first pass, or terms that shrank below it).
    That sum alone is settled into its digits; the others keep their grids, however far below its
    top their terms lie: they are exact there."""
    for q in range(state.shape[1]):
        if _moves(state, grid, q, _aside_top(ranges[q])):
            _settle_sum(acc, ranges, state, grid, q)
        else:
            _fold(state, q)
            ranges[q] &= _BELOW_TOP
    rows = ranges.shape[0] - LEDGER
    ranges[rows + SAMPLES] = 0
    ranges[rows + PASSES] += 1                   # a settled sum adds to its digits as a pass does


@numba.njit(cache=True)
def regrid_aside(acc, ranges, state, grid):
    """After a tile whose terms did not all fit: each sum that set terms aside and needs a new grid
    (settle_regrid's rule) settled and moved; the others keep their open pass."""
    for q in range(state.shape[1]):
        if _moves(state, grid, q, _aside_top(ranges[q])):
            _settle_sum(acc, ranges, state, grid, q)
        else:
            ranges[q] &= _BELOW_TOP


@numba.njit(cache=True)
def end_round(acc, ranges, state, grid, terms, aside, coming):
    """A round's end in a loop kernel's open pass (codegen.rounds), while no thread deposits:
    `terms` more per sum at most, of which `aside` were deposited on their own, and at most
    `coming` in the next round.  The pass is settled when the next round could take it past CHUNK
    terms a sum; where terms did not fit their sum's grid, that sum alone is settled and moved to
    a new grid, if it needs one (regrid_aside); carries are propagated before a digit could near
    2^63."""
    rows = ranges.shape[0] - LEDGER
    ranges[rows + SAMPLES] += terms
    if aside:
        # a term on its own adds below 2^32 a digit, as a pass does; and regrid_aside may settle
        ranges[rows + PASSES] += terms + 1
    if ranges[rows + SAMPLES] + coming > CHUNK:
        settle_regrid(acc, ranges, state, grid)
    elif aside:
        regrid_aside(acc, ranges, state, grid)
    if ranges[rows + PASSES] + coming + 1 >= NORMALISE_EVERY:
        normalise(acc, ranges)


@numba.njit(cache=True)
def clear(acc, ranges):
    """A row's sums back to zero (the digits its ledger lists, their columns free again) and its
    ledger to empty; its block stays."""
    rows = ranges.shape[0] - LEDGER
    if ranges[rows + DIRTY] != 0 or ranges[rows + FULL] != 0:
        for q in range(rows):
            r = ranges[q]
            if r & ~NEEDED != 0:
                c, off = _where(r)
                if c >= 0:
                    acc[(r & 255) + off:((r >> 8) & 255) + off, c] = 0
                ranges[q] = r & NEEDED
    for k in range(CLEARED):
        ranges[rows + k] = 0


@numba.njit(cache=True)
def normalise(acc, ranges):
    """Carries propagated in every sum of a row: every digit in [-2^31, 2^31) but the top one,
    which holds what is left and a non-finite term's mark."""
    rows = ranges.shape[0] - LEDGER
    for q in range(rows):
        r = ranges[q]
        if r & _SPAN == 0:
            continue
        first, end = r & 255, (r >> 8) & 255
        c, off = _where(r)
        last = end                                   # past the last digit that may be nonzero
        d = first
        while d < min(last, DIGITS - 1):
            carry = (acc[d + off, c] + (1 << 31)) >> 32
            if carry != 0:
                c, off = _room(acc, ranges, q, first, d + 2)     # the window may not reach d + 1
                if c < 0:
                    break
                acc[d + off, c] -= carry << 32
                acc[d + 1 + off, c] += carry
                last = max(last, d + 2)
            d += 1
        if last > end:
            _touch(ranges, q, first, min(last, DIGITS))
    ranges[rows + PASSES] = 0


@numba.njit(cache=True, inline="always")
def _rounded(high, low, e, odd=False):
    """The double nearest to (high 2^52 + low) 2^e, |high|, |low| < 2^63, ties to even (e >= -1074:
    a sum below 2^52 units is exact, so a subnormal result is never rounded twice); with `odd`, the
    magnitude cut to 53 bits and its last bit set where anything was cut (round to odd)."""
    carry = low >> 52
    low -= carry << 52                               # in [0, 2^52)
    high += carry
    negative = high < 0
    if negative:                                     # the magnitude, high 2^52 + low again
        high = -high - (1 if low else 0)
        low = ((1 << 52) - low) if low else 0
    if high == 0:
        value = math.ldexp(float(low), e)
        return -value if negative else value
    p = _leading_bit(high)                           # the magnitude has p + 53 bits
    if p <= 52:
        mant = (high << (52 - p)) | (low >> p)
        rest = low & ((1 << p) - 1)
        half = (1 << (p - 1)) if p else 0
        up = p > 0 and (rest > half or (rest == half and (mant & 1) == 1))
        if odd:
            mant, up = mant | (1 if rest else 0), False
    else:
        mant = high >> (p - 52)
        rest = high & ((1 << (p - 52)) - 1)
        half = 1 << (p - 53)
        up = rest > half or (rest == half and (low != 0 or (mant & 1) == 1))
        if odd:
            mant, up = mant | (1 if rest or low else 0), False
    value = math.ldexp(float(mant + up), e + p)
    return -value if negative else value


@numba.njit(cache=True, inline="always")
def _leading_bit(v):
    """The position of the leading bit of 0 < v < 2^63: the exponent of its double, one less where
    rounding to the double carried into the next binade."""
    p = ((np.float64(v).view(np.int64) >> 52) & 0x7FF) - 1023
    return p - 1 if (v >> p) == 0 else p


@numba.njit(cache=True)
def _open_total(acc, ranges, state, grid, q, odd=False):
    """The common case of a sum's total: no digits, only open passes on one grid, few enough that
    their level sums add in int64 (each below 2^61), rounded without the digits; (whether it is
    that case, the total)."""
    rows = ranges.shape[1] - LEDGER
    high, low, scale, passes = 0, 0, 0.0, 0
    for s in range(acc.shape[0]):
        if ranges[s, q] != 0:
            return False, 0.0
        if ranges[s, rows + OPEN] == 0:          # no pass state (a fused kernel's row): its digits alone
            continue
        if state[s, CARRY, q] != 0:
            return False, 0.0
        if (state[s, 0, q] | state[s, 1, q]) != 0:
            if passes and grid[s, q] != scale:
                return False, 0.0
            scale = grid[s, q]
            high += state[s, 0, q]
            low += state[s, 1, q]
            passes += 1
    if passes > 4:
        return False, 0.0
    return True, (0.0 if passes == 0 else _rounded(high, low, _grid_of(scale) - 103, odd))


@numba.njit(cache=True)
def exact_total(acc, ranges, state, grid, q, work, odd=False):
    """The double nearest to the exact sum q over every row of acc [rows, DIGITS, sums] (round to
    nearest, ties to even; with `odd` rounded to odd, which a narrower format's rounding then rounds
    as it would the exact sum): the digits their ledgers ranges [rows, sums + LEDGER] list, and the
    level sums of a row's open pass (state [rows, STATE_ROWS, sums] on grid [rows, sums]).
    `work` is DIGITS int64s."""
    first, top = _gather(acc, ranges, state, grid, q, work)
    if first < 0:
        return math.nan
    if top < first:
        return 0.0
    _carry(work, first, top)
    return _round_carried(work, first, top, odd)


@numba.njit(cache=True)
def _gather(acc, ranges, state, grid, q, work):
    """Sum q over every row of acc added digit by digit into work (DIGITS int64s), carries not yet
    propagated: (first, top), the digits that may be nonzero (top < first: none), or (-1, -1)
    where a term was not finite."""
    rows = ranges.shape[1] - LEDGER
    first, end = DIGITS, 0
    for s in range(acc.shape[0]):
        r = ranges[s, q]
        if r & _SPAN != 0:
            first = min(first, r & 255)
            end = max(end, (r >> 8) & 255)
        if ranges[s, rows + OPEN] != 0 and (state[s, 0, q] | state[s, 1, q] | state[s, CARRY, q]) != 0:
            g = _grid_of(grid[s, q])
            first = min(first, (g - 103 + 1074) >> 5)
            end = max(end, ((g + 1 + 1074) >> 5) + 3)
    if end == 0:
        return 0, -1
    top = min(end + 2, DIGITS - 1)                   # the signed digit: rows sum to below 2^(32 (end + 1) + 36)
    for d in range(first, top + 1):
        work[d] = 0
    column = work.reshape(DIGITS, 1)
    for s in range(acc.shape[0]):
        if ranges[s, rows + OPEN] != 0 and (state[s, 0, q] | state[s, 1, q] | state[s, CARRY, q]) != 0:
            g = _grid_of(grid[s, q])
            _add_int(column, 0, state[s, 0, q], g - 51)
            _add_int(column, 0, state[s, 1, q], g - 103)
            _add_int(column, 0, state[s, CARRY, q], g + 1)
        r = ranges[s, q]
        if r & _SPAN == 0:
            continue
        c, off = _where(r)
        row = acc[s, :, c]
        stop = (r >> 8) & 255
        if stop == DIGITS and abs(row[DIGITS - 1 + off]) >= NONFINITE // 2:    # marked (carries may have moved it a little)
            return -1, -1
        for d in range(r & 255, min(stop, DIGITS - 1)):
            work[d] += row[d + off] & _MASK32        # split, so that many rows cannot overflow
            work[d + 1] += row[d + off] >> 32
        if stop == DIGITS:
            work[DIGITS - 1] += row[DIGITS - 1 + off]      # only carries reach the top digit
    return first, top


@numba.njit(cache=True, inline="always")
def _carry(work, first, top):
    """Carries propagated from work[first] up: work[first:top] in [0, 2^32), work[top] signed."""
    for d in range(first, top):
        carry = work[d] >> 32
        work[d] -= carry << 32
        work[d + 1] += carry


@numba.njit(cache=True)
def _round_carried(work, first, top, odd):
    """The double nearest to the integer sum(work[d] 2^(32 d)) 2^-1074, its digits carried
    (_carry) from first to top (with `odd`: rounded to odd)."""
    negative = work[top] < 0
    if negative:
        for d in range(first, top + 1):
            work[d] = -work[d]
        _carry(work, first, top)
    h = top
    while h >= first and work[h] == 0:
        h -= 1
    if h < first:
        return 0.0
    lead = work[h]
    p = _leading_bit(lead)                           # of the top digit
    window = np.uint64(lead) << np.uint64(63 - p)
    if h - 1 >= first:
        window |= np.uint64(work[h - 1]) << np.uint64(31 - p)
    sticky = False
    if h - 2 >= first:
        window |= np.uint64(work[h - 2]) >> np.uint64(p + 1)
        sticky = (work[h - 2] & ((1 << (p + 1)) - 1)) != 0
    for d in range(h - 3, first - 1, -1):
        sticky = sticky or work[d] != 0
    mant = window >> np.uint64(11)
    rest = window & np.uint64(0x7FF)
    if odd:
        if rest != 0 or sticky:
            mant |= np.uint64(1)
    elif rest > 0x400 or (rest == 0x400 and (sticky or (mant & np.uint64(1)))):
        mant += np.uint64(1)
    # window's bit 63 is bit 32 h + p of the integer, so mant's bit 0 has weight 2^(32 h + p - 52).
    value = math.ldexp(float(mant), 32 * h + p - 52 - 1074)
    return -value if negative else value


@numba.njit(cache=True, inline="always")
def _dropped(ranges, q):
    """Whether a row dropped sum q's digits."""
    for s in range(ranges.shape[0]):
        if ranges[s, q] & DROPPED:
            return True
    return False


@numba.njit(cache=True, inline="always")
def _span(q0, q1, pieces, first, last):
    """The sums (from, to) of pieces `first` to `last` of the sums q0 to q1 cut into `pieces`
    equal runs."""
    n = q1 - q0
    return q0 + n * first // pieces, q0 + n * last // pieces


@numba.njit(cache=True, inline="always")
def _skipped(ranges, q, needed):
    """Whether a read of the `needed` sums alone passes sum q by: one not marked NEEDED, or one
    a row dropped."""
    return needed and (ranges[0, q] & NEEDED == 0 or _dropped(ranges, q))


@numba.njit(cache=True, nogil=True)
def totals(acc, ranges, state, grid, sums, work, q0, q1, needed, pieces, first, last):
    """_totals rounded to nearest: the loop kernels' (compiled for their argument types by
    codegen.compiling)."""
    _totals(acc, ranges, state, grid, sums, work, q0, q1, needed, pieces, first, last, False)


@numba.njit(cache=True, nogil=True)
def odd_totals(acc, ranges, state, grid, sums, work, q0, q1, needed, pieces, first, last):
    """_totals rounded to odd: a loop kernel's in a numeric format, whose step rounds them once
    more, to the format (LANGUAGE §11)."""
    _totals(acc, ranges, state, grid, sums, work, q0, q1, needed, pieces, first, last, True)


@numba.njit(cache=True, nogil=True)
def _totals(acc, ranges, state, grid, sums, work, q0, q1, needed, pieces, first, last, odd):
    """The exact totals (exact_total) of the sums q0 to q1 (`needed`: those marked NEEDED, that no
    row dropped, alone),
    of pieces `first` to `last` of them cut into `pieces` equal runs, with the work digits
    work[first]: threads run pieces side by side (codegen.spread)."""
    digits = work[first]
    lo, hi = _span(q0, q1, pieces, first, last)
    for q in range(lo, hi):
        if not _skipped(ranges, q, needed):
            done, value = _open_total(acc, ranges, state, grid, q, odd)
            sums[q] = value if done else exact_total(acc, ranges, state, grid, q, digits, odd)


# A step's sums as digits, for a share of its batch summed elsewhere (codegen.cluster): row q of a
# digits array [sums, DIGITS + 1] holds sum q's integer sum(digits[q, d] 2^(32 d)) 2^-1074, its
# last word how many of the shares had a term that was not finite.  Shares' digits add as int64
# arrays (each digit of a share below 2^32, so billions of shares cannot overflow one) and
# round_digits rounds the total once: the same double as one process's exact_total.
NONFINITE_COUNT = DIGITS


@numba.njit(cache=True, nogil=True)
def digit_totals(acc, ranges, state, grid, digits, work, q0, q1, needed, pieces, first, last):
    """_totals, each sum's exact total kept as its digits in digits[q] rather than rounded."""
    scratch = work[first]
    lo, hi = _span(q0, q1, pieces, first, last)
    for q in range(lo, hi):
        if not _skipped(ranges, q, needed):
            _digits_of(acc, ranges, state, grid, q, scratch, digits[q])


@numba.njit(cache=True, inline="always")
def _digits_of(acc, ranges, state, grid, q, work, out):
    """Sum q's exact total as its carried digits in out [DIGITS + 1] (exact_total's digits,
    before rounding), work DIGITS int64s."""
    out[:] = 0
    low, top = _gather(acc, ranges, state, grid, q, work)
    if low < 0:
        out[NONFINITE_COUNT] = 1
    elif top >= low:
        _carry(work, low, top)
        out[low:top + 1] = work[low:top + 1]


@numba.njit(cache=True)
def round_digits(digits, sums, odd):
    """Each sum's double from digits [sums, DIGITS + 1] added over shares (digit_totals): rounded
    to nearest, ties to even (with `odd`, to odd); NaN where a share had a non-finite term.  The
    digits are carried in place."""
    for q in range(sums.shape[0]):
        if digits[q, NONFINITE_COUNT] != 0:
            sums[q] = math.nan
            continue
        row = digits[q, :DIGITS]
        _carry(row, 0, DIGITS - 1)
        sums[q] = _round_carried(row, 0, DIGITS - 1, odd)


@numba.njit(cache=True)
def close(acc, ranges, state, grid):
    """The rows left clear once their totals are read: digits zero, ledgers empty, passes closed;
    and each sum's grid made the same in every row, the coarsest of them, so that the next step's
    passes share their grids and their totals need no digits (_open_total)."""
    for s in range(acc.shape[0]):
        clear(acc[s], ranges[s])                     # its pass too: the next opening zeroes it
    for q in range(grid.shape[1]):
        scale = math.nan                             # the smallest scale of the rows that have one
        for s in range(grid.shape[0]):
            if math.isfinite(grid[s, q]) and not grid[s, q] >= scale:
                scale = grid[s, q]
        for s in range(grid.shape[0]):
            grid[s, q] = scale
