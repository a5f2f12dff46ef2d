"""Posit and b-posit formats, and their exact meaning: encoding, decoding and correct rounding over
the rationals (the oracle the kernels' posit arithmetic is checked against).

Posits (2022 Posit Standard): n bits, two's complement; 0 is all zeros and NaR (not a real) is
1 followed by zeros; after the sign a regime, a run of equal bits ended by the opposite bit (or by
the end of the word), whose length gives k (a run of m ones: k = m - 1; of m zeros: k = -m); then
es = 2 exponent bits e (those the word has room for) and the fraction f.  A positive pattern's
value is 2^(k 2^es + e) (1 + f).  Rounding is to nearest on the bit string, ties to the even
pattern, and never to 0 or NaR: a nonzero value rounds to at least minpos, at most maxpos.

b-posits (Jonnalagadda, Thotli, Gustafson, arXiv 2603.01615, 2026): a posit whose regime run is
capped at 6 bits (a run of 6 has no terminating bit), with es = 5: k in [-6, 5], values from
2^-192 to 2^192, and for every width above 12 the whole exponent always fits.

A value here is a Fraction (or an int); NaR is None.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Format:
    name: str
    n: int                         # bits
    es: int                        # exponent bits
    run: int | None = None         # the regime's longest run (b-posits: 6); None: the word's length

    @property
    def mask(self) -> int:
        return (1 << self.n) - 1

    @property
    def nar(self) -> int:
        return 1 << (self.n - 1)

    @property
    def maxpos(self) -> int:
        """The pattern of the largest value."""
        return self.nar - 1

    @property
    def longest_run(self) -> int:
        return self.n - 1 if self.run is None else min(self.run, self.n - 1)

    @property
    def quire_fraction_bits(self) -> int:
        """Bits below the binary point of every product of two values: twice the smallest value's
        (its last place is the finest any value has)."""
        return 2 * (Fraction(decode(self, 1)).denominator.bit_length() - 1)

    @property
    def quire_bits(self) -> int:
        """The quire's width: 16n bits for posits (the 2022 standard); for b-posits the sign, 31
        carry bits and every bit of a product from maxpos^2 down to the smallest value's last place.
        The paper's 800 bits hold products from 2^-384 up; the smallest b-posits have fraction bits
        (the regime's run is capped), so their exact products reach below it: 808 bits for bposit16,
        840 for bposit32."""
        if self.run is None:
            return 16 * self.n
        top = (Fraction(decode(self, self.maxpos)) ** 2 * (2**31 - 1)).__ceil__().bit_length()
        return 1 + top + self.quire_fraction_bits


FORMATS = {f.name: f for f in (Format("posit8", 8, 2), Format("posit16", 16, 2), Format("posit32", 32, 2),
                               Format("bposit16", 16, 5, 6), Format("bposit32", 32, 5, 6))}


def decode(fmt: Format, bits: int) -> Fraction | None:
    """The value of a pattern (None for NaR)."""
    bits &= fmt.mask
    if bits == 0:
        return Fraction(0)
    if bits == fmt.nar:
        return None
    negative = bits >> (fmt.n - 1)
    if negative:
        bits = -bits & fmt.mask
    left = fmt.n - 1                               # bits after the sign, read from the top
    first = bits >> (left - 1) & 1
    run = 0
    while run < left and run < fmt.longest_run and (bits >> (left - 1 - run) & 1) == first:
        run += 1
    k = run - 1 if first else -run
    used = run + (1 if run < left and run < fmt.longest_run else 0)    # the terminating bit, if any
    rest = left - used
    e_bits = min(fmt.es, rest)
    e = (bits >> (rest - e_bits) & ((1 << e_bits) - 1)) << (fmt.es - e_bits)
    f_bits = rest - e_bits
    significand = (1 << f_bits) | (bits & ((1 << f_bits) - 1))      # 1.f, f_bits after the point
    power = k * (1 << fmt.es) + e - f_bits
    value = Fraction(significand << power) if power >= 0 else Fraction(significand, 1 << -power)
    return -value if negative else value


def _floor_log2(num: int, den: int) -> int:
    """floor(log2(num / den)) of a positive ratio, in integers."""
    s = num.bit_length() - den.bit_length()
    return s if (num << max(0, -s)) >= (den << max(0, s)) else s - 1


def _regime(fmt: Format, k: int) -> tuple[int, int]:
    """The regime's bits and their count for k."""
    run = k + 1 if k >= 0 else -k
    ones = k >= 0
    bits = ((1 << run) - 1) if ones else 0
    if run < fmt.longest_run:                      # the terminating opposite bit
        return bits << 1 | (0 if ones else 1), run + 1
    return bits, run


def encode(fmt: Format, x) -> int:
    """The pattern of x rounded to the format (x an int, Fraction or finite float; NaR for None or
    a float NaN or infinity)."""
    if x is None or (isinstance(x, float) and (x != x or x in (float("inf"), float("-inf")))):
        return fmt.nar
    x = Fraction(x)
    if x == 0:
        return 0
    negative, x = x < 0, abs(x)
    num, den = x.numerator, x.denominator
    top = fmt.longest_run - 1                      # the largest k; the smallest is -longest_run
    scale = _floor_log2(num, den)
    k, e = divmod(scale, 1 << fmt.es)
    if k > top:
        pattern = fmt.maxpos
    elif k < -fmt.longest_run:
        pattern = 1                                # minpos: never 0
    else:
        regime, length = _regime(fmt, k)
        f_bits = fmt.n + 3                         # beyond the word, and a sticky bit for the rest
        shift = f_bits - scale                     # x 2^shift is the fraction's bits, the hidden 1 above them
        num, den = (num << shift, den) if shift >= 0 else (num, den << -shift)
        whole, rest = divmod(num, den)
        fraction, sticky = whole - (1 << f_bits), rest != 0
        body = ((regime << fmt.es | e) << f_bits) | fraction
        length += fmt.es + f_bits
        cut = length - (fmt.n - 1)                 # bits below the word (length >= n + 3 > n - 1)
        pattern = body >> cut
        guard = body >> (cut - 1) & 1
        sticky = sticky or (body & ((1 << (cut - 1)) - 1)) != 0
        if guard and (sticky or pattern & 1):
            pattern += 1
        pattern = min(max(pattern, 1), fmt.maxpos)
    return -pattern & fmt.mask if negative else pattern


def value_range(fmt: Format) -> tuple[Fraction, Fraction]:
    """(minpos, maxpos)."""
    return decode(fmt, 1), decode(fmt, fmt.maxpos)


# ---- arithmetic: exact, rounded once ---------------------------------------------------------
def _apply(fmt: Format, op, *patterns: int) -> int:
    values = [decode(fmt, p) for p in patterns]
    if any(v is None for v in values):
        return fmt.nar
    try:
        return encode(fmt, op(*values))
    except ZeroDivisionError:
        return fmt.nar


def add(fmt: Format, a: int, b: int) -> int:
    return _apply(fmt, lambda x, y: x + y, a, b)


def sub(fmt: Format, a: int, b: int) -> int:
    return _apply(fmt, lambda x, y: x - y, a, b)


def mul(fmt: Format, a: int, b: int) -> int:
    return _apply(fmt, lambda x, y: x * y, a, b)


def div(fmt: Format, a: int, b: int) -> int:
    return _apply(fmt, lambda x, y: x / y, a, b)


def sqrt(fmt: Format, a: int) -> int:
    """The square root rounded once; NaR for a negative number."""
    x = decode(fmt, a)
    if x is None or x < 0:
        return fmt.nar
    if x == 0:
        return 0
    num, den = x.numerator, x.denominator          # den a power of 2: 2^d
    d = den.bit_length() - 1
    extra = 2 * (fmt.n + 4) + (d & 1)              # sqrt(num 2^extra) has n + 4 bits and more
    scaled = num << extra
    root = math.isqrt(scaled)
    half = (d + extra) // 2                        # sqrt(x) = sqrt(scaled) / 2^half
    if root * root == scaled:
        return encode(fmt, Fraction(root, 1 << half))
    # strictly between root and root + 1, far below the word's last bit: any point between rounds alike
    return encode(fmt, Fraction(2 * root + 1, 1 << (half + 1)))


def dot(fmt: Format, a: list[int], b: list[int]) -> int:
    """The fused dot product: every product summed exactly (the quire), rounded once."""
    total = Fraction(0)
    for x, y in zip(a, b):
        u, v = decode(fmt, x), decode(fmt, y)
        if u is None or v is None:
            return fmt.nar
        total += u * v
    return encode(fmt, total)
