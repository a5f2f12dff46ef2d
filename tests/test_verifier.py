"""The verifier: obligations, proofs, refutations with confirmed counterexamples, certificates."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import phg
from phg.shell.cli import main
from cliffeval import Reference

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.phg"))
G3 = "algebra G3 = Cl(3, 0, 0)\n"

CLAIMS = G3 + """model M on G3 {
    param R: Rotor
    input x: Vector
    input y: Vector
    let q: Vector = x * x
    let s: Scalar = x * x
    let r: Vector = R * x * ~R
    let bad: Rotor = x * y
    let good: Rotor = R * exp(x ^ y)
    ensure versor(x + e12)
    ensure grade(x ^ y ^ x) in {0}
    let n: Rotor = normalize(x * y)
}
"""


def statuses(cert):
    return {o.id: o.status for o in cert.obligations}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_proven(path):
    cert = phg.check(phg.load(path))
    assert cert.ok, [(o.claim, o.status) for o in cert.obligations if o.status != "proven"]


def test_rigid_registration_certificate():
    program = phg.load(ROOT / "examples" / "rigid_registration.phg")
    cert = phg.check(program)
    kinds = sorted((o.kind, o.subject) for o in cert.obligations)
    assert kinds == [("grade", "R >> x"), ("grade", "loss"), ("grade", "p"), ("memory", "RigidRegistration"),
                     ("quire", "RigidRegistration"), ("unit", "RigidRegistration"), ("update", "R")]
    narrowing = next(o for o in cert.obligations if o.subject == "R >> x")
    assert narrowing.evidence["narrowing"] == "sandwich" and "automorphism" in narrowing.evidence["theorem"]
    assert narrowing.evidence["versor"]["theorem"] == "declared"
    # The narrowed support is written back: p is 3 numbers, as kernels will lay it out.
    assert cert.to_dict()["values"]["p"]["blades"] == ["e1", "e2", "e3"]
    assert all(o.smt2 and "(check-sat)" in o.smt2 for o in cert.obligations)
    assert cert.to_dict()["values"]["loss"]["unit"] == "m^2"


def test_pga_motor_keeps_points_points_and_stays_a_motor():
    cert = phg.check(phg.load(ROOT / "examples" / "pga_pose.phg"))
    update = next(o for o in cert.obligations if o.kind == "update")
    assert update.status == "proven" and "Motor" in update.claim
    assert cert.to_dict()["values"]["moved"]["blades"] == ["e012", "e013", "e023", "e123"]


def test_identities_narrow_and_claims_are_refuted_with_counterexamples():
    program = phg.loads(CLAIMS)
    cert = phg.check(program)
    by_subject = {(o.kind, o.subject): o for o in cert.obligations}
    assert by_subject[("grade", "s")].status == "proven"
    assert by_subject[("grade", "s")].evidence["identity"]["vanishing"] == ["e12", "e13", "e23"]
    assert by_subject[("grade", "r")].status == "proven"          # R x ~R has no e123, identically
    assert by_subject[("grade", "q")].status == "refuted"
    assert by_subject[("versor", "bad")].status == "refuted"
    assert by_subject[("versor", "good")].status == "proven"
    assert by_subject[("versor", "n")].status == "proven"          # n <= 3: normalised even elements
    assert by_subject[("versor", "x + e12")].status == "refuted"
    assert not cert.ok


EXPENSIVE = """algebra PGA = Cl(3, 0, 1)
model M on PGA {
    input a: Multivector
    input b: Multivector
    let l0: Vector = ((a * b) * (b * a)) * ((a * a) * (b * b))
}
"""


def test_exact_expansion_is_refused_before_a_product_too_large_is_formed(monkeypatch):
    """A deep product of general multivectors would take sympy minutes to expand: the budget refuses
    the product before multiplying (counted in pairs of terms), and the claim is still refuted by a
    confirmed counterexample rather than left to the expansion."""
    from phg import sparse
    from phg.verifier import exact
    from phg.verifier.exact import Symbolic, Undefined
    formed = []
    product = sparse.product
    monkeypatch.setattr(sparse, "product", lambda alg, kind, a, b: formed.append(
        exact._terms(a) * exact._terms(b)) or product(alg, kind, a, b))
    program = phg.loads(EXPENSIVE)
    graph = program.models["M"]
    symbolic = Symbolic(graph)
    l0 = next(v.id for v in graph.values.values() if v.name == "l0")
    with pytest.raises(Undefined, match="too large"):
        symbolic.coefficients(l0)
    assert formed and max(formed) <= Symbolic.MAX_PRODUCT_PAIRS
    [grade] = [o for o in phg.check(program).obligations if o.kind == "grade"]
    assert grade.status == "refuted" and grade.evidence["counterexample"]["exact"]


def _inputs_from_counterexample(ref, graph, cex):
    inputs = {}
    for v in graph.values.values():
        if graph.producer(v.id) is None and v.const is None:
            coefs = cex["inputs"].get(v.name, {})
            inputs[v.id] = {(): ref.mv({graph.algebra.parse_blade(b)[1] if b != "1" else 0: float(eval_fraction(c))
                                        for b, c in coefs.items()})}
    return inputs


def eval_fraction(text):
    from fractions import Fraction
    return Fraction(text)


def test_every_counterexample_is_confirmed_by_clifford():
    """Each refutation's inputs, evaluated independently with clifford in floating point, show the
    offending blade (with the reported exact coefficient) or the failed versor check."""
    program = phg.loads(CLAIMS)
    cert = phg.check(program)
    graph = program.models["M"]
    ref = Reference(graph)
    refuted = [o for o in cert.obligations if o.status == "refuted"]
    assert len(refuted) == 3
    for o in refuted:
        cex = o.evidence["counterexample"]
        assert cex["exact"]
        value = ref.evaluate(_inputs_from_counterexample(ref, graph, cex))[o.value_id][()]
        if o.kind == "grade":
            mask = graph.algebra.parse_blade(cex["blade"])[1] if cex["blade"] != "1" else 0
            got = float(value.value[ref.index[mask]])
            assert got != 0 and np.isclose(got, float(eval_fraction(cex["coefficient"])), rtol=1e-12)
        else:
            vv = value * ~value
            assert np.abs((vv - vv(0)).value).max() > 1e-9 or abs(float(vv(0)) - 1) > 1e-9


def test_check_command_exit_status_and_certificate(tmp_path, capsys):
    good = tmp_path / "rigid.phg"
    shutil.copy(ROOT / "examples" / "rigid_registration.phg", good)
    assert main(["check", str(good)]) == 0
    cert = json.loads((tmp_path / "rigid.phg.cert.json").read_text())
    assert cert["format"] == "phg-certificate/1" and cert["ok"] is True
    assert cert["source"]["sha256"] == phg.load(good).sha256
    assert cert["signature"]["algorithm"] == "Ed25519"
    assert "all proven" in capsys.readouterr().out

    bad = tmp_path / "claims.phg"
    bad.write_text(CLAIMS)
    assert main(["check", str(bad), "-o", str(tmp_path / "out.json")]) == 1
    err = capsys.readouterr().err
    # what was found, by grade, and the blade the counterexample breaks by its name (it was "blade 1 is ...")
    assert f"{bad}:6:12: refuted: q : Vector: found grades 0; its scalar part (blade 1) is " in err
    assert " at the counterexample" in err and "counterexample (exact): x = " in err
    assert (tmp_path / "out.json").exists()

    assert main(["check", str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.fixture
def certified(tmp_path):
    src = tmp_path / "rigid.phg"
    shutil.copy(ROOT / "examples" / "rigid_registration.phg", src)
    assert main(["check", str(src)]) == 0
    return src, tmp_path / "rigid.phg.cert.json"


def test_verify_accepts_what_check_writes(certified, capsys):
    src, cert = certified
    capsys.readouterr()
    assert main(["verify", str(cert)]) == 0
    assert "valid" in capsys.readouterr().out


def test_verify_rejects_an_edited_source(certified, capsys):
    src, cert = certified
    src.write_text(src.read_text().replace("lr = 0.05", "lr = 0.06"))
    capsys.readouterr()
    assert main(["verify", str(cert)]) == 1
    assert "invalid: source failed" in capsys.readouterr().out


def test_verify_rejects_a_flipped_status(certified, capsys):
    src, cert = certified
    doc = json.loads(cert.read_text())
    doc["obligations"][0]["status"] = "refuted"
    cert.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["verify", str(cert)]) == 1
    out = capsys.readouterr().out
    assert "signature" in out and "queries" in out and "obligations" in out and "invalid" in out


def test_verify_rejects_a_changed_signature(certified, capsys):
    src, cert = certified
    doc = json.loads(cert.read_text())
    sig = doc["signature"]["value"]
    doc["signature"]["value"] = ("0" if sig[0] != "0" else "1") + sig[1:]
    cert.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["verify", str(cert)]) == 1
    assert "invalid: signature failed" in capsys.readouterr().out


def test_signing_key_from_environment(tmp_path, monkeypatch):
    seed = "11" * 32
    monkeypatch.setenv("PHG_SIGNING_KEY", seed)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from phg.verifier.signing import public_hex
    doc = phg.check(phg.load(ROOT / "examples" / "signed_volume.phg")).signed()
    assert doc["signature"]["public_key"] == public_hex(Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed)))


def test_update_obligation_holds_numerically():
    """R exp(B) stays an even normalised versor, checked with clifford for G3, STA and PGA."""
    rng = np.random.default_rng(7)
    for sig in [(3, 0, 0), (1, 3, 0), (3, 0, 1)]:
        src = f"algebra A = Cl{sig}\nmodel M on A {{\n    param R: Rotor\n    input B: Bivector\n    output n: Rotor = R * exp(B)\n}}\n"
        program = phg.loads(src)
        cert = phg.check(program)
        assert cert.ok
        graph = program.models["M"]
        ref = Reference(graph)
        for _ in range(10):
            inputs = {v: ref.random_value(graph.values[v], rng) for v in ("R", "B")}
            n = ref.evaluate(inputs)["n"][()]
            # clifford's series exp is accurate to about 1e-9 on STA bivectors
            assert np.abs((n * ~n - 1).value).max() < 1e-7
            assert np.abs(n.odd.value).max() == 0


def test_versor_rules_for_constants_norms_and_special_inputs():
    """Folded constants are versors when a simple theorem says so; V ~V of a proven versor is a
    scalar; claims that fail only at special inputs (b - R is not normalised for R = e12, and is zero
    for R = b = 1) are refuted there."""
    src = G3 + """model M on G3 {
    param R: Rotor
    input b: Scalar
    input x: Vector
    let k: Versor = grade(2, 0) * e1 + e2
    let w = (R >> e1) * exp(x ^ e2)
    let n: Rotor = w * ~w
    let d: Rotor = b - R
    let z: Rotor = even(R) - (2 & 2)
}
"""
    cert = phg.check(phg.loads(src))
    by = {(o.kind, o.subject): o for o in cert.obligations}
    assert by[("versor", "k")].status == "proven"
    assert by[("versor", "k")].evidence["derivation"]["theorem"] == "invertible-vector"
    norm = next(o for o in cert.obligations if o.evidence.get("narrowing") == "versor-norm")
    assert norm.status == "proven" and "a scalar" in norm.evidence["theorem"]
    assert by[("grade", "n")].status == "proven" and by[("versor", "n")].status == "proven"
    assert by[("versor", "d")].status == "refuted"
    assert by[("versor", "d")].evidence["counterexample"]["exact"]
    assert by[("versor", "z")].status == "proven"


def test_the_support_encoding_refuses_an_operation_it_has_no_rule_for():
    """An operation the encoding does not know is an error, never a scalar: read as one, it
    could make a false grade claim proven."""
    import dataclasses

    from phg.verifier.smt import Encoder

    graph = phg.loads(G3 + "model M on G3 {\n    input x: Vector\n    output y: Vector = -x\n}\n").models["M"]
    edge = graph.producer(graph.outputs["y"])
    with pytest.raises(KeyError, match="no operation 'frobnicate' in the registry"):
        Encoder(graph, {}).edge(dataclasses.replace(edge, kind="frobnicate"))
    Encoder(graph, {}).edge(edge)                   # the real kind is encoded
