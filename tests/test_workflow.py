"""A researcher's loop without recompiling: fit()'s and phg train's learning rate, optimizer
settings, schedule and seed override the train block's for one call (arguments of the step, not
of its kernels), and a callback can stop a fit."""
import os

import numpy as np
import pytest

import phg
from phg.codegen.compiling import kernels
from phg.shell.cli import main as cli

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "rigid_registration.phg")


def _data(n: int = 600) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    return {"x": x, "y": x[:, [1, 0, 2]] * [1, -1, 1] + [0.0, 0.0, 1.0] + 0.01 * rng.normal(size=(n, 3))}


@pytest.fixture(scope="module")
def rigid(built):
    return built["rigid_registration"][1].RigidRegistration


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    """rigid registration whose train block says lr = 0.01, seed 3: what fit's overrides must equal."""
    text = open(EXAMPLE).read().replace("adam(lr = 0.05)", "adam(lr = 0.01)").replace("steps 300", "steps 300\n    seed 3")
    assert "lr = 0.01" in text and "seed 3" in text
    return phg.build(phg.loads(text, "variant.phg"), tmp_path_factory.mktemp("variant")).RigidRegistration


def _same(a, b) -> bool:
    return all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_overrides_train_as_the_train_block_that_says_them(rigid, variant):
    d = _data()
    given, written = rigid(seed=0), variant(seed=0)
    assert np.array_equal(given.fit(d, steps=12, batch=100, lr=0.01, seed=3), written.fit(d, steps=12, batch=100))
    assert _same(given, written)
    # and the next fit is the train block's own again (lr 0.05, seed 0)
    spelled = rigid(seed=0)
    spelled.fit(d, steps=12, batch=100, lr=0.01, seed=3)
    given.fit(d, steps=5, batch=100)
    spelled.fit(d, steps=5, batch=100, lr=0.05, seed=0)
    written.fit(d, steps=5, batch=100)
    assert _same(given, spelled) and not _same(given, written)


def test_a_learning_rate_sweep_compiles_nothing(rigid):
    d = _data()
    rigid(seed=0).fit(d, steps=2)                               # every kernel of a fit compiled
    before = {label: len(dispatcher.signatures) for label, dispatcher, _ in kernels(rigid)}
    finals = [rigid(seed=0).fit(d, steps=30, lr=lr)[-1] for lr in (0.2, 0.1, 0.05, 0.02, 0.01)]
    assert {label: len(dispatcher.signatures) for label, dispatcher, _ in kernels(rigid)} == before
    assert len(set(finals)) == 5


@pytest.mark.parametrize("schedule, factor", [
    ("cosine", lambda k, t: 0.5 * (1 + np.cos(np.pi * k / t))),
    (("step", 4, 0.5), lambda k, t: 0.5 ** (k // 4)),
    (lambda k, t: 1.0 / (1 + k), lambda k, t: 1.0 / (1 + k)),
])
def test_a_schedule_is_the_fits_of_one_step_at_each_rate(rigid, schedule, factor):
    d = _data()
    scheduled, stepped = rigid(seed=0), rigid(seed=0)
    history = scheduled.fit(d, steps=10, schedule=schedule)
    losses = [stepped.fit(d, steps=1, lr=0.05 * factor(k, 10))[0] for k in range(10)]
    assert np.array_equal(history, losses) and _same(scheduled, stepped)


def test_a_callback_that_returns_true_stops_the_fit(rigid):
    seen = []
    history = rigid(seed=0).fit(_data(), steps=50, callback=lambda k, loss: seen.append(k) or k == 6)
    assert len(history) == 7 and seen == list(range(7))
    assert len(rigid(seed=0).fit(_data(), steps=5, callback=lambda k, loss: 1)) == 5    # only True stops


@pytest.mark.parametrize("given, error, message", [
    (dict(lr=-1.0), ValueError, r"lr must be positive, got -1 \(a number > 0 expected\)"),
    (dict(beta2=1.0), ValueError, r"beta2 must lie in \[0, 1\), got 1"),
    (dict(softness=2.0), ValueError, "optimizer adam has no setting 'softness' to override "
                                     r"\(its settings: lr, beta1, beta2, eps\)"),
    (dict(lr="fast"), TypeError, r"lr must be a number, got 'fast' \(str\)"),
    (dict(schedule="linear"), ValueError, "unknown schedule 'linear'; expected \"constant\", \"cosine\""),
    (dict(schedule=("step", 0, 0.5)), ValueError, "a step schedule's EVERY must be a positive integer, got 0"),
    (dict(schedule=lambda k, t: float("nan")), ValueError, "the schedule gave nan at step 0"),
    (dict(seed=-2), ValueError, "seed must be a non-negative integer, got -2"),
])
def test_bad_overrides_are_refused_and_change_nothing(rigid, given, error, message):
    model = rigid(seed=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(error, match=message):
        model.fit(_data(), steps=3, **given)
    assert all(np.array_equal(model.params[k], v) for k, v in before.items())


def test_phg_train_takes_lr_batch_seed_and_schedule(tmp_path, rigid, capsys):
    data = tmp_path / "pairs.npz"
    np.savez(data, **_data())
    out = tmp_path / "p.npz"
    assert cli(["train", EXAMPLE, "--data", str(data), "--steps", "8", "--lr", "0.02", "--batch", "200",
                "--seed", "4", "--schedule", "step:3:0.5", "-o", str(out)]) == 0
    assert "lr 0.02 (the train block's 0.05), seed 4 (the train block's 0), schedule step:3:0.5" in capsys.readouterr().out
    model = rigid(seed=4)
    model.fit(_data(), steps=8, batch=200, lr=0.02, seed=4, schedule=("step", 3, 0.5))
    with np.load(out) as saved:
        assert all(np.array_equal(saved[k], model.params[k]) for k in model.params)
    assert cli(["train", EXAMPLE, "--data", str(data), "--schedule", "step:3", "-o", str(tmp_path / "q.npz")]) == 2
    assert "--schedule 'step:3' is not a schedule; expected constant, cosine or step:EVERY:FACTOR" in capsys.readouterr().err
    assert cli(["train", EXAMPLE, "--data", str(data), "--lr", "0", "-o", str(tmp_path / "q.npz")]) == 2
    assert "lr must be positive, got 0" in capsys.readouterr().err


def test_a_fit_resumed_from_its_state_continues_bit_for_bit(rigid):
    d = _data(1000)
    whole = rigid(seed=0)
    history = whole.fit(d, steps=23, batch=300)            # 4 steps an epoch: the cut is inside one
    first = rigid(seed=0)
    head = first.fit(d, steps=9, batch=300)
    state, params = first.optimizer_state(), {k: v.copy() for k, v in first.params.items()}
    assert int(state["t"]) == 9 and int(state["order"]) == 9
    later = rigid(seed=0)
    later.params = params
    later.load_optimizer_state(state)
    tail = later.fit(d, steps=14, batch=300, start=int(state["order"]))
    assert np.array_equal(np.concatenate([head, tail]), history) and _same(later, whole)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(t=np.array(-1)), "the optimizer state's 't' must be one integer >= 0"),
    (lambda s: s.pop("moments.R"), "the optimizer state has no 'moments.R'"),
    (lambda s: s.update({"moments.t": np.zeros((3, 3))}), r"'moments.t' must be finite floats of shape \[2, 3\]"),
    (lambda s: s.update({"moments.t": np.full((2, 3), np.inf)}), "'moments.t' must be finite floats"),
])
def test_a_bad_optimizer_state_is_refused_and_changes_nothing(rigid, change, message):
    model = rigid(seed=0)
    model.fit(_data(), steps=3)
    state = model.optimizer_state()
    before = model.optimizer_state()
    change(state)
    with pytest.raises(ValueError, match=message):
        model.load_optimizer_state(state)
    after = model.optimizer_state()
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_phg_train_resumes_bit_for_bit_and_overwrites_only_when_told(tmp_path, capsys):
    data = tmp_path / "pairs.npz"
    np.savez(data, **_data(1000))
    run = ["train", EXAMPLE, "--data", str(data), "--batch", "300"]
    whole, part = tmp_path / "whole.npz", tmp_path / "part.npz"
    assert cli(run + ["--steps", "23", "-o", str(whole)]) == 0
    assert cli(run + ["--steps", "9", "-o", str(part)]) == 0
    assert (tmp_path / "part.state.npz").is_file()
    assert cli(run + ["--steps", "9", "-o", str(part)]) == 2
    assert f"{part} exists; pass --force to overwrite it" in capsys.readouterr().err
    assert cli(run + ["--steps", "14", "--resume", str(part), "-o", str(part)]) == 0     # in place
    assert f"{part} at step 9 of the samples' order" in capsys.readouterr().out
    with np.load(whole) as a, np.load(part) as b:
        assert all(np.array_equal(a[k], b[k]) for k in a)
    with np.load(tmp_path / "whole.state.npz") as a, np.load(tmp_path / "part.state.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a) and int(b["order"]) == 23
    assert cli(run + ["--steps", "1", "-o", str(whole), "--force"]) == 0
    (tmp_path / "part.state.npz").unlink()
    assert cli(run + ["--resume", str(part), "-o", str(tmp_path / "next.npz")]) == 2
    assert f"there is no file {tmp_path / 'part.state.npz'}" in capsys.readouterr().err


def _split(noise: float = 0.3):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1200, 3))
    y = x[:, [1, 0, 2]] * [1, -1, 1] + [0.0, 0.0, 1.0] + noise * rng.normal(size=(1200, 3))
    return {"x": x[:1000], "y": y[:1000]}, {"x": x[1000:], "y": y[1000:]}


def test_a_validation_set_is_watched_once_an_epoch_and_patience_keeps_the_best(rigid):
    train, val = _split()
    watched = rigid(seed=0)
    history = watched.fit(train, steps=20, batch=500, validation=val)
    v = watched.validation
    assert len(history) == 20 and list(v["step"]) == list(range(2, 21, 2)) and not v["stopped"]
    assert v["loss"][-1] == watched.loss(**val)                      # the same mean loss, bit for bit
    early = rigid(seed=0)
    history = early.fit(train, steps=400, batch=100, lr=0.2, validation=val, patience=3, validate_every=10)
    v = early.validation
    assert v["stopped"] and len(history) == v["step"][-1] < 400
    assert min(v["loss"][-3:]) >= min(v["loss"][:-3]) and v["best"] <= v["step"][-4]   # three without a new lowest
    assert early.loss(**val) == min(v["loss"])                       # the lowest's parameters kept
    with pytest.raises(ValueError, match="patience and validate_every watch a validation set"):
        rigid(seed=0).fit(train, steps=2, patience=2)
    with pytest.raises(ValueError, match="missing input 'y'"):
        rigid(seed=0).fit(train, steps=2, validation={"x": val["x"]})


def test_phg_train_validates_and_stops_early(tmp_path, capsys):
    train, val = _split()
    np.savez(tmp_path / "train.npz", **train)
    np.savez(tmp_path / "val.npz", **val)
    run = ["train", EXAMPLE, "--data", str(tmp_path / "train.npz"), "--batch", "100", "--lr", "0.2"]
    assert cli(run + ["--steps", "400", "--validation", str(tmp_path / "val.npz"), "--patience", "3",
                      "-o", str(tmp_path / "p.npz")]) == 0
    out = capsys.readouterr().out
    assert "stopped early (patience 3), the lowest's parameters kept" in out
    assert cli(run + ["--patience", "3", "-o", str(tmp_path / "q.npz")]) == 2
    assert "--patience stops on a validation set's loss; give it with --validation VAL.npz" in capsys.readouterr().err


def test_a_model_starts_from_its_train_blocks_seed_as_phg_train_does(built):
    volume = built["signed_volume"][1].SignedVolume          # its train block says seed 1
    assert volume.SPEC["train"]["settings"]["seed"] == 1
    default, one, zero = volume(), volume(seed=1), volume(seed=0)
    assert all(np.array_equal(default.params[k], one.params[k]) for k in one.params)
    assert not np.array_equal(default.params["W1"], zero.params["W1"])


def test_a_shape_written_in_a_types_brackets_gets_a_hint():
    source = "algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    param Wr: Scalar[8, 3, 1] = normal(1)\n}\n"
    with pytest.raises(phg.PhgError) as caught:
        phg.loads(source, "pt.phg")
    text = caught.value.render()
    assert "pt.phg:3:23: syntax error: unexpected ','" in text          # as before, and now:
    assert "hint: the brackets after a type hold its unit (Scalar[m/s]); a value's channels follow its name: " \
           "param Wr[8, 3, 1]: Scalar" in text


def test_bilinear_names_the_input_whose_channels_disagree():
    source = ("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    param w[3, 4]: Scalar = normal(1)\n"
              "    input x[3]: Vector[m]\n    input y[4]: Vector[m]\n    output q[3]: Multivector = bilinear(w, x, y)\n}\n")
    with pytest.raises(phg.PhgError) as caught:
        phg.loads(source, "bil.phg")
    text = caught.value.render()          # it blamed w: "expected: w with channels [3, 4] ..."
    assert "bil.phg:6:47: shape error: bilinear(w, x, y) needs x and y with the same channels [C], one axis; " \
           "got x [3] and y [4]" in text and "expected: y with channels [3]" in text


def _fresh(tmp_path, name: str):
    source = (f"algebra G3 = Cl(3, 0, 0)\nmodel {name} on G3 {{\n    param t: Vector[m] = 0\n    input x: Vector[m]\n"
              "    input y: Vector[m]\n    loss norm2(x + t - y) / 1[m^2]\n}\n")
    return getattr(phg.build(phg.loads(source, f"{name}.phg"), tmp_path / name), name)


def test_fit_says_which_kernels_it_compiles_before_its_first_step(tmp_path, capsys):
    shown = _fresh(tmp_path, "ShownShift")(seed=0)
    assert capsys.readouterr().err == ""                       # built lazily, quietly
    shown.fit(_data(), steps=2)
    err = capsys.readouterr().err
    assert "compiling ShownShift: train ..." in err and "compiling ShownShift: train sums ..." in err
    shown.fit(_data(), steps=2)
    assert capsys.readouterr().err == ""                       # compiled once per process
    events = []
    _fresh(tmp_path, "QuietShift")(seed=0).fit(_data(), steps=2, progress=lambda *e: events.append(e))
    assert ("QuietShift", "train", None) in events and capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be True, False or callable"):
        shown.fit(_data(), steps=2, progress="loud")
