"""The example models trained in each numeric format (LANGUAGE §11), in one run:

- rigid registration (examples/rigid_registration.phg) on 4,096 noisy correspondences: the
  distance of the trained rotation and translation to the Kabsch optimum of the same data (the
  closed form, in float64): the angle of R_opt^T R and |t - t_opt|;
- signed volume (examples/signed_volume.phg, its train block) on 4,096 samples: the test MSE on
  4,096 others, and the variance of the target beside it;
- per format, loss + gradient time at batch 4,096 against the float64 kernel's, each the best of
  several calls on the same thread count, the formats timed in turn over several rounds (the host's
  speed drifts by a fifth within minutes; rounds spread that over every format alike);
- memory: tracemalloc's peak of a fresh instance's first step and first predict (batch 1,024),
  and the certificate's bounds, per format.

    python -m bench formats [--formats float64,float32,...] [--steps N] [--batches 256,4096,65536]
"""
from __future__ import annotations

import argparse
import math
import re
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from .predict import best

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("float64", "float32", "posit8", "posit16", "posit32", "bposit16", "bposit32")


def in_format(source: str, fmt: str) -> str:
    """The example's source with `numeric fmt` as its model's first statement."""
    return re.sub(r"(model \w+ on \w+ \{\n)", rf"\1    numeric {fmt}\n", source, count=1)


def kabsch(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation and translation minimising sum |R x + t - y|^2 (Kabsch, with the reflection fix)."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    u, _, vt = np.linalg.svd((x - mx).T @ (y - my))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, my - r @ mx


def rotation_of(model, reference) -> tuple[np.ndarray, np.ndarray]:
    """The rotation the trained rotor stands for and the trained translation, read by the float64
    model (`reference`), so the format's rounding of predict's outputs is not in it; the rotor is
    scaled to unit norm there (a scaled rotor stands for the same rotation)."""
    rotor = model.params["R"]
    reference.params.update({"R": rotor / math.sqrt(float(rotor @ rotor)), "t": model.params["t"]})
    t = reference.params["t"].copy()
    probe = np.vstack([np.zeros(3), np.eye(3)])
    out = reference.predict(x=probe)["p"]
    return (out[1:] - out[0]).T, t


def angle_between(r: np.ndarray, s: np.ndarray) -> float:
    """The rotation angle of r^T s, from |r - s| (Frobenius) = 2 sqrt(2) sin(angle / 2): accurate for
    small angles, where the trace's arccos is not."""
    return 2 * math.asin(min(1.0, np.linalg.norm(r - s) / (2 * math.sqrt(2))))


ROUNDS = 5


def _timer(model, data: dict):
    return lambda: model.grad(**data)


def _time_in_rounds(rows: list[tuple[dict, dict]]) -> None:
    """Replace each row's timers (the "timers" of each dict: a key and the call to time) by the best
    of its times over ROUNDS rounds, every format timed once a round."""
    timers = [(d, key, fn) for pair in rows for d in pair for key, fn in d.pop("timers").items()]
    best_of = {}
    for _ in range(ROUNDS):
        for i, (_, _, fn) in enumerate(timers):
            best_of[i] = min(best_of.get(i, math.inf), best(fn, repeat=3))
    for i, (d, key, _) in enumerate(timers):
        if isinstance(key, int):
            d.setdefault("by_batch", {})[key] = best_of[i]
        else:
            d[key] = best_of[i]


def _memory(model_class, data: dict, predict_inputs: dict) -> tuple[int, int]:
    """tracemalloc peaks of a fresh instance's first step and first predict."""
    out = []
    for call in (lambda m: m.step(**data), lambda m: m.predict(**predict_inputs)):
        m = model_class(seed=0)
        tracemalloc.start()
        try:
            call(m)
            out.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return out[0], out[1]


def rigid(fmt: str, tmp: str, steps: int | None, batches: tuple[int, ...] = ()) -> dict:
    import phg

    source = (ROOT / "examples" / "rigid_registration.phg").read_text()
    program = phg.loads(in_format(source, fmt), filename=f"{tmp}/rigid_{fmt}.phg")
    cert = phg.check(program)
    kernels = phg.build(program, f"{tmp}/rigid_{fmt}", progress=lambda *_: None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    y = x @ q.T + [0.3, -0.2, 0.5] + rng.normal(scale=0.01, size=x.shape)
    model = kernels.RigidRegistration(seed=0)
    history = model.fit({"x": x, "y": y}, steps=steps)
    reference = phg.build(phg.loads(source, filename=f"{tmp}/rigid_reference.phg"), f"{tmp}/rigid_reference",
                          progress=lambda *_: None).RigidRegistration()
    r, t = rotation_of(model, reference)
    r_opt, t_opt = kabsch(x, y)
    angle = angle_between(r, r_opt)
    data = {"x": x, "y": y}
    step_peak, predict_peak = _memory(kernels.RigidRegistration, {"x": x[:1024], "y": y[:1024]}, {"x": x[:1024]})
    import numba
    from phg.verifier.memory import plan as memory_plan
    graph = program.models["RigidRegistration"]
    mp = memory_plan(graph, program.trains["RigidRegistration"])
    threads = numba.get_num_threads()
    return {"format": fmt, "angle": angle, "dt": float(np.linalg.norm(t - t_opt)), "loss": history[-1],
            "timers": {"grad_s": _timer(model, data),
                       **{b: _timer(model, {"x": (xb := rng.normal(size=(b, 3))), "y": xb @ q.T}) for b in batches}},
            "step_peak": step_peak, "predict_peak": predict_peak,
            "certified_training": mp.training_bytes(threads), "certified_inference": mp.inference_bytes(1024, threads, False),
            "quire": next((o.status for o in cert.obligations if o.kind == "quire" and "format" in o.evidence), "-")}


def volume(fmt: str, tmp: str, steps: int | None) -> dict:
    import phg

    source = (ROOT / "examples" / "signed_volume.phg").read_text()
    kernels = phg.build(phg.loads(in_format(source, fmt), filename=f"{tmp}/volume_{fmt}.phg"),
                        f"{tmp}/volume_{fmt}", progress=lambda *_: None)
    rng = np.random.default_rng(0)
    v, v_test = rng.normal(size=(4096, 3, 3)), rng.normal(size=(4096, 3, 3))
    y, y_test = np.linalg.det(v) / 10, np.linalg.det(v_test) / 10
    model = kernels.SignedVolume(seed=0)
    model.fit({"v": v, "target": y[:, None]}, steps=steps)
    mse = float(np.mean((model.predict(v=v_test)["volume"][:, 0] - y_test) ** 2))
    return {"format": fmt, "mse": mse, "variance": float(np.var(y_test)),
            "timers": {"grad_s": _timer(model, {"v": v, "target": y[:, None]})}}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench formats")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: each train block's)")
    ap.add_argument("--batches", default="", help="also time rigid registration's loss + gradient at these batches")
    args = ap.parse_args(argv)
    formats = args.formats.split(",")
    batches = tuple(int(b) for b in args.batches.split(",") if b)
    import numba
    print(f"{numba.get_num_threads()} threads; loss + gradient at batch 4,096; memory at batch 1,024")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in formats:
            rows.append((rigid(fmt, tmp, args.steps, batches), volume(fmt, tmp, args.steps)))
            print(f"  {fmt}: trained", flush=True)
        _time_in_rounds(rows)
    base = {r["format"]: (r["grad_s"], v["grad_s"]) for r, v in rows}.get("float64")
    print("\n| format | rigid: angle to Kabsch (rad) | rigid: abs(t - t_opt) | rigid loss+grad (x float64) "
          "| volume: test MSE (variance) | volume loss+grad (x float64) | step / predict peak (B) | certified "
          "training / inference (B, N=1,024) | quire |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r, v in rows:
        ratio = (lambda a, i: f"{a * 1e3:.2f} ms ({a / base[i]:.1f}x)") if base else (lambda a, i: f"{a * 1e3:.2f} ms")
        cert_t, cert_i = r["certified_training"], r["certified_inference"]
        print(f"| {r['format']} | {r['angle']:.2e} | {r['dt']:.2e} | {ratio(r['grad_s'], 0)} | "
              f"{v['mse']:.3g} ({v['variance']:.3g}) | {ratio(v['grad_s'], 1)} | "
              f"{r['step_peak']:,} / {r['predict_peak']:,} | {cert_t:,} / {cert_i:,} | {r['quire']} |")
    if batches and base:
        print("\nrigid registration, loss + gradient by batch (x float64 at that batch, the same run):\n")
        print("| format | " + " | ".join(f"{b:,}" for b in batches) + " |")
        print("|---|" + "---|" * len(batches))
        f64 = rows[[r["format"] for r, _ in rows].index("float64")][0]["by_batch"]
        for r, _ in rows:
            print(f"| {r['format']} | " + " | ".join(f"{r['by_batch'][b] * 1e3:.3g} ms ({r['by_batch'][b] / f64[b]:.1f}x)"
                                                    for b in batches) + " |")
    return 0

