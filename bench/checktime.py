"""How long `phg check` takes: each example, and a generated model of 1,000 hyperedges."""
from __future__ import annotations

import time
from pathlib import Path

import phg

ROOT = Path(__file__).resolve().parents[1]


def chain_model(edges: int) -> str:
    """A model of about `edges` hyperedges: rotor sandwiches, products and projections in G3."""
    lines = ["algebra G3 = Cl(3, 0, 0)", "model Big on G3 {", "    param R: Rotor", "    input x: Vector",
             "    input y: Vector", "    let v0: Vector = x"]
    for i in range(1, edges // 4 + 1):
        lines.append(f"    let v{i}: Vector = R >> grade(v{i - 1} * y, 1) + v{i - 1}")
    lines += [f"    output out: Vector = v{edges // 4}", "}"]
    return "\n".join(lines) + "\n"


def timed(text: str, name: str) -> tuple[float, int, bool]:
    start = time.perf_counter()
    program = phg.loads(text, filename=name)
    cert = phg.check(program)
    seconds = time.perf_counter() - start
    return seconds, sum(len(m.edges) for m in program.models.values()), cert.ok


def measure() -> list[tuple[str, int, bool, float]]:
    """(model, hyperedges, all proven, seconds) for each example and the generated chain."""
    phg.check(phg.loads("algebra G = Cl(1, 0, 0)\n"))          # imports and first-use costs
    rows = []
    for path in sorted((ROOT / "examples").glob("*.phg")):
        s, e, ok = timed(path.read_text(), str(path))
        rows.append((path.name, e, ok, s))
    s, e, ok = timed(chain_model(1000), "<generated>")
    return rows + [("generated chain", e, ok, s)]


def main(argv: list[str]) -> int:
    print("| model | hyperedges | all proven | seconds |")
    print("|---|---|---|---|")
    for name, e, ok, s in measure():
        print(f"| {name} | {e} | {ok} | {s:.3f} |")
    return 0
