"""O3CGMLP (examples/cgenn_volume.phg) at several widths against its PyTorch port (bench/o3cgmlp.py):
for each width its `phg check` and cold and warm `phg build` (fresh processes, a fresh directory),
that phg's network is the port's (predictions from the port's parameters, copied), and the
loss+grad step of both at several batches, on the same threads.

    python -m bench cgenn [C ...] [--batches 128,1024] [--accumulate exact|float|exact,float] [--compile]

With both accumulations, each is timed on the same data in the same run, and their ratio printed.
"""
from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .predict import best
from .widths import build_seconds

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (8, 16, 32, 96)
BATCHES = (128, 1024)


WIDTH = 96                      # examples/cgenn_volume.phg's hidden channels


def source(channels: int, accumulate: str = "exact") -> str:
    """examples/cgenn_volume.phg with `channels` hidden channels, its initial scales to match."""
    text = (ROOT / "examples" / "cgenn_volume.phg").read_text()
    text = re.sub(r"\[([0-9, ]+)\]", lambda m: "[" + ", ".join(str(channels) if d.strip() == str(WIDTH) else d.strip()
                                                              for d in m.group(1).split(",")) + "]", text)
    text = re.sub(r" +# 1 / sqrt\([^)]*\)", "", text).replace(f"3 -> {WIDTH} channels", f"3 -> {channels} channels")
    text = text.replace(f"({WIDTH} -> 1)", f"({channels} -> 1)")
    for name, fan in (("W2", 4 * channels), ("L2", channels), ("R2", channels)):
        text = re.sub(rf"(param {name}\[[^\]]*\]: Scalar = normal\()[0-9.]+(\))", rf"\g<1>{1 / math.sqrt(fan):.4f}\2", text)
    return text.replace("    seed 1\n", f"    seed 1\n    accumulate {accumulate}\n")


def check_seconds(src: Path) -> tuple[float, str | None]:
    """`phg check` of src in a fresh process: its seconds, and its first error line if it failed."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "phg.shell.cli", "check", str(src)], capture_output=True, text=True,
                          cwd=src.parent)
    error = None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["exit status 2"])[0]
    return time.perf_counter() - start, error


def copy_parameters(port_model, model) -> None:
    """phg's parameters from the port's: the weights of the grades and paths phg's values have
    (the others multiply zeros in the port), per-grade parameters transposed to [4, C]."""
    from .o3cgmlp import PATHS

    first, gates, last = port_model.net[0], port_model.net[1:-1], port_model.net[-1]

    def paths(grades):
        return [i for i, (a, b, _) in enumerate(PATHS) if a in grades and b in grades]

    def put(name, value):
        model.params[name] = np.ascontiguousarray(value.detach().numpy())[..., None]

    put("W1", first.weight[:, :, paths({1})])
    put("L1", first.left.weight[:, :, 1:2])
    put("c1", first.left.bias)
    put("R1", first.right.weight[:, :, 1:2])
    put("n1", first.normalize.a.T)
    for k, gate in enumerate(gates, 1):
        put(f"a{k}", gate.a.T)
        put(f"b{k}", gate.b.T)
    put("W2", last.weight[:, :, paths({0, 1, 2})])
    put("L2", last.left.weight[:, :, 0:3])
    put("c2", last.left.bias)
    put("R2", last.right.weight[:, :, 0:3])
    put("n2", last.normalize.a.T)


def measure(widths, batches, accumulates: list[str], compiled: bool) -> list[dict]:
    import numba
    import torch

    import phg

    from . import o3cgmlp as port
    torch.set_num_threads(numba.get_num_threads())
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for c in widths:
            models = {}
            for accumulate in accumulates:
                src = Path(tmp) / f"cgenn_{c}_{accumulate}.phg"
                src.write_text(source(c, accumulate))
                check, error = check_seconds(src)
                if error is not None:
                    break
                out = str(Path(tmp) / f"build{c}{accumulate}")
                cold, strategy = build_seconds(src, out, "O3CGMLP", Path(tmp) / f"numba{c}{accumulate}")
                warm, _ = build_seconds(src, out, "O3CGMLP", Path(tmp) / f"numba{c}{accumulate}")
                models[accumulate] = (phg.build(phg.load(src), out).O3CGMLP(seed=0), check, cold, warm, strategy)
            if error is not None:
                rows.append({"channels": c, "refused": error.replace(str(src), src.name)})
                continue
            peer = port.O3CGMLP(hidden=c, seed=0)
            with torch.no_grad():                 # off the zero and unit initial values
                for p in peer.parameters():
                    p.add_(torch.from_numpy(rng.normal(0, 0.2, size=tuple(p.shape))))
            for model, *_ in models.values():
                copy_parameters(peer, model)
            model, check, cold, warm, strategy = models[accumulates[0]]
            v = rng.normal(size=(512, 3, 3))
            same = float(np.abs(model.predict(v=v)["volume"][:, 0] - peer(torch.from_numpy(v)).detach().numpy()).max())
            step = torch.compile(port.loss_and_grad) if compiled else None
            for n in batches:
                v = rng.normal(size=(n, 3, 3))
                target = np.linalg.det(v)[:, None] / 10
                pv, pt = torch.from_numpy(v), torch.from_numpy(target[:, 0])
                rows.append({"channels": c, "params": sum(a.size for a in model.params.values()),
                             "peer_params": peer.parameter_count(), "strategy": strategy, "check": check,
                             "cold": cold, "warm": warm, "same": same, "batch": n,
                             "phg": {a: best(lambda m=m: m.grad(v=v, target=target)) for a, (m, *_) in models.items()},
                             "torch": best(lambda: port.loss_and_grad(peer, pv, pt)),
                             "compiled": best(lambda: step(peer, pv, pt)) if step else None})
    return rows


def main(argv: list[str]) -> int:
    import numba

    widths = [int(a) for a in argv if a.isdigit()] or list(WIDTHS)
    batches, accumulates = BATCHES, ["exact"]
    for i, a in enumerate(argv):
        if a == "--batches":
            batches = tuple(int(b) for b in argv[i + 1].split(","))
        if a == "--accumulate":
            accumulates = argv[i + 1].split(",")
    if not accumulates or any(a not in ("exact", "float") for a in accumulates):
        print("--accumulate takes exact, float or both (exact,float)", file=sys.stderr)
        return 2
    rows = measure(widths, batches, accumulates, "--compile" in argv)
    print(f"O3CGMLP, accumulate {' and '.join(accumulates)}, {numba.get_num_threads()} threads; phg's network "
          "against its PyTorch port (float64) with the port's parameters copied (build times: "
          f"accumulate {accumulates[0]})")
    both = len(accumulates) == 2
    timed = " | ".join(f"phg {a} ms | eager / phg {a}" for a in accumulates)
    print("| channels | parameters (port) | strategy | phg check s | cold build s | warm build s | max |phg - port| "
          f"| batch | {timed} | eager ms | compiled ms | compiled / phg {accumulates[0]} |"
          + (f" {accumulates[0]} / {accumulates[1]} |" if both else ""))
    print("|---" * (12 + 2 * len(accumulates) + both) + "|")
    for r in rows:
        if "refused" in r:
            print(f"| {r['channels']} | refused by phg check: {r['refused']} |")
            continue
        first = r["phg"][accumulates[0]]
        comp = (f"{1e3 * r['compiled']:.2f} | {r['compiled'] / first:.2f}x" if r["compiled"] is not None
                else "- | -")
        cells = " | ".join(f"{1e3 * r['phg'][a]:.2f} | {r['torch'] / r['phg'][a]:.2f}x" for a in accumulates)
        ratio = f" {first / r['phg'][accumulates[1]]:.2f}x |" if both else ""
        print(f"| {r['channels']} | {r['params']} ({r['peer_params']}) | {r['strategy']} | {r['check']:.1f} | "
              f"{r['cold']:.1f} | {r['warm']:.2f} | {r['same']:.1e} | {r['batch']} | {cells} | "
              f"{1e3 * r['torch']:.2f} | {comp} |{ratio}")
    return 0
