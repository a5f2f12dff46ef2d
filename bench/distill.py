"""Priors distilled from a teacher (LANGUAGE §13): learning curves of rigid registration.

Each trial draws a rotation and a translation, n labelled samples (x standard normal, y = Q x +
t + noise of sigma 0.5 per coordinate) for each n of SIZES, and two teachers that get t right
and Q wrong by a rotation of 3 and of 30 degrees about a random axis.  Each teacher is
distilled on 500 unlabelled points (M.distill); then, at every n, the model is fitted from the
identity with no prior, and with each teacher's prior at scale "auto" (M.fit(data,
prior=prior): empirical Bayes).  Reported: the mean over trials of the rotation error (the
angle of Q_fit Q^T, radians) and of |t_fit - t|.

    python -m bench distill [--trials 50] [--png docs/distill-rigid.png]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZES = (3, 5, 10, 20, 50, 100)
NOISE = 0.5
UNLABELLED = 500
TEACHERS = {"teacher 3 degrees off": 3.0, "teacher 30 degrees off": 30.0}


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def fitted(m) -> tuple[np.ndarray, np.ndarray]:
    """(Q, t) of a RigidRegistration model, read through predict."""
    p = m.predict(x=np.vstack([np.zeros(3), np.eye(3)]))["p"]
    return (p[1:] - p[0]).T, p[0]


def errors(m, q: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    qf, tf = fitted(m)
    cos = np.clip((np.trace(qf @ q.T) - 1) / 2, -1.0, 1.0)
    return float(np.arccos(cos)), float(np.linalg.norm(tf - t))


def curves(trials: int) -> dict[str, np.ndarray]:
    """{condition: [trial, size, (rotation error, translation error)]}."""
    import phg

    module = phg.build(phg.load(ROOT / "examples" / "rigid_registration.phg"))
    cls = module.RigidRegistration
    out = {name: np.empty((trials, len(SIZES), 2)) for name in ("no prior", *TEACHERS)}
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        q = rotation(rng.normal(size=3), rng.uniform(0.2, 2.5))
        t = rng.normal(size=3)
        unlabelled = rng.normal(size=(UNLABELLED, 3))
        priors = {}
        for name, degrees in TEACHERS.items():
            off = rotation(rng.normal(size=3), np.deg2rad(degrees)) @ q
            priors[name] = cls(seed=0).distill(lambda d, off=off: {"p": d["x"] @ off.T + t}, {"x": unlabelled})
        for j, n in enumerate(SIZES):
            x = rng.normal(size=(n, 3))
            y = x @ q.T + t + NOISE * rng.normal(size=(n, 3))
            m = cls(seed=0)
            m.fit({"x": x, "y": y})
            out["no prior"][trial, j] = errors(m, q, t)
            for name, prior in priors.items():
                m = cls(seed=0)
                m.fit({"x": x, "y": y}, prior=prior)
                out[name][trial, j] = errors(m, q, t)
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench distill")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--png", type=Path, default=None)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    results = curves(args.trials)
    means = {k: v.mean(axis=0) for k, v in results.items()}
    print(f"rigid registration, label noise {NOISE}, {args.trials} trials, mean rotation error (rad) / "
          f"mean |t error| (m) by labelled samples n ({time.perf_counter() - start:.0f} s):\n")
    print("| condition | " + " | ".join(f"n = {n}" for n in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for name, m in means.items():
        print(f"| {name} | " + " | ".join(f"{r:.4f} / {e:.4f}" for r, e in m) + " |")
    none = means["no prior"][:, 0]
    good = means["teacher 3 degrees off"][:, 0]
    bad = means["teacher 30 degrees off"][:, 0]
    at = SIZES.index(20), SIZES.index(100)
    print(f"\n3 degrees, n = 20: {good[at[0]]:.4f} rad against {none[at[1]]:.4f} with no prior at n = 100 "
          f"({'reached' if good[at[0]] <= none[at[1]] else 'not reached'})")
    worst = float(np.max(bad / none - 1))
    print(f"30 degrees: at most {worst:+.1%} against no prior over every n "
          f"({'within' if worst <= 0.10 else 'beyond'} 10%)")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, m in means.items():
            ax.loglog(SIZES, m[:, 0], marker="o", label=name)
        ax.set_xlabel("labelled samples n")
        ax.set_ylabel("mean rotation error (rad)")
        ax.set_title(f"rigid registration, noise {NOISE}, {args.trials} trials")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)
    return 0
