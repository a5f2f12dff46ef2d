"""Names in generated modules: a hostile file name or model name cannot inject code, and no two
user names (models, values, algebras) share a generated name or take one of the module's own."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import phg
from phg.codegen.build import cached
from phg.plan.scalar import RESERVED, global_name, identifier
from interpreted import interpreted

# ---- the escape ------------------------------------------------------------------------------------
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(st.lists(texts, min_size=2, max_size=2, unique=True))
def test_identifier_is_injective_ascii_and_an_identifier(pair):
    a, b = pair
    assert identifier(a) != identifier(b)
    for t in pair:
        assert identifier(t).isascii() and ("x" + identifier(t)).isidentifier()


@settings(max_examples=400, deadline=None, database=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["predict", "tangent", "exp"]),
                          st.lists(texts, min_size=1, max_size=3).map(tuple)), min_size=2, max_size=2, unique=True))
def test_global_names_of_different_parts_differ(pair):
    (k1, p1), (k2, p2) = pair
    assert global_name(k1, *p1) != global_name(k2, *p2)
    assert global_name(k1, *p1).isidentifier() and global_name(k1, *p1) not in RESERVED


def test_the_collisions_the_review_found_are_apart():
    assert global_name("predict", "A") != global_name("predict", "a")
    assert global_name("tangent", "A", "b_R") != global_name("tangent", "A_b", "R")
    assert global_name("exp", "G", "30") != global_name("exp", "G3", "0")


# ---- a file name that is code ---------------------------------------------------------------------
PAYLOAD = 'q\'"""\\\nopen("PWNED", "w").close()\n#'

SCALE = """
algebra G2 = Cl(2, 0)
model Scale on G2 {
    input x: Vector
    output y: Vector = x + x
}
"""


def test_a_file_name_with_code_in_it_builds_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{PAYLOAD}.phg"
    path.write_text(SCALE)
    program = phg.load(path)
    module = phg.build(program, tmp_path / "out")
    assert not (tmp_path / "PWNED").exists()
    text = open(module.__file__).read()
    assert text.splitlines()[0].endswith(f"from {ascii(str(path))}; do not edit.")
    x = np.random.default_rng(0).normal(size=(5, 2))
    np.testing.assert_array_equal(module.Scale().predict(x=x)["y"], 2 * x)
    assert cached(phg.load(path), tmp_path / "out") == (__import__("pathlib").Path(module.__file__), "all proven")


# ---- models whose generated names used to meet -------------------------------------------------
ROTORS = """
algebra G2 = Cl(2, 0)
algebra G3 = Cl(3, 0)
"""
MODEL_A = """
model A on G3 {
    param b_R: Rotor = 1
    input x: Vector
    input y: Vector
    output q: Vector = 3 * x
    loss norm2(b_R >> x - y)
}
train A {
    optimizer adam(lr = 0.3)
}
"""
MODEL_A_B = """
model A_b on G2 {
    param R: Rotor = 1
    input x: Vector
    input y: Vector
    loss norm2(R >> x - y)
}
train A_b {
    optimizer adam(lr = 0.3)
}
"""
MODEL_LOWER_A = """
model a on G3 {
    input x: Vector
    output q: Vector = 2 * x
}
"""


@pytest.fixture(scope="module")
def together(tmp_path_factory):
    return phg.build(phg.loads(ROTORS + MODEL_A + MODEL_A_B + MODEL_LOWER_A, filename="together.phg"),
                     tmp_path_factory.mktemp("together"))


def test_models_a_and_A_each_predict_their_own(together):
    x = np.random.default_rng(1).normal(size=(7, 3))
    np.testing.assert_allclose(together.A().predict(x=x)["q"], 3 * x, rtol=1e-15)
    np.testing.assert_allclose(together.a().predict(x=x)["q"], 2 * x, rtol=1e-15)


def _one_step(model, dim: int) -> np.ndarray:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(32, dim)), rng.normal(size=(32, dim))
    model.step(x=x, y=y)
    return model.params["b_R" if "b_R" in model.params else "R"].copy()


def test_rotor_steps_of_A_and_A_b_stay_rotors_and_match_their_own_builds(together, tmp_path_factory):
    # Each model built alone, its training kernel run by Python (compiling it twice more is slow).
    alone = {name: phg.build(phg.loads(ROTORS + text, filename=f"{name}.phg"), tmp_path_factory.mktemp(name))
             for name, text in (("A", MODEL_A), ("A_b", MODEL_A_B))}
    for name, dim in (("A", 3), ("A_b", 2)):
        r = _one_step(together.MODELS[name](seed=0), dim)
        assert abs(r @ r - 1.0) < 1e-12, (name, r)          # R ~R of a rotor: the sum of squares
        assert abs(r[0] - 1.0) > 1e-3                         # the step moved it
        np.testing.assert_allclose(r, _one_step(interpreted(alone[name], name, seed=0), dim), rtol=1e-13, atol=1e-15)


# ---- adversarial names --------------------------------------------------------------------------
HOSTILE = ["class", "def", "lambda", "None", "True", "if", "import", "match", "range", "abs", "min", "max",
           "print", "len", "float", "sum", "np", "numba", "math", "self", "CERTIFICATE", "ModelBase",
           "SOURCE_SHA256", "MODELS", "exact_total", "low_bits", "deposit", "normalise", "__M", "_phg_np",
           "_phg_predict_Plain", "_phg_model_Plain", "__getattr__", "__dir__", "__name__", "_", "__", "_x_",
           "a__b", "a_b_", "A_b", "a_B", "A__b", "k0", "c_x", "a_x", "_out_y", "_i", "_n", "_sums", "x_e1",
           "s", "exp", "G2", "r", "out", "grad", "scale", "u", "t", "Plain"]
# Always compiled: the models whose names are module globals and builtins the kernels call.
COMPILED = {"np", "numba", "math", "range", "abs", "CERTIFICATE", "exact_total", "low_bits"}


def _hostile_models(seed: int = 0) -> list[tuple[str, list[str]]]:
    """Models named by HOSTILE, each with four more of them as its input, parameter, let and output."""
    rng = random.Random(seed)
    names = [n for n in HOSTILE if n != "Plain"]
    models = []
    for model in names:
        values = rng.sample([n for n in HOSTILE if n != model], 4)
        models.append((model, values))
    return models


def _source(models) -> str:
    text = ["algebra G2 = Cl(2, 0)"]
    for model, (i, p, l, o) in models:
        text.append(f"model {model} on G2 {{\n    input {i}: Vector\n    param {p}: Scalar = 1.5\n"
                    f"    let {l} = {i} * {p}\n    output {o} = {l} + {i}\n}}")
    return "\n".join(text) + "\n"


TRAINED = """
model exact_total on G2 {
    param low_bits: Scalar = 0.5
    param np: Scalar = 0.25
    input math: Vector
    input self: Vector
    loss norm2(math * low_bits * np - self)
}
model Trained on G2 {
    param w: Scalar = 0.5
    param v: Scalar = 0.25
    input x: Vector
    input y: Vector
    loss norm2(x * w * v - y)
}
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    models = _hostile_models()
    source = _source(models + [("Plain", ["x", "w", "t", "y"])]).replace("model exact_total ", "model exact_total0 ")
    program = phg.loads(source + TRAINED, filename="hostile.phg")
    return models, phg.build(program, tmp_path_factory.mktemp("hostile"))


def test_hostile_names_build_and_predict_like_plain_ones(hostile):
    models, module = hostile
    x = np.random.default_rng(3).normal(size=(6, 2))
    expected = module.Plain().predict(x=x)["y"]
    np.testing.assert_allclose(expected, 2.5 * x, rtol=1e-15)
    for model, (i, p, l, o) in models:
        name = "exact_total0" if model == "exact_total" else model
        cls = module.MODELS[name]
        run = cls(seed=0)
        if model not in COMPILED:             # its Python function: no helper to swap in the module
            run._predict_kernel = cls._predict_kernel.py_func
        assert run.layout(p) == ["1"]
        np.testing.assert_array_equal(run.predict(**{i: x})[o], expected, err_msg=model)


def test_the_module_keeps_its_own_names_and_reaches_models_by_theirs(hostile):
    _, module = hostile
    assert module.CERTIFICATE == "all proven" and isinstance(module.SOURCE_SHA256, str)
    # A model named like one of the module's own names is in MODELS only: the module's stays.
    for name in ("CERTIFICATE", "SOURCE_SHA256", "MODELS", "_phg_np", "_phg_model_Plain", "__name__", "__getattr__", "__dir__"):
        assert module.MODELS[name].SPEC["name"] == name and getattr(module, name) is not module.MODELS[name]
    assert module._phg_np is np
    for name in ("np", "math", "range", "class", "__M", "A_b", "a_B", "_out_y"):
        assert getattr(module, name) is module.MODELS[name]
    assert {"np", "class", "Plain"} <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing


def test_hostile_parameter_and_input_names_train_like_plain_ones(hostile):
    _, module = hostile
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(16, 2)), rng.normal(size=(16, 2))
    hostile_model, plain = module.exact_total(), module.Trained()
    assert hostile_model.loss(math=x, self=y) == plain.loss(x=x, y=y)
    got, want = hostile_model.grad(math=x, self=y), plain.grad(x=x, y=y)
    np.testing.assert_array_equal(got["low_bits"], want["w"])
    np.testing.assert_array_equal(got["np"], want["v"])
    assert hostile_model.step(math=x, self=y) == plain.step(x=x, y=y)
    np.testing.assert_array_equal(hostile_model.params["np"], plain.params["v"])
