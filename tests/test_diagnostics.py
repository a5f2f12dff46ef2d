"""Every malformed input exits with status 2 and a located diagnostic: file:line:col, the line
quoted with a caret, and what was expected."""
import subprocess
import sys

import pytest

from phg.shell.cli import main
from malformed import CASES


@pytest.mark.parametrize("source, where, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_input_is_located(tmp_path, capsys, source, where, words):
    path = tmp_path / "bad.phg"
    path.write_text(source)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    line, col = where
    assert err.startswith(f"{path}:{line}:{col}: "), err
    assert words in err, err
    assert "expected: " in err, err
    assert "Traceback" not in err
    quoted = source.splitlines()[line - 1]
    assert quoted in err and "^" in err, err


def test_enough_distinct_malformed_inputs():
    assert len({c[0] for c in CASES}) >= 20


def test_unreadable_files(tmp_path, capsys):
    missing = tmp_path / "missing.phg"
    assert main(["check", str(missing)]) == 2
    assert f"{missing}:1:1: io error: cannot read" in capsys.readouterr().err
    binary = tmp_path / "binary.phg"
    binary.write_bytes(b"algebra G3 = Cl(3, 0, 0)\n# caf\xe9\n")
    assert main(["graph", str(binary)]) == 2
    assert f"{binary}:2:6: io error: byte 0xe9 is not valid UTF-8" in capsys.readouterr().err


def test_command_line_gives_no_traceback(tmp_path):
    path = tmp_path / "bad.phg"
    path.write_text(CASES[0][1])
    run = subprocess.run([sys.executable, "-m", "phg.shell.cli", "check", str(path)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and f"{path}:1:" in run.stderr
