"""Certified equivariance (LANGUAGE §20): O3CGMLP (examples/cgenn_volume.phg) proven
O(3)-equivariant with its output's parity, six deliberately broken variants each refuted with a
witness confirmed by exact evaluation, and a sweep of random models whose proven claims are checked
against clifford's numbers (unsound: a proven claim the numbers break) and whose claims that hold
numerically are counted (precision: the share of them proven).

    python -m bench symmetry [--width 96] [--models 1000]
"""
from __future__ import annotations

import argparse
import re
import time

from .cgenn import WIDTH, source

# (what breaks it, how the network's source is edited)
VARIANTS = [
    ("a constant vector added", lambda s: s.replace("silu(silu(silu(h, a1, b1)", "silu(silu(silu(h + e1, a1, b1)")),
    ("a vector parameter", lambda s: s.replace("    param n2[", "    param u: Vector = 0\n    param n2[")
     .replace("silu(silu(silu(h, a1, b1)", "silu(silu(silu(h + u, a1, b1)")),
    ("a learned rotor sandwich", lambda s: s.replace("    param n2[", "    param Q: Rotor = 1\n    param n2[")
     .replace("silu(silu(silu(h, a1, b1)", "silu(silu(silu(h + grade(Q >> h, 1), a1, b1)")),
    ("a dual under O(3)", lambda s: s.replace("silu(silu(silu(h, a1, b1)", "silu(silu(silu(h + dual(grade(h, 1)), a1, b1)")),
    ("a gate on a non-invariant", lambda s: s.replace("a[1] * norm2(grade(x, 1))",
                                                      "a[1] * scalar(grade(x, 1) * grade(x, 2) * e123)")),
    ("an input opted out but used as covariant", lambda s: s.replace("    symmetry O(3)", "    symmetry O(3) except u")
     .replace("    input target:", "    input u[3]: Vector[m]\n    input target:").replace("v / 1[m])", "(v + u) / 1[m])")),
]


def variants(width: int) -> list[tuple[str, str]]:
    """The network at `width` channels, then each broken variant: (what, source)."""
    base = source(width)
    out = [("O3CGMLP", base)]
    for what, edit in VARIANTS:
        text = edit(base)
        assert text != base, what
        out.append((what, text))
    return out


def check(text: str, name: str):
    import phg

    program = phg.loads(text, name)
    start = time.perf_counter()
    cert = phg.check(program)
    return [o for o in cert.obligations if o.kind == "equivariance"], time.perf_counter() - start


def sweep(models: int) -> dict:
    """Random models of tests/modelgen.symmetric_models, checked and measured."""
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from hypothesis import HealthCheck, given, seed, settings
    from modelgen import symmetric_models
    from symcheck import deviation

    import phg
    counts = {"claims": 0, "proven": 0, "refuted": 0, "unknown": 0, "unsound": 0, "holds": 0, "holds_proven": 0,
              "witness_wrong": 0}

    @seed(0)
    @settings(max_examples=models, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(symmetric_models())
    def run(text):
        program = phg.loads(text)
        cert = phg.check(program)
        graph = program.models["M"]
        for o in cert.obligations:
            if o.kind != "equivariance":
                continue
            counts["claims"] += 1
            counts[o.status] += 1
            q = o.evidence.get("parity")
            best = min(deviation(graph, o.value_id, p, trials=6) for p in (1, -1))
            holds = best <= 1e-9
            counts["holds"] += holds
            if o.status == "proven":
                counts["holds_proven"] += 1
                counts["unsound"] += deviation(graph, o.value_id, q) > 1e-9
            elif o.status == "refuted":
                counts["witness_wrong"] += holds

    run()
    return counts


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench symmetry", description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--models", type=int, default=1000)
    args = ap.parse_args(argv)
    print(f"O3CGMLP at {args.width} channels, symmetry O(3)")
    for what, text in variants(args.width):
        obligations, seconds = check(text, f"cgenn_{args.width}.phg")
        for o in obligations:
            ev = o.evidence
            detail = ev.get("breaks", {}).get("because", "")
            where = ev.get("breaks", {}).get("at", {}).get("span")
            at = f" at {where['line']}:{where['col']}" if where else ""
            witness = ev.get("witness")
            confirmed = f"; witness det(g) = {witness['det']}, confirmed {witness['confirmed']}" if witness else ""
            print(f"  {what:<42} {o.status:<8} {seconds:5.1f} s  {o.claim if o.status == 'proven' else detail}{at}"
                  f"{confirmed}")
    counts = sweep(args.models)
    precision = counts["holds_proven"] / max(counts["holds"], 1)
    print(f"random models: {args.models}, claims {counts['claims']}: proven {counts['proven']}, refuted "
          f"{counts['refuted']}, unknown {counts['unknown']}; unsound {counts['unsound']}, wrong witnesses "
          f"{counts['witness_wrong']}; precision {precision:.1%} ({counts['holds_proven']} of the {counts['holds']} "
          "claims that hold numerically proven)")
    return 0 if counts["unsound"] == 0 and counts["witness_wrong"] == 0 else 1
