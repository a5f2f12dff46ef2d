"""The PGA pose example end to end: make point correspondences of a random rigid motion with
noise, train examples/pga_pose.phg on them with `phg train` (a Motor of Cl(3, 0, 1), updated on
the motor manifold), show the certificate's proof that the motor stays a motor, and compare the
fitted motion with the least-squares optimum in closed form (Kabsch/Horn, by SVD).

    python examples/pga_pose.py [--samples 1024] [--noise 0.01] [--seed 0] [--out build]

writes OUT/pga_pose.npz (the correspondences) and OUT/pga_pose.params.npz.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# options, the closed form and the figures are shared with the rigid-registration example
from rigid_registration import arguments, report


def point_coordinates(moved: np.ndarray) -> np.ndarray:
    """x, y, z of PGA points given on the Trivector layout (e012, e013, e023, e123), the point
    being e123 + x e032 + y e013 + z e021 up to scale."""
    return np.column_stack([-moved[:, 2], moved[:, 1], -moved[:, 0]]) / moved[:, 3:4]


def main(argv: list[str] | None = None) -> int:
    args = arguments(__doc__, 1024, "b").parse_args(argv)

    rng = np.random.default_rng(args.seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    truth_r = q * np.sign(np.linalg.det(q))
    truth_t = rng.normal(size=3)
    a = rng.normal(size=(args.samples, 3))
    b = a @ truth_r.T + truth_t + rng.normal(0.0, args.noise, size=a.shape)

    import phg
    from phg.shell.cli import main as phg_cli
    source = HERE / "pga_pose.phg"
    cert = phg.check(phg.load(source))
    for o in cert.obligations:
        if o.kind == "update":
            print(f"certificate: {o.claim}: {o.status}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data, params = out / "pga_pose.npz", out / "pga_pose.params.npz"
    np.savez(data, a=a[:, :, None], b=b[:, :, None])          # Scalar channels: [N, 3, 1]
    code = phg_cli(["train", str(source), "--data", str(data), "-o", str(params)])
    if code:
        return code
    model = phg.build(phg.load(source)).PgaPose()
    model.params.update(dict(np.load(params)))
    # M ~M = 1 (the study condition included): the product in PGA, with phg's own tables.
    from phg import multivector as mv
    alg = phg.load(source).models["PgaPose"].algebra
    motor = mv.zero(alg)
    for name, c in zip(model.layout("M"), model.params["M"]):
        sign, mask = alg.parse_blade(name) if name != "1" else (1, 0)
        motor[mask] += sign * c
    unit = mv.product(alg, "gp", motor, mv.reverse(alg, motor))
    unit[0] -= 1
    print(f"fitted motor after training: max |M ~M - 1| = {np.abs(unit).max():.2g}")

    probe = np.vstack([np.zeros(3), np.eye(3)])
    moved = point_coordinates(model.predict(a=probe[:, :, None], b=probe[:, :, None])["moved"])
    fit_t, fit_r = moved[0], (moved[1:] - moved[0]).T
    report(fit_r, fit_t, a, b, truth_r, truth_t, args.noise)
    return 0


if __name__ == "__main__":
    sys.exit(main())
