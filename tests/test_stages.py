"""The pipeline's stages import each other one way only (docs/architecture.md): the verifier and
the code generator both read the kernel plan (phg.plan) and neither imports the other; the plan
imports neither."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported(folder: str) -> set[str]:
    """Every module the sources of a folder import (relative imports resolved into phg.*)."""
    package = {"phg/plan": "phg.plan", "verifier": "phg.verifier", "codegen": "phg.codegen", "dsl": "phg.dsl"}[folder]
    out = set()
    for path in (ROOT / folder).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level else ""
                out.add(".".join(p for p in (base, node.module) if p))
    return out


@pytest.mark.parametrize("folder, never", [("verifier", "phg.codegen"), ("codegen", "phg.verifier"),
                                           ("phg/plan", "phg.codegen"), ("phg/plan", "phg.verifier"),
                                           ("dsl", "phg.codegen"), ("dsl", "phg.verifier")])
def test_a_stage_never_imports_a_later_or_parallel_one(folder, never):
    bad = sorted(m for m in imported(folder) if m == never or m.startswith(never + "."))
    assert not bad, f"{folder}/ imports {bad}"


def test_checking_a_model_with_a_train_block_loads_no_code_generator():
    script = ("import sys, phg\n"
              f"p = phg.load({str(ROOT / 'examples' / 'signed_volume.phg')!r})\n"
              "assert phg.check(p).to_dict()['memory']['training_bytes']\n"
              "print(sorted(m for m in sys.modules if m.startswith('phg.codegen')))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
