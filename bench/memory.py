"""What predict and a training step allocate, against the certificate's bounds and against PyTorch:
examples/signed_volume.phg widened (bench.widths) at several widths and batches.

For each width and batch, in a fresh process each (the kernels loaded from Numba's cache, a first
call at 8 samples on another instance beforehand): a fresh model instance's first predict and
first step, measured by tracemalloc's peak (every allocation of the interpreter, NumPy and Numba's
runtime) and by the growth of the peak resident set (/proc/self/clear_refs, then VmHWM; glibc told
to return large blocks, so that the pages a call touches are new ones).  PyTorch's forward (no
grad) and forward + backward of the same network, float64, on the same threads, by the resident
set alone (tracemalloc does not see its allocator).  The training/inference ratios count a step
without its optimizer's own state (moments, saved parameters), as `memory <= K * inference` does;
"with parameters" adds the parameters' own bytes, which both hold, to either side.

    python -m bench memory [C ...] [--batches 128,1024,4096]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = (16, 64, 256)
BATCHES = (128, 1024, 4096)


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


def _reset_peak() -> int | None:
    """The resident bytes now, the kernel's peak reset to them; None where it cannot be reset (not
    Linux, or /proc not writable)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status("VmRSS")
    except (OSError, LookupError):
        return None


def _growth(before: int | None) -> int | None:
    # the reset's level may lie a page above `before`
    return None if before is None else max(0, _status("VmHWM") - before)


def rss_growth(call) -> int | None:
    """The peak resident bytes during call() above those resident before it; None where the
    kernel cannot reset the peak."""
    before = _reset_peak()
    call()
    return _growth(before)


def traced(call) -> int:
    """tracemalloc's peak during call()."""
    return measured(call)[0]


def measured(call) -> tuple[int, int | None]:
    """(tracemalloc's peak, the peak resident set's growth) during one call(): tracemalloc's own
    tables are made before the resident peak is reset, and what it records of the call's
    allocations counts among the call's resident bytes, which it can only overstate."""
    tracemalloc.start()
    try:
        before = _reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1], _growth(before)
    finally:
        tracemalloc.stop()


MEASURE = """
import json, sys
sys.path.insert(0, {root!r})
import numpy as np, phg
from bench.memory import rss_growth, traced
k = phg.build(phg.load({src!r}), {out!r})
model = k.SignedVolume(seed=0)
rng = np.random.default_rng(0)
v = rng.normal(size=({n}, 3, 3))
target = np.linalg.det(v)[:, None] / 10
model.predict(v=v[:8]); model.step(v=v[:8], target=target[:8])
result = {{}}
if {torch}:
    import numba, torch
    from bench.widths import torch_volume
    torch.set_num_threads(numba.get_num_threads())
    p = {{n: torch.tensor(a, dtype=torch.float64, requires_grad=True) for n, a in model.params.items()}}
    vt, tt = torch.from_numpy(v), torch.from_numpy(target[:, 0])
    def forward():
        with torch.no_grad():
            torch_volume(p, vt)
    def backward():
        for a in p.values():
            a.grad = None
        ((torch_volume(p, vt) - tt) ** 2).mean().backward()
    forward(); backward()
    result["predict"] = rss_growth(forward)
    result["step"] = rss_growth(backward)
else:
    call = {{"predict": lambda m: m.predict(v=v), "step": lambda m: m.step(v=v, target=target)}}[{kind!r}]
    fresh = k.SignedVolume(seed=0)
    result["rss"] = rss_growth(lambda: call(fresh))
    fresh = k.SignedVolume(seed=0)
    result["traced"] = traced(lambda: call(fresh))
print(json.dumps(result))
"""


def _run(src: Path, out: str, n: int, kind: str = "", torch: bool = False) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    code = MEASURE.format(root=str(ROOT), src=str(src), out=out, n=n, kind=kind, torch=torch)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "measurement failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(widths, batches) -> list[dict]:
    import phg
    from phg.codegen.spread import threads
    from phg.plan import kernel_plan
    from phg.verifier.memory import plan

    from .widths import source

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for c in widths:
            src = Path(tmp) / f"signed_volume_{c}.phg"
            src.write_text(source(c))
            out = str(Path(tmp) / f"build{c}")
            program = phg.load(src)
            phg.check(program)
            phg.build(program, out, progress=lambda *_: None)
            graph = program.models["SignedVolume"]
            mp = plan(graph, program.trains.get("SignedVolume"))
            optimizer = sum(mp.optimizer.values())
            # the parameters' own bytes: a gradient has its parameter's shape
            parameters = sum(b.bytes for b in kernel_plan(graph, program.trains.get("SignedVolume")).train.buffers
                             if b.role == "grads")
            for n in batches:
                predict, step = _run(src, out, n, "predict"), _run(src, out, n, "step")
                try:
                    torch = _run(src, out, n, torch=True)
                except RuntimeError:
                    torch = None
                rows.append({"channels": c, "batch": n, "threads": threads(),
                             "predict_certified": mp.inference_bytes(n, threads(), conversions=False),
                             "step_certified": mp.training_bytes(threads()), "optimizer": optimizer,
                             "parameters": parameters,
                             "predict": predict, "step": step, "torch": torch})
    return rows


def _mb(v) -> str:
    return "-" if v is None else f"{v / 1e6:.2f}"


def main(argv: list[str]) -> int:
    widths = [int(a) for a in argv if a.isdigit()] or list(WIDTHS)
    batches = BATCHES
    if "--batches" in argv:
        batches = tuple(int(b) for b in argv[argv.index("--batches") + 1].split(","))
    rows = measure(widths, batches)
    print(f"signed volume widened, accumulate exact, {rows[0]['threads']} threads; MB = 10^6 bytes; "
          "certified at this thread count, float64 inputs; measured: tracemalloc peak / peak RSS growth; PyTorch: "
          "step / forward RSS growth, where the forward's is 1 MB or more; with parameters: both sides count the "
          "parameters' own bytes")
    print("| channels | batch | predict: certified | measured | step: certified | measured | "
          "training / inference: certified | measured | with parameters: certified | measured | PyTorch (RSS) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, s, t = r["predict"], r["step"], r["torch"]
        ratio_cert = (r["step_certified"] - r["optimizer"]) / r["predict_certified"]
        ratio = (s["traced"] - r["optimizer"]) / p["traced"]
        held = r["parameters"]
        with_cert = (r["step_certified"] - r["optimizer"] + held) / (r["predict_certified"] + held)
        with_measured = (s["traced"] - r["optimizer"] + held) / (p["traced"] + held)
        torch_ratio = f"{t['step'] / t['predict']:.2f} ({_mb(t['step'])} / {_mb(t['predict'])})" \
            if t and t["predict"] >= 1e6 else "-"
        print(f"| {r['channels']} | {r['batch']:,} | {_mb(r['predict_certified'])} | {_mb(p['traced'])} / "
              f"{_mb(p['rss'])} | {_mb(r['step_certified'])} | {_mb(s['traced'])} / {_mb(s['rss'])} | "
              f"{ratio_cert:.2f} | {ratio:.2f} | {with_cert:.2f} | {with_measured:.2f} | {torch_ratio} |")
        if p["traced"] > r["predict_certified"] or s["traced"] > r["step_certified"]:
            print(f"  VIOLATION at {r['channels']} channels, batch {r['batch']}", file=sys.stderr)
    return 0
