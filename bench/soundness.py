"""Soundness and precision of the verifier on random models (the generator of
tests/test_soundness.py): every proven claim is checked with clifford on 20 admissible inputs;
precision is the share proven among the claims that held numerically and were not refuted by an
exactly confirmed counterexample."""
from __future__ import annotations

import collections
import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import phg  # noqa: E402
from claimcheck import holds  # noqa: E402
from modelgen import models  # noqa: E402


def run(n_models: int, shard: int | None = None) -> dict:
    """n_models random models; one process draws them derandomised, shard k of a parallel run
    draws its own reproducible stream (hypothesis seed k)."""
    tally = collections.Counter()
    violations = []

    @settings(max_examples=n_models, derandomize=shard is None, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(models())
    def one(source):
        program = phg.loads(source)
        cert = phg.check(program)
        claims = [o for o in cert.obligations if o.kind in ("grade", "versor")]
        verdict = holds(program.models["M"], claims, trials=20)
        for o in claims:
            tally[(o.status, verdict[o.id])] += 1
            if o.status == "proven" and verdict[o.id] is False:
                violations.append((source, o.claim))
        tally["models"] += 1

    if shard is not None:
        one = seed(shard)(one)
    start = time.perf_counter()
    one()
    seconds = time.perf_counter() - start
    held = sum(v for k, v in tally.items() if isinstance(k, tuple) and k[1] is True and k[0] != "refuted")
    proven = tally[("proven", True)]
    return {"models": tally["models"], "seconds": seconds, "violations": violations, "held": held,
            "held_proven": proven,
            "proven": sum(v for k, v in tally.items() if isinstance(k, tuple) and k[0] == "proven"),
            "refuted": sum(v for k, v in tally.items() if isinstance(k, tuple) and k[0] == "refuted"),
            "unknown": sum(v for k, v in tally.items() if isinstance(k, tuple) and k[0] == "unknown"),
            "precision": proven / held if held else float("nan")}


SHARD = 2500      # models per process: hypothesis's record of the examples it drew stays small


def parallel(n: int, jobs: int) -> dict:
    """The models split into shards of at most SHARD (shard k draws hypothesis seed k), `jobs`
    processes at a time, their tallies added."""
    shards = max(jobs, -(-n // SHARD))
    sizes = [n // shards + (k < n % shards) for k in range(shards)]

    def shard(k: int) -> dict:
        out = subprocess.run([sys.executable, "-m", "bench.soundness", "--shard", str(k), str(sizes[k])],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        parts = list(pool.map(shard, range(shards)))
    total = {k: sum(part[k] for part in parts) for k in ("models", "proven", "refuted", "unknown", "held", "held_proven")}
    total["violations"] = [v for part in parts for v in part["violations"]]
    total["seconds"] = time.perf_counter() - start
    total["precision"] = total["held_proven"] / total["held"] if total["held"] else float("nan")
    return total


def tally(n: int, jobs: int) -> dict:
    """n models in this process, or in shards over `jobs` processes."""
    return run(n) if jobs == 1 and n <= SHARD else parallel(n, jobs)


def main(argv: list[str]) -> int:
    """python -m bench soundness [N_MODELS] [--jobs J]"""
    jobs = int(argv[argv.index("--jobs") + 1]) if "--jobs" in argv else 1
    rest = [a for i, a in enumerate(argv) if a != "--jobs" and (i == 0 or argv[i - 1] != "--jobs")]
    n = int(rest[0]) if rest else 20_000
    r = tally(n, jobs)
    print("| models | claims proven / refuted / unknown | soundness violations | precision | seconds |")
    print("|---|---|---|---|---|")
    print(f"| {r['models']} | {r['proven']} / {r['refuted']} / {r['unknown']} | {len(r['violations'])} | "
          f"{100 * r['precision']:.1f}% | {r['seconds']:.0f} |")
    for source, claim in r["violations"]:
        print(f"\nVIOLATION: {claim}\n{source}")
    return 1 if r["violations"] else 0


if __name__ == "__main__":                 # one shard of a parallel run: prints its tally as JSON
    k = int(sys.argv[sys.argv.index("--shard") + 1])
    result = run(int(sys.argv[-1]), shard=k)
    print(json.dumps({**result, "violations": [list(v) for v in result["violations"]]}))
