"""commutator(x, y) = (x y - y x) / 2, the Lie bracket: its blades against clifford, its support
and grade rules (two Bivectors give a Bivector, proven), its unit, both kernel strategies and their
gradients against finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from cliffeval import layout_of
from interpreted import interpreted
from test_loops import _build
from test_training import gradient_error

import phg
from phg import support as sup
from phg.algebra import Algebra
from phg.evaluation import fold
from phg.operations import Operand, infer_support


@pytest.mark.parametrize("signature", [(3, 0, 0), (3, 0, 1), (1, 3, 0), (2, 0, 0)])
def test_commutator_is_half_the_difference_of_the_products_by_clifford(signature):
    alg = Algebra.from_signature("A", *signature)
    layout, masks = layout_of(signature)
    rng = np.random.default_rng(sum(signature))
    for _ in range(20):
        x, y = rng.normal(size=alg.dim), rng.normal(size=alg.dim)
        cx, cy = (layout.MultiVector(np.array([v[m] for m in masks])) for v in (x, y))
        want = ((cx * cy - cy * cx) / 2).value
        got = fold(alg, "commutator", [x, y], {})
        assert np.allclose([got[m] for m in masks], want, atol=1e-12)


def test_its_support_rule_is_exact_on_blades_and_two_bivectors_give_a_bivector():
    """On single blades the rule is exact: a pair that commutes gives nothing, one that
    anticommutes their product's blade."""
    alg = Algebra.from_signature("PGA", 3, 0, 1)
    layout, masks = layout_of((3, 0, 1))
    for a in range(alg.dim):
        for b in range(alg.dim):
            ca, cb = (layout.MultiVector(np.eye(alg.dim)[masks.index(m)]) for m in (a, b))
            bracket = ((ca * cb - cb * ca) / 2).value
            want = sup.from_blades([masks[i] for i in np.flatnonzero(bracket)])
            assert infer_support(alg, "commutator", [Operand(1 << a), Operand(1 << b)], {}) == want, (a, b)
    g3 = Algebra.from_signature("G3", 3, 0, 0)
    bivectors = sup.of_grades(g3, [2])
    assert infer_support(g3, "commutator", [Operand(bivectors), Operand(bivectors)], {}) == bivectors


LIE = """algebra G3 = Cl(3, 0, 0)

model Lie on G3 {
    input a: Bivector[1/s]
    input b: Bivector[m]
    param B: Bivector = 0.1 * e12 + 0.2 * e23
    let w: Bivector[m/s] = commutator(a, b)
    let u: Bivector[m] = commutator(B, b)
    output turn: Bivector[m/s] = w + commutator(a, u)
    loss norm2(turn - commutator(u, a)) / 1[m^2/s^2]
}
"""


def test_commutator_grades_and_units_are_proven():
    cert = phg.check(phg.loads(LIE, filename="lie.phg"))
    assert cert.ok, [(o.claim, o.status) for o in cert.obligations if o.status != "proven"]
    grades = {o.subject: o.status for o in cert.obligations if o.kind == "grade"}
    assert grades["w"] == grades["u"] == grades["turn"] == "proven"
    # a Bivector's bracket with a Vector (and a central Pseudoscalar) is a Vector, not a Bivector
    wrong = LIE.replace("commutator(B, b)", "commutator(B, b * e1)")
    grades = {o.subject: o.status for o in phg.check(phg.loads(wrong, filename="lie.phg")).obligations
              if o.kind == "grade"}
    assert grades["u"] == "refuted"
    # its unit is the product's: a's (1/s) twice is not m/s
    units = phg.check(phg.loads(LIE.replace("commutator(a, b)", "commutator(a, a)"), filename="lie.phg")).obligations
    assert [o.status for o in units if o.kind == "unit" and o.subject == "w"] == ["refuted"]


@pytest.mark.parametrize("strategy", ["fused", "loops"])
def test_both_strategies_compute_it_and_its_gradient(tmp_path, monkeypatch, strategy):
    program, module = _build(LIE, tmp_path, monkeypatch, strategy)
    model = interpreted(module, "Lie", seed=1)
    rng = np.random.default_rng(4)
    data = {"a": rng.normal(size=(9, 3)), "b": rng.normal(size=(9, 3))}
    layout, masks = layout_of((3, 0, 0))
    biv = [m for m in masks if bin(m).count("1") == 2]
    blades = sorted(biv, key=program.models["Lie"].algebra.position.__getitem__)

    def mv(coefs):
        v = np.zeros(len(masks))
        for m, c in zip(blades, coefs):
            v[masks.index(m)] = c
        return layout.MultiVector(v)

    bracket = lambda x, y: (x * y - y * x) / 2  # noqa: E731
    B = mv(model.params["B"])
    turn = model.predict(**data)["turn"]
    for i in range(9):
        a, b = mv(data["a"][i]), mv(data["b"][i])
        want = bracket(a, b) + bracket(a, bracket(B, b))
        assert np.allclose(turn[i], [want.value[masks.index(m)] for m in blades], atol=1e-12)
    assert gradient_error(model, data) < 1e-6
