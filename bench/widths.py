"""How phg's cost grows with a model's width: examples/signed_volume.phg with its channels widened
(C hidden channels, C/2 in the product layer), for each width its kernel strategy, its cold
`phg build` (a fresh process, an empty directory: code generation and compilation of every
kernel), its warm build (a fresh process importing the same build from Numba's cache), and its
loss+grad step against the same maths in PyTorch eager on the same threads, at several batches.

    python -m bench widths [C ...] [--batches 128,1024,65536] [--accumulate exact|float] [--compile]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .flops import matmul_rate, mix_flops
from .predict import best

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (4, 8, 16, 32)
BATCHES = (128, 1024, 65536)


def source(channels: int, accumulate: str = "exact") -> str:
    """examples/signed_volume.phg with `channels` hidden channels and channels/2 in its product layer."""
    text = (ROOT / "examples" / "signed_volume.phg").read_text()
    half = max(1, channels // 2)
    for old, new in (("W1[8, 3]", f"W1[{channels}, 3]"), ("k1[8]", f"k1[{channels}]"), ("h[8]", f"h[{channels}]"),
                     ("g[8]", f"g[{channels}]"), ("b[4]", f"b[{half}]")):
        text = text.replace(old, new)
    for w in ("Wu", "Ww", "Wz"):
        text = text.replace(f"{w}[4, 8]", f"{w}[{half}, {channels}]")
    for v in "uwz":
        text = text.replace(f"let {v}[4]", f"let {v}[{half}]")
    return text.replace("    seed 1\n", f"    seed 1\n    accumulate {accumulate}\n")


BUILD = """
import time, phg
start = time.perf_counter()
k = phg.build(phg.loads(open({src!r}).read(), {name!r}), {out!r}, progress=lambda *_: None)
print(time.perf_counter() - start)
print(k.{model}.SPEC["train"]["strategy"], k.{model}.SPEC["train"]["rule"])
"""


def build_seconds(src: Path, out: str, model: str = "SignedVolume", cache: Path | None = None) -> tuple[float, str]:
    """A build of src into out in a fresh process, with Numba's cache in `cache` (phg's library
    kernels included: empty, the build is cold): its seconds, and the strategy of the model's
    training."""
    # (an empty per-user cache too: a build of the same source there would be copied, not made)
    env = dict(os.environ, **({"NUMBA_CACHE_DIR": str(cache), "XDG_CACHE_HOME": str(cache / "user")}
                              if cache is not None else {}))
    done = subprocess.run([sys.executable, "-c", BUILD.format(src=str(src), name=src.name, out=out, model=model)],
                          capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    lines = done.stdout.strip().splitlines()
    return float(lines[-2]), lines[-1]


def torch_volume(p: dict, vt):
    """The network's output in PyTorch: parameters p (name -> tensor, phg's without their one
    component axis, as params gives them), vt [N, 3 vectors, 3 components]."""
    import torch

    h = torch.einsum("ij,njk->nik", p["W1"], vt)
    g = h * torch.sigmoid(p["k1"] + (h * h).sum(-1))[..., None]
    u, w, z = (torch.einsum("ij,njk->nik", p[k], g) for k in ("Wu", "Ww", "Wz"))
    b12 = u[..., 0] * w[..., 1] - u[..., 1] * w[..., 0]
    b13 = u[..., 0] * w[..., 2] - u[..., 2] * w[..., 0]
    b23 = u[..., 1] * w[..., 2] - u[..., 2] * w[..., 1]
    return (b12 * z[..., 2] - b13 * z[..., 1] + b23 * z[..., 0]).sum(-1)


def torch_step(model, v, target, compiled: bool = False):
    """The same loss and gradient in PyTorch, float64, from the phg model's parameters: eager, or
    its forward and backward under torch.compile."""
    import numba
    import torch

    torch.set_num_threads(numba.get_num_threads())
    p = {n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in model.params.items()}
    vt = torch.from_numpy(v)                     # [N, 3 vectors, 3 components]
    tt = torch.from_numpy(target[:, 0])

    def forward():
        return ((torch_volume(p, vt) - tt) ** 2).mean()

    run = torch.compile(forward) if compiled else forward

    def step():
        for a in p.values():
            a.grad = None
        loss = run()
        loss.backward()
        return loss
    return step


def measure(widths, batches, accumulate: str, compiled: bool = False) -> list[dict]:
    import phg

    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for c in widths:
            src = Path(tmp) / f"signed_volume_{c}.phg"
            src.write_text(source(c, accumulate))
            out = str(Path(tmp) / f"build{c}")
            cold, strategy = build_seconds(src, out, cache=Path(tmp) / f"numba{c}")
            warm, _ = build_seconds(src, out, cache=Path(tmp) / f"numba{c}")
            program = phg.load(src)
            phg.check(program)                  # its supports narrowed, as the kernels were planned
            kernels = phg.build(program, out)
            model = kernels.SignedVolume(seed=0)
            flops = mix_flops(program, "SignedVolume")
            for n in batches:
                v = rng.normal(size=(n, 3, 3))
                target = np.linalg.det(v)[:, None] / 10
                phg_s = best(lambda: model.grad(v=v, target=target))
                try:
                    torch_s = best(torch_step(model, v, target))
                    compiled_s = best(torch_step(model, v, target, True)) if compiled else None
                except ImportError:
                    torch_s = compiled_s = None
                rows.append({"channels": c, "params": sum(a.size for a in model.params.values()),
                             "strategy": strategy, "cold": cold, "warm": warm, "batch": n, "phg": phg_s,
                             "torch": torch_s, "compiled": compiled_s, "flops": flops * n})
    return rows


def main(argv: list[str]) -> int:
    import numba

    widths = [int(a) for a in argv if a.isdigit()] or list(WIDTHS)
    batches = BATCHES
    accumulate = "exact"
    for i, a in enumerate(argv):
        if a == "--batches":
            batches = tuple(int(b) for b in argv[i + 1].split(","))
        if a == "--accumulate":
            accumulate = argv[i + 1]
    rows = measure(widths, batches, accumulate, "--compile" in argv)
    peak = matmul_rate()
    print(f"signed volume widened, accumulate {accumulate}, {numba.get_num_threads()} threads; a float64 "
          f"2,048 x 2,048 matrix product ran at {peak / 1e9:.1f} GFLOP/s on them")
    print("| channels | parameters | strategy (rule) | cold build s | warm build s | batch | phg loss+grad ms "
          "| mixes GFLOP/s (of the product's) | PyTorch eager ms | PyTorch / phg | compiled ms | compiled / phg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        torch_ms = f"{1e3 * r['torch']:.2f}" if r["torch"] is not None else "not installed"
        ratio = f"{r['torch'] / r['phg']:.1f}x" if r["torch"] is not None else ""
        rate = r["flops"] / r["phg"]
        comp = f"{1e3 * r['compiled']:.2f} | {r['compiled'] / r['phg']:.1f}x" if r["compiled"] is not None else "- | -"
        print(f"| {r['channels']} | {r['params']} | {r['strategy']} | {r['cold']:.1f} | {r['warm']:.2f} | "
              f"{r['batch']} | {1e3 * r['phg']:.2f} | {rate / 1e9:.1f} ({rate / peak:.0%}) | {torch_ms} | {ratio} | {comp} |")
    return 0
