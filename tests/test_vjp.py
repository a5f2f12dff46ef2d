"""Vector-Jacobian products (LANGUAGE §19): M.vjp and M.input_grad against central differences of
predict on every example with outputs (fused and loop plans, exact and float sums), and their
errors."""
from __future__ import annotations

import numpy as np
import pytest

# every example with outputs; rotor_stdp and song_stdp are spiking networks, simulated, not predicted
SMALL = ["rigid_registration", "pga_pose", "signed_volume", "pair_energy"]


def _inputs(model, n: int, rng) -> dict:
    spec = model.SPEC
    return {k: rng.normal(size=(n, *spec["inputs"][k]["shape"], len(spec["inputs"][k]["layout"])))
            for k in spec["predict"]["inputs"]}


def _perturbed(model, rng):
    """A fresh instance of the model's class at its parameters moved a little (a Rotor's off its
    manifold too: the VJP is of the stored coefficients)."""
    other = type(model)(seed=0)
    for name, value in other.params.arrays().items():
        other.params.set_unnormalised(name, value + 0.1 * rng.normal(size=value.shape))
    return other


def _dot(model, inputs: dict, cotangents: dict) -> float:
    outs = model._predict(inputs, versors=False)
    return float(sum((outs[o] * c).sum() for o, c in cotangents.items()))


def _central(f, x: np.ndarray, coordinates, h: float = 1e-6) -> np.ndarray:
    out = []
    for index in coordinates:
        keep = x[index]
        x[index] = keep + h
        up = f()
        x[index] = keep - h
        down = f()
        x[index] = keep
        out.append((up - down) / (2 * h))
    return np.array(out)


def _check(model, inputs: dict, cotangents: dict, rng, params_drawn: int | None = None) -> None:
    bars, grads = model.vjp(cotangents, **inputs)
    assert sorted(bars) == sorted(model.SPEC["predict"]["inputs"])
    for name, x in inputs.items():
        coords = list(np.ndindex(x.shape))
        fd = _central(lambda: _dot(model, inputs, cotangents), x, coords)
        got = np.array([bars[name][c] for c in coords])
        assert np.abs(got - fd).max() <= 1e-6 * max(1.0, np.abs(fd).max()), name
    stored = model._parameters
    for name in model.SPEC["predict"]["params"]:
        value = stored[name]
        coords = list(np.ndindex(value.shape))
        if params_drawn is not None and len(coords) > params_drawn:
            coords = [coords[i] for i in rng.choice(len(coords), params_drawn, replace=False)]
        fd = _central(lambda: _dot(model, inputs, cotangents), value, coords)
        got = np.array([grads[name].reshape(value.shape)[c] for c in coords])
        assert grads[name].shape == model.params[name].shape
        assert np.abs(got - fd).max() <= 1e-6 * max(1.0, np.abs(fd).max()), name


@pytest.mark.parametrize("stem", SMALL)
def test_vjp_is_the_product_with_the_jacobian(built, stem):
    """Every input and parameter coordinate, at perturbed parameters and random cotangents."""
    module = built[stem][1]
    rng = np.random.default_rng(1)
    model = _perturbed(next(iter(module.MODELS.values()))(seed=0), rng)
    n = 70                                          # more than a loop plan's tile of 64
    spec = model.SPEC
    cotangents = {o: rng.normal(size=(n, *s["shape"], len(s["layout"]))) for o, s in spec["outputs"].items()}
    _check(model, _inputs(model, n, rng), cotangents, rng)


def test_vjp_of_the_paper_network(built):
    """O3CGMLP at 96 channels (the loop plan, its matrix products): every input coordinate and 40
    parameter coordinates drawn from its 32,854."""
    module = built["cgenn_volume"][1]
    rng = np.random.default_rng(2)
    model = module.O3CGMLP(seed=0)
    n = 3
    cotangents = {o: rng.normal(size=(n, *s["shape"], len(s["layout"]))) for o, s in model.SPEC["outputs"].items()}
    _check(model, _inputs(model, n, rng), cotangents, rng, params_drawn=40)


def test_input_grad_and_its_errors(built):
    module = built["pair_energy"][1]
    model = module.PairEnergy(seed=0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3, 3))
    g = model.input_grad(x=x, wrt="x")
    bars, _ = model.vjp({"energy": np.ones((5, 1))}, x=x, wrt_params=False)
    assert g.shape == (5, 3, 3) and np.array_equal(g, bars["x"])
    assert sorted(model.input_grad(x=x)) == ["x"]
    # one sample's gradient is its own: the batch does not mix samples
    assert np.array_equal(model.input_grad(x=x[2:3], wrt="x")[0], g[2])
    with pytest.raises(ValueError, match="no output 'force'"):
        model.input_grad(x=x, of="force")
    with pytest.raises(ValueError, match="no input 'y'"):
        model.input_grad(x=x, wrt="y")
    with pytest.raises(ValueError, match="missing input 'x'"):
        model.input_grad(target=np.zeros(5))
    with pytest.raises(ValueError, match="missing the cotangent of output 'energy'"):
        model.vjp({}, x=x)
    with pytest.raises(ValueError, match="has 4 samples, and the inputs 5"):
        model.vjp({"energy": np.ones((4, 1))}, x=x)
    with pytest.raises(TypeError, match="mapping"):
        model.vjp([1.0], x=x)
    rigid = built["rigid_registration"][1].RigidRegistration(seed=0)
    with pytest.raises(ValueError, match="one coefficient per sample.*use vjp"):
        rigid.input_grad(x=x[:, 0])
