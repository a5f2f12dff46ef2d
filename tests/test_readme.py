"""The README's commands are the ones CI and users run."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```\n(python3\.11 -m venv[^\n]*)\n```", text)


def test_readme_opens_with_the_two_setup_commands():
    main_job, tests = readme_commands()[:2]
    assert "phg check examples/rigid_registration.phg" in main_job
    assert tests.endswith("python -m pytest")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_the_main_job_runs_and_reaches_the_kabsch_optimum(tmp_path):
    """The README's first command after its set-up part (the environment is this one), in a fresh
    directory: check, build and train the rigid-registration example, and its closing figure."""
    main_job = readme_commands()[0]
    setup = "python3.11 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && "
    assert main_job.startswith(setup)
    command = main_job[len(setup):].replace(".venv/bin/", "")
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("*.cert.json"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all proven" in done.stdout and (tmp_path / "build" / "rigid_registration.py").exists()
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("fitted vs Kabsch optimum")][0]
    rotation, translation = (float(v) for v in re.findall(r"([0-9.e+-]+) (?:rad|m)", line))
    assert rotation < 1e-5 and translation < 1e-5
