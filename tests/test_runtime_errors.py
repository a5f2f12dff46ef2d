"""Hostile input to training and to the CLI: a parameter's initial value in the wrong unit, data
with a NaN, parameters that are not what their type says, fit arguments that are not counts, a
model with nothing to train, and tables cut at 80 columns.  Each is refused with a message that
says where, what was expected and what was found, and leaves the model as it was."""
from __future__ import annotations

import numpy as np
import pytest

import phg
from builtfile import built_file
from phg.codegen.runtime import TrainingDiverged
from phg.shell.cli import main
from phg.diagnostics import PhgError
from phg.program import MAX_STEPS, OPTIMIZERS

ALIGN = """algebra G3 = Cl(3, 0, 0)

model Align on G3 {
    param R: Rotor = 1
    param t: Vector[m] = 0
    input x: Vector[m]
    input y: Vector[m]
    output p: Vector[m] = R >> x + t
    loss norm2(p - y) / 1[m^2]
}
"""

POSE = """algebra PGA = Cl(3, 0, 1)

model Pose on PGA {
    param M: Motor = 1
    input p: Trivector
    output q = M >> p
}
"""


@pytest.fixture(scope="module")
def align(tmp_path_factory):
    """ALIGN (a loss, no train block) as a file and its module, built where `phg train` on that
    file finds it: the kernels compile once for the whole module."""
    yield from built_file(tmp_path_factory, 'align', ALIGN)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(14)
    x = rng.normal(size=(64, 3))
    return {"x": x, "y": x + [0.5, -1.0, 2.0]}


def snapshot(model) -> dict:
    return {k: v.copy() for k, v in model.params.items()}


def same(model, before: dict) -> bool:
    return all(np.array_equal(model.params[k], v) for k, v in before.items())


# ---- 10: a param's initial value is unit-checked, by the const's check -----------------------------
@pytest.mark.parametrize("decl,found,col", [
    ("param t0: Vector[m] = 0.1[s] * e1", "param t0 is declared in m but its initial value is in s", 27),
    ("param t0: Vector[m] = 0.1 * e1", "param t0 is declared in m but its initial value is in 1", 27),
    ("param t0: Vector[m] = normal(0.1[s])", "param t0 is declared in m but this argument of normal() is in s", 34),
    ("param t0: Vector[m] = uniform(-1[m], 2[kg])", "this argument of uniform() is in kg", 42),
])
def test_a_param_initial_value_in_another_unit_is_refused(decl, found, col, tmp_path, capsys):
    src = f"algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {{\n    {decl}\n    input x: Vector[m]\n    output y = x + t0\n}}\n"
    with pytest.raises(PhgError) as info:
        phg.loads(src, "m.phg")
    err = info.value
    assert err.kind == "unit" and found in err.message
    assert (err.span.line, err.span.col) == (3, col)
    assert "expected: a value in m" in err.render() or "expected: a number in m" in err.render()
    path = tmp_path / "m.phg"
    path.write_text(src)
    assert main(["check", str(path)]) == 2
    assert f"m.phg:3:{col}: unit error: " in capsys.readouterr().err


def test_a_const_and_a_param_are_checked_alike():
    const = "algebra G3 = Cl(3, 0, 0)\nconst c: Vector[m] = 0.1[s] * e1\nmodel M on G3 {\n    input x: Vector[m]\n" \
            "    output y = x + c\n}\n"
    with pytest.raises(PhgError, match=r"const c is declared in m but its value is in s") as info:
        phg.loads(const, "c.phg")
    assert (info.value.span.line, info.value.span.col) == (2, 22)


@pytest.mark.parametrize("init", ["0.1[m] * e1", "0", "normal(0.1)", "normal(0.1[m])", "uniform(-1[m], 1)"])
def test_a_param_initial_value_in_its_unit_is_accepted(init):
    program = phg.loads(f"algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {{\n    param t0: Vector[m] = {init}\n"
                        "    input x: Vector[m]\n    output y = x + t0\n}\n", "m.phg")
    assert phg.check(program).ok


# ---- 11: parameters are checked when assigned or loaded -------------------------------------------
def _clifford_rotor(seed: int) -> np.ndarray:
    """A rotor exp(B) made by clifford, in the layout 1, e12, e13, e23."""
    import clifford
    from clifford import taylor_expansions
    _, b = clifford.Cl(3)
    c = np.random.default_rng(seed).normal(size=3)
    r = taylor_expansions.exp(c[0] * b["e12"] + c[1] * b["e13"] + c[2] * b["e23"], max_order=60)
    return np.array([r.value[0], r[b["e12"]], r[b["e13"]], r[b["e23"]]])


def test_a_rotor_parameter_must_be_a_normalised_rotor(align):
    _, module = align
    model = module.Align()
    good = _clifford_rotor(1)
    model.params["R"] = good
    assert np.array_equal(model.params["R"], good)
    for bad, found in (([2, 0, 0, 0], "R ~R has its scalar part = 4.0, which should be 1"),
                       ([0, 0, 0, 0], "R ~R has its scalar part = 0.0, which should be 1"),
                       (good * (1 + 1e-9), "R ~R has its scalar part = 1.0000000019")):
        before = snapshot(model)
        with pytest.raises(ValueError, match="parameter 'R' is not a Rotor") as info:
            model.params["R"] = bad
        assert found in str(info.value) and "identity 1, 0, 0, 0" in str(info.value)
        assert same(model, before)


def test_coefficients_off_the_manifold_serve_loss_and_grad_only(align, data):
    """Finite differences step a Rotor's coefficients off its manifold; loss and grad are functions
    of the coefficients, predict and step need the Rotor the certificate assumes."""
    _, module = align
    model = module.Align()
    model.params.set_unnormalised("R", [2.0, 0.0, 0.0, 0.0])
    x = data["x"]
    # R = 2 scales x by R x ~R = 4x: the loss is the mean of |4x + 0 - y|^2
    assert model.loss(**data) == pytest.approx(np.mean(np.sum((4 * x - data["y"]) ** 2, axis=1)), rel=1e-12)
    assert set(model.grad(**data)) == {"R", "t"}
    before = snapshot(model)
    for call in (lambda: model.predict(x=x), lambda: model.step(**data), lambda: model.fit(data, steps=1)):
        with pytest.raises(ValueError, match=r"parameter 'R' is not a Rotor: R ~R has its scalar part = 4.0"):
            call()
    assert same(model, before)
    with pytest.raises(ValueError, match="parameter 'R' is not finite"):
        model.params.set_unnormalised("R", [np.nan, 0.0, 0.0, 0.0])


def test_a_motor_parameter_must_be_a_motor_with_the_study_condition(tmp_path):
    import clifford
    from clifford import taylor_expansions
    model = phg.build(phg.loads(POSE, "pose.phg"), tmp_path).Pose()      # nothing is compiled here
    names = model.layout("M")
    _, b = clifford.Cl(3, 0, 1, firstIdx=0)
    rng = np.random.default_rng(2)
    biv = sum(c * b[n] for c, n in zip(rng.normal(size=6) * 2, ["e01", "e02", "e03", "e12", "e13", "e23"]))
    motor = taylor_expansions.exp(biv, max_order=60)
    coeffs = np.array([motor.value[0] if n == "1" else motor[b[n]] for n in names])
    model.params["M"] = coeffs                                         # clifford's exp(B) is a motor
    assert np.array_equal(model.params["M"], coeffs)
    translator = np.zeros(8)
    translator[[0, 1]] = 1.0, 0.5
    model.params["M"] = translator                                     # 1 + 0.5 e01: e01^2 = 0
    study = np.zeros(8)
    study[[0, 7]] = 1.0, 0.3
    with pytest.raises(ValueError, match=r"not a Motor: M ~M has its e0123 part = 0.6.*should be 0 \(the study "
                                         r"condition\)"):
        model.params["M"] = study
    with pytest.raises(ValueError, match="not a Motor: M ~M has its scalar part = 0"):
        model.params["M"] = np.zeros(8)
    assert np.array_equal(model.params["M"], translator)


def test_parameters_refuse_non_finite_values_unknown_names_and_deletion(align):
    _, module = align
    model = module.Align()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"parameter 't' is not finite: nan at \[1\] \(component e2\)"):
        model.params["t"] = [0.0, np.nan, 0.0]
    with pytest.raises(ValueError, match=r"parameter 't' has shape \[2\]; expected \[3\] \(components e1, e2, e3\)"):
        model.params["t"] = [0.0, 1.0]
    with pytest.raises(KeyError) as info:
        model.params["T"] = [0.0, 0.0, 0.0]
    assert str(info.value) == "Align has no parameter 'T'; its parameters are R, t"
    with pytest.raises(TypeError, match="parameter 'R' of Align cannot be deleted"):
        del model.params["R"]
    with pytest.raises(TypeError, match="cannot be deleted"):
        model.params.pop("t")
    # update checks every value before storing any
    with pytest.raises(ValueError, match="parameter 't' is not finite"):
        model.params.update(R=_clifford_rotor(3), t=[np.inf, 0.0, 0.0])
    assert same(model, before) and sorted(model.params) == ["R", "t"]
    with pytest.raises(ValueError, match="'t' is missing"):
        model.params = {"R": _clifford_rotor(3)}
    assert same(model, before)


def test_parameters_loaded_from_a_file_are_checked_and_copied_in(align, tmp_path):
    _, module = align
    model = module.Align()
    np.savez(tmp_path / "bad.npz", R=[2.0, 0.0, 0.0, 0.0], t=[1.0, 2.0, 3.0])
    before = snapshot(model)
    with pytest.raises(ValueError, match="parameter 'R' is not a Rotor"):
        model.params.update(np.load(tmp_path / "bad.npz"))
    assert same(model, before)
    good = _clifford_rotor(4)
    np.save(tmp_path / "t.npy", np.array([1.0, 2.0, 3.0]))
    t = np.load(tmp_path / "t.npy", mmap_mode="r")                     # read-only
    model.params.update(R=good, t=t)
    assert model.params["t"].flags.writeable and not np.shares_memory(model.params["t"], t)
    # an edit in place bypasses assignment; the next kernel call checks again
    model.params["R"][0] = 3.0
    with pytest.raises(ValueError, match="parameter 'R' is not a Rotor"):
        model.predict(x=np.zeros((2, 3)))


# ---- 11: fit's arguments and data ------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,message", [
    ({"steps": 2.5}, "steps must be a positive integer, got 2.5 (float)"),
    ({"steps": True}, "steps must be a positive integer, got True (bool)"),
    ({"steps": 0}, "steps must be at least 1, got 0"),
    ({"epochs": 0}, "epochs must be at least 1, got 0"),
    ({"batch": 0}, "batch must be at least 1, got 0"),
    ({"batch": -3}, "batch must be at least 1, got -3"),
    ({"steps": 10**12}, f"steps=1000000000000 is more than the {MAX_STEPS:,} steps one fit() may take"),
    ({"epochs": 10**8, "batch": 8}, f"100000000 epochs of 8 steps is more than the {MAX_STEPS:,} steps"),
    ({"steps": 3, "epochs": 2}, "give steps or epochs, not both"),
])
def test_fit_refuses_arguments_that_are_not_step_counts(align, data, kwargs, message):
    _, module = align
    model = module.Align()
    before = snapshot(model)
    with pytest.raises(ValueError) as info:
        model.fit(data, **kwargs)
    assert message in str(info.value)
    assert same(model, before)


def test_fit_on_no_samples_or_not_a_mapping_is_refused(align, data):
    _, module = align
    model = module.Align()
    with pytest.raises(ValueError, match="the data set is empty: input 'x' has 0 samples"):
        model.fit({k: v[:0] for k, v in data.items()})
    with pytest.raises(TypeError, match=r"fit takes the data as a mapping \{input name: array\}, got ndarray"):
        model.fit(data["x"])
    with pytest.raises(TypeError, match="callback must be callable"):
        model.fit(data, steps=1, callback=3)


@pytest.mark.parametrize("name,sample,value", [("x", 17, np.nan), ("y", 63, np.inf), ("x", 0, -np.inf)])
def test_a_non_finite_sample_is_refused_before_any_step(align, data, name, sample, value):
    _, module = align
    model = module.Align()
    model.params["t"] = [0.1, 0.2, 0.3]
    bad = {k: v.copy() for k, v in data.items()}
    bad[name][sample, 1] = value
    before = snapshot(model)
    found = f"input {name!r}: sample {sample} is not finite ({value}, at component 1)"
    for call in (lambda: model.fit(bad, steps=3), lambda: model.fit(bad, steps=3, batch=8),
                 lambda: model.step(**bad), lambda: model.loss(**bad), lambda: model.grad(**bad)):
        with pytest.raises(ValueError) as info:
            call()
        assert found in str(info.value)
        assert same(model, before)


def test_training_still_runs_and_inference_keeps_a_nan_to_its_sample(align, data):
    _, module = align
    model = module.Align()
    history = model.fit(data, steps=40, batch=16)
    assert history.shape == (40,) and np.isfinite(history).all() and history[-1] < history[0]
    x = data["x"][:5].copy()
    clean = model.predict(x=x)["p"]
    x[2, 0] = np.nan
    out = model.predict(x=x)["p"]                  # inference is per sample: one NaN stays in its row
    assert np.isnan(out[2]).all() and np.array_equal(np.delete(out, 2, 0), np.delete(clean, 2, 0))


def test_a_diverging_step_raises_and_leaves_the_parameters(align, data):
    _, module = align
    model = module.Align()
    model.fit(data, steps=2)
    before = snapshot(model)
    huge = {"x": data["x"] * 1e200, "y": data["y"]}                  # finite data whose loss overflows
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 1 of 5: the loss is not finite") as info:
        model.fit(huge, steps=5)
    assert len(info.value.history) == 0 and same(model, before)
    with pytest.raises(TrainingDiverged, match="no update was made"):
        model.step(**huge)
    assert same(model, before)


# ---- 12: defaults said, nothing to train said ------------------------------------------------------
def test_the_defaults_a_train_block_leaves_are_named():
    def spec(block: str):
        return phg.loads(ALIGN + block, "a.phg").trains.get("Align")

    adam = "optimizer adam(" + ", ".join(f"{k} = {v:g}" for k, v in OPTIMIZERS["adam"].items()) + ")"
    assert adam == "optimizer adam(lr = 0.001, beta1 = 0.9, beta2 = 0.999, eps = 1e-08)"
    assert spec("train Align {\n    batch 32\n}\n").defaults() == [adam, "epochs 1", "accumulate exact", "seed 0"]
    full = "train Align {\n    optimizer sgd(lr = 0.1)\n    batch 8\n    epochs 3\n    accumulate float\n    seed 1\n}\n"
    assert spec(full).defaults() == []
    assert spec("") is None


def test_phg_train_says_which_defaults_it_used_and_writes_exactly_the_named_file(align, data, tmp_path, capsys):
    path, module = align
    np.savez(tmp_path / "data.npz", **data)
    target = tmp_path / "align.params"                               # np.savez alone would write .params.npz
    assert main(["train", str(path), "--data", str(tmp_path / "data.npz"), "-o", str(target)]) == 0
    out = capsys.readouterr().out
    assert ("Align has no train block, so it trains with the defaults: optimizer adam(lr = 0.001, beta1 = 0.9, "
            "beta2 = 0.999, eps = 1e-08); batch: the whole data set; epochs 1; accumulate exact; seed 0") in out
    assert "1 (batch 64 of 64, adam, accumulate exact)" in out
    assert target.exists() and not (tmp_path / "align.params.npz").exists()
    model = module.Align()
    model.params.update(np.load(target))                             # what phg train wrote loads back, checked
    assert not np.array_equal(model.params["t"], np.zeros(3))
    assert main(["train", str(path), "--data", str(tmp_path / "data.npz"), "-o", str(target), "--steps", "5"]) == 2
    assert f"{target} exists; pass --force to overwrite it" in capsys.readouterr().err
    assert main(["train", str(path), "--data", str(tmp_path / "data.npz"), "-o", str(target), "--steps", "5",
                 "--force"]) == 0
    assert "epochs 1" not in capsys.readouterr().out                 # --steps set it


def test_phg_train_refuses_bad_data_and_leaves_the_output_file(align, data, tmp_path, capsys):
    path, _ = align
    target = tmp_path / "out.npz"
    target.write_bytes(b"earlier parameters")
    bad = {k: v.copy() for k, v in data.items()}
    bad["y"][17, 2] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    assert main(["train", str(path), "--data", str(tmp_path / "nan.npz"), "-o", str(target)]) == 2
    assert "phg train: input 'y': sample 17 is not finite (nan, at component 2)" in capsys.readouterr().err
    np.savez(tmp_path / "huge.npz", x=data["x"] * 1e200, y=data["y"])
    assert main(["train", str(path), "--data", str(tmp_path / "huge.npz"), "-o", str(target), "--force"]) == 1
    assert f"training diverged at step 1 of 1: the loss is not finite (batch loss nan); no update was made; " \
           f"nothing written to {target}" in capsys.readouterr().err
    np.savez(tmp_path / "data.npz", **data)
    assert main(["train", str(path), "--data", str(tmp_path / "data.npz"), "-o", str(target), "--steps", "0"]) == 2
    assert "phg train: steps must be at least 1, got 0" in capsys.readouterr().err
    assert target.read_bytes() == b"earlier parameters"


def test_phg_train_refuses_data_that_is_not_an_archive_of_arrays(align, tmp_path, capsys):
    path, _ = align
    np.save(tmp_path / "one.npy", np.zeros((4, 3)))
    assert main(["train", str(path), "--data", str(tmp_path / "one.npy")]) == 2
    assert "it is a single array, not an .npz archive" in capsys.readouterr().err
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["train", str(path), "--data", str(tmp_path / "junk.npz")]) == 2
    assert f"phg train: cannot read the data {tmp_path / 'junk.npz'}" in capsys.readouterr().err
    assert main(["train", str(path), "--data", str(tmp_path / "one.npy"), "-o", str(tmp_path / "no" / "p.npz")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the parameters to {tmp_path / 'no' / 'p.npz'}: the folder" in err and "does not exist" in err


@pytest.mark.parametrize("source,args,message", [
    ("model M on G3 {\n    input x: Vector\n    output y = x\n}\n", [],
     "model M has no loss; nothing to train (add `loss EXPR` to it)"),
    ("model M on G3 {\n    input x: Vector\n    output y = x\n}\nmodel N on G3 {\n    input x: Vector\n"
     "    output y = 2 * x\n}\n", [], "has no model with a loss (its models: M, N); nothing to train"),
    ("model M on G3 {\n    input x: Vector\n    output y = x\n}\n", ["--model", "M"],
     "model M has no loss; nothing to train"),
    ("model M on G3 {\n    input x: Vector\n    output y = x\n}\n", ["--model", "Q"], "has no model 'Q'; it has M"),
])
def test_phg_train_on_a_model_without_a_loss_says_so(source, args, message, tmp_path, capsys):
    path = tmp_path / "m.phg"
    path.write_text("algebra G3 = Cl(3, 0, 0)\n" + source)
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3)))
    assert main(["train", str(path), "--data", str(tmp_path / "d.npz"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "trains 0 models" not in err


# ---- 12: tables are not cut at 80 columns ------------------------------------------------------------
def test_tables_keep_long_cells_whole_when_stdout_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    name = "AVeryLongModelNameSoThatTheClaimIsWiderThanEightyColumnsOnItsOwn"
    path = tmp_path / "long.phg"
    path.write_text(f"algebra G3 = Cl(3, 0, 0)\nmodel {name} on G3 {{\n    input x: Vector[m]\n    output y = x\n}}\n")
    assert main(["check", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    claim = f"the units of {name} are consistent"
    assert len(claim) > 80 and any(claim in line and "proven" in line for line in lines)


DIRECTION = """algebra G3 = Cl(3, 0, 0)

model Direction on G3 {
    param t: Vector = 0
    input x: Vector
    input y: Vector
    output d: Vector = normalize(x + t)
    loss norm2(d - y)
}
"""


def test_a_division_by_zero_in_a_kernel_is_a_nan_in_its_sample_not_an_exception(tmp_path):
    """normalize of a zero vector divides by zero: inference gives NaN in that sample alone (as
    a NaN input does), and a step on it stops with TrainingDiverged, parameters unchanged; no
    ZeroDivisionError comes out of a kernel (codegen.decorators)."""
    module = phg.build(phg.loads(DIRECTION, "direction.phg"), tmp_path)
    model = module.Direction()
    x = np.array([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0], [0.0, 3.0, 4.0]])
    d = model.predict(x=x)["d"]
    assert np.isnan(d[1]).all()
    assert np.allclose(d[[0, 2]], [[1 / 3, 2 / 3, 2 / 3], [0.0, 0.6, 0.8]], rtol=1e-15)
    before = snapshot(model)
    with pytest.raises(TrainingDiverged, match="the loss is not finite"):
        model.step(x=x, y=np.zeros((3, 3)))
    assert same(model, before)
