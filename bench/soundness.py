"""Soundness and precision of the verifier on random models (the generator of
tests/test_soundness.py): every proven claim is checked with clifford on 20 admissible inputs;
precision is the share proven among the claims that held numerically and were not refuted by an
exactly confirmed counterexample."""
from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import phg  # noqa: E402
from claimcheck import holds  # noqa: E402
from modelgen import models  # noqa: E402


def run(n_models: int) -> dict:
    tally = collections.Counter()
    violations = []

    @settings(max_examples=n_models, derandomize=True, deadline=None, database=None,
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

    start = time.perf_counter()
    one()
    seconds = time.perf_counter() - start
    held = sum(v for k, v in tally.items() if isinstance(k, tuple) and k[1] is True and k[0] != "refuted")
    proven = tally[("proven", True)]
    return {"models": tally["models"], "seconds": seconds, "violations": violations,
            "proven": sum(v for k, v in tally.items() if isinstance(k, tuple) and k[0] == "proven"),
            "refuted": sum(v for k, v in tally.items() if isinstance(k, tuple) and k[0] == "refuted"),
            "unknown": sum(v for k, v in tally.items() if isinstance(k, tuple) and k[0] == "unknown"),
            "precision": proven / held if held else float("nan")}


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20_000
    r = run(n)
    print("| models | claims proven / refuted / unknown | soundness violations | precision | seconds |")
    print("|---|---|---|---|---|")
    print(f"| {r['models']} | {r['proven']} / {r['refuted']} / {r['unknown']} | {len(r['violations'])} | "
          f"{100 * r['precision']:.1f}% | {r['seconds']:.0f} |")
    for source, claim in r["violations"][:5]:
        print(f"\nVIOLATION: {claim}\n{source}")
    return 1 if r["violations"] else 0
