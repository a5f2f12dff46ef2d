"""Every model, command and Python block of the README and of docs/language.md runs as shown.

Fenced blocks are told apart by their info string:

- `phg [refuted|error] [file=NAME]`: a model. It parses and `phg check` proves every obligation;
  `refuted`: something is refuted; `error`: it is rejected as malformed (a PhgError, exit 2).
  With `file=NAME` it is also written to NAME for the commands after it.
- `console`: `$ COMMAND` lines, run by bash in order, each followed by lines of its expected output
  (`...` elides); every other line must appear, in order, in what it prints. A command that
  ends in `# exit N` must exit with N, every other with 0.
- `python`: run as a script.
- `text` (output, diagrams) and the README's two set-up commands (tests/test_readme.py) are not
  run here.

The blocks of one document share a working directory holding a copy of `examples/`, with `phg` and
`python` from this interpreter's environment first on the PATH.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import phg
from phg.diagnostics import PhgError

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/language.md"]
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.M | re.S)


def blocks(doc: str) -> list[tuple[int, str, list[str], str]]:
    """(line, language, options, text) of each fenced block."""
    text = (ROOT / doc).read_text()
    out = []
    for m in FENCE.finditer(text):
        info = m.group(1).split()
        out.append((text.count("\n", 0, m.start()) + 1, info[0] if info else "", info[1:], m.group(2)))
    return out


def commands(text: str) -> list[tuple[str, list[str]]]:
    """The `$ ` commands of a console block, each with its expected output lines."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
        elif line.strip():
            raise AssertionError(f"console block text before its first command: {line!r}")
    return out


def check_model(text: str, options: list[str], where: str) -> None:
    if "error" in options:
        with pytest.raises(PhgError):
            phg.check(phg.loads(text, filename="block.phg"))
        return
    cert = phg.check(phg.loads(text, filename="block.phg"))
    statuses = {o.status for o in cert.obligations}
    if "refuted" in options:
        assert "refuted" in statuses, f"{where}: expected a refuted obligation"
    else:
        bad = [(o.claim, o.status) for o in cert.obligations if o.status != "proven"]
        assert cert.ok and not bad, f"{where}: {bad}"


def run_console(text: str, cwd: Path, where: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "100"}
    for command, expected in commands(text):
        m = re.search(r"#\s*exit (\d+)\s*$", command)
        want = int(m.group(1)) if m else 0
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
        streams = [[ln.strip() for ln in out.splitlines()] for out in (done.stdout, done.stderr)]
        assert done.returncode == want, f"{where}: `{command}` exited {done.returncode}:\n{done.stdout}{done.stderr}"
        # Each shown line is found in order in standard output or in standard error (a terminal
        # interleaves the two; a pipe does not).
        at = [0, 0]
        for line in (ln.strip() for ln in expected):
            if not line or line == "...":
                continue
            parts = line.split("...")
            for k, printed in enumerate(streams):
                hit = next((i for i in range(at[k], len(printed)) if _matches(parts, printed[i])), None)
                if hit is not None:
                    at[k] = hit + 1
                    break
            else:
                raise AssertionError(f"{where}: `{command}` did not print {line!r}:\n{done.stdout}{done.stderr}")


def _matches(parts: list[str], line: str) -> bool:
    """Whether line holds the pieces in order (a shown line with `...` inside elides a part)."""
    at = 0
    for p in parts:
        at = line.find(p.strip(), at)
        if at < 0:
            return False
        at += len(p.strip())
    return True


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
    dirs = {}
    for doc in DOCS:
        d = tmp_path_factory.mktemp(Path(doc).stem)
        shutil.copytree(ROOT / "examples", d / "examples", ignore=shutil.ignore_patterns("*.cert.json", "__pycache__"))
        dirs[doc] = d
    return dirs


def test_every_block_is_of_a_known_kind():
    for doc in DOCS:
        for line, lang, options, text in blocks(doc):
            assert lang in {"phg", "console", "python", "text", ""}, f"{doc}:{line}: block of unknown kind {lang!r}"
            assert lang != "" or text.startswith("python3.11 -m venv"), \
                f"{doc}:{line}: a block without a kind (phg, console, python or text)"


@pytest.mark.parametrize("doc", DOCS)
def test_every_model_command_and_script_runs_as_shown(doc, workdirs):
    cwd = workdirs[doc]
    ran = 0
    for line, lang, options, text in blocks(doc):
        where = f"{doc}:{line}"
        if lang == "phg":
            check_model(text, options, where)
            for o in options:
                if o.startswith("file="):
                    (cwd / o[5:]).write_text(text)
        elif lang == "console":
            run_console(text, cwd, where)
        elif lang == "python":
            done = subprocess.run([sys.executable, "-c", text], cwd=cwd, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{where}:\n{done.stdout}{done.stderr}"
        else:
            continue
        ran += 1
    assert ran >= 3, f"{doc}: only {ran} blocks ran"


def test_the_language_reference_shows_every_construct():
    """Each declaration, statement, type, operator, built-in and train setting appears in a
    model block of docs/language.md."""
    models = "\n".join(t for _, lang, _, t in blocks("docs/language.md") if lang == "phg")
    for word in ["algebra", "Cl(", "basis(", "units(", "unit ", "const ", "def ", "model ", "train ",
                 "param ", "input ", "let ", "output ", "loss ", "symmetry ", " except ", "ensure grade(", "ensure unit(", "ensure versor(",
                 "normal(", "uniform(", "Scalar", "Vector", "Bivector", "Trivector", "Pseudoscalar", "Even", "Odd",
                 "Multivector", "Grades(", "Blades(", "Rotor", "Motor", "Versor", " ^ ", " | ", " & ", " >> ",
                 " * ", " / ", " + ", " - ", "~", ".e12", "[0]", "[m/s", "^(1/2)", ";",
                 "grade(", "even(", "odd(", "scalar(", "dual(", "inv(", "involute(", "norm(", "norm2(",
                 "normalize(", "exp(", "log(", "sqrt(", "sin(", "cos(", "tanh(", "sigmoid(", "relu(", "gelu(",
                 "abs(", "sum(", "mix(", "gate(", "optimizer sgd", "optimizer adam", "optimizer prm", "batch ",
                 "steps ", "epochs ", "accumulate exact", "accumulate float", "seed ", "memory <="]:
        assert word in models, f"docs/language.md has no model using {word!r}"
