"""The layers of Clifford-group equivariant networks (LANGUAGE §10): linear(W, x),
bilinear(w, x, y) and gate(x, s) per grade against clifford in both kernel strategies, their gradients against finite
differences, O(3) equivariance, and their errors."""
from __future__ import annotations

import numpy as np
import pytest
from cliffeval import Reference
from interpreted import interpreted
from test_codegen import REL as CLIFFORD_REL
from test_codegen import compare
from test_training import REL as FD_REL
from test_training import gradient_error, random_inputs

import phg
import phg.plan.kernel
from phg import support as sup
from phg.diagnostics import PhgError

# Two vector layers mixed per grade, their weighted geometric product (scalar and bivector), a
# per-grade mix of that and of the vectors, a second product over every grade path (13 in G3),
# a gate by an invariant, a gate per grade, and a readout per grade with a fully connected product
# of the first two layers added.
BLOCK = """algebra G3 = Cl(3, 0, 0)

model Block on G3 {
    input v[3]: Vector[m]
    input target: Pseudoscalar[m^3]
    param Wh[6, 3, 1]: Scalar = normal(0.5)
    param Wk[6, 3, 1]: Scalar = normal(0.5)
    param w1[6, 2]: Scalar = normal(0.5)
    param Wl[6, 6, 3]: Scalar = normal(0.4)
    param Wr[6, 6, 3]: Scalar = normal(0.4)
    param w2[6, 13]: Scalar = normal(0.4)
    param Wo[2, 6, 4]: Scalar = normal(0.4)
    param sg[6, 4]: Scalar = normal(1.0)
    param Wf[2, 6, 2]: Scalar = normal(0.4)
    let h[6]: Vector[m] = linear(Wh, v)
    let k[6]: Vector[m] = linear(Wk, v)
    let a[6]: Even[m] = bilinear(w1, h, k) / 1[m]
    let b[6]: Multivector[m] = h + a
    let c[6]: Multivector[m^2] = bilinear(w2, linear(Wl, b), linear(Wr, b))
    let d[6]: Multivector[m^2] = gate(c, scalar(c * ~c) / 1[m^4])
    let o[2]: Multivector[m^2] = linear(Wo, gate(d, sg)) + bilinear(Wf, h, k)
    output s: Scalar[m^2] = sum(scalar(o))
    output u: Vector[m^2] = sum(grade(o, 1))
    output volume: Pseudoscalar[m^2] = sum(grade(o, 3))
    loss norm2(volume / 1[m^-1] - target) / 1[m^6]
}
"""


@pytest.fixture(scope="module", params=["loops", "fused"])
def block(request, tmp_path_factory):
    """BLOCK checked and built in one strategy (its kernels run by Python: nothing to compile)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(phg.plan.kernel, "UNROLL_LIMIT", 0 if request.param == "loops" else 10**9)
    program = phg.loads(BLOCK, filename="block.phg")
    cert = phg.check(program)
    module = phg.build(program, tmp_path_factory.mktemp(request.param))
    mp.undo()
    assert module.Block.SPEC["predict"]["strategy"] == request.param
    return program, module, cert


def test_layers_are_proven_and_have_the_documented_paths(block):
    program, _, cert = block
    assert cert.ok
    graph = program.models["Block"]
    paths = [e.attrs["paths"] for e in graph.edges.values() if e.kind == "bilinear"]
    assert paths[0] == [[1, 1, 0], [1, 1, 2]]
    assert len(paths[1]) == 13 and paths[1] == sorted(paths[1])
    assert sup.grade_paths(graph.algebra, sup.of_grades(graph.algebra, [1]), sup.of_grades(graph.algebra, [2])) == \
        [(1, 2, 1), (1, 2, 3)]


def test_layers_match_clifford(block):
    program, module, _ = block
    assert compare(program, module, np.random.default_rng(7), compiled=False) < CLIFFORD_REL


def test_layer_gradients_match_finite_differences(block):
    program, module, _ = block
    graph = program.models["Block"]
    model = interpreted(module, "Block", seed=4)
    assert gradient_error(model, random_inputs(Reference(graph), graph, np.random.default_rng(2), 5)) < FD_REL


FULLY_CONNECTED = """algebra G3 = Cl(3, 0, 0)

model Connected on G3 {
    input x[3]: Multivector
    input y[3]: Multivector
    param W[2, 3, 20]: Scalar = normal(0.5)
    output o = bilinear(W, x, y)
}
"""


@pytest.mark.parametrize("strategy", ["loops", "fused"])
def test_fully_connected_bilinear_is_its_definition(strategy, tmp_path, monkeypatch):
    """out[i] = sum over j and paths (a, b, r) of W[i, j, p] grade_r(grade_a(x[j]) grade_b(y[j])),
    with the paths found by clifford's products (lexicographic), against phg's build."""
    import clifford
    layout, _ = clifford.Cl(3)
    rng = np.random.default_rng(11)
    probe = [layout.MultiVector(rng.normal(size=8)) for _ in range(2)]
    paths = [(a, b, r) for a in range(4) for b in range(4) for r in range(4)
             if np.abs((probe[0](a) * probe[1](b))(r).value).max() > 1e-12]
    assert len(paths) == 20
    monkeypatch.setattr(phg.plan.kernel, "UNROLL_LIMIT", 0 if strategy == "loops" else 10**9)
    program = phg.loads(FULLY_CONNECTED, filename="connected.phg")
    assert phg.check(program).ok
    model = interpreted(phg.build(program, tmp_path), "Connected", seed=3)
    assert model.SPEC["predict"]["strategy"] == strategy
    x, y = rng.normal(size=(5, 3, 8)), rng.normal(size=(5, 3, 8))
    got = model.predict(x=x, y=y)["o"]
    w = model.params["W"]
    for n in range(5):
        for i in range(2):
            want = sum(w[i, j, p] * (layout.MultiVector(x[n, j])(a) * layout.MultiVector(y[n, j])(b))(r)
                       for j in range(3) for p, (a, b, r) in enumerate(paths))
            assert np.allclose(got[n, i], want.value, rtol=1e-12, atol=1e-12)


def _orthogonal(rng, reflect: bool) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


def test_layers_are_o3_equivariant(block):
    """Scalars stay, vectors turn with the transform, the pseudoscalar flips with reflections."""
    _, module, _ = block
    model = interpreted(module, "Block", seed=1)
    rng = np.random.default_rng(5)
    v = rng.normal(size=(9, 3, 3))
    base = model.predict(v=v)
    for reflect in (False, True, False, True):
        q = _orthogonal(rng, reflect)
        out = model.predict(v=v @ q.T)
        det = np.linalg.det(q)
        assert np.allclose(out["s"], base["s"], rtol=1e-9, atol=1e-9)
        assert np.allclose(out["u"], base["u"] @ q.T, rtol=1e-9, atol=1e-9)
        assert np.allclose(out["volume"], det * base["volume"], rtol=1e-9, atol=1e-9)
        assert np.abs(base["volume"]).max() > 1e-6          # far above the tolerance: not vacuous


@pytest.mark.parametrize("text, expected", [
    ("let y[4]: Vector = linear(W, x)", "expected: W with channels [Cout, 3, 1]"),
    ("let y[4]: Multivector = bilinear(w, x, x)", "expected: w with channels [3, 2]"),
    ("let y[3]: Multivector = bilinear(x, x, x)", "takes Scalar weights"),
    ("let y[3]: Vector = gate(x, w)", "expected: s with channels [3, 1]"),
])
def test_layer_errors_say_what_was_expected(text, expected):
    source = ("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x[3]: Vector\n"
              "    param W[4, 3, 2]: Scalar\n    param w[3, 5]: Scalar\n    " + text + "\n    output o = sum(y)\n}\n")
    with pytest.raises(PhgError) as err:
        phg.loads(source, filename="m.phg")
    text = str(err.value)
    assert "m.phg:6:" in text and expected in text, text
