"""One training step of a Rotor or Motor parameter, in every algebra size from 2 to 8 basis vectors:
the step of plain SGD is R <- R exp(-lr b), b_i the derivative of the loss along R exp(eps e_i) for
the basis bivectors e_i in the tangent's order.  b comes from central finite differences of the
model's own loss, and the rotors and exponentials from clifford, so neither side shares code with
the generated tangent and retraction."""
from __future__ import annotations

import numpy as np
import pytest

import phg

LR = 0.01
SAMPLES = 12

# (p, q, r): every size 2..8; the closed forms (G2, G3, PGA) and the table of codegen.lie (the
# rest); mixed signatures (spacetime, conformal, split) and degenerate ones, where the parameter is
# a Motor (Cl(5, 0, 1) has the null pseudoscalar the renormalisation corrects).
ALGEBRAS = [(2, 0, 0), (3, 0, 0), (4, 0, 0), (1, 3, 0), (3, 0, 1), (4, 1, 0), (5, 0, 1),
            (7, 0, 0), (4, 4, 0)]


def source(p: int, q: int, r: int) -> str:
    # R is compared with a target c coefficient by coefficient, so every bivector direction moves
    # the loss (a sandwich would be the same test at many times the compile time in G7, G8).
    # With a null e0, norm2 misses the blades holding e0 (a Motor's translations); the dual
    # brings them back.
    kind = "Motor" if r else "Rotor"
    loss = "norm2(z) + norm2(dual(z))" if r else "norm2(z)"
    return f"""
algebra A = Cl({p}, {q}, {r})

model Step on A {{
    param R: {kind} = 1
    input c: Even
    let z: Even = R - c
    loss {loss}
}}

train Step {{
    optimizer sgd(lr = {LR})
    batch {SAMPLES}
    steps 1
    accumulate float
}}
"""


@pytest.fixture(scope="module", params=ALGEBRAS, ids=lambda s: "Cl%d%d%d" % s)
def case(request, tmp_path_factory):
    import clifford
    p, q, r = request.param
    program = phg.loads(source(p, q, r), "step.phg")
    module = phg.build(program, tmp_path_factory.mktemp("step"))
    alg = program.models["Step"].algebra
    layout, _ = clifford.Cl(sig=[v.square for v in alg.basis], firstIdx=0)
    return module.Step, alg, layout


def coefficients(names, alg, layout) -> list[int]:
    """clifford's index of each phg blade name (blades are matched by their basis vectors)."""
    out = []
    for n in names:
        sign, mask = alg.parse_blade(n) if n != "1" else (1, 0)
        assert sign == 1, n
        out.append(layout.bladeTupList.index(tuple(i for i in range(alg.n) if mask >> i & 1)))
    return out


def exp(B):
    from clifford import taylor_expansions
    return taylor_expansions.exp(B, max_order=40)


def test_one_sgd_step_is_the_product_with_the_exponential_of_the_gradient(case):
    cls, alg, layout = case
    model = cls()
    rng = np.random.default_rng(61)
    names, tangent = model.layout("R"), model.SPEC["train"]["manifold"]["R"]["tangent"]
    at, bat = coefficients(names, alg, layout), coefficients(tangent, alg, layout)

    def multivector(values, where):
        v = np.zeros(layout.gaDims)
        v[where] = values
        return layout.MultiVector(v)

    basis = [multivector([1.0], [k]) for k in bat]
    R = exp(multivector(rng.normal(0, 0.4, len(bat)), bat))
    R = R / np.sqrt((R * ~R).value[0])
    inputs = {"c": rng.normal(size=(SAMPLES, len(model.layout("c"))))}

    def loss_at(rotor):
        model.params["R"] = rotor.value[at].copy()
        return model.loss(**inputs)

    h = 1e-3
    b = np.array([(8 * (loss_at(R * exp(h * e)) - loss_at(R * exp(-h * e)))
                   - (loss_at(R * exp(2 * h * e)) - loss_at(R * exp(-2 * h * e)))) / (12 * h) for e in basis])
    # every direction matters, so a swapped pair of coordinates cannot go unnoticed
    assert np.abs(b).min() > 1e-3 * np.abs(b).max(), dict(zip(tangent, b))

    before = loss_at(R)
    assert model.step(**inputs) == pytest.approx(before, rel=1e-12)
    want = (R * exp(-LR * sum(c * e for c, e in zip(b, basis)))).value[at]
    got = model.params["R"]
    assert np.abs(got - want).max() < 1e-6 * np.abs(want).max(), (
        f"step moved {dict(zip(names, got))}; R exp(-lr b) is {dict(zip(names, want))}")
    assert model.loss(**inputs) < before


@pytest.mark.parametrize("signature", [(4, 0, 0), (1, 3, 0), (5, 0, 1), (8, 0, 0)], ids=lambda s: "Cl%d%d%d" % s)
def test_the_table_retraction_is_the_product_with_the_exponential(signature):
    """codegen.lie's R exp(B) against clifford's Taylor exponential, for rotors R = exp(A) and
    bivectors B of sizes 1e-8 to 3, without building a model (so G8 too)."""
    import clifford
    from phg.codegen.lie import RotorManifold
    from phg.bivectors import null_pseudoscalar
    from phg.algebra import Algebra
    alg = Algebra.from_signature("A", *signature)
    layout, _ = clifford.Cl(sig=[v.square for v in alg.basis], firstIdx=0)
    even = [b for b in alg.blades if bin(b).count("1") % 2 == 0]
    biv = [b for b in alg.blades if bin(b).count("1") == 2]
    manifold = RotorManifold(tuple(v.square for v in alg.basis), tuple(even), tuple(biv), null_pseudoscalar(alg))
    at = coefficients([alg.blade_name(b) for b in even], alg, layout)
    bat = coefficients([alg.blade_name(b) for b in biv], alg, layout)
    rng = np.random.default_rng(62)

    def bivector(scale):
        v = np.zeros(layout.gaDims)
        v[bat] = rng.normal(size=len(bat)) * scale
        return layout.MultiVector(v)

    for trial in range(6):
        R = exp(bivector(0.5))
        size = 10.0 ** rng.uniform(-8, 0.5)
        B = bivector(size)
        out = np.empty((1, len(even)))
        manifold.retract(R.value[at][None], B.value[bat][None], 1.0, out)
        want = (R * exp(B)).value[at]
        assert np.abs(out[0] - want).max() < 1e-11 * max(1.0, np.abs(want).max()), (trial, size)
