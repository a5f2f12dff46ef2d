"""A value with one component may be given without its component axis, [N] (the array numpy and
kingdon users have, x[:, 0]) or [N, *channels], as well as with it, [N, *channels, 1].  Both give
the same numbers in every entry point, outputs keep their documented [N, 1], parameters and their
gradients are their declared shape (a Scalar's, 0-d), and every other shape is refused as before,
its message naming the input."""
from __future__ import annotations

import numpy as np
import pytest

from builtfile import built_file
from phg.shell.cli import main

GAIN = """algebra G3 = Cl(3, 0, 0)

model Gain on G3 {
    param k: Scalar = 0.5
    input x: Scalar[m]
    input y: Scalar[m]
    output p: Scalar[m] = k * x
    loss (p - y) * (p - y) / 1[m^2]
}

train Gain {
    optimizer sgd(lr = 0.1)
    batch 8
    steps 6
}
"""


@pytest.fixture(scope="module")
def gain(tmp_path_factory):
    """GAIN as a file and its module, built where `phg train` on that file finds it."""
    yield from built_file(tmp_path_factory, 'gain', GAIN)


@pytest.fixture(scope="module")
def columns():
    """Samples as the columns of one table, the way they arrive from numpy code: [:, 0] is a strided view."""
    rng = np.random.default_rng(15)
    table = rng.normal(size=(20, 2))
    table[:, 1] = 1.7 * table[:, 0] - 0.3 + 0.01 * rng.normal(size=20)
    return table


def test_predict_loss_grad_step_take_n_as_n_by_1_and_match_the_closed_form(gain, columns):
    _, module = gain
    x, y = columns[:, 0], columns[:, 1]
    flat, wide = module.Gain(), module.Gain()
    out = flat.predict(x=x)["p"]
    assert out.shape == (20, 1)                                    # outputs keep [N, components]
    assert np.array_equal(out, wide.predict(x=columns[:, 0:1])["p"])
    np.testing.assert_allclose(out[:, 0], 0.5 * x, rtol=1e-15)
    loss = flat.loss(x=x, y=y)
    assert loss == wide.loss(x=columns[:, 0:1], y=columns[:, 1:2])
    np.testing.assert_allclose(loss, np.mean((0.5 * x - y) ** 2), rtol=1e-12)
    g = flat.grad(x=x, y=y)["k"]
    assert g.shape == () and np.array_equal(g, wide.grad(x=columns[:, 0:1], y=columns[:, 1:2])["k"])
    np.testing.assert_allclose(g, np.mean(2 * (0.5 * x - y) * x), rtol=1e-12)
    assert flat.step(x=x, y=y) == wide.step(x=columns[:, 0:1], y=columns[:, 1:2])
    assert np.array_equal(flat.params["k"], wide.params["k"])
    np.testing.assert_allclose(flat.params["k"], 0.5 - 0.1 * np.mean(2 * (0.5 * x - y) * x), rtol=1e-12)


def test_fit_in_batches_takes_n_as_n_by_1(gain, columns):
    _, module = gain
    flat, wide = module.Gain(), module.Gain()
    history = flat.fit({"x": columns[:, 0], "y": columns[:, 1]}, steps=7, batch=6)   # a short last batch too
    assert np.array_equal(history, wide.fit({"x": columns[:, 0:1], "y": columns[:, 1:2]}, steps=7, batch=6))
    assert np.array_equal(flat.params["k"], wide.params["k"]) and history[-1] < history[0]
    assert flat.samples({"x": columns[:, 0], "y": columns[:, 1]}) == 20


def test_a_contiguous_n_is_read_without_a_copy(gain):
    _, module = gain
    x = np.arange(4.0)
    arrays, n = module.Gain()._inputs({"x": x}, ["x"])
    assert n == 4 and arrays[0].shape == (4, 1) and np.shares_memory(arrays[0], x)


def test_a_non_finite_sample_given_as_n_is_named(gain, columns):
    _, module = gain
    model = module.Gain()
    x = columns[:, 0].copy()
    x[13] = np.nan
    found = "input 'x': sample 13 is not finite (nan, at component 0)"
    for call in (lambda: model.fit({"x": x, "y": columns[:, 1]}), lambda: model.loss(x=x, y=columns[:, 1]),
                 lambda: model.step(x=x, y=columns[:, 1])):
        with pytest.raises(ValueError) as info:
            call()
        assert found in str(info.value)
    assert model.params["k"] == 0.5
    assert np.isnan(model.predict(x=x)["p"][13, 0])               # inference keeps the NaN to its sample


@pytest.mark.parametrize("value,found", [
    (np.float64(2.0), "input 'x' has shape []"),
    (np.zeros((5, 1, 1)), "input 'x' has shape [5, 1, 1]"),
    (np.zeros((5, 2)), "input 'x' has shape [5, 2]"),
])
def test_other_shapes_of_a_one_component_value_are_refused_naming_the_shorthand(gain, value, found):
    _, module = gain
    with pytest.raises(ValueError) as info:
        module.Gain().predict(x=value)
    assert str(info.value) == f"{found}; expected [N, 1] (components 1), or [N] for its one component"


def test_n_is_refused_for_a_value_with_channels_or_components(built):
    _, volume = built["signed_volume"]
    _, pose = built["pga_pose"]
    with pytest.raises(ValueError) as info:                        # Vector: three components, three channels
        volume.SignedVolume().predict(v=np.zeros(5))
    assert str(info.value) == "input 'v' has shape [5]; expected [N, 3, 3] (components e1, e2, e3)"
    with pytest.raises(ValueError) as info:                        # Scalar, but in three channels
        pose.PgaPose().predict(a=np.zeros(5))
    # (before: `... expected [N, 3, 1] (components 1)`, and [N, 3] refused too)
    assert str(info.value) == "input 'a' has shape [5]; expected [N, 3, 1] (components 1), or [N, 3] for its one component"
    rng = np.random.default_rng(2)
    inputs = {n: rng.normal(size=(5, *s["shape"], len(s["layout"]))) for n, s in pose.PgaPose.SPEC["inputs"].items()}
    model = pose.PgaPose()
    full = model.predict(**inputs)
    bare = model.predict(**{**inputs, "a": inputs["a"][..., 0]})     # Scalar[3] as [N, 3]: its channels, no component axis
    assert all(np.array_equal(full[k], bare[k]) for k in full)


def test_an_example_target_given_as_n_trains_alike(built):
    _, volume = built["signed_volume"]
    rng = np.random.default_rng(3)
    v = rng.normal(size=(12, 3, 3))
    target = np.linalg.det(v) / 10
    flat, wide = volume.SignedVolume(seed=2), volume.SignedVolume(seed=2)
    assert flat.loss(v=v, target=target) == wide.loss(v=v, target=target[:, None])
    assert all(np.array_equal(g, wide.grad(v=v, target=target[:, None])[n])
               for n, g in flat.grad(v=v, target=target).items())
    assert np.array_equal(flat.fit({"v": v, "target": target}, steps=3, batch=5),
                          wide.fit({"v": v, "target": target[:, None]}, steps=3, batch=5))


def test_phg_train_reads_n_from_the_archive(gain, columns, tmp_path, capsys):
    path, module = gain
    np.savez(tmp_path / "data.npz", x=columns[:, 0], y=columns[:, 1])
    target = tmp_path / "gain.params.npz"
    assert main(["train", str(path), "--data", str(tmp_path / "data.npz"), "-o", str(target)]) == 0
    capsys.readouterr()
    wide = module.Gain()
    wide.fit({"x": columns[:, 0:1], "y": columns[:, 1:2]})        # the train block's 6 steps of 8
    assert np.array_equal(np.load(target)["k"], wide.params["k"])
    assert not np.array_equal(wide.params["k"], [0.5])
