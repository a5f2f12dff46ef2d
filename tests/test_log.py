"""log() of Rotors and Motors (LANGUAGE §5, §13): the inverse of exp within the principal range
in G2, G3, 2D and 3D PGA, against clifford (its log of a simple rotor in G3; exp of our log, and
a Newton solve of exp, in PGA), its adjoint against finite differences on both sides of the
series' switch, and the loop plan against the fused code."""
import functools

import numpy as np
import pytest
from cliffeval import Reference

import phg
import phg.plan.kernel
from builtfile import built_file

ALGEBRAS = {"G2": "Cl(2, 0, 0)", "G3": "Cl(3, 0, 0)", "PGA2": "Cl(2, 0, 1)", "PGA": "Cl(3, 0, 1)"}
SOURCE = "".join(f"algebra {name} = {sig}\n" for name, sig in ALGEBRAS.items()) + "".join(
    f"\nmodel Round{name} on {name} {{\n    input B: Bivector\n    output L: Bivector = log(exp(B))\n}}\n"
    f"\nmodel Log{name} on {name} {{\n    input R: Even\n    output L: Bivector = log(R)\n}}\n"
    f"\nmodel Fit{name} on {name} {{\n    param R: Rotor = 1\n    input x: Bivector\n    loss norm2(log(R) - x)\n}}\n"
    for name in ALGEBRAS)


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    yield from built_file(tmp_path_factory, "logs", SOURCE)


def _euclidean(module, name: str) -> list[int]:
    """The columns of Round<name>'s B on bivectors that square to -1 (those of the rotation angle)."""
    layout = module.MODELS[f"Round{name}"].SPEC["inputs"]["B"]["layout"]
    return [i for i, b in enumerate(layout) if "0" not in b]


def _bivectors(module, name: str, n: int, rng, largest: float = 0.95 * np.pi) -> np.ndarray:
    """n random bivectors, their Euclidean parts' norms uniform in the ball of radius `largest`
    (the principal range is below pi), ideal parts normal; the first tenth near the identity."""
    cols = _euclidean(module, name)
    width = len(module.MODELS[f"Round{name}"].SPEC["inputs"]["B"]["layout"])
    b = rng.normal(size=(n, width))
    e = b[:, cols]
    radius = largest * rng.random(n) ** (1 / len(cols))
    b[:, cols] = e / np.linalg.norm(e, axis=1, keepdims=True) * radius[:, None]
    b[: n // 10] *= 10.0 ** rng.uniform(-9, -2, size=(n // 10, 1))
    return b


@pytest.mark.parametrize("name", sorted(ALGEBRAS))
def test_log_inverts_exp_within_the_principal_range(kernels, name):
    """|log(exp(B)) - B| < 1e-12 on 10^4 random bivectors (G3 and PGA: the issue's figure)."""
    _, module = kernels
    rng = np.random.default_rng(1)
    b = _bivectors(module, name, 10_000, rng)
    out = getattr(module, f"Round{name}")().predict(B=b)["L"]
    assert np.abs(out - b).max() < 1e-12


def test_log_is_cliffords_in_g3_and_inverts_cliffords_exp_in_pga(kernels):
    path, module = kernels
    program = phg.load(path)
    rng = np.random.default_rng(2)
    for name in ("G3", "PGA"):
        ref = Reference(program.models[f"Log{name}"])
        layout = module.MODELS[f"Log{name}"].SPEC["inputs"]["R"]["layout"]
        out_layout = module.MODELS[f"Log{name}"].SPEC["outputs"]["L"]["layout"]
        blades = {ref.alg.blade_name(b): b for b in ref.alg.blades}
        rotors = [ref.random_rotor(rng) for _ in range(200)]
        if name == "PGA":                         # screw motions: a rotor and a translation
            rotors = [r * ref.exp(ref.mv({blades[t]: rng.normal() for t in ("e01", "e02", "e03")}))
                      for r in rotors]
        x = np.array([[float(r.value[ref.index[blades[b]]]) for b in layout] for r in rotors])
        logs = getattr(module, f"Log{name}")().predict(R=x)["L"]
        for r, got in zip(rotors, logs):
            ours = ref.mv({blades[b]: v for b, v in zip(out_layout, got)})
            if name == "G3":
                from clifford.tools import log_rotor
                theirs = log_rotor(r)
            else:
                theirs = ref.log(r)                   # Newton on clifford's exp
            np.testing.assert_allclose(ours.value, theirs.value, atol=1e-11)
            np.testing.assert_allclose(ref.exp(ours).value, r.value, atol=1e-12)


def test_log_of_a_scaled_versor_is_the_versors(kernels):
    """A Rotor's scale does not change its log; a Motor is normalised first (R ~R = 1, the
    pseudoscalar part included)."""
    _, module = kernels
    rng = np.random.default_rng(3)
    for name in ("G3", "PGA"):
        b = _bivectors(module, name, 100, rng)
        inputs = module.MODELS[f"Round{name}"].SPEC["inputs"]["B"]["layout"]
        even = module.MODELS[f"Log{name}"].SPEC["inputs"]["R"]["layout"]
        versors = _clifford_exp(name, b, inputs, even)
        np.testing.assert_allclose(getattr(module, f"Log{name}")().predict(R=versors * 2.5)["L"], b, atol=1e-12)


@functools.cache
def _reference(name: str) -> Reference:
    return Reference(phg.loads(SOURCE).models[f"Log{name}"])


def _clifford_exp(name: str, b: np.ndarray, inputs: list[str], outputs: list[str]) -> np.ndarray:
    """clifford's exp of each row of b (coefficients of the blades `inputs`), on the blades `outputs`."""
    ref = _reference(name)
    blades = {ref.alg.blade_name(x): x for x in ref.alg.blades}
    out = []
    for row in b:
        e = ref.exp(ref.mv({blades[n]: v for n, v in zip(inputs, row)}))
        out.append([float(e.value[ref.index[blades[n]]]) for n in outputs])
    return np.array(out)


def _helpers(module, name: str):
    """The module's log helper of the Rotor's support in `name` and its adjoint."""
    import sys
    mod = sys.modules[module.__name__]
    prefix = f"_phg_log_{name}_"
    forward = [getattr(mod, n) for n in dir(mod) if n.startswith(prefix)]
    adjoint = [getattr(mod, n) for n in dir(mod) if n.startswith(f"_phg_loggrad_{name}_")]
    assert len(forward) == 1 and len(adjoint) == 1
    return forward[0], adjoint[0]


@pytest.mark.parametrize("name", sorted(ALGEBRAS))
def test_the_adjoint_of_log_is_its_derivative(kernels, name):
    """Central differences of <g, log(x)> against the generated adjoint, at random even x (a
    Motor's off its normalised set too) and near the identity, where the series are used."""
    _, module = kernels
    log, adjoint = _helpers(module, name)
    rng = np.random.default_rng(4)
    width = len(module.MODELS[f"Log{name}"].SPEC["inputs"]["R"]["layout"])
    worst = 0.0
    for trial in range(100):
        x = rng.normal(size=width)
        x[0] = abs(x[0]) + 0.5
        if trial % 2:
            x[1:] *= 0.02                         # |Pe|^2 / c^2 below the switch: the series
        g = rng.normal(size=len(log(*x)))
        got = np.array(adjoint(*x, *g))
        h = 1e-6
        fd = np.array([(np.dot(g, log(*(x + h * e))) - np.dot(g, log(*(x - h * e)))) / (2 * h)
                       for e in np.eye(width)])
        worst = max(worst, float(np.abs(fd - got).max() / (1 + np.abs(got).max())))
    assert worst < 1e-7


def test_log_in_the_loop_plan_is_the_fused_codes(tmp_path, monkeypatch):
    """A wide model with log per channel, built in each strategy: the same predictions, loss and
    gradient."""
    from interpreted import interpreted

    source = ("algebra PGA = Cl(3, 0, 1)\nmodel W on PGA {\n    param M[6]: Motor = 1\n    input x[6]: Bivector\n"
              "    output L[6]: Bivector = log(M * exp(x / 4))\n    loss norm2(sum(L) - sum(x))\n}\n")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 6, 6)) * 0.5
    motors = rng.normal(size=(6, 6)) * 0.4
    runs = {}
    for strategy, limit in (("loops", 0), ("fused", 10**9)):
        monkeypatch.setattr(phg.plan.kernel, "UNROLL_LIMIT", limit)
        module = phg.build(phg.loads(source, filename="w.phg"), tmp_path / strategy, unverified=True)
        assert module.W.SPEC["train"]["strategy"] == strategy
        m = interpreted(module, "W", seed=0)
        biv = module.W.SPEC["inputs"]["x"]["layout"]
        m.params = {"M": _clifford_exp("PGA", motors, biv, module.W.SPEC["params"]["M"]["layout"])}
        runs[strategy] = (m.predict(x=x)["L"], m.loss(x=x), m.grad(x=x)["M"])
    for a, b in zip(runs["loops"], runs["fused"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
