"""Grade-preserving STDP on a rotor synapse: examples/rotor_stdp.phg learns a rotation from
spike-timed vector pairs.

    python examples/rotor_stdp.py [--pairs 1500] [--seed 0]

Every 100 ms a pre spike carries a random unit vector x (in m); 2 to 10 ms later a post spike
carries y = R* x + noise (0.05 m per coordinate), R* a random rotation.  At each post spike the
synapse turns R a ~R towards y (a the pre trace), by the exponential of a bivector, so R stays
a rotor whatever the noise.  Beside it, the same rule on a free 3x3 matrix W, as a matrix takes
it: W <- W + eta (y (W a)^T - (W a) y^T) W (the exponential's first order, the same step bound),
whose drift from a rotation, |W^T W - I|, grows.

Ends with `angle_deg=.. rotor_norm_err=..`: the angle between the learned rotation and R*, and
|R ~R - 1|.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import phg

HERE = Path(__file__).resolve().parent
PERIOD, DT = 0.1, 1e-4
ETA, MOST, TAU = 0.05, 0.05, 0.02


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def rotor_matrix(r: np.ndarray) -> np.ndarray:
    """The rotation x -> R x ~R of R = s + a e12 + b e13 + c e23 (phg's layout 1, e12, e13, e23)."""
    return np.column_stack([_sandwich(r, e) for e in np.eye(3)])


def _sandwich(r, v):
    s, a, b, c = r
    # R v ~R for a vector v, expanded in G3
    x, y, z = v
    p1 = s * x + a * y + b * z          # (R v) grade 1
    p2 = s * y - a * x + c * z
    p3 = s * z - b * x - c * y
    t = a * z - b * y + c * x           # (R v) grade 3 (e123)
    return np.array([p1 * s + p2 * a + p3 * b + t * c,
                     -p1 * a + p2 * s + p3 * c - t * b,
                     -p1 * b - p2 * c + p3 * s + t * a])


def angle(p: np.ndarray, q: np.ndarray) -> float:
    return float(2 * np.arcsin(min(1.0, np.linalg.norm(p - q) / (2 * np.sqrt(2)))))


def pairs(count: int, truth: np.ndarray, rng) -> tuple[dict, dict]:
    x = rng.normal(size=(count, 3))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = x @ truth.T + 0.05 * rng.normal(size=(count, 3))
    pre = np.round(np.arange(count) * PERIOD / DT).astype(np.int64)
    post = pre + rng.integers(20, 101, size=count)                  # 2 to 10 ms later
    zero = np.zeros(count, np.int64)
    return {"index": zero, "step": pre, "x": x}, {"index": zero, "step": post, "y": y}


def matrix_rule(pre: dict, post: dict) -> np.ndarray:
    """The same rule on a free matrix, event by event (the trace a as the synapse keeps it)."""
    w, a, last = np.eye(3), np.zeros(3), 0.0
    events = sorted([(s, 0, v) for s, v in zip(pre["step"], pre["x"])] +
                    [(s, 1, v) for s, v in zip(post["step"], post["y"])], key=lambda e: (e[0], e[1]))
    for step, side, v in events:
        t = step * DT
        a = a * np.exp(-(t - last) / TAU)
        last = t
        if side == 0:
            a = a + v
            continue
        u = w @ a
        g = ETA * (np.outer(v, u) - np.outer(u, v))           # y ^ (W a) as a skew matrix
        size = np.linalg.norm(g) / np.sqrt(2)                 # its bivector norm
        g *= MOST / (MOST + max(size - MOST, 0.0))
        w = w + g @ w
    return w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    truth = rotation(rng.normal(size=3), rng.uniform(0.5, 2.5))
    pre, post = pairs(args.pairs, truth, rng)
    module = phg.build(phg.load(HERE / "rotor_stdp.phg"))
    net = module.RotorSTDP()
    net.simulate({"pre": pre, "post": post}, steps=int(post["step"].max()) + 1)
    r = net.values["S"]["R"][0]
    norm = abs(float(r @ r) - 1.0)                         # R ~R = s^2 + a^2 + b^2 + c^2 for an even R in G3
    w = matrix_rule(pre, post)
    print(f"free matrix, same rule: |W^T W - I| = {np.linalg.norm(w.T @ w - np.eye(3)):.3g}, "
          f"angle to R* {np.degrees(angle(np.linalg.qr(w)[0] * np.sign(np.diag(np.linalg.qr(w)[1])), truth)):.2f} deg")
    print(f"angle_deg={np.degrees(angle(rotor_matrix(r), truth)):.3f} rotor_norm_err={norm:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
