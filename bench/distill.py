"""Priors distilled from a teacher (LANGUAGE §13): learning curves of rigid registration.

Each trial draws a rotation and a translation, n labelled samples (x standard normal, y = Q x +
t + noise of sigma 0.5 per coordinate) for each n of SIZES, and two teachers that get t right
and Q wrong by a rotation of 3 and of 30 degrees about a random axis.  Each teacher is
distilled on 500 unlabelled points (M.distill); then, at every n, the model is fitted from the
identity with no prior, and from the teacher's distilled parameters (where M.distill leaves
them) with its prior at scale "auto" (M.fit(data, prior=prior): empirical Bayes).  Reported: the mean over trials of the rotation error (the
angle of Q_fit Q^T, radians) and of |t_fit - t|.

The signed-volume network (examples/signed_volume.phg) with a teacher that is a PyTorch MLP
(9-64-64-1, tanh) trained on 16,384 samples: the test MSE of the model fitted on n exact labels
with no prior, and with the prior distilled from the MLP on 2,048 unlabelled samples (scale
"auto"), mean over VOLUME_TRIALS draws of the labelled set.

The same empirical Bayes on the linear-Gaussian form of rigid registration (--linear-trials):
the fit without the prior a Gaussian about the truth in 3 rotation and 3 translation
coordinates, of the spread the no-prior curve has at n = 100 (0.059 rad mean error), scaled by
1/sqrt(n); the teacher's rotation off by 3 degrees; the prior's scale the evidence's maximum
(the shrinkage min(1, k / |z|^2) over the coordinates the conflict check keeps, as phg.evidence
pools them); against the best fixed shrinkage, which would have to know the teacher's error.

    python -m bench distill [--trials 50] [--png docs/distill-rigid.png] [--volume-trials 3] [--linear-trials 20000]
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
                m.params = prior.mean                 # where distill leaves the model
                m.fit({"x": x, "y": y}, prior=prior)
                out[name][trial, j] = errors(m, q, t)
    return out


VOLUME_SIZES = (16, 64, 256)
VOLUME_TEST = 4096


def mlp_teacher(seed: int = 0, samples: int = 16_384, steps: int = 4000):
    """A 9-64-64-1 tanh MLP trained by Adam (lr 1e-3, batch 256) on det(v) / 10, as a teacher
    {"v": [N, 3, 3]} -> {"volume": [N, 1]}, and its test MSE; None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None, None
    from examples.signed_volume import volumes
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(samples, 3, 3))
    x, y = torch.from_numpy(v.reshape(samples, 9)), torch.from_numpy(volumes(v)[:, None])
    net = torch.nn.Sequential(torch.nn.Linear(9, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
                              torch.nn.Linear(64, 1)).double()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = torch.from_numpy(rng.integers(0, samples, 256))
        opt.zero_grad()
        loss = ((net(x[idx]) - y[idx]) ** 2).mean()
        loss.backward()
        opt.step()

    def teacher(d):
        with torch.no_grad():
            return {"volume": net(torch.from_numpy(d["v"].reshape(len(d["v"]), 9))).numpy()}
    test = np.random.default_rng(seed + 1).normal(size=(VOLUME_TEST, 3, 3))
    return teacher, float(np.mean((teacher({"v": test})["volume"][:, 0] - volumes(test)) ** 2))


def volume_curves(trials: int) -> dict | None:
    """{condition: [trial, size] test MSE}, and the teacher's own test MSE; None without PyTorch."""
    import phg
    from examples.signed_volume import volumes

    teacher, teacher_mse = mlp_teacher()
    if teacher is None:
        return None
    cls = phg.build(phg.load(ROOT / "examples" / "signed_volume.phg")).SignedVolume
    rng = np.random.default_rng(100)
    test = rng.normal(size=(VOLUME_TEST, 3, 3))
    truth = volumes(test)
    out = {"no prior": np.empty((trials, len(VOLUME_SIZES))), "MLP teacher's prior": np.empty((trials, len(VOLUME_SIZES)))}
    for trial in range(trials):
        prior = cls(seed=trial).distill(teacher, {"v": rng.normal(size=(2048, 3, 3))})
        for j, n in enumerate(VOLUME_SIZES):
            v = rng.normal(size=(n, 3, 3))
            data = {"v": v, "target": volumes(v)[:, None]}
            for name, p in (("no prior", None), ("MLP teacher's prior", prior)):
                m = cls(seed=trial)
                if p is not None:
                    m.params = p.mean
                m.fit(data, prior=p)
                out[name][trial, j] = float(np.mean((m.predict(v=test)["volume"][:, 0] - truth) ** 2))
    return out, teacher_mse


def linear_gaussian(trials: int, n: int = 20, degrees: float = 3.0, seed: int = 0) -> dict[str, float]:
    """Mean rotation error (rad) at n labels: no prior, the evidence's shrinkage, the best fixed one."""
    from scipy.stats import chi2

    rng = np.random.default_rng(seed)
    spread = 0.059 / 1.5957691216057308 * np.sqrt(100)     # the mean of a 3-d chi is 1.596 sigma
    sigma = spread / np.sqrt(n)
    axis = rng.normal(size=(trials, 3))
    truth = np.zeros((trials, 6))
    truth[:, :3] = axis / np.linalg.norm(axis, axis=1, keepdims=True) * np.deg2rad(degrees) / sigma
    z = truth + rng.normal(size=(trials, 6))              # the fit without the prior, whitened
    parts = (slice(0, 3), slice(3, 6))
    squares = [np.sum(z[:, p] ** 2, axis=1) for p in parts]
    kept = [s <= chi2.ppf(0.999, 3) for s in squares]
    pooled = sum(np.where(k, s, 0.0) for k, s in zip(kept, squares))
    count = sum(np.where(k, 3, 0) for k in kept)
    shrink = np.where(kept[0], np.minimum(1.0, count / np.maximum(pooled, 1e-300)), 0.0)

    def error(b):
        return float(np.mean(np.linalg.norm((1 - np.asarray(b).reshape(-1, 1)) * z[:, :3] - truth[:, :3], axis=1)) * sigma)
    best = min(error(np.full(trials, b)) for b in np.linspace(0.0, 1.0, 101))
    return {"no prior": error(np.zeros(trials)), "evidence": error(shrink), "best fixed shrinkage": best}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench distill")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--volume-trials", type=int, default=3)
    ap.add_argument("--linear-trials", type=int, default=0)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if args.linear_trials:
        at = linear_gaussian(args.linear_trials)
        print(f"linear-Gaussian rigid registration, teacher 3 degrees off, n = 20, {args.linear_trials} trials, mean "
              "rotation error (rad): " + ", ".join(f"{k} {v:.4f}" for k, v in at.items()) + "\n")
    if args.volume_trials:
        done = volume_curves(args.volume_trials)
        if done is None:
            print("signed volume: not run (PyTorch is not installed: pip install torch)\n")
        else:
            results, teacher_mse = done
            print(f"signed volume, exact labels, teacher: PyTorch MLP 9-64-64-1 on 16,384 samples (its test MSE "
                  f"{teacher_mse:.3g}), {args.volume_trials} trials, mean test MSE by labelled samples n "
                  f"({time.perf_counter() - start:.0f} s):\n")
            print("| condition | " + " | ".join(f"n = {n}" for n in VOLUME_SIZES) + " |")
            print("|---|" + "---|" * len(VOLUME_SIZES))
            for name, r in results.items():
                print(f"| {name} | " + " | ".join(f"{x:.3g}" for x in r.mean(axis=0)) + " |")
            print()
        start = time.perf_counter()
    if not args.trials:
        return 0
    results = curves(args.trials)
    means = {k: v.mean(axis=0) for k, v in results.items()}
    medians = {k: np.median(v, axis=0) for k, v in results.items()}
    print(f"rigid registration, label noise {NOISE}, {args.trials} trials, mean rotation error (rad) / "
          f"mean |t error| (m) by labelled samples n ({time.perf_counter() - start:.0f} s):\n")
    print("| condition | " + " | ".join(f"n = {n}" for n in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for name, m in means.items():
        print(f"| {name} | " + " | ".join(f"{r:.4f} / {e:.4f}" for r, e in m) + " |")
    print("\nmedians of the rotation error (rad):\n")
    print("| condition | " + " | ".join(f"n = {n}" for n in SIZES) + " |")
    print("|---|" + "---|" * len(SIZES))
    for name, m in medians.items():
        print(f"| {name} | " + " | ".join(f"{r:.4f}" for r, _ in m) + " |")
    at = SIZES.index(20), SIZES.index(100)
    for what, table in (("mean", means), ("median", medians)):
        none = table["no prior"][:, 0]
        good = table["teacher 3 degrees off"][:, 0]
        bad = table["teacher 30 degrees off"][:, 0]
        worst = float(np.max(bad / none - 1))
        print(f"\n{what}: 3 degrees, n = 20: {good[at[0]]:.4f} rad against {none[at[1]]:.4f} with no prior at "
              f"n = 100 ({'reached' if good[at[0]] <= none[at[1]] else 'not reached'}); 30 degrees: at most "
              f"{worst:+.1%} against no prior over every n ({'within' if worst <= 0.10 else 'beyond'} 10%)")
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
