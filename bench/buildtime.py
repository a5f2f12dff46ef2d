"""Cold and warm `phg build` of the rigid-registration example: cold is code generation plus
Numba compilation into an empty directory with an empty per-user cache (phg's and Numba's);
warm is a new process building the same source again, which imports the module and loads the
compiled kernels from Numba's cache.  Each is timed in a fresh interpreter, up to the first
prediction (where Numba compiles), after imports."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import time, numpy as np, phg, numba
start = time.perf_counter()
kernels = phg.build(phg.load({src!r}), {out!r})
kernels.RigidRegistration().predict(x=np.zeros((4, 3)))
print(time.perf_counter() - start)
"""


def timed(out: str, cache: str) -> float:
    src = str(ROOT / "examples" / "rigid_registration.phg")
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(src=src, out=out)], capture_output=True, text=True,
                          check=True, cwd=ROOT, env={**os.environ, "XDG_CACHE_HOME": cache})
    return float(done.stdout.strip().splitlines()[-1])


def measure() -> tuple[float, float]:
    """Seconds of a cold and of a warm build."""
    with tempfile.TemporaryDirectory() as tmp:
        out, cache = str(Path(tmp) / "build"), str(Path(tmp) / "cache")
        return timed(out, cache), timed(out, cache)


def main(argv: list[str]) -> int:
    cold, warm = measure()
    print("| build of rigid_registration | seconds | target |")
    print("|---|---|---|")
    print(f"| cold (codegen + compile) | {cold:.2f} | < 15 |")
    print(f"| warm (import from cache) | {warm:.2f} | < 1 |")
    return 0
