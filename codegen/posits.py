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
def to_bits(x: float, n: int, es: int, longest: int) -> int:
    """The pattern (n bits, two's complement) nearest x: round to nearest on the bit string, ties
    to the even pattern, never to 0 (minpos) or NaR (maxpos); NaR for a NaN or an infinity.
    `longest` is the regime's longest run (n - 1 for posits, 6 for b-posits)."""
    mask = (1 << n) - 1
    nar = 1 << (n - 1)
    if x != x or x == math.inf or x == -math.inf:
        return nar
    if x == 0.0:
        return 0
    word = np.float64(abs(x)).view(np.int64)
    biased = (word >> 52) & 0x7FF
    fraction = word & _FRACTION
    if biased == 0:                                # subnormal: normalise the significand
        scale = -1022
        while fraction < (1 << 52):
            fraction <<= 1
            scale -= 1
        fraction &= _FRACTION
    else:
        scale = biased - 1023
    k = scale >> es                                # floor division by 2^es
    e = scale - (k << es)
    top = longest - 1
    if k > top:
        pattern = nar - 1
    elif k < -longest:
        pattern = 1
    else:
        run = k + 1 if k >= 0 else -k
        regime = ((1 << run) - 1) if k >= 0 else 0
        length = run
        if run < longest:
            regime = (regime << 1) | (0 if k >= 0 else 1)
            length += 1
        head = (regime << es) | e                  # regime and exponent: length + es bits
        head_bits = length + es
        room = n - 1                               # bits after the sign
        if head_bits <= room:
            kept = room - head_bits                # fraction bits the word keeps
            pattern = (head << kept) | (fraction >> (52 - kept))
            below = 52 - kept
            guard = (fraction >> (below - 1)) & 1
            sticky = (fraction & ((1 << (below - 1)) - 1)) != 0
        else:
            cut = head_bits - room                 # head bits below the word
            pattern = head >> cut
            guard = (head >> (cut - 1)) & 1
            sticky = (head & ((1 << (cut - 1)) - 1)) != 0 or fraction != 0
        if guard and (sticky or (pattern & 1)):
            pattern += 1
        pattern = min(max(pattern, 1), nar - 1)
    return ((-pattern) & mask) if x < 0 else pattern


@numba.njit(cache=True, error_model='numpy')
def from_bits(pattern: int, n: int, es: int, longest: int) -> float:
    """A pattern's value (NaN for NaR)."""
    mask = (1 << n) - 1
    pattern &= mask
    if pattern == 0:
        return 0.0
    if pattern == 1 << (n - 1):
        return math.nan
    negative = pattern >> (n - 1)
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
    fraction = pattern & ((1 << f_bits) - 1)
    value = math.ldexp(1.0 + fraction / (1 << f_bits), k * (1 << es) + e)
    return -value if negative else value


@numba.njit(cache=True, error_model='numpy')
def round_to(x: float, n: int, es: int, longest: int) -> float:
    """x rounded to the format, as a float64 (NaN for NaR)."""
    return from_bits(to_bits(x, n, es, longest), n, es, longest)


@numba.njit(cache=True, error_model='numpy')
def round_array(xs: np.ndarray, n: int, es: int, longest: int) -> np.ndarray:
    out = np.empty_like(xs)
    for i in range(xs.size):
        out.flat[i] = round_to(xs.flat[i], n, es, longest)
    return out


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
