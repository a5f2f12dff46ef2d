"""python -m bench fuzz [N] [--seed S] [--command check|graph]: N mutated models (default 20,000)
through `phg` in-process; prints the exit statuses, the slowest cases and every failure (a raise, a
traceback, an unlocated exit 2, another status).  Exit status 1 if any failed."""
from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import mutate  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench fuzz")
    ap.add_argument("n", nargs="?", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--command", choices=("check", "graph"), default="check")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    texts = mutate.sources()
    statuses: collections.Counter = collections.Counter()
    failures, slowest = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.phg"
        for i in range(args.n):
            text = mutate.mutate(rng.choice(texts), rng)
            status, err, seconds, problem = mutate.run_case(path, text, args.command)
            statuses[status] += 1
            slowest = sorted(slowest + [(seconds, i)], reverse=True)[:5]
            if problem:
                failures.append((i, problem, text, err))
    total = time.perf_counter() - start
    print(f"{args.n} cases ({args.command}, seed {args.seed}) in {total:.1f} s; exit statuses "
          + ", ".join(f"{s}: {c}" for s, c in sorted(statuses.items(), key=str)))
    print("slowest: " + ", ".join(f"case {i} {s:.2f} s" for s, i in slowest))
    for i, problem, text, err in failures:
        print(f"--- case {i}: {problem}\n{text[:1500]}\n--- stderr:\n{err[-1500:]}")
    print(f"{len(failures)} failures")
    return 1 if failures else 0
