"""A researcher's loop on the rigid-registration example, each command a fresh process in one
fresh per-user cache: `phg build -o`, then `phg train`, then `phg train` again after editing the
learning rate, after editing a comment and the steps, and with `--lr` on the command line.  Each
row is the command's wall time and what its compile line said (how many kernels Numba compiled,
how many it loaded from its cache): after the first build, none should compile.  A cold
`phg train` (an empty cache, no build before it) is the row to compare with.

    python -m bench workflow [--samples 4096]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "rigid_registration.phg"


def _phg(args: list[str], cwd: Path, cache: Path) -> tuple[float, str]:
    """Wall seconds of `phg ARGS` in a new process, and its output."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": "200"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "import sys; from phg.shell.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"phg {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout + done.stderr


def _kernels(output: str) -> str:
    """What the compile line said."""
    found = re.search(r"\(the kernels, before the first step: ([^)]*)\)", output) or \
        re.search(r"kernels compiled in [\d.]+ s \(([^)]*)\)", output)
    return found.group(1) if found else "?"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench workflow")
    ap.add_argument("--samples", type=int, default=4096)
    args = ap.parse_args(argv)
    text = SOURCE.read_text()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        x = np.random.default_rng(0).normal(size=(args.samples, 3))
        np.savez(root / "pairs.npz", x=x, y=x[:, [1, 0, 2]] * [1, -1, 1] + [0.5, 0.0, 0.0])
        model = root / "rigid.phg"
        model.write_text(text)
        train = ["train", "rigid.phg", "--data", "pairs.npz", "-o", "rigid.params.npz", "--force"]

        seconds, out = _phg(train, root, root / "cold-cache")
        rows.append(("phg train, cold (empty cache, no build before)", seconds, _kernels(out)))
        cache = root / "cache"
        seconds, out = _phg(["build", "rigid.phg", "-o", "build"], root, cache)
        rows.append(("phg build -o build (empty cache)", seconds, _kernels(out)))
        seconds, out = _phg(train, root, cache)
        rows.append(("phg train after phg build -o", seconds, _kernels(out)))
        model.write_text(text.replace("adam(lr = 0.05)", "adam(lr = 0.02)"))
        seconds, out = _phg(train, root, cache)
        rows.append(("phg train after editing lr in the file", seconds, _kernels(out)))
        model.write_text("# a comment added\n" + text.replace("adam(lr = 0.05)", "adam(lr = 0.02)")
                         .replace("steps 300", "steps 200"))
        seconds, out = _phg(train, root, cache)
        rows.append(("phg train after editing a comment and steps", seconds, _kernels(out)))
        seconds, out = _phg(train + ["--lr", "0.01"], root, cache)
        rows.append(("phg train --lr 0.01 (no edit)", seconds, _kernels(out)))

    print(f"| rigid registration, {args.samples} samples | wall s (whole command) | kernels |")
    print("|---|---|---|")
    for what, seconds, kernels in rows:
        print(f"| {what} | {seconds:.2f} | {kernels} |")
    return 0
