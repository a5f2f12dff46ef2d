"""Models that compute in a numeric format (LANGUAGE §11): the `numeric` statement and its
diagnostics, kernels that round every operation (against the exact oracle, phg.posit, run in the
kernels' own Python text), sums fused in the quire, training, and the certificate's record."""
import ctypes
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import phg
from phg import posit as P
from phg.diagnostics import PhgError
from phg.numeric import FORMATS
from phg.plan.scalar import global_name

from builtfile import built_file

# Gustafson's dot product: exactly 2, and 0 when each product and sum rounds to float32.
GUSTAFSON = ([3.2e7, 1.0, -1.0, 8e7], [4e7, 1.0, -1.0, -1.6e7])

RICH = """
model Rich_{f} on G3 {{
    numeric {f}
    param W[2, 2]: Scalar = normal(0.5)
    input u[2]: Vector
    input s: Scalar
    let h[2]: Vector = mix(W, u)
    output a: Even = h[0] * h[1]
    output b: Vector = normalize(h[0]) * sqrt(abs(s) + 1)
    output c: Scalar = sum(norm2(h)) / (abs(s) + 2)
    output d: Vector = gate(u[0], s)
}}
"""

DOT = """
model Dot_{f} on G3 {{
    numeric {f}
    input a[4]: Scalar
    input b[4]: Scalar
    output d: Scalar = sum(a * b)
}}
"""

PRODUCT = """
model Product_{f} on G3 {{
    numeric {f}
    input x: Multivector
    input y: Multivector
    output p: Multivector = x * y
}}
"""

MEAN = """
model Mean_{f} on G3 {{
    numeric {f}
    param w: Scalar = 1
    input x: Scalar
    loss w * x
}}
"""

SINGLE = """
model Single on G3 {
    numeric float32
    param w: Scalar = 1
    input x: Scalar
    loss w * x
}
train Single {
    accumulate float
}
"""

RIGID = """
model Rigid_{f} on G3 {{
    numeric {f}
    param R: Rotor = 1
    param t: Vector = 0
    input x: Vector
    input y: Vector
    output p: Vector = R >> x + t
    loss norm2(p - y)
}}
train Rigid_{f} {{
    optimizer adam(lr = 0.05)
    steps 150
}}
"""

# Each model compiles its own kernels: the formats are spread over the tests, each of the two
# arithmetic paths (float64 then one rounding; posit32's error-free pairs) in each.
TRAINED = ("bposit32",)
SOURCE = "algebra G3 = Cl(3, 0, 0)\n" + "".join(
    RICH.format(f=f) for f in ("posit16", "posit32")) + "".join(
    DOT.format(f=f) for f in ("float32", "posit32", "bposit32")) + "".join(
    PRODUCT.format(f=f) for f in ("posit32", "bposit16")) + "".join(
    MEAN.format(f=f) for f in ("posit16", "posit32")) + SINGLE + "".join(RIGID.format(f=f) for f in TRAINED)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    yield from built_file(tmp_path_factory, "numeric", SOURCE)


def _format(n, es, longest) -> P.Format:
    return next(f for f in P.FORMATS.values() if (f.n, f.es, f.longest_run) == (n, es, longest))


def _value(fmt: P.Format, x) -> float:
    v = P.decode(fmt, P.encode(fmt, x))
    return math.nan if v is None else float(v)


def _exact(x) -> Fraction | None:
    return Fraction(x) if math.isfinite(x) else None


# The kernels' format functions (codegen.formats), written over the exact oracle.
def _oracle_round(x, n, es, longest):
    return _value(_format(n, es, longest), _exact(x))


def _oracle_binary(op):
    def apply(a, b, n, es, longest):
        x, y = _exact(a), _exact(b)
        if x is None or y is None or (op == "/" and y == 0):
            return math.nan
        return _value(_format(n, es, longest), {"+": x + y, "*": x * y, "/": x / y if op == "/" else None}[op])
    return apply


def _oracle_sqrt(a, n, es, longest):
    fmt = _format(n, es, longest)
    return _value(fmt, None) if not math.isfinite(a) else (
        math.nan if a < 0 else float(P.decode(fmt, P.sqrt(fmt, P.encode(fmt, Fraction(a))))))


def _oracle_sum(xs, n, es, longest):
    return _oracle_dot(xs, [1.0] * len(xs), n, es, longest)


def _oracle_dot(xs, ys, n, es, longest):
    fmt = _format(n, es, longest)
    if not all(math.isfinite(v) for v in (*xs, *ys)):
        return math.nan
    return _value(fmt, sum((Fraction(x) * Fraction(y) for x, y in zip(xs, ys)), Fraction(0)))


ORACLE = {"_phg_posit": _oracle_round, "_phg_posit_add": _oracle_binary("+"), "_phg_posit_mul": _oracle_binary("*"),
          "_phg_posit_div": _oracle_binary("/"), "_phg_posit_sqrt": _oracle_sqrt, "_phg_posit_dot": _oracle_dot,
          "_phg_posit_sum": _oracle_sum}


def _representable(fmt_name: str, a: np.ndarray) -> bool:
    fmt = FORMATS[fmt_name]
    return all(fmt.round(float(v)) == v for v in np.ravel(a))


# ---- the statement and its diagnostics --------------------------------------------------------
BASE = "algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    numeric posit16\n    input x: Vector\n    output y: Vector = 2 * x\n}\n"


@pytest.mark.parametrize("text, where, words", [
    (BASE.replace("posit16", "posit31"), (3, 13), ["unknown numeric format 'posit31'", "did you mean 'posit32'"]),
    (BASE.replace("    numeric posit16\n    input x: Vector\n", "    input x: Vector\n    numeric posit16\n"),
     (4, 5), ["must be the first statement of model M"]),
    (BASE.replace("2 * x", "1e30 * x").replace("posit16", "posit8"), (5, 24),
     ["the constant 1e+30 is above posit8's largest value, 1.67772e+07", "computes in posit8"]),
    (BASE.replace("2 * x", "1e-60 * x").replace("posit16", "bposit32"), (5, 24),
     ["below bposit32's smallest positive value"]),
    (BASE.replace("input x: Vector\n    output y: Vector = 2 * x",
                  "param W[200, 200]: Scalar\n    input x[200]: Vector\n    output y[200]: Vector = mix(W, x)"),
     (3, 5), ["model M computes in posit16, whose kernels write each sum of products out term by term",
              "41,200 scalar coefficients"]),
    (BASE.replace("output y: Vector = 2 * x", "param w: Scalar\n    loss w * norm2(x)") +
     "train M {\n    accumulate float\n}\n", (9, 5), ["computes in posit16, whose batch sums are fused in its quire"]),
])
def test_a_format_the_model_cannot_use_is_a_located_error(text, where, words):
    with pytest.raises(PhgError) as info:
        phg.loads(text, filename="m.phg")
    message = str(info.value)
    assert f"m.phg:{where[0]}:{where[1]}:" in message, message
    for w in words:
        assert w in message, message


def test_numeric_is_still_a_name_and_float64_is_the_default():
    program = phg.loads(BASE.replace("    numeric posit16\n", "").replace("x", "numeric"), filename="m.phg")
    assert program.models["M"].numeric == "float64"


def test_the_certificate_and_the_graph_record_the_format():
    program = phg.loads(BASE, filename="m.phg")
    assert program.to_dict()["models"][0]["numeric"] == "posit16"
    assert 'label="M on G3 (posit16)"' in program.models["M"].to_dot()
    cert = phg.check(program).to_dict()
    assert cert["ok"] and cert["values"]["x"]["numeric"] == "posit16" == cert["values"]["y"]["numeric"]
    plain = phg.check(phg.loads(BASE.replace("    numeric posit16\n", ""), filename="m.phg")).to_dict()
    assert "numeric" not in plain["values"]["x"]


# ---- kernels ------------------------------------------------------------------------------------
def test_gustafsons_dot_product_is_exact_in_the_quire_and_lost_in_float32(kernels):
    _, module = kernels
    a, b = (np.array([v])[..., None] for v in GUSTAFSON)
    assert module.Dot_posit32().predict(a=a, b=b)["d"][0, 0] == 2.0
    assert module.Dot_bposit32().predict(a=a, b=b)["d"][0, 0] == 2.0
    assert module.Dot_float32().predict(a=a, b=b)["d"][0, 0] == 0.0


@pytest.mark.parametrize("f", ["posit32", "bposit16"])
def test_a_geometric_products_coefficients_are_each_rounded_once(kernels, f):
    """Each coefficient of x * y is the exact sum of its blade products rounded once (fused), for
    inputs spread over many binades, where rounding term by term would differ."""
    _, module = kernels
    fmt = P.FORMATS[f]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 8)) * 2.0 ** rng.integers(-20, 20, size=(300, 8))
    y = rng.normal(size=(300, 8)) * 2.0 ** rng.integers(-20, 20, size=(300, 8))
    got = getattr(module, f"Product_{f}")().predict(x=x, y=y)["p"]
    alg = phg.loads("algebra G3 = Cl(3, 0, 0)", filename="a.phg").algebras["G3"]
    blades = sorted(alg.blades, key=lambda m: alg.position[m])
    for i in range(0, 300, 7):
        xs = [Fraction(_value(fmt, Fraction(v))) for v in x[i]]
        ys = [Fraction(_value(fmt, Fraction(v))) for v in y[i]]
        exact = {m: Fraction(0) for m in blades}
        for j, a in enumerate(blades):
            for k, b in enumerate(blades):
                sign, m = alg.product("gp", a, b)
                exact[m] += sign * xs[j] * ys[k]
        assert [_value(fmt, exact[m]) for m in blades] == list(got[i]), i


@pytest.mark.parametrize("f", ["posit16", "posit32"])
def test_kernels_round_as_the_exact_oracle_does(kernels, f, monkeypatch):
    """predict's compiled kernel against its own Python text run with the format's operations
    computed exactly (Fractions) and rounded by the oracle: bit for bit, NaR included."""
    _, module = kernels
    model = getattr(module, f"Rich_{f}")(seed=3)
    rng = np.random.default_rng(2)
    n = 30
    u = rng.normal(size=(n, 2, 3)) * 2.0 ** rng.integers(-6, 6, size=(n, 2, 1))
    s = rng.normal(size=(n, 1)) * 4
    u[0] = 0.0                                        # normalize(0): NaR
    got = model.predict(u=u, s=s)
    spec = model.SPEC["predict"]
    outs = {o: np.empty_like(got[o]) for o in spec["outputs"]}
    for name, fn in ORACLE.items():
        monkeypatch.setattr(module, name, fn)
    model._predict_kernel.py_func(u, s, *model._params(spec["params"]), *outs.values(), 0, n)
    for o in spec["outputs"]:
        np.testing.assert_array_equal(got[o], outs[o], err_msg=o)
        assert _representable(f, got[o][np.isfinite(got[o])])
    assert np.isnan(got["b"][0]).all()


@pytest.mark.parametrize("f, tiny", [("posit16", 12), ("posit32", 28)])
def test_a_batch_sum_is_rounded_once_from_its_exact_value(kernels, f, tiny):
    """1 + 2^-tiny is the midpoint between 1 and the next value; a term far below pushes the exact
    sum above it, which a sum rounded to a double first would lose (ties to even: 1)."""
    _, module = kernels
    model = getattr(module, f"Mean_{f}")()
    x = np.array([[1.0], [2.0 ** -tiny], [2.0 ** -(tiny + 45)], [0.0]])
    up = 1 + 2.0 ** (1 - tiny)
    assert FORMATS[f].round(1 + 2.0 ** -tiny) == 1.0 and FORMATS[f].round(up) == up
    assert model.loss(x=x) == up / 4
    assert model.grad(x=x)["w"] == up / 4
    assert model.loss(x=x[[0, 1, 3, 3]]) == 1 / 4                 # the tie alone: to even


def test_float32_sums_round_each_addition_with_accumulate_float(kernels):
    """float32 has no quire: with `accumulate float` each addition of the batch sum rounds, so
    1 + 2^-24 + 2^-24 is 1 (each a tie to even), where the exact sum rounded once is 1 + 2^-23."""
    _, module = kernels
    x = np.array([[1.0], [2.0 ** -24], [2.0 ** -24], [0.0]])
    assert module.Single().loss(x=x) == 0.25
    assert module.Mean_posit32().loss(x=x) == (1 + 2.0 ** -23) / 4          # the quire: rounded once


@pytest.mark.parametrize("f", TRAINED)
def test_training_in_a_format_keeps_its_values_and_the_rotor(kernels, f):
    _, module = kernels
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 3))
    c, s = math.cos(0.35), math.sin(0.35)
    y = x @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]).T + [0.3, -0.2, 0.5]
    model = getattr(module, f"Rigid_{f}")()
    history = model.fit({"x": x, "y": y}, batch=512)
    assert history[-1] < 1e-3 * history[0]
    for name in ("R", "t"):
        assert _representable(f, model.params[name])
        assert _representable(f, model.grad(x=x, y=y)[name])
    R = model.params["R"]
    assert abs(float(R @ R) - 1) <= FORMATS[f].versor_tolerance
    assert _representable(f, model.predict(x=x)["p"])
    assert _representable(f, [model.loss(x=x, y=y)])


@pytest.mark.parametrize("name", ["posit16", "posit32", "bposit16", "bposit32"])
def test_fused_sums_agree_with_the_oracle_where_the_fast_path_must_give_way(name):
    """codegen.formats' dot products and sums (their certified float path and the exact expansion
    behind it) against the oracle: random terms over the whole range, cancellations of huge terms
    that leave a small one, and midpoints between neighbours pushed either way by a tiny term."""
    from phg.codegen import formats

    fmt = P.FORMATS[name]
    args = (fmt.n, fmt.es, fmt.longest_run)
    rng = np.random.default_rng(7)
    values = lambda k: [_value(fmt, P.decode(fmt, int(b))) for b in rng.integers(1, fmt.maxpos, size=k)]  # noqa: E731
    one_up = float(P.decode(fmt, P.encode(fmt, 1) + 1))
    cases = []
    for _ in range(400):
        k = int(rng.integers(1, 9))
        xs = [v * s for v, s in zip(values(k), rng.choice([-1.0, 1.0], size=k))]
        cases.append((xs, values(k)))
    for big, small in zip(values(100), values(100)):
        cases.append(([big, small, -big], [big, 1.0, big]))               # big^2 + small - big^2
    tiny = float(P.decode(fmt, 1))                                         # minpos
    for sign in (1.0, -1.0):
        mid = (1 + one_up) / 2
        cases += [([1.0, mid - 1, sign * tiny], [1.0, 1.0, 1.0]), ([1.0, mid - 1], [1.0, 1.0]),
                  ([sign * 3.0, mid - 1, tiny], [1.0, 1.0, sign * tiny])]
    for xs, ys in cases:                  # zero terms to 8: one compiled specialisation
        xs, ys = xs + [0.0] * (8 - len(xs)), ys + [0.0] * (8 - len(ys))
        want = _oracle_dot(xs, ys, *args)
        assert formats.posit_dot(tuple(xs), tuple(ys), *args) == want, (xs, ys)
        terms = [_value(fmt, Fraction(x) * Fraction(y)) for x, y in zip(xs, ys)]   # format values
        assert formats.posit_sum(tuple(terms), *args) == _oracle_sum(terms, *args), terms


@pytest.mark.parametrize("name", ["posit16", "posit32", "bposit16", "bposit32"])
def test_sums_a_hair_from_a_rounding_boundary_round_as_the_oracle_does(name):
    """Sums placed on, and a hair either side of, the midpoint between two neighbours (random ones,
    and those either side of a power of two, where the cells change size), the hair from 2^-29 of
    the midpoint down to 2^-70; and sums whose nearest double is the one beside a midpoint, the
    exact sum a hair back on its own side (a tie at that double would round it wrongly)."""
    from phg.codegen import formats

    fmt = P.FORMATS[name]
    args = (fmt.n, fmt.es, fmt.longest_run)
    rng = np.random.default_rng(11)
    near_powers = [P.encode(fmt, Fraction(2) ** e) + d for e in range(-40, 41, 3) for d in (-1, 0)]
    cases = []
    for pattern in [*rng.integers(1, fmt.maxpos - 1, size=120), *near_powers]:
        low, high = (float(P.decode(fmt, int(pattern) + d)) for d in (0, 1))
        mid = (low + high) / 2
        half = _value(fmt, Fraction(high - low) / 2)
        place = 2.0 ** math.floor(math.log2(mid))
        for sign in (1.0, -1.0):
            for t in (29, 40, 52, 53, 54, 70):
                cases.append([low, half, _value(fmt, Fraction(sign * place * 2.0 ** -t))])
            cases.append([low, half, _value(fmt, Fraction(-sign * place * 2.0 ** -52)),
                          _value(fmt, Fraction(sign * place * 2.0 ** -70))])
        cases.append([low, half])
    for terms in cases:
        for flip in (1.0, -1.0):
            padded = tuple([flip * t for t in terms] + [0.0] * (8 - len(terms)))
            want = _oracle_sum(padded, *args)
            assert formats.posit_sum(padded, *args) == want, padded
            assert formats.posit_dot(padded, (1.0,) * 8, *args) == want, padded


@pytest.mark.parametrize("name", ["posit16", "posit32", "bposit16", "bposit32"])
def test_the_fast_path_gives_the_exact_result_or_gives_way(name):
    """codegen.formats' fast functions (the training kernels' first try) against its exact ones:
    equal wherever they decide, NaN where they do not, and every NaR is NaN; on random patterns
    over the whole range (whose binades at its ends the fast path leaves to the exact functions)
    and on values within 2^±8 of 1, where they decide nearly every case."""
    from phg.codegen import formats as F

    fmt = P.FORMATS[name]
    args = (fmt.n, fmt.es, fmt.longest_run)
    rng = np.random.default_rng(13)
    anywhere = [_value(fmt, P.decode(fmt, int(b))) for b in rng.integers(1, fmt.maxpos, size=1500)]
    anywhere[:6] = [0.0, 1.0, float(P.decode(fmt, 1)), float(P.decode(fmt, fmt.maxpos)), 3.0, 0.0]
    typical = [fmt_round for fmt_round in (FORMATS[name].round(float(v)) for v in
                                           rng.normal(size=1500) * 2.0 ** rng.uniform(-8, 8, size=1500))]
    # (a sum of a few 16-bit values is often exactly a tie, which only the exact functions know)
    for values, share in ((anywhere, 0.0), (typical, 0.95)):
        values = [v * s for v, s in zip(values, rng.choice([-1.0, 1.0], size=len(values)))]
        decided, finite = _decided(values, args)
        assert decided >= share * finite


@pytest.mark.parametrize("name", ["posit8", "posit16", "bposit16", "posit32", "bposit32"])
def test_the_fast_rounding_of_a_double_is_the_formats_or_gives_way(name):
    """codegen.formats.fast (the fast path's rounding of a double, by a table of places per
    binade) against the exact rounding, on every value of the 8- and 16-bit formats (a sample of
    the 32-bit ones), the midpoints beside them and the doubles next to those midpoints: the same
    value wherever it decides, and it gives way exactly where the pair rounding's bit operations
    do (binades without fraction bits, the ends of the range)."""
    from phg.codegen import formats as F

    fmt = P.FORMATS[name]
    args = (fmt.n, fmt.es, fmt.longest_run)
    rng = np.random.default_rng(19)
    patterns = range(1, fmt.maxpos) if fmt.n <= 16 else rng.integers(1, fmt.maxpos, size=20000)
    values = np.array([float(P.decode(fmt, int(b))) for b in patterns])
    mids = (values[:-1] + values[1:]) / 2 if fmt.n <= 16 else values * (1 + 2.0 ** -30)
    xs = np.concatenate([values, mids, np.nextafter(mids, 0), np.nextafter(mids, np.inf)])
    xs = np.concatenate([xs, -xs, [0.0, np.inf, np.nan]])
    gave_way = 0
    for x in xs:
        got, want = F.fast(x, *args), F.posit(x, *args)
        assert math.isnan(got) == math.isnan(F._fast_pair(x, 0.0, *args)), x
        if math.isnan(got):
            gave_way += 1
        else:
            assert got == want, x
    assert gave_way < 0.25 * len(xs)


@pytest.mark.parametrize("name", ["posit16", "bposit16"])
def test_the_fast_path_decides_sums_that_are_exactly_a_tie(name):
    """A 16-bit format's sums of a few squares (a training loss near its optimum) are often
    exactly a midpoint between two neighbours (a residual's few bits, squared); the fast dot product decides them (its chain of
    fused multiply-adds was exact) and rounds them to even as the oracle does; and a tie whose
    terms span more than a double holds (so the chain may have rounded) is left open."""
    from phg.codegen import formats as F

    fmt = P.FORMATS[name]
    args = (fmt.n, fmt.es, fmt.longest_run)
    rng = np.random.default_rng(17)
    ties = 0
    for _ in range(3000):
        v = tuple(float(x) for x in rng.integers(-40, 41, size=3) * 2.0 ** -12)   # residuals: few bits
        exact = sum(Fraction(x) ** 2 for x in v)
        pattern = P.encode(fmt, exact)
        ties += any(exact == (P.decode(fmt, pattern) + P.decode(fmt, pattern + d)) / 2 for d in (-1, 1))
        got = F.fast_dot(v, v, *args)
        assert got == _oracle_dot(v, v, *args), v
    assert ties > 100
    # 1 + a quarter place is a tie of a sum whose smallest term is far below 2^-53 of the largest
    place = float(P.decode(fmt, P.encode(fmt, 1) + 1)) - 1.0
    wide = (1.0, place / 2, 2.0 ** -40, -(2.0 ** -40))
    assert math.isnan(F.fast_sum(wide, *args))
    assert F.posit_sum(wide, *args) == _oracle_sum(wide, *args)


def _decided(values, args) -> int:
    """How many of the fast functions' results on pairs of `values` decided, and of how many that
    are not NaR; each equals the exact function's (NaN for NaN)."""
    from phg.codegen import formats as F

    pairs = list(zip(values, values[1:] + values[:1]))
    decided = finite = 0
    for a, b in pairs:
        for fast, exact, operands in ((F.fast_add, F.posit_add, (a, b)), (F.fast_mul, F.posit_mul, (a, b)),
                                      (F.fast_div, F.posit_div, (a, b)), (F.fast_sqrt, F.posit_sqrt, (a,)),
                                      (F.fast, F.posit, (a * 1.2345,)),
                                      (F.fast_dot, F.posit_dot, ((a, b, -a, 1.0), (b, 1.0, b, a))),
                                      (F.fast_sum, F.posit_sum, ((a, b, 2.0 * b),))):
            got, want = fast(*operands, *args), exact(*operands, *args)
            if math.isnan(want):
                assert math.isnan(got), (fast.__name__, operands)
                continue
            finite += 1
            if not math.isnan(got):
                assert got == want, (fast.__name__, operands, got, want)
                decided += 1
    return decided, finite


def test_a_sample_the_fast_path_leaves_open_is_summed_exactly(kernels, monkeypatch):
    """A training slot runs each sample with the fast functions first: its compiled sums (the
    fast path deciding) are bit for bit those of the same slot's Python text with every fast
    function giving way (NaN), so that every sample runs again with the exact functions."""
    _, module = kernels
    model = module.Rigid_bposit32(seed=1)
    rng = np.random.default_rng(21)
    x = np.vectorize(FORMATS["bposit32"].round)(rng.normal(size=(300, 3)))
    y = np.vectorize(FORMATS["bposit32"].round)(x[:, ::-1] * 0.7 + 0.2)
    model.grad(x=x, y=y)
    b = model._plan()
    slot = getattr(module, global_name("slot", "Rigid_bposit32"))
    params = [model.params[p] for p in model.SPEC["train"]["params"]]

    def run(kernel):
        row, grid, deposits, ranges = (b[k][0].copy() for k in ("acc", "grid", "deposits", "ranges"))
        kernel(x, y, *params, len(x), 0, 1, row, grid, deposits, ranges)
        return row, grid

    fast = run(slot)
    for name in [n for n in vars(module) if n.startswith("_phg_fast")]:
        monkeypatch.setattr(module, name, lambda *args: math.nan)
    flags = []                                       # the slot's stack flags, in Python

    def stack_flags(size):
        flags.append(np.zeros(size, np.uint8))
        return flags[-1].ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
    monkeypatch.setattr(module, "_phg_stack_flags", stack_flags)
    exact = run(slot.py_func)
    for got, want in zip(fast, exact):
        np.testing.assert_array_equal(got, want)


def test_a_posit_models_quire_obligation_is_decided_by_the_batch():
    train = "train M {\n    batch %d\n}\n"
    model = BASE.replace("output y: Vector = 2 * x", "param w: Scalar\n    loss w * norm2(x)")
    for batch, status in ((4096, "proven"), (2**31 - 1, "proven"), (2**31, "refuted")):
        cert = phg.check(phg.loads(model + train % batch, filename="m.phg"))
        quire = [o for o in cert.obligations if o.kind == "quire" and "format" in o.evidence]
        assert [o.status for o in quire] == [status], batch
        assert quire[0].evidence["quire_bits"] == 256
        if status == "refuted":
            assert "more than the posit16 quire sums exactly" in quire[0].evidence["reason"]
    unbounded = phg.check(phg.loads(model + "train M {\n    steps 1\n}\n", filename="m.phg"))
    assert [o.status for o in unbounded.obligations if o.kind == "quire" and "format" in o.evidence] == ["proven"]


def test_a_batch_beyond_the_quire_is_refused(kernels, monkeypatch):
    from phg.codegen import runtime

    _, module = kernels
    model = module.Mean_posit16()
    monkeypatch.setattr(runtime, "QUIRE_PRODUCTS", 3)     # the 2^31 - 1 of the standard, made small
    with pytest.raises(ValueError, match="a batch of 4 samples is more than the posit16 quire sums exactly"):
        model.loss(x=np.ones((4, 1)))
    assert model.loss(x=np.ones((3, 1))) == 1.0


def test_a_fractional_power_keeps_its_exponent():
    """x^(1/3) in posit8 is x to the third root rounded, not x to posit8's nearest of 1/3 (0.3125)."""
    import sympy

    from phg.codegen.printers import format_printer

    text = format_printer("posit8").doprint(sympy.Symbol("x") ** sympy.Rational(1, 3))
    assert "0.3333333333333333" in text and "0.3125" not in text


# ---- the loop plan in a format ----------------------------------------------------------------
def _in_format(text: str, numeric: str, train: str = "") -> str:
    text = text.replace("model SignedVolume on G3 {\n", f"model SignedVolume on G3 {{\n    numeric {numeric}\n")
    return text.replace("    seed 1\n", f"    seed 1\n{train}")


def _signed_volume(numeric: str, train: str = "") -> str:
    return _in_format((Path(__file__).resolve().parents[1] / "examples" / "signed_volume.phg").read_text(), numeric, train)


@pytest.mark.parametrize("numeric, train, strategy", [
    ("posit32", "", "loops"), ("float32", "", "loops"), ("float32", "    accumulate float\n", "fused")])
def test_a_wide_model_in_a_format_takes_the_loop_plan_but_with_float_sums(numeric, train, strategy):
    """Beyond the fused strategy's limit a model in a format runs the loop plan, its batch sums
    exact; in float32 with `accumulate float` each addition of a batch sum rounds in the fused
    code's order, so it trains fused (and says why)."""
    program = phg.loads(_signed_volume(numeric, train), filename="sv.phg")
    phg.check(program)
    plan = phg.plan.kernel.kernel_plan(program.models["SignedVolume"], program.trains["SignedVolume"])
    assert plan.train.strategy == strategy and "more than" in plan.reason
    assert ("accumulate float" in plan.train.reason) == (strategy == "fused")
    assert all(not op.blas for op in plan.loops.ops) if plan.loops else True


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A model in posit32 built twice, in the loop plan (the plan of a model beyond the fused
    strategy's limit, as examples/signed_volume.phg is in posit32: the test above) and fused."""
    from phg.plan import kernel

    from bench.widths import source

    # 4 hidden channels where the example has 8: the same operations at about a third of its
    # products a sample, so that the fused build in posit32 compiles in seconds, not a minute
    text = _in_format(source(4), "posit32")
    builds, modules = [], []
    for stem, limit in (("wide_loops", 0), ("wide_fused", 10 ** 9)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(kernel, "UNROLL_LIMIT", limit)
            builds.append(built_file(tmp_path_factory, stem, text))
            modules.append(next(builds[-1])[1])
    yield tuple(modules)
    for b in reversed(builds):
        b.close()


def test_the_loop_plan_computes_in_the_format_as_the_fused_code_does(wide):
    """A model in a format in the loop plan: its contractions and channel sums fused dot
    products in the quire, every other operation rounded.  Predict and the loss are the fused
    kernels' bit for bit (the same operations in the same order); so are the gradients of the last
    mixes' weights, whose adjoints are one fused sum in both; the first layer's adjoints gather
    three mixes' terms, which the loop plan sums a mix at a time: within the format's precision of
    float64's.  Every value is the format's, and training moves the loss down."""
    looped, fused = wide
    model, other = looped.SignedVolume(seed=0), fused.SignedVolume(seed=0)
    assert (model.SPEC["predict"]["strategy"], other.SPEC["predict"]["strategy"]) == ("loops", "fused")
    fmt = FORMATS["posit32"]
    rng = np.random.default_rng(5)
    v = np.vectorize(fmt.round)(rng.normal(size=(300, 3, 3)))
    target = np.vectorize(fmt.round)(np.linalg.det(v) / 10)[:, None]
    got, want = model.predict(v=v)["volume"], other.predict(v=v)["volume"]
    np.testing.assert_array_equal(got, want)
    assert model.loss(v=v, target=target) == other.loss(v=v, target=target)
    grads, reference = model.grad(v=v, target=target), other.grad(v=v, target=target)
    for name in ("Wu", "Ww", "Wz"):
        np.testing.assert_array_equal(grads[name], reference[name], err_msg=name)
    for name, g in grads.items():
        assert _representable("posit32", g), name
        np.testing.assert_allclose(g, reference[name], rtol=1e-6, atol=1e-7 * np.abs(reference[name]).max(), err_msg=name)
    assert _representable("posit32", got)
    history = model.fit({"v": v, "target": target}, batch=100, steps=30)
    assert history[-1] < 0.5 * history[0]
    assert all(_representable("posit32", p) for p in model.params.values())
