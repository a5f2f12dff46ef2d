"""Spike-timing-dependent plasticity (Song, Miller & Abbott 2000) in phg: examples/song_stdp.phg,
Brian2's STDP example, simulated for 100 s of 1,000 Poisson inputs at 15 Hz.

    python examples/song_stdp.py [--seed 1] [--duration 100] [--png docs/song-stdp.png]

Ends with `low_fraction=.. high_fraction=.. rate_hz=.. seconds=..`: the fraction of weights
below 0.05 gmax and above 0.95 gmax at the end, the neuron's rate over the last 10 s and the
seconds the simulation took (its kernel compiled beforehand).  With --png, the weights'
histogram beside Brian2's (tests/reference/brian2_song_weights.npz, made by
tests/reference/brian2_stdp.py) is saved there.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import phg
from phg.spikes import poisson

HERE = Path(__file__).resolve().parent
GMAX = 0.01
RATE = 15.0


def run(seed: int, duration: float, module=None) -> dict:
    """One simulation: the weights at the end (w / gmax), the statistics and the seconds it took."""
    module = module or phg.build(phg.load(HERE / "song_stdp.phg"))
    warm = module.Song(seed=seed)
    warm.simulate(steps=10)                       # compiled (or loaded from Numba's cache) outside the timing
    net = module.Song(seed=seed)
    start = time.perf_counter()
    trains = poisson(1000, RATE, net.dt, duration=duration, seed=seed)
    result = net.simulate({"pre": trains}, duration=duration)
    seconds = time.perf_counter() - start
    w = net.values["S"]["w"][:, 0] / GMAX
    return {"w": w, "low_fraction": float(np.mean(w < 0.05)), "high_fraction": float(np.mean(w > 0.95)),
            "mean_w": float(np.mean(w)), "rate_hz": result.rate("post", since=duration - 10.0), "seconds": seconds}


def histogram(path: Path, phg_w: np.ndarray, seed: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = np.load(HERE.parent / "tests" / "reference" / "brian2_song_weights.npz")
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
    for ax, (title, w) in zip(axes, ((f"phg, seed {seed}", phg_w),
                                     (f"Brian2 2.9.0, seed {seed}", reference.get(f"seed{seed}",
                                                                                  reference[reference.files[0]])))):
        ax.hist(w, bins=20, range=(0, 1), color="0.3")
        ax.set_title(title)
        ax.set_xlabel("w / gmax")
    axes[0].set_ylabel("synapses")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=100.0, help="seconds of simulated time")
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args()
    out = run(args.seed, args.duration)
    if args.png:
        histogram(args.png, out["w"], args.seed)
    print(f"mean w/gmax {out['mean_w']:.3f}")
    print(f"low_fraction={out['low_fraction']:.3f} high_fraction={out['high_fraction']:.3f} "
          f"rate_hz={out['rate_hz']:.1f} seconds={out['seconds']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
