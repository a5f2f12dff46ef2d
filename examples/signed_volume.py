"""The signed-volume example end to end: train examples/signed_volume.phg to predict det(v0, v1, v2)
/ 10 from three random vectors, report its test MSE beside a PyTorch MLP with the same number of
parameters trained on the same data, and check numerically that the trained model's output flips
sign under reflections and is unchanged under rotations.

    python examples/signed_volume.py [--train 4096] [--test 4096] [--transforms 1000] [--seed 0]

The MLP sees the 9 coordinates; it is trained with the same optimizer, learning rate, batch and
number of steps as the model's train block.  Without PyTorch installed its line says so and the
rest runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def volumes(v: np.ndarray) -> np.ndarray:
    """det(v0, v1, v2) / 10 of each sample of v [N, 3, 3] (rows are the vectors)."""
    return np.linalg.det(v) / 10


def random_orthogonal(rng, det: float) -> np.ndarray:
    """A Haar-random 3x3 orthogonal matrix with the given determinant (+1 rotation, -1 reflection)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) * det > 0 else -q


def mlp_widths(params: int) -> tuple[int, int]:
    """Two hidden widths (a, b) for a 9 -> a -> b -> 1 MLP with exactly `params` parameters
    (9a + a + ab + b + b + 1), the most balanced such pair."""
    fits = [(a, b) for a in range(1, params) for b in range(1, params) if 10 * a + a * b + 2 * b + 1 == params]
    if not fits:
        raise ValueError(f"no two-hidden-layer MLP has exactly {params} parameters")
    return min(fits, key=lambda ab: abs(ab[0] - ab[1]))


def train_mlp(x, y, x_test, y_test, params: int, lr: float, batch: int, steps: int, seed: int):
    """Test MSE of a 9 -> a -> b -> 1 tanh MLP with `params` parameters, trained by Adam on the
    same batches schedule (fresh order each epoch); None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None, None
    torch.manual_seed(seed)
    a, b = mlp_widths(params)
    net = torch.nn.Sequential(torch.nn.Linear(9, a), torch.nn.Tanh(), torch.nn.Linear(a, b), torch.nn.Tanh(),
                              torch.nn.Linear(b, 1)).double()
    assert sum(p.numel() for p in net.parameters()) == params
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x.reshape(len(x), 9)), torch.from_numpy(y[:, None])
    rng = np.random.default_rng(seed)
    order, per_epoch = rng.permutation(len(x)), -(-len(x) // batch)
    for k in range(steps):
        if k and k % per_epoch == 0:
            order = rng.permutation(len(x))
        idx = torch.from_numpy(order[(k % per_epoch) * batch:(k % per_epoch + 1) * batch])
        opt.zero_grad()
        loss = ((net(xt[idx]) - yt[idx]) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = net(torch.from_numpy(x_test.reshape(len(x_test), 9))).numpy()[:, 0]
    return float(np.mean((pred - y_test) ** 2)), (a, b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=4096, help="training samples")
    ap.add_argument("--test", type=int, default=4096, help="test samples")
    ap.add_argument("--transforms", type=int, default=1000, help="random rotations and reflections checked")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the train block's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import phg
    rng = np.random.default_rng(args.seed)
    v, v_test = rng.normal(size=(args.train, 3, 3)), rng.normal(size=(args.test, 3, 3))
    y, y_test = volumes(v), volumes(v_test)

    kernels = phg.build(phg.load(HERE / "signed_volume.phg"))
    model = kernels.SignedVolume(seed=args.seed)
    settings = model._training()["settings"]
    steps = args.steps if args.steps is not None else settings["steps"]
    history = model.fit({"v": v, "target": y[:, None]}, steps=steps) if steps else []
    count = sum(p.size for p in model.params.values())

    def predict(vs):
        return model.predict(v=vs)["volume"][:, 0]

    mse = float(np.mean((predict(v_test) - y_test) ** 2))
    trained = f"training loss {history[0]:.3g} -> {history[-1]:.3g}, " if steps else "untrained, "
    print(f"phg SignedVolume ({count} parameters, {steps} Adam steps of {settings['batch']}): {trained}"
          f"test MSE {mse:.3g}")
    mlp, widths = train_mlp(v, y, v_test, y_test, count, settings["hyper"]["lr"], settings["batch"], steps, args.seed)
    if mlp is None:
        print("PyTorch MLP: not run (PyTorch is not installed: pip install torch)")
    else:
        print(f"PyTorch MLP 9-{widths[0]}-{widths[1]}-1 ({count} parameters, the same data and schedule): "
              f"test MSE {mlp:.3g}")
    print(f"variance of the test target: {np.var(y_test):.3g}")

    return equivariance(predict, v_test[:args.transforms], rng)


def equivariance(predict, v: np.ndarray, rng) -> int:
    """Prints the largest deviation of predict(v) from O(3) equivariance over one random rotation
    and one random reflection per sample (the output must be det(Q) times the original); 0 when
    both are within 1e-9, else 1."""
    base = predict(v)
    worst = {}
    for det, name in ((1.0, "rotation"), (-1.0, "reflection")):
        qs = np.stack([random_orthogonal(rng, det) for _ in range(len(v))])
        moved = predict(np.einsum("kij,knj->kni", qs, v))
        worst[name] = float(np.max(np.abs(moved - det * base)))
    print(f"over {len(v)} random transforms: max |f(Qv) - f(v)| for rotations {worst['rotation']:.2g}, "
          f"max |f(Qv) + f(v)| for reflections {worst['reflection']:.2g} (bound 1e-9)")
    return 0 if max(worst.values()) <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
