"""O3CGMLP (examples/cgenn_volume.phg) as a `phg.torch.Module` inside a PyTorch training step,
against its PyTorch port (bench/o3cgmlp.py) in eager mode, on the same threads and batches: one
step is zero_grad, the forward, the mean squared error and backward, the gradients left in .grad.

    python -m bench torch [C ...] [--batches 128,1024] [--accumulate exact|float|exact,float]

The wrapper's own cost is measured apart: the same step's kernels called directly (M.predict,
then M.vjp with the loss's cotangent, parameters only: the points need no gradient), and the
difference.  The losses of both networks at the same parameters are printed as a check that they
compute one function.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from .cgenn import WIDTH, copy_parameters, source
from .predict import best


def measure(widths, batches, accumulates) -> list[dict]:
    import numba
    import torch

    import phg
    import phg.torch as pt

    from . import o3cgmlp as port

    torch.set_num_threads(numba.get_num_threads())
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in widths:
            peer = port.O3CGMLP(hidden=c, seed=0)
            with torch.no_grad():                 # off the zero and unit initial values
                for p in peer.parameters():
                    p.add_(torch.from_numpy(rng.normal(0, 0.2, size=tuple(p.shape))))
            for accumulate in accumulates:
                src = Path(tmp) / f"cgenn_{c}_{accumulate}.phg"
                src.write_text(source(c, accumulate))
                model = phg.build(phg.load(src), Path(tmp) / f"build{c}{accumulate}").O3CGMLP(seed=0)
                copy_parameters(peer, model)
                layer = pt.Module(model)
                for n in batches:
                    v = rng.normal(size=(n, 3, 3))
                    target = np.linalg.det(v) / 10
                    pv, ptarget = torch.from_numpy(v), torch.from_numpy(target)

                    def wrapped():
                        layer.zero_grad(set_to_none=True)
                        loss = torch.mean((layer(v=pv)["volume"][:, 0] - ptarget) ** 2)
                        loss.backward()
                        return loss.item()

                    def direct():
                        out = model.predict(v=v)["volume"][:, 0]
                        model.vjp({"volume": (2.0 / n * (out - target))[:, None]}, v=v, wrt_inputs=False)

                    phg_loss, port_loss = wrapped(), port.loss_and_grad(peer, pv, ptarget)
                    grad = layer.params["W2"].grad.numpy().ravel()
                    rows.append({"channels": c, "accumulate": accumulate, "batch": n,
                                 "params": sum(a.size for a in model.params.values()),
                                 "phg": best(wrapped), "direct": best(direct),
                                 "torch": best(lambda: port.loss_and_grad(peer, pv, ptarget)),
                                 "losses": (phg_loss, port_loss), "grad_norm": float(np.linalg.norm(grad))})
    return rows


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench torch", description=__doc__.splitlines()[0])
    ap.add_argument("widths", nargs="*", type=int, default=[WIDTH])
    ap.add_argument("--batches", default="128,1024")
    ap.add_argument("--accumulate", default="exact,float")
    args = ap.parse_args(argv)
    import numba

    batches = [int(b) for b in args.batches.split(",")]
    rows = measure(args.widths, batches, args.accumulate.split(","))
    print(f"O3CGMLP as phg.torch.Module, one training step (forward, MSE, backward), {numba.get_num_threads()} threads")
    print(f"{'C':>4} {'sums':>6} {'params':>7} {'batch':>6} {'phg.torch ms':>13} {'kernels ms':>11} {'wrapper ms':>11} "
          f"{'eager ms':>9} {'eager/phg':>10}  losses (phg, port)")
    for r in rows:
        print(f"{r['channels']:>4} {r['accumulate']:>6} {r['params']:>7,} {r['batch']:>6} {1e3 * r['phg']:>13.2f} "
              f"{1e3 * r['direct']:>11.2f} {1e3 * (r['phg'] - r['direct']):>11.2f} {1e3 * r['torch']:>9.2f} "
              f"{r['torch'] / r['phg']:>9.2f}x  {r['losses'][0]:.6g}, {r['losses'][1]:.6g}")
    return 0
