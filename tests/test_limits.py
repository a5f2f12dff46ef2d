"""Large and deep models within the limits check; the line a diagnostic names is the line it quotes,
whatever the file's line ends."""
import pytest

import phg
import phg.dsl.lower
from phg.shell.cli import main
from phg.diagnostics import source_lines

HEADER = "algebra G3 = Cl(3, 0, 0)\n"


def _model(body: str) -> str:
    return HEADER + "model M on G3 {\n    input x: Vector[m]\n" + body + "}\n"


@pytest.mark.parametrize("expr", [" + ".join(["x"] * 500), "-" * 490 + "x", "(" * 2000 + "x" + ")" * 2000],
                         ids=["sum-of-500", "490-minus-signs", "2000-brackets"])
def test_deep_expressions_check(tmp_path, capsys, expr):
    path = tmp_path / "deep.phg"
    path.write_text(_model(f"    output y: Vector[m] = {expr}\n"))
    assert main(["check", str(path)]) == 0, capsys.readouterr().err
    assert "Traceback" not in capsys.readouterr().err


def test_deep_expression_loads_through_the_api():
    program = phg.loads(_model("    output y = " + " + ".join(["x"] * 2000) + "\n"))
    assert program.models["M"].values["y"].support == program.models["M"].values["x"].support


LINE_ENDS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}
INNER = {"form-feed": "\f", "u2028": "\u2028", "u0085": "\u0085", "u2029": "\u2029", "vertical-tab": "\v"}


@pytest.mark.parametrize("end", LINE_ENDS.values(), ids=LINE_ENDS)
@pytest.mark.parametrize("inner", INNER.values(), ids=INNER)
def test_the_quoted_line_is_the_named_line(tmp_path, capsys, end, inner):
    """Line 3 holds a character that str.splitlines() would split at; the lexer does not."""
    lines = [HEADER.rstrip("\n"), "model M on G3 {", f"    # a comment {inner} still the comment",
             "    input x: Vector", "    output y = x + xx", "}", ""]
    path = tmp_path / "ends.phg"
    path.write_bytes(end.join(lines).encode("utf-8"))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:5:20: name error: unknown name 'xx'"), err
    assert "    5 |     output y = x + xx\n" in err, err
    assert "      |                    ^^\n" in err, err


def test_a_control_character_keeps_the_caret_under_its_column(tmp_path, capsys):
    path = tmp_path / "ff.phg"
    path.write_text(HEADER + "model M on G3 {\n    input x: Vector\n    output y =\fx + xx\n}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:4:20: "), err
    assert "    4 |     output y = x + xx\n      |                    ^^\n" in err, err


def test_source_lines_split_at_line_ends_only():
    assert source_lines("a\r\nb\rc\nd\fe\u2028f\u0085g") == ["a", "b", "c", "d\fe\u2028f\u0085g"]


def test_log_without_a_closed_form_is_refused_by_build_located(tmp_path, capsys):
    """log() is generated where exp has a closed form (G2, G3, 2D and 3D PGA); in any other
    algebra it is checked, and phg build refuses it where it is written."""
    path = tmp_path / "log.phg"
    path.write_text("algebra G4 = Cl(4, 0, 0)\nmodel M on G4 {\n    param R: Rotor\n    output L: Bivector = log(R)\n}\n")
    assert main(["check", str(path)]) == 0          # checked, as docs/language.md says
    capsys.readouterr()
    assert main(["build", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:4:26: type error: log() is not generated in G4 (only where exp has a closed form: "
                          "G2, G3, 2D and 3D PGA), and phg build"), err
    assert not (tmp_path / "out" / "log.py").exists()


def test_an_internal_error_is_reported_with_exit_3(tmp_path, capsys, monkeypatch):
    """A bug in phg (here: one planted in lowering) is said to be one, not dressed as bad input."""

    def broken(file):
        raise ZeroDivisionError("planted")
    monkeypatch.setattr(phg.dsl.lower, "lower", broken)
    path = tmp_path / "ok.phg"
    path.write_text(_model("    output y = x\n"))
    assert main(["check", str(path)]) == 3
    err = capsys.readouterr().err
    assert "phg: internal error: ZeroDivisionError: planted" in err and "please report it" in err
    assert "Traceback" not in err


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("command", ["check", "graph"])
def test_a_fifo_a_device_or_a_huge_file_is_refused_unread(tmp_path, capsys, command):
    import os
    from phg import sources
    os.mkfifo(tmp_path / "pipe")
    huge = tmp_path / "huge.phg"
    with open(huge, "wb") as f:
        f.truncate(sources.MAX_SOURCE_BYTES + 1)
    for target, why in ((tmp_path / "pipe", "not a regular file"), ("/dev/zero", "not a regular file"),
                        (huge, "larger than 4 MiB")):
        assert main([command, str(target)]) == 2           # returns: the FIFO was never opened
        err = capsys.readouterr().err
        assert err.startswith(f"{target}:1:1: io error: cannot read {target}: {why}"), err
        assert "expected: a regular .phg file of at most 4 MiB" in err


MIX_MODEL = """model M{i} on G3 {{
    input x[20000]: Vector[m]
    param W[1, 20000]: Multivector = normal(0.01)
    let y[1] = mix(W, x)
    loss norm2(sum(y)) / 1[m^2]
}}
"""


def test_the_size_budget_is_over_the_whole_file():
    """Each model within the limits, the file past them: refused where the file crosses them."""
    from phg.dsl.budget import MAX_PROGRAM_REDUCTION_TERMS, MAX_PROGRAM_TERMS
    phg.loads(HEADER + "".join(MIX_MODEL.format(i=i) for i in range(4)))
    with pytest.raises(phg.PhgError) as caught:
        phg.loads(HEADER + "".join(MIX_MODEL.format(i=i) for i in range(5)), filename="many.phg")
    err = caught.value
    assert (err.span.line, err.span.col) == (1 + 4 * 6 + 4, 16), err.render()
    assert err.render().startswith("many.phg:29:16: size error: the file is too large: its reductions over "
                                   "channels add up 2,400,032 scalar terms by this mix in model M4 and the 4 models "
                                   "before it (M0, M1, M2, ...)"), err.render()
    assert f"expected: at most {MAX_PROGRAM_REDUCTION_TERMS:,} terms in all the reductions of a file" in err.render()

    wide = "model {name} on G3 {{\n    input x[150000]: Vector[m]\n    output y[150000]: Vector[m] = x\n}}\n"
    phg.loads(HEADER + wide.format(name="A") + wide.format(name="B"))        # 1,800,000 coefficients: within
    with pytest.raises(phg.PhgError) as caught:
        phg.loads(HEADER + "".join(wide.format(name=n) for n in "ABC"), filename="wide.phg")
    text = caught.value.render()
    assert text.startswith("wide.phg:11:5: size error: the file is too large: over their channels, "
                           "model C and the 2 models before it (A, B) have 2,250,000 scalar coefficients"), text
    assert f"expected: at most {MAX_PROGRAM_TERMS:,} scalar coefficients in all the models of a file" in text


def test_the_operations_of_a_file_are_counted():
    """Operations cost the verifier per value, whatever their channels: a file of many small
    statements is refused where it crosses the limit, named there."""
    from phg.dsl.budget import MAX_PROGRAM_OPERATIONS
    lets = "".join(f"    let a{i} = x + x\n" for i in range(7_000))
    text = HEADER + "".join(f"model M{i} on G3 {{\n    input x: Vector\n{lets}}}\n" for i in range(3))
    with pytest.raises(phg.PhgError) as caught:
        phg.loads(text, filename="ops.phg")
    err = caught.value.render()
    line = 1 + 2 * (7_000 + 3) + 2 + (MAX_PROGRAM_OPERATIONS - 2 * 7_000) + 1
    assert err.startswith(f"ops.phg:{line}:"), err
    assert f"size error: the file is too large: model M2 and the 2 models before it (M0, M1) have " \
           f"{MAX_PROGRAM_OPERATIONS + 1:,} operations by this add" in err, err


def test_a_loss_of_the_parameters_alone_has_the_fused_limits(tmp_path, capsys):
    """Such a model trains fused, every coefficient unrolled: refused at its loss past the fused
    limit, though within the limit of models whose loss depends on an input."""
    from phg.dsl.budget import MAX_FUSED_TERMS
    body = "    input x: Vector\n    param W[{n}]: Scalar = normal(0.1)\n    loss norm2(W[0] - 1{x})\n"
    phg.loads(HEADER + "model M on G3 {\n" + body.format(n=3 * MAX_FUSED_TERMS, x=" + x") + "}\n")
    path = tmp_path / "fused.phg"
    path.write_text(HEADER + "model M on G3 {\n" + body.format(n=MAX_FUSED_TERMS, x="") + "}\n")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:5:5: size error: model M trains fused, since its loss depends on no input"), err
    assert f"expected: at most {MAX_FUSED_TERMS:,} scalar coefficients" in err
