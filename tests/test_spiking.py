"""Spiking networks (LANGUAGE §16): Brian2's STDP example on fixed spike trains, weight for
weight (tests/reference: Brian2's own output and the script that made it), the integration
methods against closed forms, spike inputs, and the errors of the language and of simulate."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import phg
from phg.codegen.network import SimulationError
from phg.diagnostics import PhgError
from phg.spikes import poisson

from builtfile import built_file

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "reference" / "brian2_stdp_fixed.npz"

SOURCE = """algebra G3 = Cl(3, 0, 0)
const tau = 0.02[s]

network Decay on G3 {
    input drive[2]: spikes
    neurons cell[3] {
        state x: Scalar[m] = 1[m]
        state y: Scalar[m] = 0
        dx/dt = -x / tau
        dy/dt = x / tau - y / (2 * tau)
        spike y > 0.3[m]
        reset {
            y = 0[m]
            x -= 0.1[m]
        }
    }
    synapses S from drive to cell {
        param w: Scalar[m] = uniform(0, 0.1)
        trace a: Scalar = 0 decays tau
        on pre {
            x += w
            a += 1
        }
        on post {
            w = w * (1 - 0.01 * a)
        }
    }
}

simulate Decay {
    dt 0.0001[s]
}

network Leak on G3 {
    neurons cell[1] {
        state x: Scalar = 1
        dx/dt = -x / tau
    }
}

simulate Leak {
    dt 0.001[s]
    method euler
}
"""


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    yield from built_file(tmp_path_factory, "spiking", SOURCE)


def _example(tmp_path_factory, stem: str):
    """An example network, built in a cache of the test's own."""
    with pytest.MonkeyPatch.context() as mp:
        root = tmp_path_factory.mktemp(stem)
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        yield phg.build(phg.load(ROOT / "examples" / f"{stem}.phg"))


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    yield from _example(tmp_path_factory, "song_stdp")


def test_stdp_weights_equal_brian2s_on_fixed_trains(song):
    """Brian2 2.9.0's STDP example on 2 s of fixed trains (1,000 inputs at 15 Hz): the same post
    spikes, step for step, and every weight to 1e-12 (its 8 watched synapses at every step)."""
    ref = np.load(REFERENCE)
    net = song.Song()
    net.values["S"]["w"][:, 0] = ref["w0"]
    run = net.simulate({"pre": {"index": ref["spike_index"], "step": ref["spike_step"]}}, steps=int(ref["steps"]),
                       record={"w": list(range(8))})
    np.testing.assert_array_equal(run.spikes["post"][0], ref["post_step"])
    assert np.abs(run.traces["w"][:, :, 0].T - ref["w_watched"]).max() < 1e-12
    assert np.abs(net.values["S"]["w"][:, 0] - ref["w_end"]).max() < 1e-12


def test_a_run_in_parts_equals_the_run_at_once(song):
    ref = np.load(REFERENCE)
    trains = {"pre": {"index": ref["spike_index"], "step": ref["spike_step"]}}
    whole, parts = song.Song(seed=3), song.Song(seed=3)
    once = whole.simulate(trains, steps=6000)
    first = parts.simulate(trains, steps=2500)
    second = parts.simulate(trains, steps=3500)
    assert parts.step == 6000
    np.testing.assert_array_equal(np.concatenate([first.spikes["post"][0], second.spikes["post"][0]]),
                                  once.spikes["post"][0])
    np.testing.assert_array_equal(parts.values["S"]["w"], whole.values["S"]["w"])


def test_exact_integration_is_the_closed_form(kernels):
    """dx/dt = -x/tau, dy/dt = x/tau - y/(2 tau) from x = 1, y = 0 (no spikes within 5 ms):
    x = e^(-t/tau), y = 2 (e^(-t/(2 tau)) - e^(-t/tau))."""
    _, module = kernels
    net = module.Decay(seed=0)
    run = net.simulate(steps=50, record={"x": [0], "y": [0]})
    t = np.arange(50) * 1e-4
    np.testing.assert_allclose(run.traces["x"][:, 0, 0], np.exp(-t / 0.02), rtol=1e-13)
    np.testing.assert_allclose(run.traces["y"][:, 0, 0], 2 * (np.exp(-t / 0.04) - np.exp(-t / 0.02)), atol=1e-14)


def test_euler_integration_is_the_euler_recurrence(kernels):
    _, module = kernels
    net = module.Leak()
    run = net.simulate(steps=100, record={"x": "all"})
    np.testing.assert_allclose(run.traces["x"][:, 0, 0], (1 - 0.001 / 0.02) ** np.arange(100), rtol=1e-13)


def test_spikes_reset_and_synapses_act_in_brian2s_order(kernels):
    """A direct evaluation of the Decay network in NumPy, in the order of a step (integrate,
    threshold, on pre, on post, reset), against the kernel on Poisson drive."""
    _, module = kernels
    net = module.Decay(seed=4)
    w = net.values["S"]["w"][:, 0].copy()
    trains = poisson(2, 80.0, 1e-4, steps=3000, seed=5)
    run = net.simulate({"drive": trains}, steps=3000)
    dt, tau = 1e-4, 0.02
    from scipy.linalg import expm
    m = np.zeros((3, 3))
    m[:2, :2] = np.array([[-1 / tau, 0], [1 / tau, -1 / (2 * tau)]]) * dt
    e = expm(m)[:2, :2]
    x, y = np.ones(3), np.zeros(3)
    a, last = np.zeros(6), np.zeros(6)
    spikes = []
    for s in range(3000):
        t = s * dt
        x, y = e[0, 0] * x + e[0, 1] * y, e[1, 0] * x + e[1, 1] * y
        fired = np.nonzero(y > 0.3)[0]
        spikes += [(s, n) for n in fired]
        for i in trains["index"][trains["step"] == s]:
            for j in range(3):
                r = i * 3 + j
                a[r] *= np.exp(-(t - last[r]) / tau)
                last[r] = t
                x[j] += w[r]
                a[r] += 1
        for j in fired:
            for i in range(2):
                r = i * 3 + j
                a[r] *= np.exp(-(t - last[r]) / tau)
                last[r] = t
                w[r] = w[r] * (1 - 0.01 * a[r])
        y[fired] = 0
        x[fired] -= 0.1
    assert len(spikes) > 5
    np.testing.assert_array_equal(np.stack(run.spikes["cell"], axis=1), np.array(spikes))
    np.testing.assert_allclose(net.values["S"]["w"][:, 0], w, rtol=1e-12)
    np.testing.assert_allclose(net.values["cell"]["x"][:, 0], x, rtol=1e-12)


def test_poisson_trains_spike_with_probability_rate_dt_per_step():
    trains = poisson(1000, 15.0, 1e-4, steps=200_000, seed=1)
    counts = np.bincount(trains["step"], minlength=200_000)
    p = 15.0 * 1e-4
    assert abs(counts.mean() - 1000 * p) < 0.01
    assert abs(counts.var() / (1000 * p * (1 - p)) - 1) < 0.02
    assert not np.any((np.diff(trains["step"]) == 0) & (np.diff(trains["index"]) == 0))
    assert np.all(np.diff(trains["step"]) >= 0)


@pytest.mark.parametrize("inputs, words", [
    ({"drive": np.zeros((10, 3))}, "a 0/1 array of [steps, 2]"),
    ({"nerve": np.zeros((10, 2))}, "'nerve' is not a spike input of network Decay"),
    ({"drive": {"index": [0, 5], "step": [1, 2]}}, "expected channels in [0, 2)"),
    ({"drive": {"index": [0, 0], "step": [1, 1]}}, "a channel spikes twice in one step"),
    ({"drive": {"index": [0], "time": [0.00015]}}, "not on the grid of dt"),
    ({"drive": {"index": [0]}}, "expected {'index': ..., 'step': ...}"),
])
def test_bad_spike_inputs_are_refused_naming_the_input(kernels, inputs, words):
    _, module = kernels
    net = module.Decay()
    with pytest.raises(SimulationError, match=re.escape(words)):
        net.simulate(inputs, steps=10)
    assert net.step == 0


def test_bad_simulate_arguments_are_refused(kernels):
    _, module = kernels
    net = module.Decay()
    with pytest.raises(SimulationError, match="give either duration"):
        net.simulate()
    with pytest.raises(SimulationError, match="duration: expected seconds >= 0"):
        net.simulate(duration=-1.0)
    with pytest.raises(SimulationError, match="record: 'z' is not a variable of network Decay"):
        net.simulate(steps=1, record={"z": [0]})
    with pytest.raises(SimulationError, match=r"record: w needs a list of indices in \[0, 6\)"):
        net.simulate(steps=1, record={"w": [6]})


@pytest.mark.parametrize("edit, kind, words, line", [
    (("x += w", "x += a"), "unit", "both sides of + need the same unit", 21),
    (("dx/dt = -x / tau", "dx/dt = -x"), "unit", "", 9),
    (("dx/dt = -x / tau", "dx/dt = -x * x / tau / 1[m]"), "type", "dx/dt is not linear", 9),
    (("a += 1", "b += 1"), "name", "'b' is not a variable pre can assign", 22),
    (("from drive to cell", "from drive to nowhere"), "name", "go to 'nowhere'", 17),
    (("spike y > 0.3[m]", "spike y > 0.3[s]"), "unit", "", 11),
    (("dt 0.0001[s]\n}\n\nnetwork", "dt 0.0001[m]\n}\n\nnetwork"), "unit", "dt is in m", 31),
])
def test_a_network_error_is_located(tmp_path, edit, kind, words, line):
    path = tmp_path / "bad.phg"
    path.write_text(SOURCE.replace(*edit, 1))
    with pytest.raises(PhgError) as caught:
        program = phg.load(path)
        cert = phg.check(program)
        if not cert.ok:
            bad = next(o for o in cert.obligations if o.status != "proven")
            raise PhgError(bad.kind, bad.claim, bad.span)
        phg.build(program, tmp_path / "out")
    err = caught.value
    assert err.kind == kind and words in str(err), str(err)
    assert err.span.line == line, str(err)


@pytest.fixture(scope="module")
def rotor(tmp_path_factory):
    yield from _example(tmp_path_factory, "rotor_stdp")


def _rotor_events(count: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3))
    y = rng.normal(size=(count, 3))
    pre = np.arange(count, dtype=np.int64) * 500
    post = pre + rng.integers(20, 101, size=count)
    zero = np.zeros(count, np.int64)
    return {"index": zero, "step": pre, "x": x}, {"index": zero, "step": post, "y": y}


def test_a_rotor_synapse_learns_by_the_exponential_of_a_bivector(rotor):
    """examples/rotor_stdp.phg against a direct evaluation in clifford, event by event: the trace
    decays exactly and adds x at a pre spike; at a post spike R <- exp(bound(eta y ^ (R a ~R),
    most)) R.  R stays a rotor to 1e-12 after 300 updates on random, unscaled vectors."""
    import clifford as cf

    layout, blades = cf.Cl(3)
    e = [blades["e1"], blades["e2"], blades["e3"]]
    pre, post = _rotor_events(300, 8)
    net = rotor.RotorSTDP()
    net.simulate({"pre": pre, "post": post}, steps=int(post["step"].max()) + 1)
    r, a, last = 1.0 + 0 * blades["e12"], np.zeros(3), 0.0
    eta, most, tau, dt = 0.05, 0.05, 0.02, 1e-4
    events = sorted([(s, 0, v) for s, v in zip(pre["step"], pre["x"])] +
                    [(s, 1, v) for s, v in zip(post["step"], post["y"])], key=lambda t: (t[0], t[1]))
    for step, side, v in events:
        a = a * np.exp(-(step * dt - last) / tau)
        last = step * dt
        if side == 0:
            a = a + v
            continue
        u = r * sum(c * b for c, b in zip(a, e)) * ~r
        b = eta * (sum(c * b for c, b in zip(v, e)) ^ u)(2)
        size = float(np.sqrt(abs((b * ~b)[()])))
        r = (b * (most / (most + max(size - most, 0.0)))).exp() * r
    ours = net.values["S"]["R"][0]
    theirs = np.array([r[()], r[blades["e12"]], r[blades["e13"]], r[blades["e23"]]])
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert abs(float(ours @ ours) - 1.0) < 1e-12


def test_what_spikes_carry_is_checked(rotor):
    net = rotor.RotorSTDP()
    pre, post = _rotor_events(3, 1)
    with pytest.raises(SimulationError, match=re.escape("inputs['pre']: its spikes carry x")):
        net.simulate({"pre": {"index": pre["index"], "step": pre["step"]}}, steps=10)
    with pytest.raises(SimulationError, match=re.escape("inputs['post']['y']: expected finite numbers of [spikes, 3]")):
        net.simulate({"post": {**post, "y": post["y"][:, :2]}}, steps=10)
    with pytest.raises(SimulationError, match=re.escape("inputs['pre']['step']: expected whole step numbers")):
        net.simulate({"pre": {**pre, "step": pre["step"] + 0.5}}, steps=10)
    assert net.step == 0


CARRYING = """algebra G3 = Cl(3, 0, 0)
network N on G3 {
    input pre[1]: spikes carrying x: Vector[m]
    input post[1]: spikes carrying y: Vector[m]
    synapses S from pre to post {
        param R: Rotor = 1
        on post {
            R = exp((y ^ x) / 1[m^2]) * R
        }
    }
}
"""


@pytest.mark.parametrize("edit, words, line", [
    (("R = exp((y ^ x) / 1[m^2]) * R", "x = y"), "'x' is what the spikes of pre carry", 8),
    (("carrying y: Vector[m]", "carrying x: Vector[m]"), "'x' is a variable of both post and pre", 8),
    (("R = exp((y ^ x) / 1[m^2]) * R", "R = exp((y * x) / 1[m^2]) * R"), "exp takes a Scalar or a Bivector", 8),
    (("R = exp((y ^ x) / 1[m^2]) * R", "R = x / 1[m] * R"), "R' : Rotor", 8),
])
def test_payload_and_rotor_errors_are_located(tmp_path, edit, words, line):
    path = tmp_path / "bad.phg"
    path.write_text(CARRYING.replace(*edit, 1))
    with pytest.raises(PhgError) as caught:
        phg.build(phg.load(path), tmp_path / "out")
    assert words in str(caught.value) and caught.value.span.line == line, str(caught.value)


def test_a_network_too_large_to_hold_is_refused_where_it_grows(tmp_path):
    text = SOURCE.replace("input drive[2]: spikes", "input drive[200000]: spikes").replace(
        "neurons cell[3]", "neurons cell[300]")
    with pytest.raises(PhgError, match="network Decay is too large: it holds 60,003,000 numbers by synapses S"):
        phg.loads(text, "big.phg")


CHAIN = """algebra G3 = Cl(3, 0, 0)
const tau = 0.01[s]

network Chain on G3 {
    input drive[2]: spikes
    neurons A[2] {
        state x: Scalar = 0
        spike x > 0.5
        reset {
            x = 0
        }
    }
    neurons B[3] {
        state y: Scalar = 0
        state p: Vector
        spike y > 0.5
        reset {
            y = 0
            p = e1
        }
    }
    synapses In from drive to A {
        param u: Scalar = uniform(0.3, 0.6)
        on pre {
            x += u
        }
    }
    synapses AB from A to B {
        param w: Scalar = uniform(0.2, 0.4)
        trace c: Scalar = 0 decays tau
        on pre {
            y += w
            c += 1
        }
        on post {
            w += 0.01 * c
        }
    }
    synapses BB from B to B {
        param r: Scalar = uniform(0, 0.1)
        on pre {
            y += r
        }
    }
}

simulate Chain {
    dt 0.001[s]
}
"""


def test_groups_drive_groups_and_themselves_in_brian2s_order(tmp_path_factory):
    """Synapses between neuron groups (A to B, and B to itself) against a direct evaluation in
    NumPy; a state never read (p, a Vector) is only written."""
    _, module = next(built_file(tmp_path_factory, "chain", CHAIN))
    net = module.Chain(seed=3)
    u, w, r = (net.values[g][n][:, 0].copy() for g, n in (("In", "u"), ("AB", "w"), ("BB", "r")))
    trains = poisson(2, 300.0, 1e-3, steps=400, seed=4)
    run = net.simulate({"drive": trains}, steps=400)
    x, y, c, last = np.zeros(2), np.zeros(3), np.zeros(6), np.zeros(6)
    fired_a, fired_b = [], []
    for s in range(400):
        t = s * 1e-3
        a_spikes, b_spikes = np.nonzero(x > 0.5)[0], np.nonzero(y > 0.5)[0]
        fired_a += [(s, n) for n in a_spikes]
        fired_b += [(s, n) for n in b_spikes]
        for i in trains["index"][trains["step"] == s]:
            x += u[i * 2:i * 2 + 2]
        def event(k):                                    # the trace decays to the event
            c[k] *= np.exp(-(t - last[k]) / 0.01)
            last[k] = t
        for k in (i * 3 + j for i in a_spikes for j in range(3)):
            event(k)
            y[k % 3] += w[k]
            c[k] += 1
        for i in b_spikes:
            y += r[i * 3:i * 3 + 3]
        for k in (i * 3 + j for j in b_spikes for i in range(2)):
            event(k)
            w[k] += 0.01 * c[k]
        x[a_spikes] = 0
        y[b_spikes] = 0
    assert len(fired_a) > 20 and len(fired_b) > 5
    np.testing.assert_array_equal(np.stack(run.spikes["A"], axis=1), np.array(fired_a))
    np.testing.assert_array_equal(np.stack(run.spikes["B"], axis=1), np.array(fired_b))
    np.testing.assert_allclose(net.values["AB"]["w"][:, 0], w, rtol=1e-13)
    assert np.all(net.values["B"]["p"][np.unique(np.array(fired_b)[:, 1])] == [1.0, 0.0, 0.0])


def test_spike_buffers_grow_and_a_failed_call_changes_nothing(kernels):
    _, module = kernels
    net = module.Decay(seed=1)
    net.values["cell"]["y"][:] = 5.0                      # every neuron spikes at the first step
    before = {g: {k: v.copy() for k, v in d.items()} for g, d in net.values.items()}
    for bad in ({"record": {"x": np.array([[0]])}}, {"dt": 0.5, "duration": -1.0}, {"steps": 2 ** 41},
                {"inputs": {"drive": {"index": [[0], [0, 1]], "step": [1, 2]}}}):
        with pytest.raises(SimulationError):
            net.simulate(**{"steps": 10, **bad} if "duration" not in bad else bad)
    assert net.step == 0 and net.dt == 1e-4
    assert all(np.array_equal(net.values[g][k], before[g][k]) for g in before for k in before[g])
    net.values["S"]["w"] = np.zeros((1, 1))
    with pytest.raises(SimulationError, match=re.escape("values['S']['w']: expected a writeable float64 array of [6, 1]")):
        net.simulate(steps=1)
    net.values["S"]["w"] = before["S"]["w"].copy()
    drive = np.ones((3000, 2))                            # 2 spikes a step: the cells fire often
    run = net.simulate({"drive": drive}, steps=3000, record={"cell.y": [0]})
    assert len(run.spikes["cell"][0]) > 4 * 3               # past the first buffer of 4 a neuron
    assert np.all(np.diff(run.spikes["cell"][0]) >= 0)


@pytest.mark.parametrize("edit, words", [
    (("trace a: Scalar = 0 decays tau", "param tp: Scalar[s] = 0.02[s]\n        trace a: Scalar = 0 decays tp"),
     "decays with a time constant that is not a constant"),
    (("decays tau", "decays -tau"), "trace a decays with a time constant of -0.02 s"),
    (("        spike y > 0.3[m]\n", ""), "neurons cell resets but never spikes"),
    (("        spike y > 0.3[m]\n        reset {\n            y = 0[m]\n            x -= 0.1[m]\n        }\n", ""),
     "`on post` of synapses S acts on the spikes of cell, which never spikes"),
])
def test_more_network_errors_are_located(tmp_path, edit, words):
    with pytest.raises(PhgError, match=re.escape(words)):
        phg.loads(SOURCE.replace(*edit, 1), "bad.phg")


def test_phg_build_compiles_a_network(tmp_path, capsys):
    from phg.shell.cli import main

    path = tmp_path / "chain.phg"
    path.write_text(CHAIN)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    assert "compiling Chain: simulate ..." in printed.err + printed.out
    assert "(all proven; networks Chain)" in printed.out
