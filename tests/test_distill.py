"""M.distill (LANGUAGE §13): a model fitted to a teacher's outputs on unlabelled inputs by the
kernels of its distillation model, the prior it returns (the mean the fitted parameters, the
precision the Gauss-Newton curvature against finite differences of predict), and a teacher's
bad answers refused."""
import numpy as np
import pytest

from phg.dsl.derive import distillation_source
from builtfile import built_file

SOURCE = """algebra PGA = Cl(3, 0, 1)

model Fixed on PGA {
    input x: Vector[m]
    output p: Vector[m] = 2 * x
}

model Pose on PGA {
    param M: Motor = 1
    param s: Scalar = 1
    input x: Vector[m]
    input y: Vector[m]
    output p: Vector[m] = M >> x
    output k: Scalar = s * s
    loss norm2(p - y) / 1[m^2]
}

train Pose {
    optimizer adam(lr = 0.05)
    steps 600
}
"""


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    yield from built_file(tmp_path_factory, "distill", SOURCE)


def _points(rng, n):
    """Euclidean points of 3D PGA (e0 the null vector): x = e123 dual form, written as the model's
    Vector input (e0 coefficient 1)."""
    x = np.zeros((n, 4))
    x[:, 0] = 1.0
    x[:, 1:] = rng.normal(size=(n, 3))
    return x


def test_the_distillation_program_keeps_lines_and_replaces_the_loss():
    text, names = distillation_source(SOURCE, "Pose", {"p": {"shape": [], "layout": ["e0", "e1"], "unit": "m"},
                                                       "k": {"shape": [], "layout": ["1"], "unit": None}})
    assert names == {"k": "teacher_k", "p": "teacher_p"}
    assert text.count("\n") == SOURCE.count("\n") + 4
    assert "loss norm2(p - y)" not in text and "    input teacher_p: Blades(e0, e1)[m]\n" in text
    assert "loss (scalar(miss_k) * scalar(miss_k)) + (miss_p.e0 * miss_p.e0 + miss_p.e1 * miss_p.e1) / 1[(m)^2]" in text


def test_distill_fits_the_teacher_and_its_precision_is_the_gauss_newton_curvature(kernels):
    """A teacher that is another parameter set of the same model: distill reaches it, and the
    prior's precision is (2/N) sum J^T J with J by central differences of predict in the model's
    coordinates (the Motor's body-frame bivectors, then s)."""
    _, module = kernels
    rng = np.random.default_rng(1)
    truth = module.Pose()
    motor = truth.params["M"].copy()
    truth._manifold["M"][1](motor.reshape(1, -1), np.array([[0.2, -0.1, 0.3, 0.4, -0.2, 0.1]]), 1.0, motor.reshape(1, -1))
    truth.params = {"M": motor, "s": np.array([1.5])}
    x = _points(rng, 64)
    student = module.Pose()
    prior = student.distill(lambda d: truth.predict(**d), {"x": x})
    for name in ("M", "s"):
        np.testing.assert_allclose(student.params[name] * np.sign(student.params[name].reshape(-1)[0]),
                                   truth.params[name] * np.sign(truth.params[name].reshape(-1)[0]), atol=1e-6)
        np.testing.assert_array_equal(prior.mean[name], student.params[name])
    assert prior.scale == "auto" and prior.coordinates == [("M", "tangent", 0, 6), ("s", "coefficients", 6, 7)]
    base = student.params.arrays()
    coords = student._coordinates()
    h = 1e-6
    columns = []
    for j in range(7):
        sides = []
        for sign in (1, -1):
            point = np.zeros(7)
            point[6] = base["s"][0]
            point[j] += sign * h
            student._set_coordinates(coords, point, base)
            out = student.predict(x=x)
            sides.append(np.concatenate([out["p"].reshape(64, -1), out["k"].reshape(64, -1)], axis=1))
        columns.append((sides[0] - sides[1]) / (2 * h))
    student.params = base
    jac = np.stack(columns, axis=2)                   # [sample, output coefficient, coordinate]
    want = 2 / 64 * np.einsum("iko,ikp->op", jac, jac)
    np.testing.assert_allclose(prior.precision, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("answer, words", [
    (lambda d: [1, 2], "the teacher returned list; expected a mapping"),
    (lambda d: {"p": d["x"]}, "the teacher's outputs lack 'k'"),
    (lambda d: {"p": d["x"][:, :3], "k": np.ones(len(d["x"]))}, "the teacher's output 'p' has shape"),
    (lambda d: {"p": d["x"][:5], "k": np.ones(len(d["x"]))}, "the teacher's output 'p' has 5 samples for 8 inputs"),
    (lambda d: {"p": d["x"] * np.nan, "k": np.ones(len(d["x"]))}, "the teacher's output 'p'"),
])
def test_a_teachers_bad_answer_is_refused_and_the_model_is_left_as_it_was(kernels, answer, words):
    _, module = kernels
    m = module.Pose()
    before = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises(ValueError if "returned" not in words else TypeError, match=words.replace("(", r"\(")):
        m.distill(answer, {"x": _points(np.random.default_rng(2), 8)})
    for k, v in before.items():
        np.testing.assert_array_equal(m.params[k], v)


def test_distill_takes_a_callable_teacher_and_a_mapping_of_inputs(kernels):
    _, module = kernels
    m = module.Pose()
    with pytest.raises(TypeError, match="teacher must be callable"):
        m.distill(3, {"x": np.zeros((2, 4))})
    with pytest.raises(TypeError, match="distill takes the inputs as a mapping"):
        m.distill(lambda d: m.predict(**d), [np.zeros((2, 4))])


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_the_distillation_program_reads_every_line_break(newline):
    """A source with CRLF or CR line breaks (the lexer's) is edited where its spans say."""
    import phg

    other = "model Other on PGA {\n    input z: Vector\n    output q = z\n}\n\n"
    source = (other + SOURCE).replace("\n", newline)
    text, names = distillation_source(source, "Pose", {"p": {"shape": [], "layout": ["e1"], "unit": "m"},
                                                       "k": {"shape": [], "layout": ["1"], "unit": None}})
    program = phg.loads(text)
    assert list(program.models) == ["Pose"] and "teacher_p" in [v.name for v in program.models["Pose"].values.values()]


def test_a_model_without_parameters_has_nothing_to_distill(kernels):
    _, module = kernels
    with pytest.raises(ValueError, match="Fixed has no parameters"):
        module.Fixed().distill(lambda d: {"p": d["x"]}, {"x": np.zeros((2, 4))})
