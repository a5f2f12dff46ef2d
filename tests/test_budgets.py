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
