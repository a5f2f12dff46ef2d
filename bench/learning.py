"""CGENN's signed-volume experiment, phg against its PyTorch port: O3CGMLP (examples/cgenn_volume.phg
and bench/o3cgmlp.py, the same network from the same initial parameters) trained with Adam
(lr 1e-3, batch 128) for the same number of steps on training sets of several sizes, drawn as
CGENN's data/o3.py draws them (three standard normal vectors, target det / 10), and tested on
16,384 samples held apart.  Prints test MSE per size for both, the zero predictor's floor
(the variance of the test targets) and each side's training time; with matplotlib, writes the
learning curves (log-log) to a PNG.

    python -m bench learning [--sizes 1024,4096,16384,65536] [--steps 4096] [--width 32]
                             [--accumulate float|exact] [--png learning.png]
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (1024, 4096, 16384, 65536)
STEPS = 4096
TEST = 16384


def run(sizes, steps: int, width: int, accumulate: str) -> list[dict]:
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
        src.write_text(source(width, accumulate))
        kernels = phg.build(phg.load(src), Path(tmp) / "build", progress=lambda *_: None)
        for n in sizes:
            points, target = port.o3_data(n, seed=1)
            peer = port.O3CGMLP(hidden=width, seed=0)
            model = kernels.O3CGMLP(seed=0)
            copy_parameters(peer, model)
            start = time.perf_counter()
            model.fit({"v": points.numpy(), "target": target.numpy()[:, None]}, steps=steps, batch=128)
            phg_s = time.perf_counter() - start
            start = time.perf_counter()
            port.train(peer, points, target, steps=steps, batch=128, lr=1e-3, seed=0)
            torch_s = time.perf_counter() - start
            ours = model.predict(v=test_points.numpy())["volume"][:, 0]
            rows.append({"n": n, "phg": float(np.mean((ours - test_target.numpy()) ** 2)),
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
    sizes, steps, width, accumulate, png = SIZES, STEPS, 32, "float", None
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
    rows = run(sizes, steps, width, accumulate)
    floor = float(port.o3_data(TEST, seed=2)[1].var())
    print(f"O3CGMLP at {width} channels, Adam lr 1e-3, batch 128, {steps} steps, accumulate {accumulate}, "
          f"{numba.get_num_threads()} threads; test on {TEST:,} samples; zero predictor {floor:.4f}")
    print("| training samples | phg test MSE | PyTorch test MSE | phg / PyTorch | phg train s | PyTorch train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['phg']:.2e} | {r['torch']:.2e} | {r['phg'] / r['torch']:.2f} | {r['phg_s']:.1f} | "
              f"{r['torch_s']:.1f} |")
    if png:
        title = f"O3CGMLP, signed volume: {width} channels, {steps:,} Adam steps of 128"
        print(f"learning curves: {png}" if plot(rows, floor, png, title) else "learning curves: matplotlib is not installed")
    return 0
