"""optimizer cma (LANGUAGE §12) against pycma, in one run:

- the 10-D sphere, ellipsoid and Rosenbrock written as phg models (ten Scalar parameters,
  x0 = 0.1, sigma0 = 0.3): the median over 11 seeds of the evaluations to f <= 1e-8, phg's
  (M.step until then) beside pycma's on the same functions in numpy;
- rigid registration (a G3 rotor and a translation) and the PGA pose example (a motor) from the
  identity, against the closed-form optimum (Kabsch), with max |R ~R - 1| over every generation;
- a robust registration: 30% outliers and a loss truncated at 0.1 m^2 (its gradient zero beyond),
  from the identity on 8 data sets, adam (lr 0.05) and cma (sigma 1, population 16), 200 steps
  or generations each: how often each finds the inliers' motion (rotation within 0.01);
- speed: evaluations per second at batches 256, 1,024 and 4,096 of rigid registration (fused) and
  the signed-volume network (the loop plan) by the population kernel (one call a generation), by a
  training pass per candidate (what M.loss runs), and by pycma driving M.loss.

    python -m bench cma [--seeds 11]
"""
from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {
    "sphere": (lambda x: float(np.sum(x * x)), [f"x{i} * x{i}" for i in range(10)]),
    "ellipsoid": (lambda x: float(np.sum(10.0 ** (6 * np.arange(10) / 9) * x * x)),
                  [f"{10.0 ** (6 * i / 9)!r} * x{i} * x{i}" for i in range(10)]),
    "rosenbrock": (lambda x: float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)),
                   [f"100 * (x{i + 1} - x{i} * x{i}) * (x{i + 1} - x{i} * x{i}) + (1 - x{i}) * (1 - x{i})"
                    for i in range(9)]),
}


def _models(seeds: int) -> str:
    params = "".join(f"    param x{i}: Scalar = 0.1\n" for i in range(10))
    out = ["algebra G3 = Cl(3, 0, 0)\n"]
    for name, (_, terms) in FUNCTIONS.items():
        for s in range(seeds):
            model = f"{name.title()}{s}"
            out.append(f"model {model} on G3 {{\n{params}    loss {' + '.join(terms)}\n}}\n"
                       f"train {model} {{\n    optimizer cma(sigma = 0.3)\n    seed {s}\n}}\n")
    return "\n".join(out)


def pycma_evaluations(f, seed: int, limit: int = 30000) -> int:
    """pycma's evaluations to f <= 1e-8 from x0 = 0.1 (10-D), sigma0 = 0.3, its seed `seed + 1`."""
    import cma
    es = cma.CMAEvolutionStrategy(10 * [0.1], 0.3, {"seed": seed + 1, "verbose": -9, "tolfun": 0, "tolx": 0,
                                                   "tolfunhist": 0, "tolflatfitness": 1000, "maxfevals": limit})
    while not es.stop():
        xs = es.ask()
        losses = [f(np.asarray(x)) for x in xs]
        es.tell(xs, losses)
        if min(losses) <= 1e-8:
            return es.countevals
    return limit


def functions(tmp: str, seeds: int) -> list[tuple[str, float, float]]:
    import phg
    module = phg.build(phg.loads(_models(seeds), filename=f"{tmp}/functions.phg"), f"{tmp}/functions")
    rows = []
    for name, (f, _) in FUNCTIONS.items():
        ours = []
        for s in range(seeds):
            m = getattr(module, f"{name.title()}{s}")()
            while m.step() > 1e-8 and m.search["evaluations"] < 30000:
                pass
            ours.append(m.search["evaluations"])
        rows.append((name, float(np.median(ours)), float(np.median([pycma_evaluations(f, s) for s in range(seeds)]))))
    return rows


def _cma_source(example: str, sigma: float, steps: int) -> str:
    text = (ROOT / "examples" / example).read_text()
    text = re.sub(r"optimizer \w+\([^)]*\)", f"optimizer cma(sigma = {sigma})", text)
    return re.sub(r"steps \d+", f"steps {steps}", text)


def _versor_error(m, name: str) -> float:
    """max |V ~V - 1| of a Rotor or Motor parameter (every component of V ~V: the norm and, for a
    motor, the study condition), from the model's own table of V ~V's terms."""
    from phg.codegen.parameters import norm_arrays
    terms, target = norm_arrays(m.SPEC["params"][name]["norm"])
    v = m.params[name].reshape(-1)
    got = np.zeros(len(target))
    for i, j, k, sign in terms:
        got[k] += sign * v[i] * v[j]
    return float(np.max(np.abs(got - target)))


def registration(tmp: str) -> list[tuple]:
    import phg
    from .formats import angle_between, kabsch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1024, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    t = np.array([0.3, -0.2, 0.5])
    y = x @ q.T + t + rng.normal(scale=0.01, size=x.shape)
    r_opt, t_opt = kabsch(x, y)
    rows = []
    for example, cls, data in (("rigid_registration.phg", "RigidRegistration", {"x": x, "y": y}),
                               ("pga_pose.phg", "PgaPose", {"a": x[:, :, None], "b": y[:, :, None]})):
        module = phg.build(phg.loads(_cma_source(example, 0.5, 300), filename=f"{tmp}/{example}"),
                           f"{tmp}/{Path(example).stem}")
        m = getattr(module, cls)(seed=0)
        name = next(iter(m.SPEC["params"]))
        worst = []

        def norm(k, loss):
            worst.append(_versor_error(m, name))
        start = time.perf_counter()
        m.fit(data, callback=norm)
        took = time.perf_counter() - start
        probe = np.vstack([np.zeros(3), np.eye(3)])
        out = m.predict(**({"x": probe} if "x" in data else {"a": probe[:, :, None]}))
        p = next(iter(out.values()))
        p = p[:, :] if p.ndim == 2 else p
        if cls == "PgaPose":                             # the point e123 + x e032 + y e013 + z e021
            lay = m.layout("moved")
            p = np.column_stack([-p[:, lay.index("e023")], p[:, lay.index("e013")], -p[:, lay.index("e012")]]) / \
                p[:, lay.index("e123"):lay.index("e123") + 1]
        r = (p[1:] - p[0]).T
        rows.append((cls, angle_between(r, r_opt), float(np.linalg.norm(p[0] - t_opt)), max(worst),
                     m.search["evaluations"], took))
    return rows


# a truncated loss: the squared distance up to 0.1 m^2 (0.32 m), flat beyond it (its gradient zero there)
ROBUST = """
model {name} on G3 {{
    param R: Rotor = 1
    param t: Vector[m] = 0
    input x: Vector[m]
    input y: Vector[m]
    output p: Vector[m] = R >> x + t
    loss 0.1 - relu(0.1 - norm2(p - y) / 1[m^2])
}}
train {name} {{
    optimizer {optimizer}
    steps 200
}}
"""


def robust_data(seed: int, n: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, the rotation): y = q x + (0.3, -0.2, 0.5) + noise 0.01, 30% of y replaced by outliers."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    y = x @ q.T + [0.3, -0.2, 0.5] + rng.normal(scale=0.01, size=x.shape)
    outliers = rng.random(n) < 0.3
    y[outliers] = rng.normal(scale=2.0, size=(outliers.sum(), 3))
    return x, y, q


def robust(tmp: str, sets: int = 8) -> list[tuple[str, int, float]]:
    """(optimizer, data sets where it found the inliers' rotation, median rotation error)."""
    import phg
    rows = []
    for optimizer in ("adam(lr = 0.05)", "cma(sigma = 1.0, population = 16)"):
        stem = optimizer.split("(")[0]
        text = "algebra G3 = Cl(3, 0, 0)\n" + ROBUST.format(name="Robust", optimizer=optimizer)
        cls = phg.build(phg.loads(text, filename=f"{tmp}/robust_{stem}.phg"),
                        f"{tmp}/robust_{stem}").Robust
        errors = []
        for seed in range(sets):
            x, y, q = robust_data(seed)
            m = cls(seed=0)
            m.fit({"x": x, "y": y})
            p = m.predict(x=np.vstack([np.zeros(3), np.eye(3)]))["p"]
            errors.append(float(np.abs(p[1:] - p[0] - q.T).max()))
        rows.append((optimizer, sum(e < 0.01 for e in errors), float(np.median(errors))))
    return rows


BATCHES = (256, 1024, 4096)


def _rigid(rng, batch: int) -> dict[str, np.ndarray]:
    x = rng.normal(size=(batch, 3))
    return {"x": x, "y": x[:, [1, 0, 2]] + 0.1}


def _volumes(rng, batch: int) -> dict[str, np.ndarray]:
    v = rng.normal(size=(batch, 3, 3))
    return {"v": v, "target": np.linalg.det(v)[:, None] / 10}


def _at(m, c: np.ndarray) -> None:
    """M's parameters at pycma's point c: a Rotor from its bivector coefficients (renormalised),
    the others' coefficients as they are."""
    params, at = {}, 0
    for name, p in m.SPEC["params"].items():
        if p.get("versor"):
            r = np.array([1.0, *c[at:at + 3]])
            params[name], at = r / np.sqrt(r @ r), at + 3
        else:
            size = int(np.prod(p["shape"])) * len(p["layout"])
            params[name], at = c[at:at + size].reshape(*p["shape"], len(p["layout"])), at + size
    m.params = params


# (example, model, its samples): a fused model and one in the loop plan
SPEED = (("rigid_registration.phg", "RigidRegistration", _rigid), ("signed_volume.phg", "SignedVolume", _volumes))


def speed(tmp: str) -> dict[tuple[str, str], list[float]]:
    """Evaluations a second of each model of SPEED at each of BATCHES: {(model, how): [rate per batch]}."""
    import cma
    import phg

    rates: dict[tuple[str, str], list[float]] = {}
    generations = 30
    for example, model, samples in SPEED:
        module = phg.build(phg.loads(_cma_source(example, 0.5, 30), filename=f"{tmp}/speed_{model}.phg"),
                           f"{tmp}/speed_{model}")
        cls = getattr(module, model)
        rng = np.random.default_rng(1)
        hows = [(model, "population kernel (one call a generation)"), (model, "a training pass per candidate"),
                (model, "pycma driving M.loss")]
        for how in hows:
            rates[how] = []
        for batch in BATCHES:
            data = samples(rng, batch)
            for how, kernel in zip(hows, (True, False)):
                m = cls(seed=0)
                if not kernel:
                    m._population_kernel = None           # a training pass per candidate, as M.loss runs
                m.step(**data)                            # compiled, warmed
                lam = m.search["evaluations"]
                start = time.perf_counter()
                for _ in range(generations):
                    m.step(**data)
                rates[how].append(generations * lam / (time.perf_counter() - start))
            m = cls(seed=0)
            x0 = np.concatenate([np.zeros(3) if p.get("versor") else m.params[n].reshape(-1)
                                 for n, p in m.SPEC["params"].items()])
            es = cma.CMAEvolutionStrategy(x0, 0.5, {"seed": 1, "verbose": -9, "popsize": lam})
            evaluated = 0
            start = time.perf_counter()
            for _ in range(generations):
                xs = es.ask()
                losses = []
                for c in xs:
                    _at(m, c)
                    losses.append(m.loss(**data))
                es.tell(xs, losses)
                evaluated += len(xs)
            rates[hows[2]].append(evaluated / (time.perf_counter() - start))
    return rates


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench cma")
    ap.add_argument("--seeds", type=int, default=11)
    args = ap.parse_args(argv)
    import numba
    print(f"{numba.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        rows = functions(tmp, args.seeds)
        print(f"\nevaluations to f <= 1e-8, 10-D, x0 = 0.1, sigma0 = 0.3, median of {args.seeds} seeds:\n")
        print("| function | phg (a phg model) | pycma 4.5.0 | phg / pycma |")
        print("|---|---|---|---|")
        for name, ours, theirs in rows:
            print(f"| {name} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
        print("\nfrom the identity, batch 1,024 with noise 0.01, 300 generations, sigma0 = 0.5:\n")
        print("| model | angle to Kabsch (rad) | abs(t - t_opt) (m) | max abs(R ~R - 1), every generation | "
              "evaluations | seconds |")
        print("|---|---|---|---|---|---|")
        for cls, angle, dt, worst, evals, took in registration(tmp):
            print(f"| {cls} | {angle:.2e} | {dt:.2e} | {worst:.1e} | {evals:,} | {took:.2f} |")
        print("\nrobust registration (30% outliers, loss truncated at 0.1 m^2), from the identity, 8 data sets:\n")
        print("| optimizer | found the inliers' motion | median max abs error of the rotation matrix |")
        print("|---|---|---|")
        for optimizer, found, median in robust(tmp):
            print(f"| {optimizer} | {found} of 8 | {median:.2g} |")
        print("\nevaluations (one candidate's batch-mean loss) per second, by batch (SignedVolume: the loop plan)\n")
        print("| model | how | " + " | ".join(f"{b:,}" for b in BATCHES) + " |")
        print("|---|---|" + "---|" * len(BATCHES))
        for (model, how), rates in speed(tmp).items():
            print(f"| {model} | {how} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    return 0
