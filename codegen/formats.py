"""Arithmetic in a numeric format (phg.numeric) on doubles that hold the format's values, for the
kernels of a model with `numeric FORMAT` (LANGUAGE §11): each operation's exact result rounded
once to the format.

A posit is (n, es, longest) as in codegen.posits.  Where the double's 53 bits are at least 2q + 2
(q the format's significand bits) an operation computed in float64 and rounded once is the
operation rounded once (`once`); otherwise (posit32) the exact result is kept as an unevaluated
pair hi + lo (error-free transformations) and rounded from it: a rounding boundary has at most
29 bits, so the pair rounds as hi does but where hi is a tie, which lo's sign breaks
(_round_pair).  A fused dot product (the quire) is a chain of fused multiply-adds where its error
bound keeps it clear of every rounding boundary, and otherwise sums the exact products (Sum2, then
a nonoverlapping expansion, Shewchuk's) and rounds that once.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import llvmlite.ir as llvmir
from numba.core import cgutils, types
from numba.extending import intrinsic

from phg.numeric import FORMATS

from phg import posit as P

from .posits import from_bits, round_parts, round_to



@numba.njit(cache=True, inline="always")
def single(x):
    """x rounded to float32 (ties to even), as a double."""
    return np.float64(np.float32(x))


@numba.njit(cache=True, error_model="numpy")
def single_pair(hi, lo):
    """hi + lo (an exact pair, |lo| at most half hi's last place) rounded once to float32: as hi
    rounds, but for a tie at hi (a float32 midpoint), which lo's sign breaks (a midpoint lies
    strictly between hi and the exact value only where hi is one; see _fast_pair)."""
    m = single(hi)
    other = 2.0 * hi - m                   # the other neighbour, where hi is a midpoint
    if lo != 0.0 and other != m and single(other) == other:
        return other if (lo > 0.0) == (other > hi) else m
    return m


@numba.njit(cache=True, error_model="numpy")
def settle_pair(s, c, size, terms, exact):
    """(whether it is certain, hi, lo) for an exact sum s + c + d of `terms` terms summed by
    TwoSum (s their float sum, c the float sum of the errors, size the sum of the terms'
    magnitudes, |d| <= B = 2 (terms + 1)^2 u^2 size; Ogita, Rump and Oishi): certain where every
    TwoSum was exact (s is the sum), or where c's sign is beyond B and B far below s's last place,
    so that the exact sum rounds as the renormalised pair (hi, lo) does in any format of at most
    53 bits (the pair's rounding functions: single_pair, posit_pair)."""
    if exact:
        return True, s, 0.0
    bound = 2.0 * (terms + 1) ** 2 * _U * _U * size
    hi, lo = two_sum(s, c)
    if math.isfinite(size) and bound < abs(hi) * _U * 0.25 and abs(lo) > 2.0 * bound:
        return True, hi, lo
    return False, hi, lo


@numba.njit(cache=True, inline="always")
def two_sum(a, b):
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


@intrinsic
def _fma(typingctx, a, b, c):
    """a b + c rounded once (LLVM's fma: the machine's instruction, or libm's where it has none)."""
    if not all(isinstance(t, types.Float) and t.bitwidth == 64 for t in (a, b, c)):
        return None

    def emit(context, builder, signature, args):
        return builder.fma(*args)
    return types.float64(types.float64, types.float64, types.float64), emit


@numba.njit(cache=True, inline="always")
def two_product(a, b):
    """(p, e) with p + e = a b exactly (no overflow or underflow: posit values are far from both)."""
    p = a * b
    return p, _fma(a, b, -p)


@numba.njit(cache=True, inline="always")
def _next(x, up):
    """The double next to a finite nonzero x, above it (up) or below: the bit pattern one step from
    x's, towards a larger magnitude where that is the direction."""
    return np.int64(np.float64(x).view(np.int64) + (1 if (x > 0.0) == up else -1)).view(np.float64)


_ABS = 0x7FFFFFFFFFFFFFFF
_FRACTION = (1 << 52) - 1
_U = 2.0 ** -53


def _cells(n, es, longest):
    """Per binade of the double (its biased exponent), 1.5 times 2^52 of the format's places there:
    (x + c) - c is x rounded to a multiple of the place, to even on a tie, for x of either sign in
    the binade (x + c stays in c's binade, whose place is the format's); NaN where _fast_pair gives
    way (no fraction bits, an end of the range, zero, subnormals, infinities and NaNs)."""
    cells = np.full(2048, np.nan)
    for biased in range(1, 2047):
        e = biased - 1023
        k = e >> es
        run = k + 1 if k >= 0 else -k
        f = n - 1 - es - (run + 1 if run < longest else run)
        if f >= 1 and -longest < k < longest - 1:
            cells[biased] = 1.5 * 2.0 ** (e + 52 - f)
    return cells


@numba.njit(cache=True, inline="always")
def _row(n, es):
    """The format's row of _CELLS (posit8 1, posit16 2, bposit16 3, posit32 4, bposit32 5)."""
    return (n >> 3) + (es >> 2)


_CELLS = np.full((6, 2048), np.nan)
for _f in P.FORMATS.values():
    _CELLS[_row.py_func(_f.n, _f.es)] = _cells(_f.n, _f.es, _f.longest_run)
assert len({_row.py_func(f.n, f.es) for f in P.FORMATS.values()}) == len(P.FORMATS)


# Two families of operations.  The fast ones (_fast_pair, _fast_fused, fast_*) are branch-free
# straight-line code with no call, NaN where they cannot decide; a training kernel runs each
# sample with them, and runs the samples where one gave NaN again with the exact ones, in a loop
# of their own (codegen.training): the compiler schedules code without calls several times faster
# than the same operations with their rare cases called out (rigid registration's step at 65,536
# samples: 5.3 -> 2.0 ms in posit32).  LLVM inlines them; Numba's own inlining would double the kernels'
# compile time and run slower.  The exact ones (posit_*) are the fast path, then the rare cases
# called where it gives way, so where a fast one decides it gives what the exact one gives; for
# 0 / 0 and the other NaRs the fast ones give NaN too, which the exact run then gives again.


@numba.njit(cache=True, error_model="numpy")
def _fast_pair(hi, lo, n, es, longest):
    """An exact value v rounded once, given the double hi within one place of it and lo, a number
    of v - hi's sign (zero where v is hi); NaN where hi's binade has no fraction bits or is an end
    of the range (and for a NaN or an infinity).  A rounding boundary (a midpoint between two
    format values) is a double of at most 29 bits, so one lies strictly between hi and v only
    where hi itself is one: v rounds as hi does, but for a tie at hi, which lo's side breaks
    (outwards, or to even where lo is zero); within a binade the format has the same fraction bits
    f, and rounding the significand to f bits is the posit's rounding (codegen.posits.round_to)."""
    bits = np.float64(hi).view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023
    k = e >> es
    run = k + 1 if k >= 0 else -k
    f = n - 1 - es - (run + 1 if run < longest else run)
    edge = (f < 1) | (k >= longest - 1) | (k <= -longest)
    shift = 52 - max(f, 1)
    mag = bits & _ABS
    half = np.int64(1) << (shift - 1)
    rem = mag & ((half << 1) - 1)
    odd = (mag >> shift) & 1
    side = np.int64(lo * hi > 0.0) | (np.int64(lo == 0.0) & odd)
    up = np.int64(rem > half) | (np.int64(rem == half) & side)
    rounded = np.int64((mag - rem + (up << shift)) | (bits & ~_ABS)).view(np.float64)
    return 0.0 if hi == 0.0 else (math.nan if edge else rounded)


@numba.njit(cache=True, error_model="numpy")
def _pair_through_bits(hi, lo, n, es, longest):
    """_round_pair where the binade has no fraction bits or is an end of the range: through the
    pattern, the part below hi's last place a half place on lo's side and a sticky bit (the format
    keeps far fewer than the double's 53 bits, so only that something lies there, and on which
    side, can matter)."""
    if lo == 0.0 or hi == 0.0 or not math.isfinite(hi):
        return round_to(hi, n, es, longest)
    word = np.float64(abs(hi)).view(np.int64)
    biased = (word >> 52) & 0x7FF
    significand = word & ((np.int64(1) << 52) - 1)
    power = -1074
    if biased != 0:
        significand |= np.int64(1) << 52
        power = biased - 1075
    significand = 2 * significand + (1 if (lo > 0.0) == (hi > 0.0) else -1)
    return from_bits(round_parts(hi < 0.0, significand, power - 1, True, n, es, longest), n, es, longest)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _round_pair(hi, lo, n, es, longest):
    """_fast_pair, through the pattern where it gives way."""
    value = _fast_pair(hi, lo, n, es, longest)
    return value if value == value else _pair_through_bits(hi, lo, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def posit_pair(hi, lo, n, es, longest):
    """hi + lo (an exact pair, |lo| at most half hi's last place) rounded once."""
    return _round_pair(hi, lo, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def posit_add(a, b, n, es, longest):
    s, e = two_sum(a, b)
    return _round_pair(s, e, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def posit_mul(a, b, n, es, longest):
    p, e = two_product(a, b)
    return _round_pair(p, e, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def posit_div(a, b, n, es, longest):
    """a / b rounded once: the residual a - q b of the double quotient q is exact, and its sign
    says on which side of q the quotient lies."""
    if b == 0.0:
        return math.nan                            # NaR, also for 0 / 0
    q = a / b
    if q == 0.0 or not math.isfinite(q):
        return round_to(q, n, es, longest)
    p, e = two_product(q, b)
    r = (a - p) - e
    return _round_pair(q, r if b > 0.0 else -r, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def posit_sqrt(a, n, es, longest):
    if a < 0.0 or a != a:
        return math.nan
    s = math.sqrt(a)
    if s == 0.0:
        return 0.0
    p, e = two_product(s, s)
    return _round_pair(s, (a - p) - e, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def _grow(parts, base, m, x):
    """Adds x to the nonoverlapping expansion parts[base:base + m] (increasing magnitude); its new
    length, at most m + 1."""
    j = 0
    for k in range(m):
        y = parts[base + k]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            parts[base + j] = lo
            j += 1
        x = hi
    if x != 0.0 or j == 0:                         # a zero on top would hide the sign of the rest
        parts[base + j] = x
        j += 1
    return j


@numba.njit(cache=True, error_model="numpy")
def _exact_round(parts, m, n, es, longest):
    """The exact sum of the m doubles parts[:m] rounded once to the posit format; parts[m:2m + 2]
    is room for an expansion (Shewchuk's), the terms are kept."""
    for i in range(m):
        if not math.isfinite(parts[i]):
            return math.nan
    size = 0
    for i in range(m):
        size = _grow(parts, m, size, parts[i])
    hi = 0.0
    for k in range(size - 1, -1, -1):
        hi += parts[m + k]
    # The residual exact - hi as an expansion, whose sign is its largest part's; hi moves until
    # that part is at most half hi's last place (a step or two: hi starts within a few places).
    while True:
        size = 0
        for i in range(m):
            size = _grow(parts, m, size, parts[i])
        size = _grow(parts, m, size, -hi)
        top = parts[m + size - 1]
        moved = hi + top
        if moved == hi:
            return _round_pair(hi, top, n, es, longest)
        hi = moved


@intrinsic
def _scratch(typingctx, xs):
    """Room for a fused sum of the tuple xs's terms and their expansion, 4 len(xs) + 2 doubles, on the
    stack of the function that asks (alloca in its entry block): no allocation a call could leave
    behind, and none the memory plan would have to count."""
    if not isinstance(xs, types.BaseTuple):
        return None
    size = 4 * len(xs.types) + 2

    def emit(context, builder, signature, args):
        return cgutils.alloca_once(builder, llvmir.DoubleType(), size=size)
    return types.CPointer(types.float64)(xs), emit


@numba.njit(cache=True, error_model="numpy")
def _fused_exactly(xs, ys, products, n, es, longest):
    k = len(xs)
    parts = numba.carray(_scratch(xs), 4 * k + 2)
    for i in range(k):
        p, e = two_product(xs[i], ys[i]) if products else (xs[i], 0.0)
        parts[2 * i] = p
        parts[2 * i + 1] = e
    return _exact_round(parts, 2 * k, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def _fast_fused(xs, ys, products, n, es, longest):
    """The sum of xs[i] ys[i] (products) or of xs[i] (not), rounded once, by a chain of fused
    multiply-adds (see posit_dot); NaN where its bound leaves the rounding open (a tie, terms that
    cancel to zero) and the chain may have rounded; 0 where every term is zero.  Small enough for
    LLVM to inline: with Sum2 in it, it is called, and the kernels' fast path runs at the exact
    one's speed."""
    k = len(xs)
    s = 0.0
    z = 0.0
    for i in range(k):
        y = ys[i] if products else 1.0
        s = _fma(xs[i], y, s)
        z = _fma(abs(xs[i]), abs(y), z)
    c = _CELLS[_row(n, es), (np.float64(s).view(np.int64) >> 52) & 0x7FF]
    rounded = (s + c) - c                          # see fast; NaN at the range's ends (and for 0)
    half = np.int64((np.float64(c).view(np.int64) & ~_FRACTION) - (53 << 52)).view(np.float64)
    d = abs(s - rounded)
    # the nearest rounding boundary: a midpoint, or below the binade (an eighth of a cell below)
    room = half - d if abs(rounded) > abs(s) else min(half - d, d + 0.25 * half)
    open_ = 2.0 * (k + 1) * _U * z >= room
    q = n - 2 - es                                 # the most significand bits (phg.numeric)
    if open_ and 2 * q + 2 <= 53:                  # (n, es constants where kernels call it)
        # Every product is a double, and the chain is exact (a sum of 16-bit values is often
        # exactly a tie, which only this decides) where every term is a multiple of
        # 2^(E(least) - 2q + 1) > least 2^-2q, a grid on which the sum of their magnitudes, so
        # every partial sum, is below 2^53 places; z, itself rounded, is held below half that.
        least = math.inf
        for i in range(k):
            t = abs(xs[i] * ys[i]) if products else abs(xs[i])
            least = min(least, t if t > 0.0 else math.inf)
        if z < least * np.int64((1023 + 52 - 2 * q) << 52).view(np.float64):
            return 0.0 if s == 0.0 else rounded
    return 0.0 if z == 0.0 else (math.nan if open_ else rounded)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _certain(s, c, size, terms, exact, n, es, longest):
    """(whether it is certain, the rounded sum) of an exact sum s + c + d, |d| <= B; see posit_dot."""
    if exact:                                      # s is the exact sum (or a NaN, an infinity: NaR)
        return True, round_to(s, n, es, longest)
    bound = 2.0 * (terms + 1) ** 2 * _U * _U * size
    s, c = two_sum(s, c)
    if math.isfinite(size) and bound < abs(s) * _U * 0.25:
        if abs(c) > 2.0 * bound:
            return True, _round_pair(s, c, n, es, longest)
        below = round_to(_next(s, False), n, es, longest)
        if below == round_to(_next(s, True), n, es, longest):
            return True, below
    return False, 0.0


@numba.njit(cache=True, error_model="numpy", inline="always")
def _fused(xs, ys, products, n, es, longest):
    """The exact sum of xs[i] ys[i] (products) or of xs[i] (not), rounded once: Sum2, then the
    expansion; see posit_dot."""
    k = len(xs)
    s = 0.0
    c = 0.0
    size = 0.0
    exact = True
    for i in range(k):
        p, e = two_product(xs[i], ys[i]) if products else (xs[i], 0.0)
        s, err = two_sum(s, p)
        c += err + e
        size += abs(p)
        exact = exact and err == 0.0 and e == 0.0
    done, value = _certain(s, c, size, 2 * k, exact, n, es, longest)
    return value if done else _fused_exactly(xs, ys, products, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def _sum2(xs, ys, products, n, es, longest):
    return _fused(xs, ys, products, n, es, longest)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _fused_sum(xs, ys, products, n, es, longest):
    value = _fast_fused(xs, ys, products, n, es, longest)
    return value if value == value else _sum2(xs, ys, products, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def posit_dot(xs, ys, n, es, longest):
    """The fused dot product of two tuples of format values: every product exact (the quire),
    their sum rounded once.

    Three ways, each taken only where it is certain (_fast_fused, then _fused).  A chain of
    fused multiply-adds s, within B = 2 (k + 1) u sum |x_i y_i| of the exact sum (a rounding a
    step), rounds as the exact sum does where no rounding boundary lies within B of s: the
    boundaries of s's binade are the midpoints of its cells; the first one below the binade is at
    least an eighth of a cell below it, and none above is nearer than the cell's midpoint (a
    neighbouring binade's cells are at most twice as fine below and no finer above).  Else Sum2
    (Ogita, Rump and Oishi): the exact products (p_i, e_i) summed by TwoSum into s with their
    errors' float sum c, then (s, c) renormalised; the exact sum is s + c + d with |d| <= B', B'
    a bound on c's own rounding errors (at most (2k)^2 u^2 sum |p_i|, here doubled); where every
    TwoSum and product was exact, s is the sum (a tie at s is then one), and where |c| > 2 B' and
    B' is far below s's last place, the sum rounds as the pair (s, c) does.  Otherwise the exact
    sum of the products as a nonoverlapping expansion (Shewchuk's), rounded once."""
    return _fused_sum(xs, ys, True, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def posit_sum(xs, n, es, longest):
    """The exact sum of a tuple of format values rounded once (posit_dot without products)."""
    return _fused_sum(xs, xs, False, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def fast(x, n, es, longest):
    """A double x rounded to the format (_fast_pair(x, 0)): two additions and a load (n and es are
    constants where the kernels call it)."""
    c = _CELLS[_row(n, es), (np.float64(x).view(np.int64) >> 52) & 0x7FF]
    return 0.0 if x == 0.0 else (x + c) - c


@numba.njit(cache=True, error_model="numpy")
def posit(x, n, es, longest):
    """x rounded to the posit format (NaN, an infinity: NaR, a NaN), as the kernels call it: by the
    table of places (fast), and through the pattern in the binades where that gives way."""
    value = fast(x, n, es, longest)
    return value if value == value else round_to(x, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def fast_add(a, b, n, es, longest):
    s, e = two_sum(a, b)
    return _fast_pair(s, e, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def fast_mul(a, b, n, es, longest):
    p, e = two_product(a, b)
    return _fast_pair(p, e, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def fast_div(a, b, n, es, longest):
    q = a / b                                      # b = 0: an infinity or a NaN, the pair's NaN
    p, e = two_product(q, b)
    r = (a - p) - e
    return _fast_pair(q, r if b > 0.0 else -r, n, es, longest) if math.isfinite(q) else math.nan


@numba.njit(cache=True, error_model="numpy")
def fast_sqrt(a, n, es, longest):
    s = math.sqrt(abs(a))
    p, e = two_product(s, s)
    return _fast_pair(s, (abs(a) - p) - e, n, es, longest) if a >= 0.0 else math.nan


@numba.njit(cache=True, error_model="numpy")
def fast_dot(xs, ys, n, es, longest):
    return _fast_fused(xs, ys, True, n, es, longest)


@numba.njit(cache=True, error_model="numpy")
def fast_sum(xs, n, es, longest):
    return _fast_fused(xs, xs, False, n, es, longest)


@intrinsic
def stack_flags(typingctx, size):
    """A byte per sample of a chunk, on the stack of the function that asks (alloca in its entry
    block; `size` a literal): which samples the fast path left open (codegen.training)."""
    if not isinstance(size, types.IntegerLiteral):
        return None
    count = size.literal_value

    def emit(context, builder, signature, args):
        return cgutils.alloca_once(builder, llvmir.IntType(8), size=count)
    return types.CPointer(types.uint8)(size), emit


@numba.njit(cache=True, error_model="numpy")
def _posit_array(flat, n, es, longest):
    for i in range(flat.size):
        flat[i] = round_to(flat[i], n, es, longest)


def round_array(a: np.ndarray, numeric: str) -> None:
    """Rounds a C-contiguous float64 array to the format, in place (the parameters a model in a
    format stores)."""
    fmt = FORMATS[numeric]
    if fmt.is_posit:
        _posit_array(a.reshape(-1), fmt.posit.n, fmt.posit.es, fmt.posit.longest_run)
    elif fmt.bits == 32:
        a[...] = a.astype(np.float32)
