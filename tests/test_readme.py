"""The README's commands are the ones CI and users run."""
import re
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
