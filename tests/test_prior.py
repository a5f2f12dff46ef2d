"""Priors (LANGUAGE §13): the penalty scale / 2 d^T P d over a model's coordinates (log(~R0 R) for
Rotors and Motors), its gradient against finite differences, MAP training against the closed form
of a linear model, and priors as data (to_dict, save and load, malformed fields located)."""
import json
import math

import numpy as np
import pytest

from phg.prior import Prior, PriorError
from builtfile import built_file

SOURCE = """algebra G3 = Cl(3, 0, 0)
algebra PGA = Cl(3, 0, 1)

model Rigid on G3 {
    param R: Rotor = 1
    param t: Vector[m] = 0
    input x: Vector[m]
    input y: Vector[m]
    output p: Vector[m] = R >> x + t
    loss norm2(p - y) / 1[m^2]
}

model Screw on PGA {
    param M[2]: Motor = 1
    input x: Bivector
    output p = M[0] >> x + M[1] >> x
    loss norm2(grade(p, 2) - x)
}

model Linear on G3 {
    param w[3]: Scalar = 0
    input x[3]: Scalar
    input y: Scalar
    output f: Scalar = sum(w * x)
    loss norm2(f - y)
}

train Linear {
    optimizer adam(lr = 0.05)
    steps 3000
}
"""


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    yield from built_file(tmp_path_factory, "priors", SOURCE)


def _random_prior(m, rng, scale=1.0) -> Prior:
    """A prior over m's coordinates: its mean m's parameters moved at random (versors by exp of
    a random bivector, through a short fit-free retraction), a random positive definite precision."""
    coords = m._coordinates()
    n = coords[-1][3]
    a = rng.normal(size=(n, n))
    mean = {k: v.copy() for k, v in m.params.items()}
    for name, kind, start, stop in coords:
        if kind == "tangent":
            r = mean[name].reshape(-1, mean[name].shape[-1])
            m._manifold[name][1](r, rng.normal(size=(r.shape[0], (stop - start) // r.shape[0])) * 0.7, 1.0, r)
        else:
            mean[name] = mean[name] + rng.normal(size=mean[name].shape)
    return Prior(m.SPEC["name"], coords, mean, a @ a.T + np.eye(n), scale)


def _move(m, rng):
    """m's parameters moved at random (off the identity), versors staying versors."""
    for name, kind, start, stop in m._coordinates():
        value = m.params[name]
        if kind == "tangent":
            r = value.reshape(-1, value.shape[-1])
            m._manifold[name][1](r, rng.normal(size=(r.shape[0], (stop - start) // r.shape[0])), 1.0, r)
            m.params[name] = r.reshape(value.shape)
        else:
            m.params[name] = value + rng.normal(size=value.shape)


@pytest.mark.parametrize("model", ["Rigid", "Screw"])
def test_the_penalty_gradient_is_its_derivative(kernels, model):
    """Central differences of the penalty in every stored coefficient (a versor's off its
    normalised set too: log is defined there) against M.penalty's gradient."""
    _, module = kernels
    rng = np.random.default_rng(1)
    m = getattr(module, model)()
    _move(m, rng)
    prior = _random_prior(m, rng, scale=0.8)
    value, grads = m.penalty(prior)
    d = m._deviation(prior)
    assert value == pytest.approx(0.4 * d @ prior.precision @ d, rel=1e-12)
    h = 1e-6
    for name, g in grads.items():
        base = m.params[name].copy()
        for k in range(base.size):
            step = np.zeros(base.size)
            step[k] = h
            sides = []
            for sign in (1, -1):
                m.params.set_unnormalised(name, base + sign * step.reshape(base.shape))
                sides.append(m.penalty(prior)[0])
            assert (sides[0] - sides[1]) / (2 * h) == pytest.approx(g.reshape(-1)[k], rel=1e-6, abs=1e-6), (name, k)
        m.params.set_unnormalised(name, base)


def test_a_versors_deviation_is_the_bivector_that_moves_the_mean_to_it(kernels):
    """R = R0 exp(b) for b = log(~R0 R): the retraction of the mean by the deviation is R."""
    _, module = kernels
    rng = np.random.default_rng(2)
    m = module.Screw()
    _move(m, rng)
    prior = _random_prior(m, rng)
    d = m._deviation(prior)
    r0 = prior.mean["M"].reshape(2, -1).copy()
    m._manifold["M"][1](r0, d.reshape(2, -1), 1.0, r0)
    np.testing.assert_allclose(r0, m.params["M"].reshape(2, -1), atol=1e-12)


def test_map_training_reaches_the_closed_form(kernels):
    """Linear least squares with a Gaussian prior: fit minimises (1/N)|Xw - y|^2 + s/(2N) (w -
    w0)^T P (w - w0), whose minimiser solves (2 X^T X + s P) w = 2 X^T y + s P w0."""
    _, module = kernels
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 3))
    y = x @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=12)
    a = rng.normal(size=(3, 3))
    p = a @ a.T + np.eye(3)
    w0 = np.array([0.5, 0.5, 0.5])
    for s in (0.5, 20.0):
        m = module.Linear()
        prior = Prior("Linear", m._coordinates(), {"w": w0.reshape(3, 1)}, p, s)
        m.fit({"x": x[..., None], "y": y}, prior=prior)
        want = np.linalg.solve(2 * x.T @ x + s * p, 2 * x.T @ y + s * p @ w0)
        np.testing.assert_allclose(m.params["w"].reshape(3), want, atol=1e-6)


def test_a_prior_of_scale_zero_trains_as_no_prior(kernels):
    _, module = kernels
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    a, b = module.Linear(), module.Linear()
    prior = _random_prior(a, rng, scale=0.0)
    data = {"x": x[..., None], "y": y}
    np.testing.assert_array_equal(a.fit(data, steps=50), b.fit(data, steps=50, prior=prior))
    np.testing.assert_array_equal(a.params["w"], b.params["w"])


def test_a_prior_round_trips_as_data_and_as_a_file(kernels, tmp_path):
    _, module = kernels
    m = module.Screw()
    _move(m, np.random.default_rng(5))
    prior = _random_prior(m, np.random.default_rng(5), scale=2.5)
    again = Prior.from_dict(json.loads(json.dumps(prior.to_dict())))
    prior.save(tmp_path / "p.json")
    loaded = Prior.load(tmp_path / "p.json")
    for other in (again, loaded):
        assert other.coordinates == prior.coordinates and other.scale == 2.5
        np.testing.assert_array_equal(other.precision, prior.precision)
        np.testing.assert_array_equal(other.mean["M"], prior.mean["M"])
        assert m.penalty(other)[0] == m.penalty(prior)[0]


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.update(format="x"), "format: expected 'phg-prior/1'"),
    (lambda d: d.update(precision=[[1.0]]), "precision: expected a 12 x 12 matrix"),
    (lambda d: d["precision"][0].__setitem__(1, 5.0), "precision: expected a symmetric matrix"),
    (lambda d: d["precision"][0].__setitem__(0, "1"), "precision[0]: expected numbers"),
    (lambda d: d.update(scale=-1), "scale: expected \"auto\" or a finite number >= 0"),
    (lambda d: d["coordinates"].__setitem__(0, ["M", "bad", 0, 12]), "coordinates[0]: expected [parameter"),
    (lambda d: d["mean"]["M"].update(shape=[3, 8]), "mean.M: expected {\"shape\""),
    (lambda d: d["mean"].update(N=d["mean"].pop("M")), "mean: expected one array for each of ['M']"),
    (lambda d: d.update(model=3), "model: expected a JSON string"),
])
def test_a_malformed_prior_is_refused_naming_the_field(kernels, edit, words):
    _, module = kernels
    m = module.Screw()
    d = _random_prior(m, np.random.default_rng(6)).to_dict()
    edit(d)
    with pytest.raises(PriorError) as e:
        Prior.from_dict(d)
    assert words in str(e.value)


def test_a_prior_of_another_model_or_not_a_file_is_refused(kernels, tmp_path):
    _, module = kernels
    rigid, screw = module.Rigid(), module.Screw()
    prior = _random_prior(screw, np.random.default_rng(7), scale=1.0)
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match="the prior is over model 'Screw', not 'Rigid'"):
        rigid.fit({"x": x, "y": x}, prior=prior)
    with pytest.raises(TypeError, match="prior must be a phg.Prior"):
        rigid.fit({"x": x, "y": x}, prior={"mean": 0})
    (tmp_path / "bad.json").write_text('{"format": "phg-prior/1", "model": NaN}')
    with pytest.raises(PriorError, match="bad.json: not a JSON prior"):
        Prior.load(tmp_path / "bad.json")
    with pytest.raises(PriorError, match="missing.json"):
        Prior.load(tmp_path / "missing.json")
    assert math.isfinite(screw.penalty(prior)[0])
