"""Training throughput and memory of the rigid-registration model, as ratios taken in one run:

- loss + gradient over N = 10^6 correspondences: phg's generated kernel (`accumulate exact`, the
  default, and `accumulate float`) against a hand-fused Numba kernel for the same maths (float
  sums, the same thread count) and PyTorch eager on CPU (float64, the same model written
  componentwise, forward and backward);
- peak memory of one training step against inference on the same batch, for phg and for
  PyTorch, each measured in a fresh process as the growth of its resident set while it runs
  (sampled, and read again after it returns); phg's step is a fresh model's first, so its
  static buffers are counted.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numba
import numpy as np

from .predict import best

N = 1_000_000
ROOT = Path(__file__).resolve().parents[1]
SOURCE = (ROOT / "examples" / "rigid_registration.phg").read_text()


def model_source(accumulate: str) -> str:
    return re.sub(r"accumulate \w+", f"accumulate {accumulate}", SOURCE)


@numba.njit(cache=True, parallel=True)
def hand_loss_grad(x, y, r, t, out):
    """Mean |R x ~R + t - y|^2 and its gradient: the rotation matrix once, per-thread float sums
    of the loss and of the matrix's and t's adjoints, then the chain to R once (the fused limit)."""
    s, a, b, c = r[0], r[1], r[2], r[3]
    m = np.empty(9)
    m[0], m[1], m[2] = s * s - a * a - b * b + c * c, 2 * (s * a - b * c), 2 * (s * b + a * c)
    m[3], m[4], m[5] = -2 * (s * a + b * c), s * s - a * a + b * b - c * c, 2 * (s * c - a * b)
    m[6], m[7], m[8] = 2 * (a * c - s * b), -2 * (s * c + a * b), s * s + a * a - b * b - c * c
    chunks = numba.get_num_threads()
    acc = np.zeros((chunks, 13))
    n = x.shape[0]
    for k in numba.prange(chunks):
        for i in range(k * n // chunks, (k + 1) * n // chunks):
            x0, x1, x2 = x[i, 0], x[i, 1], x[i, 2]
            r0 = m[0] * x0 + m[1] * x1 + m[2] * x2 + t[0] - y[i, 0]
            r1 = m[3] * x0 + m[4] * x1 + m[5] * x2 + t[1] - y[i, 1]
            r2 = m[6] * x0 + m[7] * x1 + m[8] * x2 + t[2] - y[i, 2]
            acc[k, 0] += r0 * r0 + r1 * r1 + r2 * r2
            acc[k, 1] += r0 * x0
            acc[k, 2] += r0 * x1
            acc[k, 3] += r0 * x2
            acc[k, 4] += r1 * x0
            acc[k, 5] += r1 * x1
            acc[k, 6] += r1 * x2
            acc[k, 7] += r2 * x0
            acc[k, 8] += r2 * x1
            acc[k, 9] += r2 * x2
            acc[k, 10] += r0
            acc[k, 11] += r1
            acc[k, 12] += r2
    tot = acc.sum(axis=0) / n
    g = 2 * tot[1:10]                      # d loss / d m_ij
    out[0] = tot[0]
    out[1] = 2 * (s * (g[0] + g[4] + g[8]) + a * (g[1] - g[3]) + b * (g[2] - g[6]) + c * (g[5] - g[7]))
    out[2] = 2 * (s * (g[1] - g[3]) - a * (g[0] + g[4] - g[8]) - b * (g[5] + g[7]) + c * (g[2] + g[6]))
    out[3] = 2 * (s * (g[2] - g[6]) - a * (g[5] + g[7]) - b * (g[0] - g[4] + g[8]) - c * (g[1] + g[3]))
    out[4] = 2 * (s * (g[5] - g[7]) + a * (g[2] + g[6]) - b * (g[1] + g[3]) + c * (g[0] - g[4] - g[8]))
    out[5:8] = 2 * tot[10:13]


def torch_step(x, y, r0, t0):
    """One forward + backward of the same model in PyTorch eager (float64, componentwise), on
    as many threads as Numba uses."""
    import torch
    torch.set_num_threads(numba.get_num_threads())
    xs = [torch.from_numpy(np.ascontiguousarray(x[:, k])) for k in range(3)]
    ys = [torch.from_numpy(np.ascontiguousarray(y[:, k])) for k in range(3)]
    r = torch.tensor(r0, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(t0, dtype=torch.float64, requires_grad=True)

    def step():
        r.grad = t.grad = None
        s, a, b, c = r[0], r[1], r[2], r[3]
        m = [[s * s - a * a - b * b + c * c, 2 * (s * a - b * c), 2 * (s * b + a * c)],
             [-2 * (s * a + b * c), s * s - a * a + b * b - c * c, 2 * (s * c - a * b)],
             [2 * (a * c - s * b), -2 * (s * c + a * b), s * s + a * a - b * b - c * c]]
        loss = 0
        for i in range(3):
            res = m[i][0] * xs[0] + m[i][1] * xs[1] + m[i][2] * xs[2] + t[i] - ys[i]
            loss = loss + res * res
        loss = loss.mean()
        loss.backward()
        return loss.item(), r.grad, t.grad
    return step


def data(rng):
    q = rng.normal(size=4)
    r = q / np.linalg.norm(q)
    x = rng.normal(size=(N, 3))
    y = x @ rng.normal(size=(3, 3)) + rng.normal(size=3)
    return r, rng.normal(size=3), x, y


def speed(tmp: Path) -> dict:
    import phg
    rng = np.random.default_rng(0)
    r, t, x, y = data(rng)
    models = {}
    for mode in ("exact", "float"):
        module = phg.build(phg.loads(model_source(mode), f"rigid_{mode}.phg"), tmp / mode)
        models[mode] = module.RigidRegistration()
        models[mode].params.update(R=r.copy(), t=t.copy())
    out = np.empty(8)
    hand_loss_grad(x, y, r, t, out)
    g = models["exact"].grad(x=x, y=y)
    assert np.allclose(out[1:5], g["R"], rtol=1e-9) and np.allclose(out[5:], g["t"], rtol=1e-9)
    times = {"phg exact": best(lambda: models["exact"].grad(x=x, y=y)),
             "phg float": best(lambda: models["float"].grad(x=x, y=y)),
             "hand-fused Numba": best(lambda: hand_loss_grad(x, y, r, t, out))}
    try:
        step = torch_step(x, y, r, t)
        _, gr, _ = step()
        assert np.allclose(gr.numpy(), g["R"], rtol=1e-7)
        times["PyTorch eager"] = best(step)
    except ImportError:
        times["PyTorch eager"] = None
    return times


# ---- memory, each measurement in a fresh process --------------------------------------------------
MEMORY_SCRIPT = r"""
import json, os, sys, threading, time
import numpy as np
sys.path.insert(0, {root!r})
from bench.train import data, torch_step, model_source
which, what, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
r, t, x, y = data(rng)
x, y = x[:n].copy(), y[:n].copy()
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
if which == "phg":
    import phg
    k = phg.build(phg.loads(model_source("exact"), "rigid_exact.phg"), {cache!r})
    warm = k.RigidRegistration(); warm.params.update(R=r, t=t)
    warm.predict(x=x[:2]); warm.step(x=x[:2], y=y[:2])       # compile or load the kernels
    m = k.RigidRegistration(); m.params.update(R=r, t=t)      # a fresh model: its first step allocates its plan
    run = (lambda: m.predict(x=x)) if what == "inference" else (lambda: m.step(x=x, y=y))
else:
    import torch
    step = torch_step(x[:2], y[:2], r, t); step()
    xs = [torch.from_numpy(np.ascontiguousarray(x[:, k])) for k in range(3)]
    rr = torch.tensor(r)
    if what == "inference":
        def run():
            with torch.no_grad():
                s, a, b, c = rr
                return [(s * s - a * a - b * b + c * c) * xs[0] + 2 * (s * a - b * c) * xs[1] + 2 * (s * b + a * c) * xs[2] + t[0],
                        -2 * (s * a + b * c) * xs[0] + (s * s - a * a + b * b - c * c) * xs[1] + 2 * (s * c - a * b) * xs[2] + t[1],
                        2 * (a * c - s * b) * xs[0] - 2 * (s * c + a * b) * xs[1] + (s * s + a * a - b * b - c * c) * xs[2] + t[2]]
    else:
        run = torch_step(x, y, r, t)
# the peak while it runs (sampled; kernels that hold the GIL keep what they allocate until after)
peak, done = [0], []
def sample():
    while not done:
        peak[0] = max(peak[0], rss())
        time.sleep(0.0002)
before = rss()
sampler = threading.Thread(target=sample); sampler.start()
keep = run()
after = rss()
done.append(1); sampler.join()
print(json.dumps({{"kib": (max(peak[0], after) - before) // 1024}}))
"""


def memory(tmp: Path, n: int = N) -> dict:
    script = MEMORY_SCRIPT.format(root=str(ROOT), cache=str(tmp / "exact"))
    out = {}
    for which in ("phg", "torch"):
        for what in ("inference", "training"):
            run = subprocess.run([sys.executable, "-c", script, which, what, str(n)], capture_output=True, text=True)
            out[(which, what)] = json.loads(run.stdout.strip().splitlines()[-1])["kib"] if run.returncode == 0 else None
    return out


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        times = speed(Path(tmp))
        mem = memory(Path(tmp))
    print(f"threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}), "
          f"N = {N:,}, float64")
    print("| loss + gradient, rigid registration | ms | phg exact is ... | phg float is ... |")
    print("|---|---|---|---|")
    for name, t in times.items():
        if t is None:
            print(f"| {name} | not installed | | |")
            continue
        print(f"| {name} | {1e3 * t:.1f} | {t / times['phg exact']:.2f}x as fast | {t / times['phg float']:.2f}x as fast |")
    print(f"\nphg float / hand-fused (>= 0.9): {times['hand-fused Numba'] / times['phg float']:.2f}x; "
          f"phg exact / PyTorch eager (>= 5): "
          + (f"{times['PyTorch eager'] / times['phg exact']:.1f}x" if times["PyTorch eager"] else "n/a")
          + f"; exact costs {times['phg exact'] / times['phg float']:.2f}x float (<= 2)")
    print("\n| peak memory growth (RSS) | inference KiB | training step KiB | training / inference |")
    print("|---|---|---|---|")
    for which in ("phg", "torch"):
        inf, tr = mem[(which, "inference")], mem[(which, "training")]
        ratio = f"{tr / inf:.2f}" if inf and tr is not None else "n/a"
        print(f"| {'phg (exact)' if which == 'phg' else 'PyTorch eager'} | {inf} | {tr} | {ratio} |")
    return 0
