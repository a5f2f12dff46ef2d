"""Units: agreement with pint on random expressions, inference, and located conflicts."""
from __future__ import annotations

import re
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pint
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phg
from phg.shell.cli import main
from phg.diagnostics import PhgError
from phg.verifier.units import UnitChecker

ROOT = Path(__file__).resolve().parents[1]
UREG = pint.UnitRegistry()
DIMENSION = {"kg": "[mass]", "m": "[length]", "s": "[time]", "A": "[current]", "K": "[temperature]"}
# Dyadic exponents, so that pint's float exponents are exact and its verdicts are not rounding.
EXPONENTS = [Fraction(k, 4) for k in (-8, -6, -4, -3, -2, -1, 1, 2, 3, 4, 6)]
INPUTS = ["a", "b", "c", "d"]


@st.composite
def units(draw) -> dict:
    bases = draw(st.lists(st.sampled_from(sorted(DIMENSION)), max_size=3, unique=True))
    return {b: draw(st.sampled_from(EXPONENTS)) for b in bases}


def unit_text(u: dict) -> str:
    if not u:
        return "1"
    return "*".join(f"{b}^({e.numerator}/{e.denominator})" if e.denominator != 1 else f"{b}^{e.numerator}"
                    for b, e in u.items())


def pint_unit(u: dict):
    q = UREG.Quantity(1.0, "dimensionless")
    for b, e in u.items():
        q = q * UREG.Quantity(1.0, b) ** float(e)
    return q


@st.composite
def expression(draw, depth: int):
    """(phg text, a function of the pint inputs)."""
    if depth == 0 or draw(st.integers(0, 4)) == 0:
        kind = draw(st.integers(0, 5))
        if kind <= 3:
            name = INPUTS[kind]
            return name, lambda env: env[name]
        value = draw(st.sampled_from([0.5, 1.5, 2.0, 3.0]))
        if kind == 4:
            return f"{value}", lambda env: UREG.Quantity(value, "dimensionless")
        u = draw(units())
        return f"{value}[{unit_text(u)}]", lambda env: value * pint_unit(u)
    sub = lambda: draw(expression(depth - 1))  # noqa: E731
    form = draw(st.sampled_from(["+", "-", "*", "/", "^", "sqrt", "exp", "sin", "cos", "tanh", "sigmoid", "gelu",
                                 "abs", "neg", "norm2", "inv"]))
    if form in ("+", "-", "*", "/", "^"):
        (lt, lf), (rt, rf) = sub(), sub()
        fn = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
              "/": lambda x, y: x / y, "^": lambda x, y: x * y}[form]  # ^ of scalars is their product
        return f"({lt} {form} {rt})", lambda env: fn(lf(env), rf(env))
    t, f = sub()
    pint_fn = {"sqrt": np.sqrt, "exp": np.exp, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
               "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
               "gelu": lambda x: 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3))),
               "abs": abs, "neg": lambda x: -x, "norm2": lambda x: x * x, "inv": lambda x: 1 / x}[form]
    text = {"neg": f"(-{t})", "norm2": f"norm2({t})", "inv": f"inv({t})"}.get(form, f"{form}({t})")
    return text, lambda env: pint_fn(f(env))


def pint_verdict(fn, input_units):
    env = {n: 1.25 * pint_unit(u) for n, u in zip(INPUTS, input_units)}
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = fn(env)
    except pint.DimensionalityError:
        return None
    dims = result.dimensionality
    inverse = {v: k for k, v in DIMENSION.items()}
    return {inverse[d]: Fraction(e) for d, e in dims.items() if e}


def phg_verdict(text, input_units):
    decls = "\n".join(f"    input {n}: Scalar[{unit_text(u)}]" for n, u in zip(INPUTS, input_units))
    source = f"algebra G3 = Cl(3, 0, 0)\nmodel U on G3 {{\n{decls}\n    output r = {text}\n}}\n"
    try:
        program = phg.loads(source)
    except PhgError as exc:
        assert exc.kind == "unit", exc.render()         # constants clash while folding
        return None
    graph = program.models["U"]
    obligations = UnitChecker(graph, source).run()
    if any(o.status == "refuted" for o in obligations):
        return None
    assert all(o.status == "proven" for o in obligations)
    return graph.values["r"].unit.as_dict()


@settings(max_examples=1200, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(expression(4), st.lists(units(), min_size=4, max_size=4))
def test_agrees_with_pint(expr, input_units):
    text, fn = expr
    assert phg_verdict(text, input_units) == pint_verdict(fn, input_units), text


PGA = (ROOT / "examples" / "pga_pose.phg").read_text()


def unit_obligations(cert):
    return [o for o in cert.obligations if o.kind == "unit"]


def test_pga_example_units_are_consistent():
    program = phg.loads(PGA, "pga_pose.phg")
    cert = phg.check(program)
    [o] = unit_obligations(cert)
    assert o.status == "proven" and o.evidence["z3"] == "sat" and "(check-sat)" in o.smt2
    values = cert.to_dict()["values"]
    assert values["moved"]["unit"] == "1" and values["moved"]["coefficient_units"]["e013"] == "m"
    assert values["M"]["unit"] == "1"                  # a Motor is dimensionless


def test_adding_a_bare_length_to_a_point_names_both_spans(tmp_path, capsys):
    src = tmp_path / "bad.phg"
    src.write_text(PGA.replace("    output moved ", "    let off = moved + a[0] * e1\n    output moved "))
    assert main(["check", str(src)]) == 1
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(src.read_text().splitlines(), 1) if "let off" in t)
    assert f"{src}:{line}:15: refuted: the unit '1' does not match 'm': both sides of + need the same unit" in err
    assert f"note: {src}:{line}:15: left side: moved is in 1" in err
    assert f"note: {src}:{line}:23: right side: a[0] * e1 is in m" in err
    # where the length came from: the input's declaration, or the def argument it also passes through
    assert re.search(rf"note: {re.escape(str(src))}:\d+:\d+: a(\[\d\])? is (declared|passed where)", err), err


def test_unannotated_translation_is_inferred_in_metres(capsys):
    src = """algebra PGA = Cl(3, 0, 1) units(e0: 1/m)
model Shift on PGA {
    param t: Vector = 0
    input p: Trivector
    output q = exp(e0 * t / 2) >> p
}
"""
    program = phg.loads(src, "shift.phg")
    cert = phg.check(program)
    assert all(o.status == "proven" for o in unit_obligations(cert))
    graph = program.models["Shift"]
    assert str(graph.values["t"].unit) == "m"           # e0 t must be dimensionless, e0 is in 1/m
    assert graph.values["p"].unit is None               # nothing fixes the point's unit
    values = cert.to_dict()["values"]
    assert values["t"]["unit"] == "m" and values["t"]["unit_written"] is False


def test_free_units_are_reported_and_ensure_needs_them(tmp_path, capsys):
    src = tmp_path / "free.phg"
    src.write_text("""algebra G3 = Cl(3, 0, 0)
model Free on G3 {
    input x: Vector
    input y: Vector[m]
    let s = x * y
    ensure unit(s) == m^2
    ensure unit(y * y) == m^2
    ensure unit(y * y) == m
}
""")
    assert main(["check", str(src)]) == 1
    out, err = capsys.readouterr()
    assert "does not determine the unit of x, s" in out
    cert = phg.check(phg.load(src))
    by_claim = {o.claim: o for o in unit_obligations(cert)}
    assert by_claim["unit(s) == m^2"].status == "unknown"
    assert "annotate x" in by_claim["unit(s) == m^2"].evidence["reason"]
    assert by_claim["unit(y * y) == m^2"].status == "proven"
    refuted = next(o for o in unit_obligations(cert) if o.status == "refuted")
    assert refuted.claim.startswith("the unit 'm^2' does not match 'm'")
    assert f"{src}:8:12: refuted: the unit 'm^2' does not match 'm'" in err


CONFLICTS = [
    # (model body, the located head of the message, the note that names the other side)
    ("input x: Scalar[m]\n    output y = exp(x)", "4:20: refuted: the unit 'm' does not match '1': the argument of exp "
     "must be dimensionless", "note: {f}:3:5: x is declared in m"),
    ("input x: Scalar[m]\n    input w: Scalar[s]\n    output y: Scalar[m] = x * w",
     "5:15: refuted: the unit 'm*s' does not match 'm': y is declared in m", "note: {f}:4:5: w is declared in s"),
    ("input x: Vector[m]\n    input k: Scalar[kg]\n    output g = gate(x, k)",
     "5:24: refuted: the unit 'kg' does not match '1': the gate in gate(x, s) must be dimensionless",
     "note: {f}:4:5: k is declared in kg"),
    ("input x: Scalar[m]\n    output y = relu(x)", "4:21: refuted: the unit 'm' does not match '1'",
     "note: {f}:3:5: x is declared in m"),
    ("param R: Rotor[m]\n    input x: Vector", "3:5: refuted: the unit 'm' does not match '1': a Rotor (V ~V = 1) is "
     "dimensionless", "note: {f}:3:5: R is declared in m"),
]


@pytest.mark.parametrize("body,head,note", CONFLICTS)
def test_unit_conflicts_are_located_and_name_both_units(tmp_path, capsys, body, head, note):
    src = tmp_path / "m.phg"
    src.write_text(f"algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {{\n    {body}\n}}\n")
    assert main(["check", str(src)]) == 1
    err = capsys.readouterr().err
    assert f"{src}:{head}" in err, err
    assert note.format(f=src) in err, err


def test_several_conflicts_are_each_reported():
    src = """algebra G3 = Cl(3, 0, 0)
model M on G3 {
    input x: Scalar[m]
    input t: Scalar[s]
    output a = x + t
    output b = sin(t)
    output c = x * x
}
"""
    cert = phg.check(phg.loads(src))
    refuted = sorted((o.span.line, o.evidence["units"][0], o.evidence["units"][1])
                     for o in unit_obligations(cert) if o.status == "refuted")
    assert refuted == [(5, "m", "s"), (6, "s", "1")]
    assert str(phg.loads(src).models["M"].values["x"].unit) == "m"


def test_sandwich_keeps_the_unit_and_regressive_removes_the_pseudoscalar():
    src = """algebra PGA = Cl(3, 0, 1) units(e0: 1/m)
model M on PGA {
    param R: Motor
    input x: Vector[kg]
    input p: Trivector
    input q: Trivector
    output y = R >> x
    output line = p & q
    output c = x.e0
    ensure unit(y) == kg
    ensure unit(line) == unit(p) == 1
}
"""
    with pytest.raises(PhgError):
        phg.loads(src)          # ensure takes one unit: a syntax error, located
    src = src.replace("    ensure unit(line) == unit(p) == 1\n", "    ensure unit(line) == m\n")
    program = phg.loads(src)
    cert = phg.check(program)
    graph = program.models["M"]
    # p and q are free; the meet divides by the unit of e0123 (1/m): line = p q m
    assert str(graph.values["y"].unit) == "kg" and str(graph.values["c"].unit) == "kg*m"
    assert graph.values["line"].unit is None
    assert {o.claim: o.status for o in unit_obligations(cert)}["unit(y) == kg"] == "proven"


def test_verify_accepts_unit_certificates_and_rejects_a_flipped_unit_status(tmp_path, capsys):
    import json
    src = tmp_path / "m.phg"
    src.write_text("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x: Scalar[m]\n    output y = exp(x)\n"
                   "    output z: Scalar[m^2] = x * x\n}\n")
    assert main(["check", str(src)]) == 1
    cert = tmp_path / "m.phg.cert.json"
    capsys.readouterr()
    # authentic, but a refuted unit claim is not "all well" (exit 1, said so)
    assert main(["verify", str(cert)]) == 1
    assert "authentic, NOT all proven" in capsys.readouterr().out
    doc = json.loads(cert.read_text())
    unit = next(o for o in doc["obligations"] if o["kind"] == "unit")
    unit["status"] = "proven"
    cert.write_text(json.dumps(doc))
    assert main(["verify", str(cert)]) == 1
    out = capsys.readouterr().out
    assert "invalid" in out and "authentic" not in out
