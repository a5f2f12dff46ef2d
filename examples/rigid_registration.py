"""The rigid-registration example end to end: make correspondences of a random rigid motion with
noise, train examples/rigid_registration.phg on them with `phg train`, and compare the fitted
motion with the least-squares optimum in closed form (Kabsch/Horn, by SVD).

    python examples/rigid_registration.py [--samples 4096] [--noise 0.01] [--seed 0] [--out build]

writes OUT/rigid_registration.npz (the correspondences) and OUT/rigid_registration.params.npz.

With as many samples as the train block's batch (4096), every step sees the whole data set, so
training converges to the optimum itself, not to a neighbourhood of it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def rotor_matrix(r) -> np.ndarray:
    """The rotation x -> R x ~R of the rotor R = s + a e12 + b e13 + c e23, as a matrix."""
    s, a, b, c = r
    return np.array([[s * s - a * a - b * b + c * c, 2 * (s * a - b * c), 2 * (s * b + a * c)],
                     [-2 * (s * a + b * c), s * s - a * a + b * b - c * c, 2 * (s * c - a * b)],
                     [2 * (a * c - s * b), -2 * (s * c + a * b), s * s + a * a - b * b - c * c]])


def kabsch(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation Q and translation t minimising the mean of |Q x + t - y|^2."""
    mx, my = x.mean(0), y.mean(0)
    u, _, vt = np.linalg.svd((y - my).T @ (x - mx))
    d = np.sign(np.linalg.det(u @ vt))
    q = u @ np.diag([1.0, 1.0, d]) @ vt
    return q, my - q @ mx


def angle_between(p: np.ndarray, q: np.ndarray) -> float:
    """The angle of the rotation p^T q, from |p - q|_F = 2 sqrt(2) sin(angle / 2) (accurate near 0,
    where the arccos of the trace is not)."""
    return float(2 * np.arcsin(min(1.0, np.linalg.norm(p - q) / (2 * np.sqrt(2)))))


def report(fit_r, fit_t, x, y, truth_r, truth_t, noise: float) -> None:
    """The fitted motion's distance to the least-squares optimum and to the true motion."""
    opt_r, opt_t = kabsch(x, y)
    print(f"fitted vs Kabsch optimum: rotation {angle_between(fit_r, opt_r):.3g} rad, "
          f"translation {np.abs(fit_t - opt_t).max():.3g} m")
    print(f"fitted vs the true motion: rotation {angle_between(fit_r, truth_r):.3g} rad, "
          f"translation {np.abs(fit_t - truth_t).max():.3g} m (noise {noise:g} m on {len(x)} samples)")


def arguments(doc: str, samples: int, target: str) -> argparse.ArgumentParser:
    """The options of the correspondence examples (this one and pga_pose)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--samples", type=int, default=samples)
    ap.add_argument("--noise", type=float, default=0.01, help=f"standard deviation of the noise on {target}, in m")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="build", help="directory for the data and the fitted parameters")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, 4096, "y").parse_args(argv)

    rng = np.random.default_rng(args.seed)
    q = rng.normal(size=4)
    truth_r, truth_t = rotor_matrix(q / np.linalg.norm(q)), rng.normal(size=3)
    x = rng.normal(size=(args.samples, 3))
    y = x @ truth_r.T + truth_t + rng.normal(0.0, args.noise, size=x.shape)

    from phg.shell.cli import main as phg
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, params = out / "rigid_registration.npz", out / "rigid_registration.params.npz"
    np.savez(data, x=x, y=y)
    code = phg(["train", str(HERE / "rigid_registration.phg"), "--data", str(data), "-o", str(params)])
    if code:
        return code
    fitted = dict(np.load(params))
    fit_r, fit_t = rotor_matrix(fitted["R"]), fitted["t"]
    report(fit_r, fit_t, x, y, truth_r, truth_t, args.noise)
    return 0


if __name__ == "__main__":
    sys.exit(main())
