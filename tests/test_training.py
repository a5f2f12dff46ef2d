"""Training kernels: gradients against finite differences, exact accumulation, manifold updates,
optimizers, and rigid registration against the Kabsch/Horn closed form."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from cliffeval import Reference
from shards import sweep
from interpreted import interpreted
from builtfile import model_examples
from modelgen import models

import phg

import phg.plan.buffers

# Kernels run by Python (tests/interpreted.py) compute with numpy's int64 scalars, which warn where
# Numba wraps silently: an exact pass whose terms outgrow its grid wraps, is found not to fit, and
# is summed again (codegen.accumulate); a small batch now runs in one slot, so such passes happen.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in scalar add:RuntimeWarning")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = model_examples()
REL = 1e-6


def finite_difference(model, inputs: dict, name: str, index: tuple, step: float = 1e-3) -> float:
    """d loss / d params[name][index] by a fourth-order central difference."""
    base = model.params[name].copy()
    h = step * max(1.0, abs(float(base[index])))

    def at(dx):
        p = base.copy()
        p[index] += dx
        model.params.set_unnormalised(name, p)          # a Rotor's coefficients, off its manifold
        return model.loss(**inputs)

    value = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h)
    model.params.set_unnormalised(name, base)
    return value


def gradient_error(model, inputs: dict, most: int | None = None, rng=None) -> float:
    """The largest |grad - finite difference| relative to the larger of the two (or 1e-3), over
    every coordinate, or over `most` of them drawn by rng (each parameter's first and last among
    them) when there are more."""
    grad = model.grad(**inputs)
    coordinates = [(name, index) for name, g in grad.items() for index in np.ndindex(g.shape)]
    if most is not None and len(coordinates) > most:
        ends = {c for name, g in grad.items() for c in ((name, (0,) * g.ndim), (name, tuple(d - 1 for d in g.shape)))}
        drawn = rng.choice(len(coordinates), size=most - len(ends), replace=False)
        coordinates = sorted(ends | {coordinates[i] for i in drawn})
    worst = 0.0
    for name, index in coordinates:
        g = grad[name][index]
        fd = finite_difference(model, inputs, name, index)
        if abs(g - fd) >= REL * max(abs(fd), abs(g), 1e-3):
            # Richardson: the difference at half the step takes out the first error term (h^4),
            # where the loss curves fast (O3CGMLP's first layer: 3e-6 at h = 1e-3, 1e-12 so).
            fd = (16 * finite_difference(model, inputs, name, index, 5e-4) - fd) / 15
        worst = max(worst, abs(g - fd) / max(abs(fd), abs(g), 1e-3))
    return worst


def random_inputs(ref: Reference, graph, rng, n: int) -> dict:
    out = {}
    for v in graph.inputs:
        value = graph.values[v]
        blades = [b for b in ref.alg.blades if value.support >> b & 1]
        out[value.name] = rng.uniform(-1, 1, size=(n, *value.shape, len(blades)))
    return out


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_example_gradients_match_finite_differences(built, name):
    program, module = built[name]
    rng = np.random.default_rng(7)
    for graph in program.models.values():
        model = getattr(module, graph.name)(seed=2)
        for p, value in model.params.items():           # away from the initial point, where it is special
            model.params.set_unnormalised(p, value + rng.normal(0, 0.3, size=value.shape))
        inputs = random_inputs(Reference(graph), graph, rng, 64)
        # every coordinate of the small examples; 200 of O3CGMLP's 32,854, drawn
        assert gradient_error(model, inputs, most=200, rng=rng) < REL


def with_loss(source: str) -> str:
    """A random verifier model with its lets made outputs and a loss over all of them, plus a
    Euclidean parameter W, so both kinds of parameter get a gradient."""
    source = re.sub(r"    let (l\d): [^=]+= ", r"    output \1 = ", source)
    lets = re.findall(r"output (l\d) =", source)
    terms = " + ".join(f"norm2(l{i}) / 8 + scalar(W * l{i})" for i in range(len(lets)))
    source = source.replace("    input a: Vector", "    param W: Multivector = normal(0.5)\n    input a: Vector")
    return source.replace("\n}\n", f"\n    loss {terms}\n}}\n")


@pytest.mark.parametrize("shard", range(2))
def test_random_model_gradients_match_finite_differences(tmp_path_factory, unshared, shard):
    def check(source):
        program = phg.loads(with_loss(source), filename="random.phg")
        module = phg.build(program, tmp_path_factory.mktemp("random"), unverified=True)
        graph = program.models["M"]
        model = interpreted(module, graph.name)
        rng = np.random.default_rng(0)
        r = rng.normal(size=model.params["R"].shape)
        model.params.set_unnormalised("R", r / np.linalg.norm(r))     # R ~R = 1 only in a Euclidean metric
        inputs = random_inputs(Reference(graph), graph, rng, 3)
        assert gradient_error(model, inputs) < REL, source

    sweep(models(), 100, shard, 2, check)


# ---- exact accumulation ---------------------------------------------------------------------------
SUM_MODEL = """algebra G1 = Cl(1, 0, 0)
model Sum on G1 {
    input s: Scalar
    param w: Scalar = 1
    loss s * w
}
"""


@pytest.mark.parametrize("state", ["registers", "array"])
def test_exact_sums_are_the_correctly_rounded_exact_sum(tmp_path, monkeypatch, state):
    """A step's sum against Fractions, through a generated kernel (loss = mean of s * 1): random
    doubles over the whole exponent range, so that chunks fail their grid and are summed again on
    a grid of their own, or sample by sample; zeros, subnormals, cancellation; and NaN or an
    infinity anywhere makes the sum NaN.  Both ways of holding a pass's state: in registers (few
    sums) and in an array (many sums; forced here by lowering the threshold)."""
    from fractions import Fraction
    if state == "array":
        monkeypatch.setattr(phg.plan.buffers, "REGISTER_SUMS", 0)
    model = phg.build(phg.loads(SUM_MODEL, "sum.phg"), tmp_path).Sum()
    rng = np.random.default_rng(1)
    for trial in range(60):
        n = int(rng.integers(1, 5000))
        xs = rng.normal(size=n) * (np.exp2(rng.integers(-1074, 1000, size=n)) if trial % 2 else 1.0)
        if trial % 3 == 0:                 # a few huge or tiny terms in otherwise ordinary chunks
            xs[rng.integers(0, n, size=3)] = [1e300, 5e-324, -2.5e-310]
        if trial % 5 == 0:
            xs = np.concatenate([xs, -xs[:-1], [0.0, -1e308, 1e308]])
        exact = sum(Fraction(float(v)) for v in xs)
        assert model.loss(s=xs[:, None]) == float(exact) / len(xs), trial
        assert model.grad(s=xs[:, None])["w"] == float(exact) / len(xs), trial
    for bad in (np.inf, -np.inf, np.nan):
        xs = rng.normal(size=3000)
        xs[1500] = bad
        with pytest.raises(ValueError, match="sample 1500 is not finite"):   # refused before a kernel runs
            model.loss(s=xs[:, None])
        # finite data whose term overflows: s * w is an infinity, or two infinities of either sign
        model.params["w"] = [1e10]
        xs[1500] = 1e300 if bad != -np.inf else -1e300
        if bad != bad:
            xs[2500] = -xs[1500]
        assert np.isnan(model.loss(s=xs[:, None]))
        model.params["w"] = [1.0]
        assert model.loss(s=xs[:1500, None]) == float(sum(Fraction(float(v)) for v in xs[:1500])) / 1500


def test_exact_gradients_are_the_exact_mean_of_per_sample_gradients(built):
    """signed_volume sums the adjoints of its parameters themselves, so its gradient is the
    correctly rounded exact sum of the per-sample gradients, divided by N; rigid registration
    sums those of its hoisted rotation matrix, so its loss and its t-gradient are."""
    from fractions import Fraction

    def exact_mean(per_sample, get):
        return float(sum(Fraction(float(get(s))) for s in per_sample)) / len(per_sample)

    _, module = built["signed_volume"]
    model = module.SignedVolume(seed=0)
    rng = np.random.default_rng(3)
    v = rng.normal(size=(40, 3, 3)) * 10.0 ** rng.integers(-3, 4, size=(40, 1, 1))
    target = rng.normal(size=(40, 1))
    per_sample = [model.grad(v=v[i:i + 1], target=target[i:i + 1]) for i in range(40)]
    grad = model.grad(v=v, target=target)
    for name, g in grad.items():
        for k in range(g.size):
            assert g.flat[k] == exact_mean(per_sample, lambda s: s[name].flat[k]), (name, k)

    _, module = built["rigid_registration"]
    model = module.RigidRegistration(seed=0)
    model.params["R"] = np.array([0.5, 0.5, -0.5, 0.5])
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) * 1e3
    losses = [model.loss(x=x[i:i + 1], y=y[i:i + 1]) for i in range(50)]
    per_sample = [model.grad(x=x[i:i + 1], y=y[i:i + 1]) for i in range(50)]
    assert model.loss(x=x, y=y) == exact_mean(losses, float)
    grad = model.grad(x=x, y=y)
    for k in range(3):
        assert grad["t"][k] == exact_mean(per_sample, lambda s: s["t"][k])


def test_long_batches_sum_exactly(built):
    """64,000 identical samples of loss 3.8125: 4,000 per slot, 125 blocks each, whose mean must
    come back exactly."""
    _, module = built["rigid_registration"]
    model = module.RigidRegistration(seed=0)
    x = np.zeros((64_000, 3))
    y = np.tile([1.5, 1.0, 0.75], (64_000, 1))
    assert model.loss(x=x, y=y) == 3.8125
    assert model.grad(x=x, y=y)["t"].tolist() == [-3.0, -2.0, -1.5]


def test_exact_gradients_do_not_depend_on_order_or_threads(built, tmp_path):
    _, module = built["signed_volume"]
    model = module.SignedVolume(seed=0)
    rng = np.random.default_rng(4)
    v = rng.normal(size=(5000, 3, 3))
    target = np.linalg.det(v)[:, None] / 10 + rng.normal(0, 0.1, size=(5000, 1))
    grad = model.grad(v=v, target=target)
    perm = rng.permutation(5000)
    shuffled = model.grad(v=v[perm], target=target[perm])
    for name in grad:
        assert np.array_equal(grad[name], shuffled[name]), name
    # The same in fresh processes with one and with two threads.
    np.savez(tmp_path / "data.npz", v=v, target=target)
    script = (f"import sys, numpy as np, phg; sys.path.insert(0, {str(ROOT)!r})\n"
              # the directory the fixture built in: its compiled kernels are in Numba's cache
              f"k = phg.build(phg.load({str(ROOT / 'examples' / 'signed_volume.phg')!r}), "
              f"{str(Path(module.__file__).parent)!r})\n"
              f"d = np.load({str(tmp_path / 'data.npz')!r})\n"
              "g = k.SignedVolume(seed=0).grad(v=d['v'], target=d['target'])\n"
              "print(''.join(a.tobytes().hex() for _, a in sorted(g.items())))\n")
    import os
    import subprocess
    import sys
    outs = []
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outs.append(run.stdout.strip())
    expected = "".join(a.tobytes().hex() for _, a in sorted(grad.items()))
    assert outs[0] == outs[1] == expected


# ---- manifold updates -----------------------------------------------------------------------------
def test_rotor_stays_a_rotor_after_10000_adam_steps(built):
    _, module = built["rigid_registration"]
    model = module.RigidRegistration(seed=0)
    assert model.layout("R") == ["1", "e12", "e13", "e23"]          # odd coefficients are not stored
    rng = np.random.default_rng(8)
    x = rng.normal(size=(256, 3))
    y = x[:, ::-1] * 3 + rng.normal(size=(256, 3))                   # no rotation fits: the rotor keeps moving
    history = model.fit({"x": x, "y": y}, steps=10_000, batch=32)
    assert np.isfinite(history).all()
    s, a, b, c = model.params["R"]
    assert abs(s * s + a * a + b * b + c * c - 1) < 1e-12             # R ~R = 1 (its only part is scalar)


def _pga_reference():
    import clifford
    layout, blades = clifford.Cl(3, 0, 1, firstIdx=0)
    return layout, blades


def test_motor_stays_a_motor_after_10000_adam_steps(built):
    _, module = built["pga_pose"]
    model = module.PgaPose(seed=0)
    layout_names = model.layout("M")
    assert layout_names == ["1", "e01", "e02", "e03", "e12", "e13", "e23", "e0123"]
    rng = np.random.default_rng(9)
    a = rng.normal(size=(256, 3, 1))
    b = (a * 2)[:, ::-1] + rng.normal(size=(256, 3, 1))
    history = model.fit({"a": a, "b": b}, steps=10_000, batch=32)
    assert np.isfinite(history).all()
    layout, blades = _pga_reference()
    motor = sum(c * (blades[n] if n != "1" else 1) for c, n in zip(model.params["M"], layout_names))
    norm = motor * ~motor
    assert abs(norm.value[0] - 1) < 1e-12                              # normalised
    assert abs(norm.value[layout.bladeTupList.index((0, 1, 2, 3))]) < 1e-12   # the study condition
    assert np.abs(norm.value[1:]).max() < 1e-12


@pytest.mark.parametrize("name,model_name,param", [("rigid_registration", "RigidRegistration", "R"),
                                                   ("pga_pose", "PgaPose", "M")])
def test_retraction_is_the_product_with_the_exponential(built, name, model_name, param):
    """R exp(B) by the generated closed form against clifford's Taylor exponential, for rotors and
    motors R = exp(A) and bivectors B of sizes 1e-8 to 3."""
    import clifford
    from clifford import taylor_expansions
    _, module = built[name]
    model = getattr(module, model_name)(seed=0)
    _, blades = clifford.Cl(3, 0, 1, firstIdx=0) if name == "pga_pose" else clifford.Cl(3)
    names = model.layout(param)
    bnames = model.SPEC["train"]["manifold"][param]["tangent"]
    retract = model._manifold[param][1]
    rng = np.random.default_rng(10)

    def bivector(scale):
        return sum(c * blades[n] for c, n in zip(rng.normal(size=len(bnames)) * scale, bnames))

    for trial in range(60):
        R = taylor_expansions.exp(bivector(1.0), max_order=60)
        size = 10.0 ** rng.uniform(-8, 0.5)
        B = bivector(size)
        r0 = np.array([(R.value[0] if n == "1" else R[blades[n]]) for n in names])
        b = np.array([B[blades[n]] for n in bnames])
        out = np.empty((1, len(names)))
        retract(r0[None], b[None], 1.0, out)
        expected = R * taylor_expansions.exp(B, max_order=60)
        want = np.array([(expected.value[0] if n == "1" else expected[blades[n]]) for n in names])
        assert np.abs(out[0] - want).max() < 1e-12 * max(1.0, np.abs(want).max()), (trial, size)


# ---- closed forms ---------------------------------------------------------------------------------
def _rigid_example():
    """examples/rigid_registration.py, whose rotor_matrix and kabsch (numpy SVD) the tests share."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("rigid_example", ROOT / "examples" / "rigid_registration.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return example


EXAMPLE = _rigid_example()
rotor_matrix, kabsch = EXAMPLE.rotor_matrix, EXAMPLE.kabsch


def full_batch(steps: int) -> str:
    src = (ROOT / "examples" / "rigid_registration.phg").read_text()
    return re.sub(r"steps \d+", f"steps {steps}", re.sub(r"batch \d+", "batch 10000", src))


@pytest.fixture(scope="module")
def registration(tmp_path_factory):
    program = phg.loads(full_batch(800), "registration.phg")
    return phg.build(program, tmp_path_factory.mktemp("registration"))


@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_rigid_registration_reaches_the_kabsch_optimum(registration, noise):
    rng = np.random.default_rng(11)
    q = rng.normal(size=4)
    truth_q = rotor_matrix(q / np.linalg.norm(q))
    truth_t = rng.normal(size=3)
    x = rng.normal(size=(10_000, 3))
    y = x @ truth_q.T + truth_t + rng.normal(0, noise, size=x.shape)
    model = registration.RigidRegistration()
    model.fit({"x": x, "y": y})
    q_fit, t_fit = rotor_matrix(model.params["R"]), model.params["t"]
    q_opt, t_opt = kabsch(x, y)
    angle = np.arccos(np.clip((np.trace(q_fit.T @ q_opt) - 1) / 2, -1, 1))
    if noise == 0:
        assert np.abs(q_fit - truth_q).max() < 1e-9 and np.abs(t_fit - truth_t).max() < 1e-9
    assert angle < 1e-6 and np.abs(t_fit - t_opt).max() < 1e-6


# ---- phg train ------------------------------------------------------------------------------------
def test_phg_train_runs_the_train_block_and_saves_parameters(tmp_path, monkeypatch, capsys):
    from phg.shell.cli import main
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(13)
    x = rng.normal(size=(4096, 3))
    np.savez(tmp_path / "data.npz", x=x, y=x + [0.5, -1.0, 2.0])
    model = ROOT / "examples" / "rigid_registration.phg"
    assert main(["train", str(model), "--data", str(tmp_path / "data.npz"), "-o", str(tmp_path / "p.npz")]) == 0
    out = capsys.readouterr().out
    assert "RigidRegistration: trained" in out and "300 (batch 4096 of 4096, adam, accumulate exact)" in out
    params = np.load(tmp_path / "p.npz")
    assert np.allclose(params["t"], [0.5, -1.0, 2.0], atol=1e-4) and np.isclose(np.linalg.norm(params["R"]), 1)

    np.savez(tmp_path / "wrong.npz", x=x)
    assert main(["train", str(model), "--data", str(tmp_path / "wrong.npz")]) == 2
    err = capsys.readouterr().err
    assert "has no array 'y'" in err and "components e1, e2, e3" in err
    np.savez(tmp_path / "shape.npz", x=x, y=x[:, :2])
    assert main(["train", str(model), "--data", str(tmp_path / "shape.npz")]) == 2
    assert "input 'y' has shape [4096, 2]; expected [N, 3]" in capsys.readouterr().err
    assert main(["train", str(model), "--data", str(tmp_path / "missing.npz")]) == 2
    assert "cannot read the data" in capsys.readouterr().err


def test_a_model_without_a_loss_cannot_be_trained(tmp_path):
    program = phg.loads("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x: Vector\n    output y = x\n}\n")
    model = phg.build(program, tmp_path).M()
    with pytest.raises(ValueError, match="has no loss"):
        model.grad(x=np.zeros((3, 3)))


# ---- the memory plan and the accumulator's capacity in the certificate ----------------------------
def _train_block(**items) -> str:
    src = (ROOT / "examples" / "rigid_registration.phg").read_text()
    block = "\n".join(f"    {k} {v}" for k, v in items.items())
    return re.sub(r"train RigidRegistration \{.*\}", f"train RigidRegistration {{\n{block}\n}}", src, flags=re.S)


def test_memory_claims_are_decided_at_the_batch_size(tmp_path, capsys):
    from phg.shell.cli import main
    proven = phg.check(phg.loads(_train_block(batch=4096, memory="<= 2 * inference"), "m.phg"))
    memory = next(o for o in proven.obligations if o.kind == "memory")
    assert memory.status == "proven"
    plan = proven.to_dict()["memory"]
    # outputs and a copy of x given in another layout, 24 bytes a sample each; per thread an allowance
    assert plan["inference_bytes"] == "48 * N + 623104" and plan["conversion_bytes_per_sample"] == 24
    assert plan["threads"] == 16 and plan["inference_bytes_per_thread"] == 34816
    for t in (1, 16):               # the step's bytes, its optimizer's apart, against inference's on float64 rows
        less = 16 - t
        step = int(plan["training_bytes"]) - plan["optimizer_bytes"] - less * plan["training_bytes_per_thread"]
        assert step <= 2 * (24 * 4096 + 623104 - less * 34816)
    # adam on a batch of 16 needs far more than twice what inference on 16 samples allocates
    tiny = phg.check(phg.loads(_train_block(batch=16, memory="<= 2 * inference"), "m.phg"))
    memory = next(o for o in tiny.obligations if o.kind == "memory")
    assert memory.status == "refuted" and memory.evidence["at"]["N"] == 16
    assert not tiny.ok
    source_lines = _train_block(batch=16, memory="<= 2 * inference").splitlines()
    assert source_lines[memory.span.line - 1].strip() == "memory <= 2 * inference"
    # without a batch the claim is for every N >= 1, and N = 1 refutes it
    anyn = next(o for o in phg.check(phg.loads(_train_block(memory="<= 2 * inference"), "m.phg")).obligations
                if o.kind == "memory")
    assert anyn.status == "refuted" and anyn.evidence["at"]["N"] == 1
    # float accumulation needs no quire, and a tiny accumulator
    plain = phg.check(phg.loads(_train_block(batch=16, accumulate="float"), "m.phg"))
    assert not [o for o in plain.obligations if o.kind == "quire"]
    sizes = lambda c: c.to_dict()["memory"]["training_buffers"]  # noqa: E731
    assert sizes(plain)["accumulators"] * 60 < sizes(proven)["accumulators"]      # one float64 a sum, not 68 digits
    summing = lambda c: sum(sizes(c).get(k, 0) for k in ("accumulators", "grids", "deposit states", "ledgers",  # noqa: E731
                                                          "work digits"))
    assert summing(plain) * 20 < summing(proven)
    # the accumulator's digits stay below 2^63 between normalisations, for any batch an int64 counts
    quire = next(o for o in phg.check(phg.loads(_train_block(batch=2**40), "m.phg")).obligations
                 if o.kind == "quire")
    assert quire.status == "proven" and quire.evidence["capacity_samples"] == 2**108
    assert quire.evidence["digit_bound"] < 2**63
    # phg verify re-runs the memory and quire queries
    path = tmp_path / "m.phg"
    path.write_text(_train_block(batch=16, memory="<= 2 * inference"))
    assert main(["check", str(path)]) == 1
    capsys.readouterr()
    assert main(["verify", str(path) + ".cert.json"]) == 1
    assert "authentic, NOT all proven" in capsys.readouterr().out     # re-derived, refuted memory claim


def test_float_accumulation_agrees_with_exact(tmp_path):
    src = (ROOT / "examples" / "rigid_registration.phg").read_text()
    exact = phg.build(phg.loads(src, "exact.phg"), tmp_path / "exact").RigidRegistration()
    plain = phg.build(phg.loads(src.replace("accumulate exact", "accumulate float"), "plain.phg"),
                      tmp_path / "float").RigidRegistration()
    assert plain.SPEC["train"]["settings"]["accumulate"] == "float"
    rng = np.random.default_rng(14)
    x, y = rng.normal(size=(30_000, 3)), rng.normal(size=(30_000, 3))
    for m in (exact, plain):
        m.params["R"] = np.array([0.5, 0.5, -0.5, 0.5])
    assert np.isclose(plain.loss(x=x, y=y), exact.loss(x=x, y=y), rtol=1e-12)
    for name, g in exact.grad(x=x, y=y).items():
        assert np.allclose(plain.grad(x=x, y=y)[name], g, rtol=1e-10, atol=1e-14)


# ---- optimizers -----------------------------------------------------------------------------------
def reference_steps(kind: str, grads: list[np.ndarray], lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, softness=1.0):
    """LANGUAGE §6 written out with numpy: the step (to subtract) for each gradient in turn."""
    m = v = s = np.zeros_like(grads[0])
    out = []
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            out.append(lr * g)
            continue
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        mh, vh = m / (1 - beta1 ** t), v / (1 - beta2 ** t)
        step = lr * mh / (np.sqrt(vh) + eps)
        if kind == "prm":
            s = beta2 * s + (1 - beta2) * (g - m) ** 2
            sh = s / (1 - beta2 ** t)
            step = step * mh * mh / (mh * mh + softness * sh + eps)
        out.append(step)
    return out


@pytest.mark.parametrize("kind", ["sgd", "adam", "prm"])
def test_optimizer_steps_follow_the_language_contract(kind):
    from phg.codegen.optimizers import KINDS, direction
    from phg.plan.buffers import MOMENTS as STATE
    rng = np.random.default_rng(15)
    grads = [rng.normal(size=7) * 10.0 ** rng.integers(-3, 3) for _ in range(20)]
    state = np.zeros((STATE[kind], 7))
    out = np.empty(7)
    for t, (g, want) in enumerate(zip(grads, reference_steps(kind, grads, softness=0.5)), start=1):
        direction(KINDS[kind], g, state, t, 0.01, 0.9, 0.999, 1e-8, 0.5, out)
        assert np.allclose(out, want, rtol=1e-13, atol=0), (kind, t)


@pytest.mark.parametrize("optimizer", ["sgd(lr = 0.1)", "prm(lr = 0.05, softness = 0.5)"])
def test_every_optimizer_trains_and_keeps_the_rotor(optimizer, tmp_path):
    source = _train_block(optimizer=optimizer, batch=256, steps=400)
    model = phg.build(phg.loads(source, "opt.phg"), tmp_path).RigidRegistration()
    rng = np.random.default_rng(16)
    x = rng.normal(size=(256, 3))
    q = rng.normal(size=4)
    y = x @ rotor_matrix(q / np.linalg.norm(q)).T + [1.0, 2.0, 3.0]
    history = model.fit({"x": x, "y": y})
    assert history[-1] < 1e-3 * history[0]
    assert abs(np.linalg.norm(model.params["R"]) - 1) < 1e-12


def test_phg_train_plots_the_loss_curve(tmp_path, monkeypatch, capsys):
    from phg.shell.cli import main
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rng = np.random.default_rng(17)
    x = rng.normal(size=(512, 3))
    np.savez(tmp_path / "data.npz", x=x, y=x + 1)
    args = ["train", str(ROOT / "examples" / "rigid_registration.phg"), "--data", str(tmp_path / "data.npz"),
            "-o", str(tmp_path / "p.npz"), "--steps", "20", "--plot", str(tmp_path / "loss.png")]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert main(args) == 2
        assert "--plot needs matplotlib" in capsys.readouterr().err
    else:
        assert main(args) == 0
        assert (tmp_path / "loss.png").stat().st_size > 0


def test_the_adjoints_partial_derivative_is_sympys():
    """phg.plan.adjoint.partial differentiates sums, products and powers itself: the very
    expression sympy.diff gives, there and through the functions it hands to sympy."""
    import sympy

    from phg.plan.adjoint import partial
    a, b, c = sympy.symbols("a b c")
    exprs = [a, b, sympy.Integer(3), sympy.Float(0.5), a * b * c + 2 * a ** 2 * b - c / a,
             (a + b) ** 3 * c, a ** sympy.Rational(1, 2) * b, sympy.sin(a * b) + sympy.exp(a) * c,
             sympy.Heaviside(a) * a + sympy.Abs(b - a), sympy.tanh(a) ** 2 * (b + c), a ** b, 1 / (a ** 2 + b ** 2)]
    for e in exprs:
        for u in (a, b, c):
            assert partial(e, u) == sympy.diff(e, u), (e, u)
