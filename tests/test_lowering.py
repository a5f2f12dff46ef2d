"""Lowering to the Program Hypergraph: names, constants, defs, shapes, serialisation."""
import functools
import json
from pathlib import Path

import clifford
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phg
from phg.shell.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.phg")) + [ROOT / "tests" / "models" / "frame.phg"]
G3 = "algebra G3 = Cl(3, 0, 0)\n"


def blades(graph, value_id):
    alg = graph.algebra
    return [alg.blade_name(b) for b in alg.blades if graph.values[value_id].support >> b & 1]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_lower_and_print(path, capsys):
    program = phg.load(path)
    assert program.models or program.networks
    assert main(["check", str(path)]) == 0
    assert main(["graph", str(path), "--format", "json"]) == 0
    capsys.readouterr()
    doc = json.loads(program.to_json())
    assert doc["format"] == "phg-graph/1"


def test_rigid_registration_graph():
    program = phg.load(ROOT / "examples" / "rigid_registration.phg")
    g = program.models["RigidRegistration"]
    assert blades(g, "R") == ["1", "e12", "e13", "e23"]
    assert g.values["R"].versor and g.values["R"].init == {"kind": "const", "value": {"1": 1.0}}
    # Before any proof, R >> x is grades {1, 3}; the output's Vector type is a claim.
    assert blades(g, "p") == ["e1", "e2", "e3", "e123"]
    assert [(c.kind, c.subject, c.type.describe() if c.type else None) for c in g.claims] == [
        ("type", "p", "Vector[m]"), ("scalar", "loss", None)]
    kinds = [(e.kind, e.sources, e.target) for e in g.topological_edges()]
    assert kinds == [("sandwich", ("R", "x"), "%3"), ("add", ("%3", "t"), "p"),
                     ("sub", ("p", "y"), "%5"), ("norm2", ("%5",), "loss")]
    spec = program.trains["RigidRegistration"]
    assert (spec.optimizer, spec.hyper["lr"], spec.batch, spec.steps, spec.accumulate, spec.memory_factor) == (
        "adam", 0.05, 4096, 300, "exact", 2.0)


def test_channels_mix_index_sum():
    g = phg.load(ROOT / "tests" / "models" / "frame.phg").models["Frame"]
    assert g.values["W"].shape == (4, 2) and g.values["h"].shape == (4,)
    mix = g.producer("h")
    assert mix.kind == "mix" and mix.sources == ("W", "u")
    assert blades(g, "axis") == ["e12", "e13", "e23"] and g.values["axis"].shape == ()
    assert g.values["spread"].shape == () and blades(g, "spread") == ["1"]
    assert g.values["W"].init == {"kind": "normal", "args": [0.3]}


def test_constants_are_evaluated_with_units():
    src = G3 + "unit N = kg*m/s^2\nconst g = 9.81[m/s^2] * e3\nconst F = 2[N] * e21\n" \
          "model M on G3 {\n    input x: Vector\n    output y = x + g\n    output z = F\n}\n"
    g = phg.loads(src).models["M"]
    const = g.values[g.producer("y").sources[1]]
    assert const.role == "const" and str(const.unit) == "m/s^2"
    assert np.allclose(const.const, [0, 0, 0, 0, 9.81, 0, 0, 0])      # indexed by blade mask: e3 = 0b100
    z = g.values["z"]
    assert z.const[0b011] == -2.0 and str(z.unit) == "kg*m/s^2"     # e21 = -e12


def test_rational_unit_exponents():
    program = phg.loads(G3 + "unit rtHz = s^(-1/2)\nmodel M on G3 {\n    input x: Scalar[m^(1/2)*rtHz]\n}\n")
    assert str(program.models["M"].values["x"].declared.unit) == "m^(1/2)/s^(1/2)"


def test_defs_are_inlined_with_claims():
    src = G3 + "def rot(R: Rotor, v: Vector) -> Vector = R >> v\n" \
          "model M on G3 {\n    param R: Rotor\n    input x: Vector\n    output y = rot(R, rot(R, x))\n}\n"
    g = phg.loads(src).models["M"]
    assert [e.kind for e in g.topological_edges()] == ["sandwich", "sandwich"]
    origins = sorted(c.origin for c in g.claims)
    assert origins == ["def-arg"] * 4 + ["def-return"] * 2


def test_components_and_out_of_order_blades():
    src = G3 + "model M on G3 {\n    input B: Bivector\n    output a = B.e21\n    output b = B.e3\n}\n"
    g = phg.loads(src).models["M"]
    assert g.producer("a").attrs == {"blade": 0b011, "sign": -1}
    assert blades(g, "a") == ["1"] and blades(g, "b") == []     # e3 is not in a Bivector: zero


def test_line_continuation_and_semicolons():
    src = G3 + "model M on G3 {\n    input x: Vector; input y: Vector\n    output z = (x +\n        y) * grade(\n  x, 1)\n}\n"
    assert blades(phg.loads(src).models["M"], "z") == ["1", "e12", "e13", "e23"]


def test_explicit_basis_and_basis_units():
    src = "algebra STA = basis(g0: +1, g1: -1, g2: -1, g3: -1)\nalgebra P = Cl(3, 0, 1) units(e0: 1/m)\n" \
          "model M on STA {\n    input x: Vector\n    output b = x ^ g0\n}\n"
    program = phg.loads(src)
    assert blades(program.models["M"], "b") == ["g01", "g02", "g03"]
    p = program.algebras["P"]
    assert str(p.blade_unit(p.parse_blade("e032")[1])) == "1/m"


def test_graph_serialisations():
    program = phg.load(ROOT / "examples" / "pga_pose.phg")
    doc = json.loads(program.to_json())
    model = doc["models"][0]
    assert model["algebra"]["signature"] == [3, 0, 1]
    assert {v["id"] for v in model["values"]} >= {"M", "a", "b", "moved", "d", "loss"}
    assert all(set(e) >= {"kind", "sources", "target"} for e in model["edges"])
    dot = program.to_dot()
    assert dot.startswith("digraph phg {") and '"PgaPose.M"' in dot


@functools.lru_cache(maxsize=None)
def _layout(sig):
    return clifford.Cl(*sig)[0]


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.sampled_from([(3, 0, 0), (1, 3, 0), (4, 0, 0), (3, 0, 1)]), st.integers(0, 2 ** 32 - 1))
def test_sandwich_by_a_declared_rotor_is_sound(sig, seed):
    """A declared Rotor's inverse is its reverse: the support rule relies on that assumption."""
    p, q, r = sig
    src = f"algebra A = Cl({p}, {q}, {r})\nmodel M on A {{\n    input R: Rotor\n    input x: Vector\n" \
          "    output y = R >> x\n    output z = x / R\n}\n"
    g = phg.loads(src).models["M"]
    layout = _layout(sig)
    rng = np.random.default_rng(seed)
    biv = layout.MultiVector(np.where(np.array([len(t) == 2 for t in layout.bladeTupList]),
                                      rng.normal(size=layout.gaDims), 0.0))
    R = biv.exp()
    R = R / np.sqrt(abs(float((R * ~R)(0))))
    x = layout.MultiVector(np.where(np.array([len(t) == 1 for t in layout.bladeTupList]),
                                    rng.normal(size=layout.gaDims), 0.0))
    first = min(i for t in layout.bladeTupList for i in t)   # clifford's first basis index
    masks = [sum(1 << (k - first) for k in t) for t in layout.bladeTupList]
    for name, value in (("y", R * x * R.inv()), ("z", x * R.inv())):
        scale = max(1.0, np.abs(value.value).max())
        for i in np.flatnonzero(np.abs(value.value) > 1e-9 * scale):
            assert g.values[name].support >> masks[i] & 1, (sig, name, layout.bladeTupList[i])


def test_a_named_const_used_twice_keeps_its_node():
    src = G3 + "const F = 2 * e1\nmodel M on G3 {\n    output z = F\n    output w = F + F\n}\n"
    g = phg.loads(src).models["M"]
    assert g.values["z"].const[1] == 2.0 and g.values["w"].const[1] == 4.0


def test_a_def_result_named_by_a_statement_keeps_its_claims():
    """`output y: Vector = reflect(n, x)`: the def's result value takes the statement's name, and
    its `-> Vector` claim follows it (it used to point at the old id: a KeyError in phg check)."""
    program = phg.loads("algebra G3 = Cl(3, 0, 0)\n"
                        "def reflect(n: Vector, x: Vector) -> Vector = -n * x * n\n"
                        "def wrong(n: Vector) -> Bivector = n * n\n"
                        "model Mirror on G3 {\n    input n: Vector\n    input x: Vector\n"
                        "    output y: Vector = reflect(n, x)\n    let z = wrong(n)\n    output z\n}\n")
    graph = program.models["Mirror"]
    assert all(c.subject in graph.values for c in graph.claims)
    statuses = {o.claim: o.status for o in phg.check(program).obligations}
    assert statuses["y : Vector"] == "proven"
    assert statuses["z : Bivector"] == "refuted"
