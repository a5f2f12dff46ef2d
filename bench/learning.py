"""CGENN's signed-volume experiment, phg against its PyTorch port: O3CGMLP (examples/cgenn_volume.phg
and bench/o3cgmlp.py, the same network from the same initial parameters) trained with Adam
(lr 1e-3, batch 128) for the same number of steps on training sets of several sizes, drawn as
CGENN's data/o3.py draws them (three standard normal vectors, target det / 10), and tested on
16,384 samples held apart.  Prints test MSE per size for both, the zero predictor's floor
(the variance of the test targets) and each side's training time; with matplotlib, writes the
learning curves (log-log) to a PNG.

    python -m bench learning [--sizes 1024,4096,16384,65536] [--steps 4096] [--width 32]
                             [--accumulate float|exact] [--seeds 1,2,3] [--png learning.png]

Both sides start from the same initial parameters and see each epoch's batches in the same order
(one seed for both); with several seeds the curves are their means.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (1024, 4096, 16384, 65536)
STEPS = 4096
TEST = 16384


def run(sizes, steps: int, width: int, accumulate: str, seed: int = 1) -> list[dict]:
    """Both networks from the same initial parameters (the port's, drawn with `seed`), each epoch's
    batches in the same order (phg's train block seed and the port's shuffle both `seed`)."""
    import numba
    import torch

    import phg

    from . import o3cgmlp as port
    from .cgenn import copy_parameters, source
    torch.set_num_threads(numba.get_num_threads())
    test_points, test_target = port.o3_data(TEST, seed=2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "cgenn_volume.phg"
        src.write_text(source(width, accumulate).replace("    seed 1\n", f"    seed {seed}\n"))
        kernels = phg.build(phg.load(src), Path(tmp) / "build", progress=lambda *_: None)
        assert kernels.O3CGMLP.SPEC["train"]["settings"]["seed"] == seed
        for n in sizes:
            points, target = port.o3_data(n, seed=1)
            peer = port.O3CGMLP(hidden=width, seed=seed)
            model = kernels.O3CGMLP(seed=0)
            copy_parameters(peer, model)
            start = time.perf_counter()
            model.fit({"v": points.numpy(), "target": target.numpy()[:, None]}, steps=steps, batch=128)
            phg_s = time.perf_counter() - start
            start = time.perf_counter()
            port.train(peer, points, target, steps=steps, batch=128, lr=1e-3, seed=seed)
            torch_s = time.perf_counter() - start
            ours = model.predict(v=test_points.numpy())["volume"][:, 0]
            rows.append({"n": n, "seed": seed, "phg": float(np.mean((ours - test_target.numpy()) ** 2)),
                         "torch": port.test_mse(peer, test_points, test_target), "phg_s": phg_s, "torch_s": torch_s})
    return rows


def plot(rows, floor: float, path: str, title: str = "O3CGMLP, signed volume") -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n = [r["n"] for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.loglog(n, [r["phg"] for r in rows], "o-", label="phg")
    ax.loglog(n, [r["torch"] for r in rows], "s--", label="PyTorch port")
    ax.axhline(floor, color="grey", lw=0.8, label="zero predictor")
    ax.set_xlabel("training samples")
    ax.set_ylabel("test MSE")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def main(argv: list[str]) -> int:
    import numba

    from . import o3cgmlp as port
    sizes, steps, width, accumulate, png, seeds = SIZES, STEPS, 32, "float", None, (1,)
    for i, a in enumerate(argv):
        if a == "--sizes":
            sizes = tuple(int(s) for s in argv[i + 1].split(","))
        elif a == "--steps":
            steps = int(argv[i + 1])
        elif a == "--width":
            width = int(argv[i + 1])
        elif a == "--accumulate":
            accumulate = argv[i + 1]
        elif a == "--png":
            png = argv[i + 1]
        elif a == "--seeds":
            seeds = tuple(int(s) for s in argv[i + 1].split(","))
    rows = [r for seed in seeds for r in run(sizes, steps, width, accumulate, seed)]
    floor = float(port.o3_data(TEST, seed=2)[1].var())
    print(f"O3CGMLP at {width} channels, Adam lr 1e-3, batch 128, {steps} steps, accumulate {accumulate}, "
          f"{numba.get_num_threads()} threads; test on {TEST:,} samples; zero predictor {floor:.4f}; "
          f"both sides from the same initial parameters, batches in the same order (seed {', '.join(map(str, seeds))})")
    print("| training samples | seed | phg test MSE | PyTorch test MSE | phg / PyTorch | phg train s | PyTorch train s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['seed']} | {r['phg']:.2e} | {r['torch']:.2e} | {r['phg'] / r['torch']:.2f} | "
              f"{r['phg_s']:.1f} | {r['torch_s']:.1f} |")
    means = [{"n": n, "phg": float(np.mean([r["phg"] for r in rows if r["n"] == n])),
              "torch": float(np.mean([r["torch"] for r in rows if r["n"] == n]))} for n in sizes]
    if len(seeds) > 1:
        print("mean over seeds: " + ", ".join(f"{m['n']:,}: {m['phg'] / m['torch']:.2f}" for m in means))
    if png:
        title = f"O3CGMLP, signed volume: {width} channels,\n{steps:,} Adam steps of 128, seeds {', '.join(map(str, seeds))}"
        print(f"learning curves: {png}" if plot(means, floor, png, title) else "learning curves: matplotlib is not installed")
    return 0
