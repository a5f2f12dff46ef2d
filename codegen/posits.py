"""Posit and b-posit rounding for the kernels: a float64 to its nearest pattern and a pattern to its
float64 value (every posit and b-posit of at most 32 bits is a double), in integer arithmetic that
Numba compiles.  phg.posit is their exact oracle.

Decoding, computing an operation in float64 and rounding the result once gives the correctly
rounded posit result when the double's 53 bits are at least 2q + 2 (q the format's significand
bits): posit8, posit16, bposit16 and bposit32, not posit32 (q = 28).
"""
from __future__ import annotations

import math

import numba
import numpy as np

_FRACTION = (1 << 52) - 1


@numba.njit(cache=True, error_model='numpy')
def round_parts(negative: bool, significand: int, power: int, sticky: bool, n: int, es: int, longest: int) -> int:
    """The pattern nearest (-1)^negative (significand + a sticky part below it) 2^power, a positive
    significand of at most 62 bits: round to nearest on the bit string, ties to the even pattern,
    never to 0 (minpos) or NaR (maxpos).  `longest` is the regime's longest run (n - 1 for posits,
    6 for b-posits)."""
    mask = (1 << n) - 1
    nar = 1 << (n - 1)
    width = 0                                      # the significand's bits below its leading one
    while (significand >> (width + 1)) != 0:
        width += 1
    fraction = significand - (1 << width)
    scale = power + width
    k = scale >> es                                # floor division by 2^es
    e = scale - (k << es)
    if k > longest - 1:
        pattern = nar - 1
    elif k < -longest:
        pattern = 1
    else:
        run = k + 1 if k >= 0 else -k
        regime = ((1 << run) - 1) if k >= 0 else 0
        length = run
        if run < longest:                          # the terminating opposite bit
            regime = (regime << 1) | (0 if k >= 0 else 1)
            length += 1
        head = (regime << es) | e                  # regime and exponent: length + es bits
        room = n - 1 - length - es                 # fraction bits the word keeps (negative: head bits cut)
        if room >= width:
            pattern = (head << width | fraction) << (room - width)
            guard = 0
        elif room >= 0:
            below = width - room
            pattern = (head << room) | (fraction >> below)
            guard = (fraction >> (below - 1)) & 1
            sticky = sticky or (fraction & ((1 << (below - 1)) - 1)) != 0
        else:
            cut = -room
            pattern = head >> cut
            guard = (head >> (cut - 1)) & 1
            sticky = sticky or (head & ((1 << (cut - 1)) - 1)) != 0 or fraction != 0
        if guard and (sticky or (pattern & 1)):
            pattern += 1
        pattern = min(max(pattern, 1), nar - 1)
    return ((-pattern) & mask) if negative else pattern


@numba.njit(cache=True, error_model='numpy')
def to_bits(x: float, n: int, es: int, longest: int) -> int:
    """The pattern nearest x (NaR for a NaN or an infinity)."""
    if x != x or x == math.inf or x == -math.inf:
        return 1 << (n - 1)
    if x == 0.0:
        return 0
    word = np.float64(abs(x)).view(np.int64)
    biased = (word >> 52) & 0x7FF
    fraction = word & _FRACTION
    if biased == 0:                                # subnormal: no hidden bit
        return round_parts(x < 0, fraction, -1074, False, n, es, longest)
    return round_parts(x < 0, fraction | (1 << 52), biased - 1075, False, n, es, longest)


@numba.njit(cache=True, error_model='numpy')
def from_bits(pattern: int, n: int, es: int, longest: int) -> float:
    """A pattern's value (NaN for NaR)."""
    pattern &= (1 << n) - 1
    if pattern == 0:
        return 0.0
    if pattern == 1 << (n - 1):
        return math.nan
    negative, significand, power = parts(pattern, n, es, longest)
    value = math.ldexp(float(significand), power)           # at most 28 bits: exact
    return -value if negative else value


@numba.njit(cache=True, error_model='numpy')
def _round_through_bits(x: float, n: int, es: int, longest: int) -> float:
    return from_bits(to_bits(x, n, es, longest), n, es, longest)


_ABS = 0x7FFFFFFFFFFFFFFF


@numba.njit(cache=True, error_model='numpy')
def round_to(x: float, n: int, es: int, longest: int) -> float:
    """x rounded to the format, as a float64 (NaN for NaR).  Within a binade 2^e the format has
    the same fraction bits f (its regime depends on e alone); where f >= 1 and the regime is
    neither the largest (saturation) nor a capped smallest one (whose binade starts at a pattern
    that is 0), rounding the double's significand to f bits, ties to even, is the posit's
    rounding: the pattern's last bit is the fraction's, and a carry into the next binade gives its
    power of two, a value of every format.  Elsewhere (and for 0, NaN, infinities, subnormals)
    through the pattern."""
    bits = np.float64(x).view(np.int64)
    e = ((bits >> 52) & 0x7FF) - 1023
    k = e >> es
    run = k + 1 if k >= 0 else -k
    f = n - 1 - es - (run + 1 if run < longest else run)
    if f < 1 or k >= longest - 1 or k <= -longest:
        return _round_through_bits(x, n, es, longest)
    shift = 52 - f
    mag = bits & _ABS
    mag += (np.int64(1) << (shift - 1)) - 1 + ((mag >> shift) & 1)
    mag &= ~((np.int64(1) << shift) - 1)
    return np.int64(mag | (bits & ~_ABS)).view(np.float64)


@numba.njit(cache=True, error_model='numpy')
def to_bits_array(xs: np.ndarray, n: int, es: int, longest: int) -> np.ndarray:
    out = np.empty(xs.size, np.int64)
    for i in range(xs.size):
        out[i] = to_bits(xs.flat[i], n, es, longest)
    return out


@numba.njit(cache=True, error_model='numpy')
def from_bits_array(patterns: np.ndarray, n: int, es: int, longest: int) -> np.ndarray:
    out = np.empty(patterns.size, np.float64)
    for i in range(patterns.size):
        out[i] = from_bits(patterns[i], n, es, longest)
    return out


# ---- arithmetic on patterns, correctly rounded in integers (posit32 too) ----------------------------
@numba.njit(cache=True, error_model='numpy')
def _width(x: int) -> int:
    """The bits of a positive integer."""
    w = 0
    while x >> w:
        w += 1
    return w


@numba.njit(cache=True, error_model='numpy')
def parts(pattern: int, n: int, es: int, longest: int):
    """(negative, significand, power) of a nonzero, non-NaR pattern: its value is
    (-1)^negative significand 2^power."""
    mask = (1 << n) - 1
    pattern &= mask
    negative = (pattern >> (n - 1)) == 1
    if negative:
        pattern = (-pattern) & mask
    left = n - 1
    first = (pattern >> (left - 1)) & 1
    run = 0
    while run < left and run < longest and ((pattern >> (left - 1 - run)) & 1) == first:
        run += 1
    k = run - 1 if first else -run
    used = run + (1 if run < left and run < longest else 0)
    rest = left - used
    e_bits = min(es, rest)
    e = ((pattern >> (rest - e_bits)) & ((1 << e_bits) - 1)) << (es - e_bits)
    f_bits = rest - e_bits
    significand = (1 << f_bits) | (pattern & ((1 << f_bits) - 1))
    return negative, significand, k * (1 << es) + e - f_bits


@numba.njit(cache=True, error_model='numpy')
def add(a: int, b: int, n: int, es: int, longest: int) -> int:
    """a + b rounded once."""
    nar = 1 << (n - 1)
    if a == nar or b == nar:
        return nar
    if a == 0:
        return b
    if b == 0:
        return a
    na, sa, pa = parts(a, n, es, longest)
    nb, sb, pb = parts(b, n, es, longest)
    if pa + _width(sa) < pb + _width(sb):          # the larger magnitude's leading bit first
        na, sa, pa, nb, sb, pb = nb, sb, pb, na, sa, pa
    shift = 60 - _width(sa)                        # its leading bit at bit 59: room for a carry
    big, power = sa << shift, pa - shift
    d = pb - power                                 # the other in units of 2^power
    if d >= 0:
        small = sb << d
    elif -d >= 62:
        small = 1                                  # only its sticky part reaches: below every bit kept
    else:
        small = (sb >> -d) | (1 if sb & ((1 << -d) - 1) else 0)
    total = big + small if na == nb else big - small
    negative = na
    if total < 0:
        total, negative = -total, not na
    if total == 0:
        return 0
    return round_parts(negative, total, power, False, n, es, longest)


@numba.njit(cache=True, error_model='numpy')
def sub(a: int, b: int, n: int, es: int, longest: int) -> int:
    return add(a, (-b) & ((1 << n) - 1), n, es, longest)


@numba.njit(cache=True, error_model='numpy')
def mul(a: int, b: int, n: int, es: int, longest: int) -> int:
    nar = 1 << (n - 1)
    if a == nar or b == nar:
        return nar
    if a == 0 or b == 0:
        return 0
    na, sa, pa = parts(a, n, es, longest)
    nb, sb, pb = parts(b, n, es, longest)
    return round_parts(na != nb, sa * sb, pa + pb, False, n, es, longest)


@numba.njit(cache=True, error_model='numpy')
def div(a: int, b: int, n: int, es: int, longest: int) -> int:
    nar = 1 << (n - 1)
    if a == nar or b == nar or b == 0:
        return nar
    if a == 0:
        return 0
    na, sa, pa = parts(a, n, es, longest)
    nb, sb, pb = parts(b, n, es, longest)
    shift = 61 - _width(sa)                        # a quotient of 30 bits and more
    q = (sa << shift) // sb
    r = (sa << shift) - q * sb
    return round_parts(na != nb, q, pa - pb - shift, r != 0, n, es, longest)


@numba.njit(cache=True, error_model='numpy')
def sqrt(a: int, n: int, es: int, longest: int) -> int:
    """The square root rounded once; NaR for a negative number."""
    if a == 0:
        return 0
    if (a >> (n - 1)) & 1:                         # negative, or NaR
        return 1 << (n - 1)
    _, significand, power = parts(a, n, es, longest)
    if power & 1:                                  # an even power: sqrt(s 2^2h) = sqrt(s) 2^h
        significand <<= 1
        power -= 1
    shift = (62 - _width(significand)) // 2        # sqrt(s 4^shift) has 30 bits and more
    v = significand << (2 * shift)
    root = int(math.sqrt(float(v)))
    while root * root > v:
        root -= 1
    while (root + 1) * (root + 1) <= v:
        root += 1
    return round_parts(False, root, power // 2 - shift, root * root != v, n, es, longest)


@numba.njit(cache=True, error_model='numpy')
def apply_arrays(op: int, a: np.ndarray, b: np.ndarray, n: int, es: int, longest: int) -> np.ndarray:
    """op (0 add, 1 sub, 2 mul, 3 div, 4 the square root of a) of two arrays of patterns."""
    out = np.empty(a.size, np.int64)
    for i in range(a.size):
        if op == 0:
            out[i] = add(a[i], b[i], n, es, longest)
        elif op == 1:
            out[i] = sub(a[i], b[i], n, es, longest)
        elif op == 2:
            out[i] = mul(a[i], b[i], n, es, longest)
        elif op == 3:
            out[i] = div(a[i], b[i], n, es, longest)
        else:
            out[i] = sqrt(a[i], n, es, longest)
    return out


# ---- the quire: products summed exactly, rounded once ------------------------------------------------
# A quire is an int64 array of LIMB-bit limbs of a fixed-point number, least significant first,
# each allowed to run over (a carry pending, or negative): a product adds less than 2^30 to a limb,
# so 2^33 of them fit before one could overflow, more than the 2^31 - 1 a quire must take.  Two
# limbs (60 bits) hold more than a 32-bit format's significand and guard bit.
LIMB = 30


def quire_span(n: int, es: int, longest: int) -> tuple[int, int]:
    """(lowest bit, limbs) of a quire of the format: from the power of the smallest product to the
    largest product's bits and 31 carry bits above them (2^31 - 1 products, as the standard's)."""
    low = 2 * (-longest * (1 << es) - (n - 1))            # below the smallest product's last bit
    high = 2 * ((longest - 1) * (1 << es) + (1 << es)) + 2 + 31
    return low, -(-(high - low) // LIMB) + 1


@numba.njit(cache=True, error_model='numpy')
def quire_add(quire: np.ndarray, low: int, a: int, b: int, n: int, es: int, longest: int) -> bool:
    """Adds the exact product of two patterns to the quire; False (nothing added) for a NaR."""
    nar = 1 << (n - 1)
    if a == nar or b == nar:
        return False
    if a == 0 or b == 0:
        return True
    na, sa, pa = parts(a, n, es, longest)
    nb, sb, pb = parts(b, n, es, longest)
    product = sa * sb                              # at most 2 (n - 2) bits: exact
    offset = pa + pb - low
    limb, bit = offset // LIMB, offset % LIMB
    sign = -1 if na != nb else 1
    part = LIMB - bit                              # the product's low part fills its first limb from `bit`
    quire[limb] += sign * ((product & ((1 << part) - 1)) << bit)
    product >>= part
    while product:
        limb += 1
        quire[limb] += sign * (product & ((1 << LIMB) - 1))
        product >>= LIMB
    return True


@numba.njit(cache=True, error_model='numpy')
def quire_normalise(quire: np.ndarray) -> None:
    """Every limb back in [0, 2^LIMB), the carries (and borrows) moved up; the top limb keeps the sign."""
    for i in range(quire.size - 1):
        carry = quire[i] >> LIMB                   # floor division: borrows too
        quire[i] -= carry << LIMB
        quire[i + 1] += carry


@numba.njit(cache=True, error_model='numpy')
def quire_round(quire: np.ndarray, low: int, n: int, es: int, longest: int) -> int:
    """The quire's value rounded once to the format."""
    q = quire.copy()
    quire_normalise(q)
    negative = q[-1] < 0
    if negative:                                   # its magnitude: the two's complement over the limbs
        for i in range(q.size):
            q[i] = -q[i]
        quire_normalise(q)
    top = q.size - 1
    while top >= 0 and q[top] == 0:
        top -= 1
    if top < 0:
        return 0
    # the leading two limbs as the significand (at least 31 bits), what lies below them as sticky
    first = max(top - 1, 0)
    significand = 0
    for i in range(top, first - 1, -1):
        significand = (significand << LIMB) | q[i]
    sticky = False
    for i in range(first):
        sticky = sticky or q[i] != 0
    return round_parts(negative, significand, low + first * LIMB, sticky, n, es, longest)
