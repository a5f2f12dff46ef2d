"""Every stage of phg check works within a deterministic budget: past it a claim is unknown, with the
budget named, the same in every run (never minutes of solver or sympy work)."""
import phg
import phg.verifier.smt as smt
from phg.verifier.certificate import certify


def _statuses(text: str, name: str = "budget.phg") -> dict:
    cert = certify(phg.loads(text, name))
    return {o.claim: (o.status, o.evidence) for o in cert.obligations}


def test_an_exact_inverse_beyond_the_budget_leaves_the_claim_unknown():
    """The inverse of a general multivector of Cl(7) lives in all 128 blades: confirming a
    counterexample would solve a 128 x 128 rational system, so the claim stays unknown and says why."""
    text = ("algebra G7 = Cl(7, 0, 0)\nmodel M on G7 {\n    input a: Multivector\n"
            "    output y: Vector = inv(a)\n}\n")
    status, evidence = _statuses(text)["y : Vector"]
    assert status == "unknown"
    assert "exact inverse on 128 blades" in evidence["solver"] and "budget" in evidence["solver"]


def test_an_exact_inverse_within_the_budget_still_refutes():
    """The same claim in Cl(5) (32 blades) is refuted, with a counterexample confirmed exactly."""
    text = ("algebra G5 = Cl(5, 0, 0)\nmodel M on G5 {\n    input a: Multivector\n"
            "    output y: Vector = inv(a)\n}\n")
    status, evidence = _statuses(text)["y : Vector"]
    assert status == "refuted" and evidence["counterexample"]["exact"]


def test_a_support_query_beyond_its_budget_is_unknown(monkeypatch):
    """The size of a support query is counted (pairs of blades its products conjoin) before it is
    built; past the budget the claim is unknown, not proven, and the reason names the budget."""
    text = ("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input a: Multivector\n    input b: Multivector\n"
            "    output y: Even = a * b\n}\n")
    assert _statuses(text)["y : Even"][0] == "refuted"
    monkeypatch.setattr(smt, "PAIR_BUDGET", 63)          # a * b conjoins 64 pairs
    status, evidence = _statuses(text)["y : Even"]
    assert status == "unknown" and "more than 63 pairs of blades" in evidence["solver"]


def test_a_product_of_full_g8_multivectors_is_counted_exactly():
    alg = phg.loads("algebra G8 = Cl(8, 0, 0)\n").algebras["G8"]
    every = alg.every_blade
    assert smt.product_pairs(alg, "gp", every, every) == 256 * 256
    assert smt.product_pairs(alg, "op", every, every) == 3 ** 8      # disjoint pairs of blades


def test_the_counterexample_searches_of_a_file_share_a_budget(monkeypatch):
    """Each model's false claim is refuted while the file's searches are within their budget; past it
    the next model's claim is unknown, and says which budget ran out."""
    import phg.verifier.counterexample as counterexample
    model = "model M{i} on G3 {{\n    input x[50]: Vector\n    output s{i}: Scalar = sum(x)\n}}\n"
    text = "algebra G3 = Cl(3, 0, 0)\n" + "".join(model.format(i=i) for i in range(3))
    assert [s for s, _ in _statuses(text).values()].count("refuted") == 3
    monkeypatch.setattr(counterexample, "MAX_FILE_SEARCH_PRODUCTS", 1_500)    # one model's search: about 1,000
    statuses = _statuses(text)
    assert statuses["s0 : Scalar"][0] == "refuted"
    status, evidence = statuses["s2 : Scalar"]
    assert status == "unknown" and "searches of this file have used their budget of 1,500" in evidence["solver"]


def test_drawing_candidates_is_charged_before_they_are_drawn(monkeypatch):
    """A search over many rotor channels stops before it draws a candidate it cannot afford: the
    claim is unknown, its reason counting what drawing costs (a rotor, dim^2 products a channel)."""
    import phg.verifier.counterexample as counterexample
    drawn = []
    real = counterexample.rotor
    monkeypatch.setattr(counterexample, "rotor", lambda *a: drawn.append(1) or real(*a))
    text = ("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x[40000]: Vector\n    param R[40000]: Rotor\n"
            "    output s: Vector = sum(R * x * ~R)\n}\n")
    status, evidence = _statuses(text)["s : Vector"]
    assert status == "unknown" and "beyond its budget of 2,000,000" in evidence["solver"], evidence
    assert not drawn


def test_the_paper_network_checks_at_full_width():
    """O3CGMLP (examples/cgenn_volume.phg) at the paper's 96 channels and at 256: every claim proven,
    the size budget pricing what loop kernels and the verifier do, not unrolled code."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.cgenn import source
    for channels in (96, 256):
        statuses = _statuses(source(channels, "float"), f"cgenn{channels}.phg")
        assert {s for s, _ in statuses.values()} == {"proven"}, statuses


def test_the_cli_says_why_a_claim_is_unknown_and_shows_few_channels(tmp_path, capsys):
    """A counterexample's input over many channels is shown in part (all of it is in the
    certificate), and an unknown claim's hint names the budget that ran out."""
    from phg.shell.cli import main
    path = tmp_path / "wide.phg"
    path.write_text("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x[20]: Vector\n"
                    "    output s: Scalar = sum(x)\n}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "7: " in err and "8: " not in err.split("x = [", 1)[1].split("\n")[0], err
    assert "... 12 channels more, in the certificate" in err
    path.write_text("algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x[40000]: Vector\n    param R[40000]: Rotor\n"
                    "    output s: Vector = sum(R * x * ~R)\n}\n")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "unknown: s : Vector" in err and "hint: no counterexample confirmed: a counterexample search costs" in err
