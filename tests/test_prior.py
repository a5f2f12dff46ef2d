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

train Rigid {
    optimizer adam(lr = 0.05)
    steps 400
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

model Wide on G3 {
    param a[3]: Scalar = 0
    param b[3]: Scalar = 0
    input x[3]: Scalar
    input y: Scalar
    output f: Scalar = sum(a * x) + sum(b * x)
    loss norm2(f - y)
}

train Wide {
    optimizer adam(lr = 0.05)
    steps 1500
}

model Search on G3 {
    param w[3]: Scalar = 0
    input x[3]: Scalar
    input y: Scalar
    loss norm2(sum(w * x) - y)
}

train Search {
    optimizer cma(sigma = 0.5)
    steps 150
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
    (lambda d: d.update(scale=-1), "scale: expected \"auto\", a finite number >= 0 or one for each parameter"),
    (lambda d: d.update(scale={"N": 1.0}), "scale: expected a finite number >= 0 for each of ['M']"),
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


def test_the_scale_by_evidence_is_the_exact_evidence_maximum_of_a_linear_model(kernels):
    """Linear least squares (the Laplace evidence is exact): the scale fit chooses against the
    (alpha, beta) that maximise the marginal likelihood y ~ N(X w0, I / beta + X (alpha P)^-1 X^T)
    directly (s = 2 alpha / beta), to the rounds' 5%."""
    from scipy.optimize import minimize

    _, module = kernels
    rng = np.random.default_rng(8)
    n = 40
    x = rng.normal(size=(n, 3))
    w0 = np.array([1.0, -2.0, 0.5])
    w = w0 + 0.05 * rng.normal(size=3)                # the truth near the prior's mean: no conflict
    y = x @ w + 0.4 * rng.normal(size=n)
    a = rng.normal(size=(3, 3))
    p = a @ a.T + np.eye(3)
    m = module.Linear()
    scales, _ = m.choose_scale({"x": x[..., None], "y": y}, Prior("Linear", m._coordinates(), {"w": w0.reshape(3, 1)}, p))

    def negative_log_evidence(logs):
        alpha, beta = np.exp(logs)
        cov = np.eye(n) / beta + x @ np.linalg.solve(alpha * p, x.T)
        r = y - x @ w0
        return 0.5 * (np.linalg.slogdet(cov)[1] + r @ np.linalg.solve(cov, r))

    alpha, beta = np.exp(minimize(negative_log_evidence, np.zeros(2), method="Nelder-Mead",
                                  options={"xatol": 1e-10, "fatol": 1e-12}).x)
    assert scales["w"] == pytest.approx(2 * alpha / beta, rel=0.1)


def test_a_parameter_the_data_contradict_gets_no_prior(kernels):
    """A teacher 60 degrees off in rotation and right in translation: the data reject its rotation
    (scale 0: fit as without the prior) and keep its translation (a positive scale)."""
    _, module = kernels
    rng = np.random.default_rng(9)
    m = module.Rigid()
    truth = m.params["R"].copy()
    m._manifold["R"][1](truth.reshape(1, -1), np.array([[0.2, 0.1, -0.3]]), 1.0, truth.reshape(1, -1))
    wrong = truth.copy()
    m._manifold["R"][1](wrong.reshape(1, -1), np.array([[0.5, 0.0, 0.0]]), 1.0, wrong.reshape(1, -1))
    t = np.array([0.3, -0.2, 0.5])
    m.params = {"R": truth, "t": t}
    x = rng.normal(size=(30, 3))
    y = m.predict(x=x)["p"] + 0.1 * rng.normal(size=(30, 3))
    prior = Prior("Rigid", m._coordinates(), {"R": wrong, "t": t}, np.eye(6))
    learner = module.Rigid()
    scales, history = learner.choose_scale({"x": x, "y": y}, prior)
    assert scales["R"] == 0.0 and scales["t"] > 1.0
    np.testing.assert_allclose(learner.params["R"] * np.sign(learner.params["R"][0]), truth, atol=0.05)
    again = module.Rigid()
    np.testing.assert_array_equal(again.fit({"x": x, "y": y}, prior=prior), history)
    np.testing.assert_array_equal(again.params["R"], learner.params["R"])


@pytest.mark.parametrize("off, contradicted", [(0.0, False), (1.0, True)])
def test_a_teacher_the_data_contradict_only_jointly_gets_no_prior(kernels, off, contradicted):
    """a and b enter only as a + b: the data determine 3 of the 6 coordinates, and each parameter
    alone not at all (the other makes up for it).  A teacher whose a + b is off by 1 in one
    coordinate (30 labels of noise 0.1) is contradicted by the joint test, and no parameter has
    a prior; a teacher with the right a + b is not, and both keep a positive scale."""
    _, module = kernels
    rng = np.random.default_rng(10)
    x = rng.normal(size=(30, 3))
    truth = np.array([1.0, -2.0, 0.5])
    y = x @ truth + 0.1 * rng.normal(size=30)
    a0 = np.array([0.3, 0.4, -0.2])
    b0 = truth - a0 + np.array([off, 0.0, 0.0])
    m = module.Wide()
    prior = Prior("Wide", m._coordinates(), {"a": a0.reshape(3, 1), "b": b0.reshape(3, 1)}, np.eye(6))
    m.params = prior.mean
    scales, _ = m.choose_scale({"x": x[..., None], "y": y}, prior)
    if contradicted:
        assert scales == {"a": 0.0, "b": 0.0}
    else:
        assert scales["a"] > 0 and scales["b"] > 0
    np.testing.assert_allclose(m.predict(x=x[..., None])["f"][:, 0], y, atol=0.4)


def test_cma_searches_the_map_objective(kernels):
    """With cma every candidate's loss takes its penalty / N: the search finds the closed-form
    MAP of the linear model (scale 0: the same generations as no prior); "auto" needs gradients."""
    _, module = kernels
    rng = np.random.default_rng(10)
    x = rng.normal(size=(12, 3))
    y = x @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=12)
    p, w0, s = np.diag([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5]), 5.0
    data = {"x": x[..., None], "y": y}
    m = module.Search()
    m.fit(data, prior=Prior("Search", m._coordinates(), {"w": w0.reshape(3, 1)}, p, s))
    want = np.linalg.solve(2 * x.T @ x + s * p, 2 * x.T @ y + s * p @ w0)
    np.testing.assert_allclose(m.params["w"].reshape(3), want, atol=1e-5)
    a, b = module.Search(), module.Search()
    zero = Prior("Search", a._coordinates(), {"w": w0.reshape(3, 1)}, p, 0.0)
    np.testing.assert_array_equal(a.fit(data, steps=20), b.fit(data, steps=20, prior=zero))
    with pytest.raises(ValueError, match="optimizer cma"):
        module.Search().fit(data, prior=Prior("Search", a._coordinates(), {"w": w0.reshape(3, 1)}, p))


def test_phg_train_takes_a_prior_file(kernels, tmp_path, capsys):
    """phg train --prior: MAP training from the command line (the closed form of the linear
    model), the scale it used in its table; a prior that is not one is refused, exit 2."""
    from phg.shell.cli import main

    path, module = kernels
    rng = np.random.default_rng(11)
    x = rng.normal(size=(12, 3))
    y = x @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=12)
    np.savez(tmp_path / "data.npz", x=x[..., None], y=y)
    p, w0 = np.diag([1.0, 2.0, 3.0]), np.array([0.5, 0.5, 0.5])
    m = module.Linear()
    Prior("Linear", m._coordinates(), {"w": w0.reshape(3, 1)}, p, 4.0).save(tmp_path / "prior.json")
    out = tmp_path / "w.npz"
    assert main(["train", str(path), "--model", "Linear", "--data", str(tmp_path / "data.npz"),
                 "--prior", str(tmp_path / "prior.json"), "-o", str(out)]) == 0
    assert "scale 4" in capsys.readouterr().out
    want = np.linalg.solve(2 * x.T @ x + 4.0 * p, 2 * x.T @ y + 4.0 * p @ w0)
    np.testing.assert_allclose(np.load(out)["w"].reshape(3), want, atol=1e-6)
    (tmp_path / "bad.json").write_text("[]")
    assert main(["train", str(path), "--model", "Linear", "--data", str(tmp_path / "data.npz"),
                 "--prior", str(tmp_path / "bad.json"), "-o", str(out)]) == 2
    assert "bad.json: expected a JSON object, found list" in capsys.readouterr().err


def test_the_laplace_evidence_is_the_exact_marginal_likelihood_of_a_linear_model(kernels):
    """phg.evidence.log_evidence at two prior precisions, against the exact log marginal
    likelihood of linear least squares at the same noise precision: the same difference (the
    Laplace approximation is exact for a quadratic loss; the terms it leaves out do not move)."""
    from scipy.stats import multivariate_normal

    from phg.evidence import hessian, log_evidence

    _, module = kernels
    rng = np.random.default_rng(12)
    n, beta = 30, 5.0
    x = rng.normal(size=(n, 3))
    y = x @ [1.0, -2.0, 0.5] + rng.normal(size=n) / np.sqrt(beta)
    a = rng.normal(size=(3, 3))
    p, w0 = a @ a.T + np.eye(3), np.array([0.8, -1.5, 0.2])
    data = {"x": x[..., None], "y": y}
    ours, exact = [], []
    for alpha in (0.5, 8.0):
        m = module.Linear()
        m.fit(data, prior=Prior("Linear", m._coordinates(), {"w": w0.reshape(3, 1)}, p, 2 * alpha / beta))
        arrays, _ = m._inputs(data, m._training()["inputs"], training=True)
        h = hessian(m, arrays, n)
        loss = m._train_pass(arrays, n, versors=False)
        d = m.params["w"].reshape(3) - w0
        q = alpha * p
        ours.append(log_evidence(beta, n, loss, 1, d, q, beta * n / 2 * h + q, np.arange(3)))
        exact.append(multivariate_normal(x @ w0, np.eye(n) / beta + x @ np.linalg.solve(q, x.T)).logpdf(y))
    assert ours[1] - ours[0] == pytest.approx(exact[1] - exact[0], abs=1e-4)
