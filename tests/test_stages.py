"""The pipeline's stages import each other one way only (docs/architecture.md): the verifier and
the code generator both read the kernel plan (phg.plan) and neither imports the other; the plan
imports neither; the core (phg's own modules: algebra, hypergraph, supports, the operation
registry) imports no stage; nothing in the pipeline imports the shell (the CLI, phg train); and
no module imports, at module level or inside a function, one that imports it back."""
import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"phg": "phg", "phg/plan": "phg.plan", "phg/shell": "phg.shell", "dsl": "phg.dsl",
            "verifier": "phg.verifier", "codegen": "phg.codegen"}


def modules() -> dict[str, tuple[Path, str]]:
    """Every module of every package: name -> (path, package)."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).glob("*.py"):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = (path, package)
    return out


def imports(path: Path, package: str, known: dict) -> set[str]:
    """What a module imports, anywhere in it: modules of phg where known (`from phg import
    support` is phg.support, not the package), else the name as written."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            out |= {f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names}
    return out


def imported(folder: str) -> set[str]:
    """Every module the sources of a folder import (relative imports resolved into phg.*)."""
    known = modules()
    package = PACKAGES[folder]
    out = set()
    for path in (ROOT / folder).glob("*.py"):
        out |= imports(path, package, known)
    return out


@pytest.mark.parametrize("folder, never", [("verifier", "phg.codegen"), ("codegen", "phg.verifier"),
                                           ("phg/plan", "phg.codegen"), ("phg/plan", "phg.verifier"),
                                           ("dsl", "phg.codegen"), ("dsl", "phg.verifier"),
                                           *[(f, "phg.shell") for f in PACKAGES if f != "phg/shell"]])
def test_a_stage_never_imports_a_later_or_parallel_one(folder, never):
    bad = sorted(m for m in imported(folder) if m == never or m.startswith(never + "."))
    assert not bad, f"{folder}/ imports {bad}"


def test_the_core_imports_no_stage():
    """phg's own modules (not its API, phg/__init__.py, which runs the stages) import no stage."""
    known = modules()
    stages = ("phg.dsl", "phg.verifier", "phg.codegen", "phg.plan", "phg.shell")
    for name, (path, package) in known.items():
        if package == "phg" and name != "phg":
            bad = sorted(m for m in imports(path, package, known) if m.startswith(stages))
            assert not bad, f"{name} imports {bad}"


def test_no_module_imports_one_that_imports_it_back():
    known = modules()
    graph = nx.DiGraph()
    for name, (path, package) in known.items():
        graph.add_node(name)
        graph.add_edges_from((name, m) for m in imports(path, package, known) if m in known and m != name)
    cycles = sorted(nx.simple_cycles(graph), key=len)
    assert not cycles, f"{len(cycles)} circles of imports, the shortest {cycles[0]}"


def test_checking_a_model_with_a_train_block_loads_no_code_generator():
    script = ("import sys, phg\n"
              f"p = phg.load({str(ROOT / 'examples' / 'signed_volume.phg')!r})\n"
              "assert phg.check(p).to_dict()['memory']['training_bytes']\n"
              "print(sorted(m for m in sys.modules if m.startswith('phg.codegen')))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
