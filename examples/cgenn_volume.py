"""CGENN's signed-volume network end to end: train examples/cgenn_volume.phg (O3CGMLP at the paper's
96 channels) to predict det(v0, v1, v2) / 10 from three random vectors, report its test MSE on
samples held apart against the zero predictor, and check numerically that the trained network's
output flips sign under reflections and is unchanged under rotations.

    python examples/cgenn_volume.py [--train 65536] [--test 16384] [--steps N] [--transforms 1000] [--seed 0]

The data are drawn as CGENN's own experiment draws them (three standard normal vectors, target
det / 10), and the training is its: Adam, learning rate 1e-3, batch 128 (the train block).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from signed_volume import equivariance, volumes

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=65536, help="training samples (the paper's)")
    ap.add_argument("--test", type=int, default=16384, help="test samples, held apart")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the train block's)")
    ap.add_argument("--transforms", type=int, default=1000, help="random rotations and reflections checked")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import phg
    program = phg.load(HERE / "cgenn_volume.phg")
    certificate = phg.check(program)
    claims = [o for o in certificate.obligations if o.kind in ("grade", "unit")]
    print(f"certificate: {sum(o.status == 'proven' for o in claims)} of {len(claims)} grade and unit claims proven, "
          f"among them {next(o.claim for o in claims if o.claim.startswith('volume'))}: "
          f"{next(o.status for o in claims if o.claim.startswith('volume'))}")
    symmetry = next(o for o in certificate.obligations if o.kind == "equivariance")
    print(f"certificate: {symmetry.claim}: {symmetry.status}")

    rng = np.random.default_rng(args.seed)
    v, v_test = rng.normal(size=(args.train, 3, 3)), rng.normal(size=(args.test, 3, 3))
    y, y_test = volumes(v), volumes(v_test)
    start = time.perf_counter()
    model = phg.build(program, progress=lambda *_: None).O3CGMLP(seed=args.seed)      # every kernel compiled now
    print(f"built in {time.perf_counter() - start:.1f} s (Numba caches the kernels: the next run loads them)")
    settings = model._training()["settings"]
    steps = args.steps if args.steps is not None else settings["steps"]
    start = time.perf_counter()
    history = model.fit({"v": v, "target": y[:, None]}, steps=steps) if steps else []
    seconds = time.perf_counter() - start
    count = sum(p.size for p in model.params.values())

    def predict(vs):
        return model.predict(v=vs)["volume"][:, 0]

    mse = float(np.mean((predict(v_test) - y_test) ** 2))
    trained = (f"training loss {history[0]:.3g} -> {history[-1]:.3g} in {seconds:.1f} s "
               f"({1e3 * seconds / steps:.2f} ms a step), " if steps else "untrained, ")
    print(f"phg O3CGMLP ({count:,} parameters, {steps} Adam steps of {settings['batch']} on {args.train:,} samples): "
          f"{trained}test MSE {mse:.3g} on {args.test:,} samples held apart (zero predictor {np.var(y_test):.3g})")

    return equivariance(predict, v_test[:args.transforms], rng)

if __name__ == "__main__":
    sys.exit(main())
