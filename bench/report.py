"""Every benchmark in one run, as one markdown table of ratios taken on this machine, headed by
the machine, the thread count and the versions of everything timed.

    python -m bench [--soundness N] [--jobs J]

The soundness run is the longest (about 0.2 s a model on one core): N defaults to 2,000 models
here (the CI figure); `python -m bench soundness 20000 --jobs J` gives the full figure.  Optional
peers (kingdon, PyTorch) that are not installed are skipped with a note.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import tempfile
import time
from pathlib import Path

import numba

from . import buildtime, checktime, predict, soundness, train


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header() -> list[str]:
    versions = ", ".join(f"{d} {_version(d)}" for d in ("phg", "numpy", "numba", "z3-solver", "clifford",
                                                        "kingdon", "torch"))
    threads = os.environ.get("NUMBA_NUM_THREADS", "default")
    return [(f"machine: {_cpu()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}; "
             f"Python {platform.python_version()}"),
            f"threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS={threads}; PyTorch is given the same number)",
            f"versions: {versions}"]


def _x(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def rows(n_soundness: int, jobs: int) -> tuple[list[tuple], list[str], int]:
    """(benchmark, phg, peer, peer's figure, ratio, target) rows, notes, and the number of
    soundness violations."""
    out, notes = [], []
    for r in predict.run():
        case = f"predict: {r['case']}, N = {predict.N:,}"
        out.append((case, f"{r['phg_ms']:.2f} ms", "hand-fused Numba", f"{r['hand_ms']:.2f} ms",
                    f"phg at {_x(r['vs_hand'])} its speed", ">= 0.9x"))
        if r["kingdon_ms"] is None:
            notes.append("kingdon is not installed: its predict rows are skipped (pip install kingdon)")
        else:
            out.append((case, f"{r['phg_ms']:.2f} ms", "kingdon", f"{r['kingdon_ms']:.1f} ms",
                        f"phg {_x(r['vs_kingdon'])} faster", ">= 3x"))
        out.append((case, f"{r['phg_ms']:.2f} ms", "clifford", f"{r['clifford_ms'] / 1e3:.1f} s (scaled)",
                    f"phg {_x(r['vs_clifford'])} faster", ">= 50x"))
    with tempfile.TemporaryDirectory() as tmp:
        times = train.speed(Path(tmp))
        mem = train.memory(Path(tmp))
    case = f"loss + gradient, rigid registration, N = {train.N:,}"
    exact, flt, hand, torch = (times[k] for k in ("phg exact", "phg float", "hand-fused Numba", "PyTorch eager"))
    out.append((case + ", `accumulate float`", f"{1e3 * flt:.1f} ms", "hand-fused Numba (float sums)",
                f"{1e3 * hand:.1f} ms", f"phg at {_x(hand / flt)} its speed", ">= 0.9x"))
    out.append((case + ", `accumulate exact` (default)", f"{1e3 * exact:.1f} ms", "phg `accumulate float`",
                f"{1e3 * flt:.1f} ms", f"exact costs {_x(exact / flt)} float", "<= 2x"))
    if torch is None:
        notes.append("PyTorch is not installed: its training and memory rows are skipped (pip install torch)")
    else:
        out.append((case + ", `accumulate exact` (default)", f"{1e3 * exact:.1f} ms", "PyTorch eager (CPU, float64)",
                    f"{1e3 * torch:.1f} ms", f"phg {_x(torch / exact)} faster", ">= 5x"))
    for which, name in (("phg", "phg"), ("torch", "PyTorch eager")):
        inf, tr = mem[(which, "inference")], mem[(which, "training")]
        if inf and tr is not None:
            out.append((f"peak memory growth, training step / inference, N = {train.N:,}", name,
                        "", f"{tr:,} KiB / {inf:,} KiB", f"{tr / inf:.2f}", "<= 2" if which == "phg" else ""))
    cold, warm = buildtime.measure()
    out.append(("`phg build` rigid_registration, cold (codegen + compile)", f"{cold:.2f} s", "", "", "", "< 15 s"))
    out.append(("`phg build` rigid_registration, warm (new process, cache)", f"{warm:.2f} s", "", "", "", "< 1 s"))
    for name, edges, ok, seconds in checktime.measure():
        out.append((f"`phg check` {name} ({edges} hyperedges{'' if ok else ', not all proven'})",
                    f"{seconds:.2f} s", "", "", "", "< 5 s" if edges >= 1000 else ""))
    start = time.perf_counter()
    s = soundness.tally(n_soundness, jobs)
    claims = f"{s['proven']:,} / {s['refuted']:,} / {s['unknown']:,}"
    out.append((f"soundness: {s['models']:,} random models, {claims} claims proven / refuted / unknown",
                f"{len(s['violations'])} violations", "", "", f"precision {100 * s['precision']:.1f}%",
                "0 violations, >= 90%"))
    notes.append(f"soundness: {n_soundness:,} models in {time.perf_counter() - start:.0f} s "
                 f"(`python -m bench soundness 20000 --jobs J` for the full figure)")
    return out, notes, len(s["violations"])


def main(argv: list[str]) -> int:
    n = int(argv[argv.index("--soundness") + 1]) if "--soundness" in argv else 2000
    jobs = int(argv[argv.index("--jobs") + 1]) if "--jobs" in argv else 1
    table, notes, violations = rows(n, jobs)
    print("\n".join(header()))
    print()
    print("| benchmark | phg | peer | peer's figure | ratio | target |")
    print("|---|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(row) + " |")
    print()
    for note in notes:
        print(f"- {note}")
    return 1 if violations else 0
