"""The operation registry (phg.operations): every kind's rules in one entry, refused without
them; stages that meet a kind the registry lacks raise; a support rule's two readings (integers,
phg.rules; Z3 bit-vectors, verifier.smt) agree on every edge of random and layered models."""
from __future__ import annotations

import pytest
import z3
from modelgen import models
from shards import sweep
from test_layers import BLOCK
from test_loops import WIDE
from test_training import with_loss

import phg
from phg import rules as r
from phg import versors
from phg.algebra import Algebra
from phg.dsl import lower
from phg.operations import (CALLS, OPERATIONS, SAME_UNIT, Operand, Operation, evaluate, infer_support, register,
                            unit_rule_of, versor_reason)
from phg.verifier.smt import Encoder


def test_every_kind_has_its_rules_and_the_language_calls_them_by_name():
    for kind, op in OPERATIONS.items():
        assert op.kind == kind and isinstance(op.support, r.Rule) and callable(op.unit) and callable(op.versor)
        assert op.sources >= 1
    assert lower.BUILTINS is CALLS
    assert {"grade", "mix", "gate", "linear", "bilinear", "exp", "sqrt"} <= set(CALLS)
    assert "gradegate" not in CALLS and "add" not in CALLS       # written by gate() and by an operator


@pytest.mark.parametrize("missing", ["support", "unit", "versor"])
def test_a_kind_registered_without_a_rule_is_refused(missing):
    rules = {"support": r.Arg(0), "unit": SAME_UNIT, "versor": versors.never, missing: None}
    with pytest.raises(TypeError, match=f"has no {missing} rule"):
        register(Operation("unruled", 1, **rules))
    assert "unruled" not in OPERATIONS
    with pytest.raises(TypeError, match="registered twice"):
        register(Operation("gp", 2, r.Arg(0), SAME_UNIT, versors.never))


def test_a_stage_meeting_a_kind_the_registry_lacks_raises():
    alg = Algebra.from_signature("G2", 2, 0, 0)
    for call in (lambda: infer_support(alg, "unruled", [Operand(1)], {}),
                 lambda: unit_rule_of(alg, "unruled", {}),
                 lambda: versor_reason(alg, "unruled", [None], [1], 1),
                 lambda: evaluate(alg, "unruled", [], {})):
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
    _agree("""algebra G3 = Cl(3, 0, 0)

model Funcs on G3 {
    input v: Vector[m]
    input s: Scalar
    param R: Rotor = 1
    param B: Bivector = 0
    let x: Vector[m] = -(R >> v)
    let i: Vector[m^-1] = inv(x)
    let q: Scalar = sqrt(abs(s)) + sin(s) + cos(s) + tanh(s) + relu(s) + gelu(s) + sigmoid(s)
    let y: Multivector = exp(B) * normalize(x) + (i * 1[m]) * q + dual(v / 1[m]) + odd(v / 1[m]) + even(v * v / 1[m^2])
    output o: Scalar = scalar(y * ~y) + norm(y) + grade(log(exp(B)), 2).e12
}
""")
    sweep(models(), 40, 0, 1, lambda text: _agree(with_loss(text)))
