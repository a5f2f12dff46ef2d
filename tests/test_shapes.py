"""Shapes as a user writes them: parameters take and give their declared shape (a Scalar has no
component axis of its own), one-component inputs come with or without that axis, and an array
whose axes are in another order says so with phg.axes (shapes alone cannot tell [N, 3, 3]
orders apart)."""
import numpy as np
import pytest

import phg

MIXER = """\
algebra G3 = Cl(3, 0, 0)

model Mixer on G3 {
    param W[2, 3]: Scalar = normal(0.5)
    param c: Scalar = 0.5
    param R: Rotor = 1
    input x[3]: Vector[m]
    input s[3]: Scalar
    input y[2]: Vector[m]
    output p[2]: Vector[m] = R >> mix(W, gate(x, s)) * c
    loss norm2(sum(p - y)) / 1[m^2]
}

train Mixer {
    optimizer adam(lr = 0.05)
    batch 16
    steps 4
}
"""


@pytest.fixture(scope="module")
def mixer(tmp_path_factory):
    return phg.build(phg.loads(MIXER, "mixer.phg"), tmp_path_factory.mktemp("mixer")).Mixer


def _data(n: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(n, 3, 3)), "s": rng.normal(size=(n, 3, 1)), "y": rng.normal(size=(n, 2, 3))}


def test_parameters_give_their_declared_shape(mixer):
    m = mixer(seed=0)
    assert {n: v.shape for n, v in m.params.items()} == {"W": (2, 3), "c": (), "R": (4,)}
    assert {n: v.shape for n, v in m.params.arrays().items()} == {"W": (2, 3, 1), "c": (1,), "R": (4,)}
    assert {n: g.shape for n, g in m.grad(**_data()).items()} == {"W": (2, 3), "c": (), "R": (4,)}
    # the declared array is a view of the stored numbers: editing it edits the parameter
    before = m.predict(x=_data()["x"], s=_data()["s"])["p"]
    m.params["c"][...] = 1.0
    m.params["W"][0, 0] += 0.25
    assert m.params.arrays()["c"][0] == 1.0 and m.params.arrays()["W"][0, 0, 0] == m.params["W"][0, 0]
    assert not np.allclose(m.predict(x=_data()["x"], s=_data()["s"])["p"], before)


def test_parameters_take_either_shape_and_say_both_when_wrong(mixer):
    a, b = mixer(seed=0), mixer(seed=0)
    w = np.arange(6.0).reshape(2, 3)
    a.params["W"], a.params["c"] = w, 2.0
    b.params["W"], b.params["c"] = w[..., None], np.array([2.0])     # the shape with the component axis
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    # (before: `parameter 'W' has shape [3, 2]; expected [2, 3, 1] (components 1)`, and the declared
    # [2, 3] itself was refused so)
    with pytest.raises(ValueError, match=r"^parameter 'W' has shape \[3, 2\]; expected \[2, 3, 1\] \(components 1\), "
                                         r"or \[2, 3\] for its one component$"):
        a.params["W"] = w.T
    with pytest.raises(ValueError, match=r"^parameter 'c' has shape \[2\]; expected \[1\] \(components 1\), "
                                         r"or a number for its one component$"):
        a.params["c"] = [1.0, 2.0]
    assert np.array_equal(a.params["W"], w)                               # a refused value changes nothing


def test_saved_parameters_load_back_in_either_shape(mixer, tmp_path):
    m = mixer(seed=0)
    m.fit(_data(64), steps=3)
    np.savez(tmp_path / "declared.npz", **m.params)
    np.savez(tmp_path / "stored.npz", **m.params.arrays())
    for name in ("declared.npz", "stored.npz"):
        again = mixer(seed=1)
        again.params.update(np.load(tmp_path / name))
        assert all(np.array_equal(again.params[k], m.params[k]) for k in m.params)


def test_a_one_component_input_comes_with_or_without_its_axis(mixer):
    m, d = mixer(seed=0), _data()
    with_axis = m.predict(x=d["x"], s=d["s"])["p"]
    assert np.array_equal(m.predict(x=d["x"], s=d["s"][..., 0])["p"], with_axis)
    assert m.loss(**{**d, "s": d["s"][..., 0]}) == m.loss(**d)
    with pytest.raises(ValueError, match=r"^input 's' has shape \[16, 2\]; expected \[N, 3, 1\] \(components 1\), "
                                         r"or \[N, 3\] for its one component$"):
        m.predict(x=d["x"], s=d["s"][:, :2, 0])


def test_named_axes_read_an_array_laid_out_components_first(mixer):
    m, d = mixer(seed=0), _data()
    expected = m.predict(x=d["x"], s=d["s"])["p"]
    first = np.ascontiguousarray(np.moveaxis(d["x"], 2, 1))            # [N, components, channels]
    # The rule: the components are the last axis.  With 3 channels of 3 components the shape fits
    # either order, so an array laid out components-first is read wrongly unless it says so.
    assert first.shape == d["x"].shape and not np.allclose(m.predict(x=first, s=d["s"])["p"], expected)
    assert np.array_equal(m.predict(x=phg.axes(first, "N K C"), s=d["s"])["p"], expected)
    assert np.array_equal(m.predict(x=phg.axes(d["x"], "N, C, K"), s=d["s"])["p"], expected)
    # in a data set for fit, and for a parameter (without the N)
    a, b = mixer(seed=0), mixer(seed=0)
    assert np.array_equal(a.fit({**d, "x": phg.axes(first, "N K C")}, steps=3), b.fit(d, steps=3))
    a.params["R"] = phg.axes(np.array([1.0, 0.0, 0.0, 0.0]), "K")
    a.params["W"] = phg.axes(np.arange(6.0).reshape(2, 1, 3), "C K C")
    assert np.array_equal(a.params["W"], np.arange(6.0).reshape(2, 3))


def test_named_axes_that_do_not_fit_are_located_errors(mixer):
    m, d = mixer(seed=0), _data()
    with pytest.raises(ValueError, match=r"^input 'x': phg.axes order 'N K' does not fit its array of shape "
                                         r"\[16, 3, 3\]; expected 3 axes named 'N C K' in some order \(N the samples, "
                                         r"K the components, C its channel axis\)$"):
        m.predict(x=phg.axes(d["x"], "N K"), s=d["s"])
    with pytest.raises(ValueError, match=r"^parameter 'R': phg.axes order 'N K' does not fit"):
        m.params["R"] = phg.axes(np.ones((1, 4)), "N K")
    with pytest.raises(ValueError, match=r"order 'N K K' should name each axis by a letter"):
        phg.axes(d["x"], "N K K")
    with pytest.raises(ValueError, match=r"order 'N X C' should name each axis"):
        phg.axes(d["x"], "N X C")
    with pytest.raises(TypeError, match="the order must be a string"):
        phg.axes(d["x"], ("N", "K", "C"))
