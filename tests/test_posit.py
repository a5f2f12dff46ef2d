"""Posit and b-posit formats (phg.posit), the exact oracle: bit for bit against universal-dtypes
(posit8/16 exhaustively, posit32 on random patterns and values, every operation on random pairs
with the special values among them) and SoftPosit's quire; then the same code, its regime run
capped, on b-posits by the format's own properties."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import softposit
import universal_dtypes as ud

from phg import posit
from phg.posit import FORMATS, decode, encode

UD = {"posit8": (ud.posit8, np.uint8), "posit16": (ud.posit16, np.uint16), "posit32": (ud.posit32, np.uint32)}


def _ud_values(name: str, patterns: np.ndarray) -> np.ndarray:
    dtype, bits = UD[name]
    return patterns.astype(bits).view(dtype).astype(np.float64)


def _ud_patterns(name: str, values: np.ndarray) -> np.ndarray:
    dtype, bits = UD[name]
    return values.astype(dtype).view(bits).astype(np.int64)


def _as_float(v) -> float:
    return float("nan") if v is None else float(v)


@pytest.mark.parametrize("name", ["posit8", "posit16"])
def test_every_pattern_decodes_as_universal_does(name):
    fmt = FORMATS[name]
    patterns = np.arange(1 << fmt.n, dtype=np.int64)
    want = _ud_values(name, patterns)
    got = np.array([_as_float(decode(fmt, int(p))) for p in patterns])
    assert np.array_equal(got, want, equal_nan=True)
    assert decode(fmt, fmt.nar) is None and decode(fmt, 0) == 0
    assert decode(fmt, fmt.maxpos) == Fraction(2) ** (4 * (fmt.n - 2)) == 1 / decode(fmt, 1)


def _probes(fmt, rng, count: int) -> np.ndarray:
    """Values around the format's: every (or a random draw of) value, the midpoints between
    neighbours (ties), a hair either side of them, beyond maxpos and below minpos, and random
    doubles across the range."""
    n = 1 << fmt.n
    patterns = np.arange(1, n // 2) if n <= 1 << 16 else np.sort(rng.integers(1, n // 2, size=count // 4))
    values = np.array([float(decode(fmt, int(p))) for p in patterns])
    mid = (values[:-1] + values[1:]) / 2
    wide = np.exp2(rng.uniform(-4.2 * (fmt.n - 2), 4.2 * (fmt.n - 2), size=count)) * rng.uniform(1, 2, size=count)
    probes = np.concatenate([values, mid, np.nextafter(mid, 0), np.nextafter(mid, np.inf), wide, [0.0, 1e-300, 1e300]])
    return np.concatenate([probes, -probes])


@pytest.mark.parametrize("name", ["posit8", "posit16", "posit32"])
def test_encoding_rounds_as_universal_does(name):
    fmt = FORMATS[name]
    probes = _probes(fmt, np.random.default_rng(fmt.n), 100_000 if fmt.n == 32 else 20_000)
    want = _ud_patterns(name, probes) & fmt.mask
    got = np.array([encode(fmt, float(x)) for x in probes])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(probes[i], hex(got[i]), hex(want[i])) for i in bad[:5]]
    assert encode(fmt, float("nan")) == fmt.nar


def test_posit32_patterns_decode_as_universal_does():
    fmt = FORMATS["posit32"]
    rng = np.random.default_rng(7)
    patterns = np.concatenate([rng.integers(0, 1 << 32, size=100_000), [0, 1, fmt.maxpos, fmt.nar, fmt.mask]])
    want = _ud_values("posit32", patterns)
    got = np.array([_as_float(decode(fmt, int(p))) for p in patterns])
    assert np.array_equal(got, want, equal_nan=True)


def _pairs(fmt, rng, count: int) -> tuple[np.ndarray, np.ndarray]:
    special = [0, 1, fmt.maxpos, fmt.nar, -1 & fmt.mask, -fmt.maxpos & fmt.mask, encode(fmt, 1), encode(fmt, -1)]
    a = np.concatenate([rng.integers(0, 1 << fmt.n, size=count), np.repeat(special, len(special))])
    b = np.concatenate([rng.integers(0, 1 << fmt.n, size=count), np.tile(special, len(special))])
    return a, b


@pytest.mark.parametrize("name, count", [("posit8", 20_000), ("posit16", 100_000), ("posit32", 100_000)])
def test_every_operation_rounds_as_universal_does(name, count):
    fmt = FORMATS[name]
    dtype, bits = UD[name]
    a, b = _pairs(fmt, np.random.default_rng(fmt.n + 1), count)
    x, y = a.astype(bits).view(dtype), b.astype(bits).view(dtype)
    for op, ours in (("add", posit.add), ("sub", posit.sub), ("mul", posit.mul), ("div", posit.div)):
        want = getattr(np, {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide"}[op])(x, y)
        want = want.view(bits).astype(np.int64)
        got = np.array([ours(fmt, int(p), int(q)) for p, q in zip(a, b)])
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (op, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]])


def test_the_fused_dot_product_rounds_once_as_softposits_quire_does():
    """Gustafson's (3.2e7, 1, -1, 8e7) . (4e7, 1, -1, -1.6e7) = 2 exactly, which float32 loses;
    and random dot products of posit32 and posit16 against quire32 and quire_2(16)."""
    a, b = [3.2e7, 1.0, -1.0, 8e7], [4e7, 1.0, -1.0, -1.6e7]
    p32 = FORMATS["posit32"]
    assert decode(p32, posit.dot(p32, [encode(p32, x) for x in a], [encode(p32, x) for x in b])) == 2
    total = np.float32(0)
    for x, y in zip(np.float32(a), np.float32(b)):          # float32, one rounding a step
        total = np.float32(total + np.float32(x * y))
    assert total == 0.0
    rng = np.random.default_rng(11)
    for name, quire, convert in (("posit32", lambda: softposit.quire32(), softposit.posit32),
                                 ("posit16", lambda: softposit.quire_2(16), lambda v: softposit.posit_2(v, 16))):
        fmt = FORMATS[name]
        for _ in range(200):
            size = int(rng.integers(1, 40))
            xs = rng.normal(size=size) * np.exp2(rng.integers(-20, 20, size=size))
            ys = rng.normal(size=size) * np.exp2(rng.integers(-20, 20, size=size))
            px, py = [encode(fmt, float(v)) for v in xs], [encode(fmt, float(v)) for v in ys]
            q = quire()
            for u, v in zip(px, py):
                q.qma(convert(float(decode(fmt, u))), convert(float(decode(fmt, v))))
            assert float(decode(fmt, posit.dot(fmt, px, py))) == float(q.toPosit())


@pytest.mark.parametrize("name", ["bposit16"])
def test_b_posits_are_ordered_and_round_trip_within_their_range(name):
    """Every bposit16 pattern round-trips, patterns order as their values (as two's complement
    integers), the run is capped at 6 (k in [-6, 5]: 2^-192 .. 2^192), the exponent always fits,
    and a value between two neighbours rounds to the nearer (ties to the even pattern)."""
    fmt = FORMATS[name]
    values = {}
    for p in range(1 << fmt.n):
        v = decode(fmt, p)
        assert encode(fmt, v) == (p if v is not None else fmt.nar)
        values[p] = v
    signed = sorted((p - (1 << fmt.n) if p >> (fmt.n - 1) else p) for p in values if values[p] is not None)
    ordered = [values[p & fmt.mask] for p in signed]
    assert all(x < y for x, y in zip(ordered, ordered[1:]))
    lo, hi = posit.value_range(fmt)
    assert Fraction(2) ** -192 <= lo < Fraction(2) ** -191 and Fraction(2) ** 191 < hi < Fraction(2) ** 192
    positives = [values[p] for p in range(1, fmt.maxpos + 1)]
    for p in range(1, fmt.maxpos, 997):
        x, y = positives[p - 1], positives[p]
        assert encode(fmt, (x + y) / 2) == (p if p % 2 == 0 else p + 1)       # a tie: the even pattern
        assert encode(fmt, x + (y - x) / 3) == p and encode(fmt, y - (y - x) / 3) == p + 1
    assert encode(fmt, Fraction(2) ** 300) == fmt.maxpos and encode(fmt, Fraction(2) ** -300) == 1


# ---- the kernels' rounding (codegen.posits) against the oracle -----------------------------------
def _spec(fmt):
    return fmt.n, fmt.es, fmt.longest_run


@pytest.mark.parametrize("name", ["posit8", "posit16", "posit32", "bposit16", "bposit32"])
def test_the_kernels_rounding_is_the_oracles(name):
    from phg.codegen.posits import from_bits_array, to_bits_array
    fmt = FORMATS[name]
    rng = np.random.default_rng(fmt.n + fmt.es)
    probes = _probes(fmt, rng, 20_000)
    probes = np.concatenate([probes, [float("nan"), np.inf, -np.inf, 5e-324, -5e-324, 2.2250738585072014e-308]])
    got = to_bits_array(probes, *_spec(fmt))
    want = np.array([encode(fmt, float(x)) for x in probes])
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(probes[i], hex(got[i]), hex(want[i])) for i in bad[:5]]
    patterns = np.arange(1 << fmt.n) if fmt.n <= 16 else rng.integers(0, 1 << fmt.n, size=50_000)
    values = from_bits_array(patterns, *_spec(fmt))
    assert np.array_equal(values, [_as_float(decode(fmt, int(p))) for p in patterns], equal_nan=True)


@pytest.mark.parametrize("name", ["posit16", "bposit16", "bposit32"])
def test_an_operation_in_doubles_rounded_once_is_correctly_rounded(name):
    """53 >= 2q + 2 for these formats: decode, compute in float64, round once is the oracle's
    exactly rounded result (posit32, q = 28, is not among them)."""
    from phg.codegen.posits import from_bits_array, to_bits_array
    fmt = FORMATS[name]
    a, b = _pairs(fmt, np.random.default_rng(3), 20_000)
    x, y = from_bits_array(a, *_spec(fmt)), from_bits_array(b, *_spec(fmt))
    with np.errstate(all="ignore"):
        for op, ours in ((np.add, posit.add), (np.subtract, posit.sub), (np.multiply, posit.mul), (np.divide, posit.div)):
            got = to_bits_array(op(x, y), *_spec(fmt))
            want = np.array([ours(fmt, int(p), int(q)) for p, q in zip(a, b)])
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (op.__name__, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]])


@pytest.mark.parametrize("name", ["posit16", "posit32", "bposit16", "bposit32"])
def test_the_kernels_integer_arithmetic_is_correctly_rounded(name):
    """Add, sub, mul and div on patterns in integers (no double rounding: posit32 too) against
    universal-dtypes on posits and the oracle on b-posits, on random pairs with the specials."""
    from phg.codegen.posits import apply_arrays
    fmt = FORMATS[name]
    a, b = _pairs(fmt, np.random.default_rng(9), 100_000 if name in UD else 20_000)
    for code, (ufunc, ours) in enumerate(((np.add, posit.add), (np.subtract, posit.sub), (np.multiply, posit.mul),
                                          (np.divide, posit.div))):
        got = apply_arrays(code, a, b, *_spec(fmt))
        if name in UD:
            dtype, bits = UD[name]
            want = ufunc(a.astype(bits).view(dtype), b.astype(bits).view(dtype)).view(bits).astype(np.int64)
        else:
            want = np.array([ours(fmt, int(p), int(q)) for p, q in zip(a, b)])
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (ufunc.__name__, [(hex(a[i]), hex(b[i]), hex(got[i]), hex(want[i])) for i in bad[:5]])


@pytest.mark.parametrize("name", ["posit16", "posit32", "bposit16", "bposit32"])
def test_the_kernels_quire_sums_products_exactly_and_rounds_once(name):
    """Random dot products (magnitudes over the whole range, cancellations, NaR) through the
    kernels' quire against SoftPosit's quire (posit32: quire32; posit16: quire_2(16)) and the
    oracle's fused dot product; Gustafson's example gives exactly 2."""
    from phg.codegen.posits import quire_add, quire_round, quire_span
    fmt = FORMATS[name]
    spec = _spec(fmt)
    low, limbs = quire_span(*spec)
    rng = np.random.default_rng(13)

    def fused(xs, ys):
        quire = np.zeros(limbs, np.int64)
        for u, v in zip(xs, ys):
            if not quire_add(quire, low, u, v, *spec):
                return fmt.nar
        return quire_round(quire, low, *spec)

    a, b = [3.2e7, 1.0, -1.0, 8e7], [4e7, 1.0, -1.0, -1.6e7]
    assert decode(fmt, fused([encode(fmt, x) for x in a], [encode(fmt, x) for x in b])) == 2
    extremes = [1, fmt.maxpos, -1 & fmt.mask, -fmt.maxpos & fmt.mask]
    for trial in range(300):
        size = int(rng.integers(1, 30))
        xs = [int(p) for p in rng.integers(0, 1 << fmt.n, size=size)]
        ys = [int(p) for p in rng.integers(0, 1 << fmt.n, size=size)]
        if trial % 3 == 0:                          # a sum that cancels to what its small terms leave
            xs, ys = xs + [xs[0], extremes[trial % 4]], ys + [-ys[0] & fmt.mask, extremes[(trial + 1) % 4]]
        if trial % 50 == 7:
            xs[0] = fmt.nar
        want = posit.dot(fmt, xs, ys)
        assert fused(xs, ys) == want, (xs, ys)
        if name in ("posit16", "posit32") and want != fmt.nar:
            q = softposit.quire32() if name == "posit32" else softposit.quire_2(16)
            convert = softposit.posit32 if name == "posit32" else (lambda v: softposit.posit_2(v, 16))
            for u, v in zip(xs, ys):
                q.qma(convert(float(decode(fmt, u))), convert(float(decode(fmt, v))))
            assert float(decode(fmt, want)) == float(q.toPosit())


@pytest.mark.parametrize("name", ["posit8", "posit16", "posit32", "bposit16", "bposit32"])
def test_square_roots_are_correctly_rounded(name):
    """The oracle's square root against universal-dtypes (every posit8/16 pattern, 10^5 posit32
    ones; negative numbers and NaR give NaR), and the kernels' integer square root against the
    oracle in every format."""
    from phg.codegen.posits import apply_arrays
    fmt = FORMATS[name]
    rng = np.random.default_rng(17)
    patterns = np.arange(1 << fmt.n) if fmt.n <= 16 else np.concatenate(
        [rng.integers(0, 1 << fmt.n, size=100_000), [0, 1, fmt.maxpos, fmt.nar]])
    if fmt.n == 32 and name not in UD:
        patterns = patterns[:20_000]
    want = np.array([posit.sqrt(fmt, int(p)) for p in patterns])
    if name in UD:
        dtype, bits = UD[name]
        with np.errstate(invalid="ignore"):
            theirs = np.sqrt(patterns.astype(bits).view(dtype)).view(bits).astype(np.int64)
        bad = np.flatnonzero(theirs != want)
        assert bad.size == 0, [(hex(patterns[i]), hex(want[i]), hex(theirs[i])) for i in bad[:5]]
    got = apply_arrays(4, patterns.astype(np.int64), patterns.astype(np.int64), *_spec(fmt))
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, [(hex(patterns[i]), hex(got[i]), hex(want[i])) for i in bad[:5]]
