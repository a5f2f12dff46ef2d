"""The operation registry (phg.operations): every kind's rules in one entry, refused without
them; stages that meet a kind the registry lacks raise; a support rule's two readings (integers,
phg.rules; Z3 bit-vectors, verifier.smt) agree on every edge of random and layered models."""
from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest
import sympy
import z3
from modelgen import models
from shards import sweep
from test_layers import BLOCK
from test_loops import WIDE
from test_training import with_loss

import phg
from phg import multivector as mv
from phg import rules as r
from phg import support as sup
from phg import versors
from phg.algebra import Algebra
from phg.dsl import lower
from phg.evaluation import Evaluator, Floats, channels, fold
from phg.hypergraph import Edge
from phg.plan.scalar import HelperCall, ScalarBuilder
from phg.symmetry import keeps
from phg.verifier.exact import Concrete, Floating
from phg.operations import (CALLS, OPERATIONS, SAME_UNIT, Operand, Operation, infer_support, register, unit_rule_of,
                            versor_reason)
from phg.verifier.smt import Encoder


# A model with every kind of a single channel (log aside: only the support and unit readings have it).
FUNCS = """algebra G3 = Cl(3, 0, 0)

model Funcs on G3 {
    input v: Vector[m]
    input s: Scalar
    input g: Scalar
    param R: Rotor = 1
    param B: Bivector = 0
    let x: Vector[m] = -(R >> v)
    let i: Vector[m^-1] = inv(x)
    let q: Scalar = sqrt(abs(s)) + sin(s) + cos(s) + tanh(s) + relu(s) + gelu(s) + sigmoid(s)
    let y: Multivector = exp(B) * normalize(x) + (i * 1[m]) * q + dual(v / 1[m]) + odd(v / 1[m]) + even(v * v / 1[m^2])
    let z: Multivector = gate(y, g) ^ (v / 1[m]) + (y | x / 1[m]) + (x / 1[m]) / (v / 1[m]) + involute(y) & y
    output o: Scalar = scalar(z * ~z) + norm(y) + y.e12 - norm2(z)
}
"""


def test_every_kind_has_its_rules_and_the_language_calls_them_by_name():
    for kind, op in OPERATIONS.items():
        assert op.kind == kind and isinstance(op.support, r.Rule) and callable(op.unit) and callable(op.versor)
        assert callable(op.meaning) and callable(op.equivariance)
        assert op.sources >= 1
    assert lower.BUILTINS is CALLS
    assert {"grade", "mix", "gate", "linear", "bilinear", "exp", "sqrt"} <= set(CALLS)
    assert "gradegate" not in CALLS and "add" not in CALLS       # written by gate() and by an operator


@pytest.mark.parametrize("missing", ["support rule", "unit rule", "versor rule", "meaning", "equivariance rule"])
def test_a_kind_registered_without_a_rule_is_refused(missing):
    rules = {"support": r.Arg(0), "unit": SAME_UNIT, "versor": versors.never, "meaning": lambda ev, e, a: a[0],
             "equivariance": keeps()}
    rules[missing.split()[0]] = None
    with pytest.raises(TypeError, match=f"has no {missing}"):
        register(Operation("unruled", 1, **rules))
    assert "unruled" not in OPERATIONS
    with pytest.raises(TypeError, match="registered twice"):
        register(Operation("gp", 2, r.Arg(0), SAME_UNIT, versors.never, lambda ev, e, a: a[0], equivariance=keeps()))


def test_a_stage_meeting_a_kind_the_registry_lacks_raises():
    alg = Algebra.from_signature("G2", 2, 0, 0)
    for call in (lambda: infer_support(alg, "unruled", [Operand(1)], {}),
                 lambda: unit_rule_of(alg, "unruled", {}),
                 lambda: versor_reason(alg, "unruled", [None], [1], 1),
                 lambda: fold(alg, "unruled", [], {})):
        with pytest.raises(KeyError, match="no operation 'unruled' in the registry"):
            call()
    # the support encoding too: tests/test_verifier.py


def test_a_rule_term_without_a_reading_raises():
    class Unread(r.Rule):
        pass

    alg = Algebra.from_signature("G2", 2, 0, 0)
    with pytest.raises(TypeError, match="no integer reading"):
        r.support(Unread(), alg, [1], [None], {})
    program = phg.loads("algebra G2 = Cl(2, 0, 0)\nmodel M on G2 {\n    input a: Vector\n    output o: Vector = -a\n}\n")
    graph = program.models["M"]
    edge = next(iter(graph.edges.values()))
    with pytest.raises(KeyError, match="no reading of Unread"):
        Encoder(graph, {}).rule(Unread(), edge)


def _agree(text: str) -> None:
    """Every edge's bit-vector reading, its sources fixed to their inferred supports, is the
    integer reading of the same rule: equal, but for a versor's sandwich, which the theorem may
    narrow."""
    program = phg.loads(text, filename="readings.phg")
    for graph in program.models.values():
        alg = graph.algebra
        for e in graph.edges.values():
            enc = Encoder(graph, {})
            expr = enc.edge(e)
            fixed = [(enc.var(s), z3.BitVecVal(graph.values[s].support, alg.dim, enc.ctx)) for s in e.sources]
            got = z3.simplify(z3.substitute(expr, *fixed)).as_long()
            srcs = [graph.values[s] for s in e.sources]
            want = infer_support(alg, e.kind, [Operand(v.support, v.versor) for v in srcs], e.attrs)
            if e.kind == "sandwich" and srcs[0].versor:
                assert got & ~want == 0, (e.kind, got, want, text)
            else:
                assert got == want, (e.kind, got, want, text)


def test_the_two_readings_of_every_support_rule_agree():
    _agree(BLOCK)
    _agree(WIDE)
    _agree(FUNCS.replace("output o: Scalar = ", "output o: Scalar = grade(log(exp(B)), 2).e12 + "))   # log too
    sweep(models(), 40, 0, 1, lambda text: _agree(with_loss(text)))


# ---- one meaning, every number system ----------------------------------------------------------


def _rational_inputs(graph, seed: int) -> dict:
    """Rational coefficients for every input and parameter; a Rotor's are a unit rotor's."""
    rng = random.Random(seed)
    out = {}
    for v in graph.values.values():
        if graph.producer(v.id) is not None or v.const is not None:
            continue
        unit_rotor = v.declared is not None and v.declared.versor == "Rotor"
        out[v.id] = {}
        for ch in channels(v):
            if unit_rotor:                  # (3 + 4 e12) / 5 or its like: rational and of norm 1
                a, b, c = rng.choice([(3, 4, 5), (5, 12, 13), (8, 15, 17)])
                out[v.id][ch] = {k: sympy.Rational(a, c) if k == 0 else sympy.Rational(b, c) if k == 3 else sympy.Rational(0)
                                 for k in sup.blades_of(v.support)}
            else:
                out[v.id][ch] = {b: sympy.Rational(Fraction(rng.randint(-9, 9), rng.randint(1, 4)))
                                 for b in sup.blades_of(v.support)}
    return out


def _scalar_program_values(graph, inputs: dict) -> dict:
    """The scalar program's (sympy) value of every value it computes, at the inputs, in floats:
    its assignments run in order, its helpers (exp, inverse) by phg.multivector."""
    b = ScalarBuilder(graph, list(graph.outputs.values()))
    sp = b.build()
    env = {}
    for vid, value in inputs.items():
        for ch, m in (value.items() if vid in sp.values else ()):
            for blade, c in m.items():
                sym = sp.values[vid][ch].get(blade)
                if isinstance(sym, sympy.Symbol):
                    env[sym] = sympy.Float(float(c), 30)
    for sym, expr in sp.assignments:
        if isinstance(expr, HelperCall):
            h, alg = expr.helper, graph.algebra
            dense = np.zeros(alg.dim)
            for blade, a in zip(sup.blades_of(h.source), expr.args):
                dense[blade] = float(sympy.sympify(a).xreplace(env))
            out = mv.exp(alg, dense) if h.kind == "exp" else mv.inverse(alg, dense)
            for blade, t in zip(sup.blades_of(h.result), expr.targets):
                env[t] = sympy.Float(out[blade], 30)
        else:
            env[sym] = sympy.sympify(expr).xreplace(env).evalf(30)
    return {vid: {ch: {blade: complex(sympy.sympify(x).xreplace(env).evalf(30)).real for blade, x in m.items()}
                  for ch, m in value.items()} for vid, value in sp.values.items()}


@pytest.mark.parametrize("text, seed", [(FUNCS, 0), (FUNCS, 1), (BLOCK, 2)])
def test_every_number_system_gives_an_operation_one_meaning(text, seed):
    """The registry's meanings evaluated in exact rationals (50 digits where they leave them), in
    floats and as the scalar program's sympy expressions agree on every value the program computes,
    at the same rational inputs; and constant folding is the float system's meaning."""
    graph = next(iter(phg.loads(text, filename="meanings.phg").models.values()))
    inputs = _rational_inputs(graph, seed)
    exact = Concrete(graph, inputs)
    floats = Floating(graph, {k: {ch: {b: float(c) for b, c in m.items()} for ch, m in val.items()}
                              for k, val in inputs.items()})
    program = _scalar_program_values(graph, inputs)
    compared = 0
    for vid, value in program.items():
        if vid in inputs or graph.values[vid].const is not None:
            continue
        for ch, m in exact.coefficients(vid).items():
            quick = floats.coefficients(vid)[ch]
            scale = max([1.0] + [abs(float(c)) for c in m.values()])     # the multivector's size
            for blade in set(m) | set(quick) | set(value[ch]):
                want = float(m.get(blade, 0))
                assert abs(quick.get(blade, 0.0) - want) <= 1e-9 * scale, (vid, ch, blade)
                if graph.values[vid].support >> blade & 1:   # the program keeps the proven support
                    assert abs(value[ch].get(blade, 0.0) - want) <= 1e-9 * scale, (vid, ch, blade)
                compared += 1
    assert compared > 50
    kinds = {e.kind for e in graph.edges.values()}
    assert kinds >= ({"gate", "sandwich", "div", "inv", "exp", "normalize", "dual", "sqrt", "gelu", "sigmoid"}
                     if text is FUNCS else {"linear", "bilinear", "gradegate", "sum"})


def test_constants_fold_by_the_same_meaning():
    """A constant expression folds to what the float system computes for the same operation on
    model values, for every kind constants fold."""
    alg = Algebra.from_signature("G3", 3, 0, 0)
    rng = np.random.default_rng(5)
    for kind, op in OPERATIONS.items():
        if not op.folds or op.whole:
            continue
        args = [rng.uniform(0.2, 1.0, alg.dim) for _ in range(op.sources)]
        if kind in CALLS and op.arguments and op.arguments[0].i == 0 and kind != "exp":
            args[0] = np.eye(alg.dim)[0] * 0.7                      # a Scalar argument
        if kind == "exp":
            args[0] = np.array([0, 0, 0, 0.3, 0, 0.2, -0.1, 0])      # a Bivector
        attrs = {"grades": [1, 2]} if kind == "grade" else {"blade": 3, "sign": -1} if kind == "component" else {}
        if kind == "gate":
            args[1] = np.eye(alg.dim)[0] * 0.4
        folded = fold(alg, kind, args, attrs)
        direct = op.meaning(Evaluator(Floats(alg)), Edge("", kind, (), "", attrs), [dict(enumerate(a)) for a in args])
        assert folded.tolist() == [direct.get(b, 0.0) for b in range(alg.dim)], kind
