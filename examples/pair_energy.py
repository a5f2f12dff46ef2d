"""The pair-energy example end to end: fit examples/pair_energy.phg's springs to the energies of a
reference set of springs on random configurations of three atoms, then take the forces on the
atoms as minus the energy's gradient with respect to their positions (M.input_grad, the model's
generated vector-Jacobian product), and check them: against central differences of the energy,
and under random rotations and reflections (the forces turn with the atoms: F(Q x) = Q F(x))
and translations (they do not change).

    python examples/pair_energy.py [--samples 2048] [--seed 0]

The last line: force_fd_err=.. force_equivariance_err=.. fit_rmse=..
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# the reference springs (stiffness, rest length in m) of the bonds 01, 02, 12
STIFFNESS, REST = np.array([2.0, 1.0, 0.5]), np.array([1.0, 1.5, 1.2])


def reference_energy(x: np.ndarray) -> np.ndarray:
    """The reference springs' energy of configurations x [N, 3 atoms, 3]."""
    bonds = [(0, 1), (0, 2), (1, 2)]
    lengths = np.stack([np.linalg.norm(x[:, i] - x[:, j], axis=-1) for i, j in bonds], axis=-1)
    return ((lengths - REST) ** 2 * STIFFNESS).sum(-1)


def orthogonal(rng: np.random.Generator) -> np.ndarray:
    """A random element of O(3): a rotation, times a reflection half of the time."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if rng.random() < 0.5 else q @ np.diag([1.0, 1.0, -1.0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import phg

    model = phg.build(phg.load(HERE / "pair_energy.phg")).PairEnergy(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.samples, 3, 3))
    model.fit({"x": x, "target": reference_energy(x)})
    fitted = model.predict(x=x)["energy"][:, 0]
    print(f"fitted stiffness {np.round(model.params['k'], 3)}, rest lengths {np.round(model.params['r'], 3)} m")

    probe = x[:64]
    forces = -model.input_grad(x=probe, wrt="x")                   # [64, 3 atoms, 3]
    h, fd = 1e-6, np.zeros_like(probe)
    for index in np.ndindex(probe.shape[1:]):
        up, down = probe.copy(), probe.copy()
        up[(slice(None), *index)] += h
        down[(slice(None), *index)] -= h
        fd[(slice(None), *index)] = -(model.predict(x=up)["energy"] - model.predict(x=down)["energy"])[:, 0] / (2 * h)
    fd_err = float(np.abs(forces - fd).max())

    moved = 0.0
    for _ in range(100):
        q, shift = orthogonal(rng), rng.normal(size=3)
        turned = -model.input_grad(x=probe @ q.T + shift, wrt="x")
        moved = max(moved, float(np.abs(turned - forces @ q.T).max()))
    rmse = float(np.sqrt(np.mean((fitted - reference_energy(x)) ** 2)))
    print(f"force_fd_err={fd_err:.3g} force_equivariance_err={moved:.3g} fit_rmse={rmse:.3g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
