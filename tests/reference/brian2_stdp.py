"""Brian2's STDP example (Song, Miller & Abbott 2000), the reference phg's spiking models are
measured against (LANGUAGE §16).  Brian2 imports only with numpy <= 2.2, so this script runs in
an environment of its own, and what it writes is committed beside it:

    python3.11 -m venv brian && brian/bin/pip install brian2==2.9.0 'numpy<=2.2.6' cython matplotlib
    brian/bin/python tests/reference/brian2_stdp.py fixed     # brian2_stdp_fixed.npz
    brian/bin/python tests/reference/brian2_stdp.py song 1-64   # brian2_song.json, brian2_song_weights.npz

The network is Brian2's examples/synapses/STDP.py: one LIF neuron, tau_m dv/dt = ge (Ee - v) +
El - v, dge/dt = -ge/tau_e (method "euler"), threshold v > vt, reset v = vr; 1,000 inputs; pair
traces Apre, Apost (event-driven), on a pre spike ge += w, Apre += dApre, w = clip(w + Apost, 0,
gmax); on a post spike Apost += dApost, w = clip(w + Apre, 0, gmax); dt 0.1 ms.

fixed: the inputs are fixed spike trains (a SpikeGeneratorGroup: 1,000 inputs at 15 Hz for 2 s,
drawn with numpy's generator of seed 7, on the 0.1 ms grid), the initial weights drawn from the
same generator; written: the trains, the initial weights, the weights of synapses 0-7 after
every step, every weight at the end, the post spikes' steps.

song: the example as it is (Poisson inputs at 15 Hz, 100 s), seeds 1 to 8 or those given, Brian2's
Cython target; written: the fraction of weights below 0.05 gmax and above 0.95 gmax, the mean w /
gmax, the output rate over the last 10 s, the seconds each run took, and the final weights.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
from brian2 import (Hz, NeuronGroup, PoissonGroup, SpikeGeneratorGroup, SpikeMonitor, StateMonitor, Synapses,
                    defaultclock, ms, mV, prefs, run, second, seed, start_scope)
import brian2

HERE = Path(__file__).resolve().parent
N = 1000
TAUM, TAUPRE, TAUPOST, TAUE = 10 * ms, 20 * ms, 20 * ms, 5 * ms
EE, VT, VR, EL = 0 * mV, -54 * mV, -60 * mV, -74 * mV
GMAX = 0.01
DAPRE = 0.01 * GMAX
DAPOST = -0.01 * TAUPRE / TAUPOST * 1.05 * GMAX
DT = 0.1 * ms
NAMESPACE = dict(taum=TAUM, taupre=TAUPRE, taupost=TAUPOST, taue=TAUE, Ee=EE, vt=VT, vr=VR, El=EL, gmax=GMAX,
                 dApre=DAPRE, dApost=DAPOST)


def network(source):
    neurons = NeuronGroup(1, """dv/dt = (ge * (Ee-v) + El - v) / taum : volt
                                dge/dt = -ge / taue : 1""",
                          threshold="v>vt", reset="v = vr", method="euler", namespace=NAMESPACE)
    s = Synapses(source, neurons,
                 """w : 1
                    dApre/dt = -Apre / taupre : 1 (event-driven)
                    dApost/dt = -Apost / taupost : 1 (event-driven)""",
                 on_pre="""ge += w
                           Apre += dApre
                           w = clip(w + Apost, 0, gmax)""",
                 on_post="""Apost += dApost
                            w = clip(w + Apre, 0, gmax)""", namespace=NAMESPACE)
    s.connect()
    return neurons, s


def fixed(duration_s=2.0, rate_hz=15.0, watched=8):
    start_scope()
    defaultclock.dt = DT
    rng = np.random.default_rng(7)
    steps = int(round(duration_s / float(DT)))
    spikes = rng.random((steps, N)) < rate_hz * float(DT)
    step, index = np.nonzero(spikes)
    w0 = rng.random(N) * GMAX
    source = SpikeGeneratorGroup(N, index, step * DT)
    neurons, s = network(source)
    s.w = w0
    w_mon = StateMonitor(s, "w", record=list(range(watched)))
    post = SpikeMonitor(neurons)
    run(steps * DT)
    np.savez_compressed(HERE / "brian2_stdp_fixed.npz", dt=float(DT), steps=steps, spike_step=step.astype(np.int64),
                        spike_index=index.astype(np.int64), w0=w0, w_watched=np.asarray(w_mon.w),
                        w_end=np.asarray(s.w), post_step=np.round(np.asarray(post.t / DT)).astype(np.int64),
                        brian2=brian2.__version__)
    print(f"fixed: {len(step)} input spikes, {post.num_spikes} post spikes, mean w/gmax {np.mean(s.w) / GMAX:.4f}")


def song(seeds=tuple(range(1, 9)), duration=100 * second):
    prefs.codegen.target = "cython"
    rows, weights = [], {}
    for k in seeds:
        start_scope()
        defaultclock.dt = DT
        seed(k)
        source = PoissonGroup(N, rates=15 * Hz)
        neurons, s = network(source)
        s.w = "rand() * gmax"
        post = SpikeMonitor(neurons)
        begin = time.perf_counter()
        run(duration)
        seconds = time.perf_counter() - begin
        final = np.asarray(s.w) / GMAX
        last = np.asarray(post.t / second) >= float(duration / second) - 10
        rows.append({"seed": k, "low_fraction": float(np.mean(final < 0.05)),
                     "high_fraction": float(np.mean(final > 0.95)), "mean_w": float(np.mean(final)),
                     "rate_hz": float(np.sum(last) / 10.0), "seconds": seconds})
        weights[f"seed{k}"] = final
        print(json.dumps(rows[-1]))
    (HERE / "brian2_song.json").write_text(json.dumps({"brian2": brian2.__version__, "target": "cython",
                                                       "runs": rows}, indent=1) + "\n")
    np.savez_compressed(HERE / "brian2_song_weights.npz", **weights)


if __name__ == "__main__":
    if sys.argv[1] == "song" and len(sys.argv) > 2:          # seeds FIRST-LAST
        first, last = (int(x) for x in sys.argv[2].split("-"))
        song(tuple(range(first, last + 1)))
    else:
        {"fixed": fixed, "song": song}[sys.argv[1]]()
