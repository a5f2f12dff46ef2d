"""Forged and hostile certificates: `phg verify` refuses every one, runs nothing they contain, reads
nothing but the model they name, and never quotes another file.

Every forgery below is either unsigned or re-signed, by a fresh key or by the user's own (trusted)
one, so that the refusal is the re-derivation's or the trust check's, not the signature's.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rfc8785
import z3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from phg.shell.cli import main
from phg.verifier import certificate, document, signing

ROOT = Path(__file__).resolve().parents[1]
RIGID = ROOT / "examples" / "rigid_registration.phg"
SQUARE = """algebra G3 = Cl(3, 0, 0)

model Square on G3 {
    input x: Vector
    input y: Vector
    output s: Vector = x * y
}
"""
INJECTION = '(set-option :regular-output-channel "{path}")(echo "import os  # ran")'


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """Certificates `phg check` wrote: {name: (source text, document)} for an all-proven model and
    one with a refuted claim."""
    root = tmp_path_factory.mktemp("honest")
    out = {}
    for name, text in (("rigid", RIGID.read_text()), ("square", SQUARE)):
        (root / f"{name}.phg").write_text(text)
        assert main(["check", str(root / f"{name}.phg")]) in (0, 1)
        out[name] = (text, json.loads((root / f"{name}.phg.cert.json").read_text()))
    return out


@pytest.fixture(scope="module", autouse=True)
def checked_once():
    """verify checks the source again; the same source checks the same every time (see the
    determinism tests below), so each is checked once for this module's many forgeries."""
    done = {}
    real = certificate.certify

    def certify(program):
        if program.sha256 not in done:
            done[program.sha256] = real(program)
        cert = done[program.sha256]
        return certificate.Certificate(dataclasses.replace(cert.program, path=program.path), cert.obligations)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(certificate, "certify", certify)
        yield


def place(tmp_path: Path, honest, doc: dict, name: str = "rigid") -> Path:
    """The model and a certificate of it, side by side in tmp_path."""
    (tmp_path / f"{name}.phg").write_text(honest[name][0])
    cert = tmp_path / f"{name}.phg.cert.json"
    cert.write_text(json.dumps(doc, indent=2))
    return cert


def resign(doc: dict, key: Ed25519PrivateKey | None = None) -> dict:
    """What a forger does after editing: sign again, by default with the user's own trusted key."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return signing.sign(body, key or signing.load_key())


def verify(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(["verify", *map(str, args)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


# ---- 1. the recorded queries are never run ------------------------------------------------------
@pytest.mark.parametrize("signed", [False, True])
def test_a_recorded_query_is_compared_never_run(tmp_path, honest, capsys, monkeypatch, signed):
    victim = tmp_path / "victim.pth"
    doc = copy.deepcopy(honest["rigid"][1])
    for o in doc["obligations"]:
        o["smt2"] = INJECTION.format(path=victim)
    doc = resign(doc) if signed else doc
    # Nothing the certificate holds may reach the solver as text.
    def refuse(*args, **kwargs):
        raise AssertionError("certificate text handed to z3")
    monkeypatch.setattr(z3.Solver, "from_string", refuse)
    monkeypatch.setattr(z3, "parse_smt2_string", refuse)
    status, out, _ = verify(capsys, place(tmp_path, honest, doc))
    assert status == 1 and not victim.exists()
    assert "queries" in out and "obligations[0].smt2: recorded" in out
    if signed:                          # a trusted signature over it changes nothing
        assert "invalid: queries failed; first difference: obligations[0].smt2" in out


# ---- 2. only trusted signers ----------------------------------------------------------------------
def test_a_certificate_resigned_with_a_fresh_key_is_refused(tmp_path, honest, capsys):
    fresh = Ed25519PrivateKey.generate()
    cert = place(tmp_path, honest, resign(honest["rigid"][1], fresh))
    status, out, _ = verify(capsys, cert)
    assert status == 1 and "invalid: signature failed" in out
    assert f"signed by key {signing.key_id(signing.raw_public(fresh))}, which is not trusted" in out
    # named with --trust, that key alone is trusted (and the user's own no longer is)
    status, out, _ = verify(capsys, cert, "--trust", signing.public_hex(fresh))
    assert status == 0 and "trusted by --trust" in out
    status, out, _ = verify(capsys, place(tmp_path, honest, honest["rigid"][1]), "--trust", signing.public_hex(fresh))
    assert status == 1 and "which is not trusted" in out


def test_the_signature_is_over_rfc8785_canonical_json_and_names_its_key(honest):
    doc = honest["rigid"][1]
    sig = doc["signature"]
    body = {k: v for k, v in doc.items() if k != "signature"}
    public = bytes.fromhex(sig["public_key"])
    # checked with cryptography and rfc8785 directly, not through phg's own helpers
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    Ed25519PublicKey.from_public_bytes(public).verify(bytes.fromhex(sig["value"]), rfc8785.dumps(body))
    assert sig["key_id"] == hashlib.sha256(public).hexdigest()[:16]
    # the accumulator's capacity (2^108) is a decimal string: RFC 8785 numbers are doubles
    quire = next(o for o in doc["obligations"] if o["kind"] == "quire")
    assert quire["evidence"]["capacity_samples"] == str(2**108)


def test_the_trusted_keys_file_names_the_signer(tmp_path, honest, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    alice = Ed25519PrivateKey.generate()
    cert = place(tmp_path, honest, resign(honest["rigid"][1], alice))
    status, out, _ = verify(capsys, cert)
    assert status == 1 and "which is not trusted" in out
    assert not signing.user_key_path().exists(), "verify made a signing key"

    capsys.readouterr()
    assert main(["keys", "add", signing.public_hex(alice), "--name", "Alice Example"]) == 0
    status, out, _ = verify(capsys, cert)
    assert status == 0
    assert f"signed by key {signing.key_id(signing.raw_public(alice))} (Alice Example)" in out
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert f"{signing.public_hex(alice)}  key {signing.key_id(signing.raw_public(alice))}  Alice Example" in \
        capsys.readouterr().out
    assert main(["keys", "remove", signing.key_id(signing.raw_public(alice))]) == 0
    assert verify(capsys, cert)[0] == 1


def test_keys_from_pem_files_and_bad_keys(tmp_path, honest, capsys, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    bob = Ed25519PrivateKey.generate()
    pem = tmp_path / "bob.pub.pem"
    pem.write_bytes(bob.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    assert main(["keys", "add", str(pem)]) == 0
    assert signing.public_hex(bob) in (signing.config_dir() / "trusted-keys").read_text()
    capsys.readouterr()
    assert main(["keys", "add", "12ab"]) == 2
    err = capsys.readouterr().err
    assert "'12ab': expected 64 hex digits of an Ed25519 public key or a PEM public key file, found neither" in err
    assert main(["keys", "remove", "00" * 32]) == 2
    assert "found no such key" in capsys.readouterr().err
    # a broken line of the trusted-keys file is located, and verify stops there (exit 2)
    (signing.config_dir() / "trusted-keys").write_text("# mine\n  zz-not-a-key bob\n")
    assert main(["verify", str(place(tmp_path, honest, honest["rigid"][1]))]) == 2
    assert main(["keys", "list"]) == 2
    assert "trusted-keys:2:3: expected 64 hex digits of an Ed25519 public key, found 'zz-not-a-key'" in \
        capsys.readouterr().err
    # own: the user's public key, for others to trust
    assert main(["keys", "own"]) == 0
    assert capsys.readouterr().out.startswith(signing.public_hex(signing.load_key()))


# ---- 3. every field is re-derived -----------------------------------------------------------------
def _set(path: str, value):
    def edit(doc):
        *parents, last = json.loads(path)
        node = doc
        for p in parents:
            node = node[p]
        node[last] = value(node[last]) if callable(value) else value
    return edit


EDITS = {
    "values.p.blades": _set('["values", "p", "blades"]', ["e1", "e2"]),
    "values.p.grades": _set('["values", "p", "grades"]', [1, 3]),
    "values.p.unit": _set('["values", "p", "unit"]', "s"),
    "values.R.versor": _set('["values", "R", "versor"]', False),
    "values.t.shape": _set('["values", "t", "shape"]', [3]),
    "memory.training_bytes": _set('["memory", "training_bytes"]', "1"),
    "memory.training_buffers.loss": _set('["memory", "training_buffers", "loss"]', 0),
    "obligations[1].claim": _set('["obligations", 1, "claim"]', "p : Scalar"),
    "obligations[0].evidence.theorem": _set('["obligations", 0, "evidence", "theorem"]', "trust me"),
    "obligations[5].evidence.training_bytes": _set('["obligations", 5, "evidence", "training_bytes"]', 1),
    "obligations[2].status": _set('["obligations", 2, "status"]', "unknown"),
    "obligations[3].span.line": _set('["obligations", 3, "span", "line"]', 1),
    "obligations[7]": lambda doc: doc["obligations"].append(copy.deepcopy(doc["obligations"][0])),
    "tool.z3": _set('["tool", "z3"]', "0.0.1"),
    "scope": _set('["scope"]', "everything"),
    "values.q": lambda doc: doc["values"].update(q=doc["values"]["p"]),
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_an_edited_field_resigned_by_a_trusted_key_is_refused_naming_it(tmp_path, honest, capsys, field):
    doc = copy.deepcopy(honest["rigid"][1])
    EDITS[field](doc)
    status, out, _ = verify(capsys, place(tmp_path, honest, resign(doc)))
    assert status == 1 and "signature" not in out.split("invalid:")[1]
    assert f"first difference: {field}: recorded " in out


def test_the_honest_certificate_is_valid_and_reordering_keeps_it_so(tmp_path, honest, capsys):
    doc = honest["rigid"][1]
    status, out, _ = verify(capsys, place(tmp_path, honest, doc))
    assert status == 0 and "valid: all proven (7 proven, 0 refuted, 0 unknown)" in out
    assert "trusted by your own signing key" in out
    shuffled = dict(reversed(list(doc.items())))            # canonical bytes: key order does not matter
    (tmp_path / "rigid.phg.cert.json").write_text(json.dumps(shuffled))
    assert verify(capsys, tmp_path / "rigid.phg.cert.json")[0] == 0


def test_not_all_proven_is_authentic_but_exits_1(tmp_path, honest, capsys):
    doc = honest["square"][1]
    status, out, _ = verify(capsys, place(tmp_path, honest, doc, "square"))
    assert status == 1 and "authentic, NOT all proven: 1 proven, 1 refuted, 0 unknown" in out
    lie = copy.deepcopy(doc)
    lie["ok"] = True
    for o in lie["obligations"]:
        o["status"] = "proven"
    status, out, _ = verify(capsys, place(tmp_path, honest, resign(lie), "square"))
    assert status == 1 and "first difference: ok: recorded true, re-derived false" in out


# ---- the source a certificate names ---------------------------------------------------------------
SECRET = "TOPSECRET-LINE root:x:0:0\nsecond secret line\n"


@pytest.mark.parametrize("hash_of", ["model", "secret"])
def test_another_file_named_as_the_source_is_never_quoted(tmp_path, honest, capsys, hash_of):
    secret = tmp_path / "elsewhere" / "passwd"
    secret.parent.mkdir()
    secret.write_text(SECRET)
    for target in [str(secret)] + (["/etc/passwd"] if Path("/etc/passwd").is_file() else []):
        doc = copy.deepcopy(honest["rigid"][1])
        doc["source"]["path"] = target
        if hash_of == "secret":            # the forger knows the file's hash: it still is not a model
            doc["source"]["sha256"] = hashlib.sha256(Path(target).read_bytes()).hexdigest()
        status, out, err = verify(capsys, place(tmp_path, honest, resign(doc)))
        assert status == 1 and "invalid: source failed" in out
        text = Path(target).read_text(errors="replace")
        for line in filter(None, (ln.strip() for ln in text.splitlines())):
            assert line not in out + err
        assert ("sha256 differs" if hash_of == "model" else "is not a model this phg reads") in out


def test_a_relative_source_is_found_beside_the_certificate_never_in_the_working_directory(
        tmp_path, honest, capsys, monkeypatch):
    certs, cwd = tmp_path / "certs", tmp_path / "cwd"
    certs.mkdir(), cwd.mkdir()
    (cwd / "rigid.phg").write_text(honest["rigid"][0])        # only the working directory has it
    cert = certs / "rigid.phg.cert.json"
    cert.write_text(json.dumps(honest["rigid"][1]))
    monkeypatch.chdir(cwd)
    status, out, _ = verify(capsys, cert)
    assert status == 1 and f"cannot read the source {certs / 'rigid.phg'}" in out
    # a certificate with its model in a folder of its own, written from elsewhere, finds it again
    (certs / "models").mkdir()
    (certs / "models" / "m.phg").write_text(honest["rigid"][0])
    assert main(["check", str(certs / "models" / "m.phg"), "-o", str(cert)]) == 0
    assert json.loads(cert.read_text())["source"]["path"] == "models/m.phg"
    monkeypatch.chdir(tmp_path)
    assert verify(capsys, Path("certs") / "rigid.phg.cert.json")[0] == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_or_device_as_the_source_does_not_block(tmp_path, honest, capsys):
    os.mkfifo(tmp_path / "pipe")
    for target in (str(tmp_path / "pipe"), "/dev/zero"):
        doc = copy.deepcopy(honest["rigid"][1])
        doc["source"]["path"] = target
        status, out, _ = verify(capsys, place(tmp_path, honest, resign(doc)))
        assert status == 1 and "not a regular file" in out


# ---- malformed certificates: exit 2, located, no traceback ----------------------------------------
def malformed(capsys, tmp_path, data: bytes) -> str:
    cert = tmp_path / "bad.cert.json"
    cert.write_bytes(data)
    status, out, err = verify(capsys, cert)
    assert status == 2 and out == "", (status, out, err)
    assert err.startswith(f"phg verify: {cert}")
    return err


def test_duplicate_keys_are_refused_where_the_object_starts(tmp_path, honest, capsys):
    text = json.dumps(honest["rigid"][1], indent=2)
    text = text.replace('"ok": true,', '"ok": false,\n  "ok": true,', 1)
    err = malformed(capsys, tmp_path, text.encode())
    assert ":1:1: expected each key once in a JSON object, found the key 'ok' twice" in err
    nested = text.replace('"sha256":', '"path": "x", "sha256":', 1)
    assert "expected each key once" in malformed(capsys, tmp_path, nested.encode())


def test_an_oversized_certificate_is_refused_unread(tmp_path, capsys):
    err = malformed(capsys, tmp_path, b" " * document.MAX_BYTES + b"{}")
    assert "expected a certificate of at most 16 MiB, found a larger file" in err


@pytest.mark.parametrize("data, message", [
    (b"", ":1:1: expected value, found the end of the text"),
    (b'{"format": "phg-certificate/1",', ":1:32: expected property name enclosed in double quotes"),
    (b"[1, 2]", ":1:1: expected a JSON object, found an array"),
    (b'{"format": NaN}', "expected finite JSON numbers, found NaN"),
    (b'\xef\xbb\xbf{}', "expected value"),
    (b'{"format": "phg-certificate/1"}\xff', ":1:32: expected UTF-8 text, found the byte 0xff"),
    (b'{"format": "other/1"}', "field format: expected 'phg-certificate/1', found 'other/1'"),
    (b'{"a": ' * 100 + b'1' + b'}' * 100, "expected JSON nested at most 64 deep"),
    (b'{"format": "phg-certificate/1", "x": 1' + b'0' * 5000 + b'}', "expected JSON numbers of ordinary size"),
    (b'{"format": "phg-certificate/1", "\\udc80": 1}', "expected text that is valid Unicode"),
])
def test_text_that_is_not_a_certificate(tmp_path, capsys, data, message):
    assert message in malformed(capsys, tmp_path, data)


def leaves(value, path=()):
    """Every field of a document, with its path."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, path + (i,))


KINDS = [None, True, 7, 2.5, "text", [], {}]


def _kind(value) -> str:
    return document._kind(value)


def test_every_field_of_the_wrong_json_type_is_named(honest):
    """Each typed field of both certificates, given each other JSON kind: the first mistyped field
    is named, with what was expected and what was found."""
    tried = 0
    for name in honest:
        doc = honest[name][1]
        for path, value in leaves(doc):
            if not path or "evidence" in path:          # evidence is free-form, compared whole
                continue
            for wrong in KINDS:
                # unit, smt2 and memory may be null or a string / an object
                allowed = {_kind(value)} | ({"null", "an object" if path == ("memory",) else "a string"}
                                            if path[-1] in ("unit", "smt2") or path == ("memory",) else set())
                if _kind(wrong) in allowed:
                    continue
                forged = copy.deepcopy(doc)
                node = forged
                for p in path[:-1]:
                    node = node[p]
                node[path[-1]] = wrong
                with pytest.raises(document.DocumentError) as caught:
                    document.check_types(forged, "c.json")
                where = "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in path).lstrip(".")
                message = str(caught.value)
                assert message.startswith(f"c.json: field {where}") or \
                    (path[0] == "memory" and message.startswith("c.json: field memory")), message
                assert f"found {_kind(wrong)}" in message or "found no such field" in message, message
                tried += 1
    assert tried > 500


@pytest.mark.parametrize("path", [("ok",), ("source", "path"), ("obligations", 0, "span"), ("obligations", 0),
                                  ("values", "p", "grades", 0), ("signature", "value"), ("memory", "slots"),
                                  ("values",), ("signature",)])
def test_a_mistyped_field_is_exit_2_through_the_command(tmp_path, honest, capsys, path):
    doc = copy.deepcopy(honest["rigid"][1])
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = [] if not isinstance(node[path[-1]], list) else "text"
    err = malformed(capsys, tmp_path, json.dumps(doc).encode())
    assert "field " in err and "expected " in err and ", found " in err


def test_free_form_evidence_of_another_type_is_a_difference_not_a_crash(tmp_path, honest, capsys):
    doc = copy.deepcopy(honest["rigid"][1])
    doc["obligations"][0]["evidence"]["versor"] = [None, 1.5, {"x": []}]
    status, out, _ = verify(capsys, place(tmp_path, honest, resign(doc)))
    assert status == 1 and "first difference: obligations[0].evidence.versor: recorded [null, 1.5" in out


# ---- Z3: the same verdicts whatever ran before --------------------------------------------------------
def test_a_check_in_a_fresh_process_equals_one_after_other_checks(tmp_path):
    """pga_pose's document (statuses and recorded queries) checked alone, and after two other
    examples in the same process: byte-identical."""
    script = """import json, sys
import phg
from phg.verifier.certificate import certify
for path in sys.argv[1:]:
    doc = certify(phg.load(path)).to_dict()
print(json.dumps(doc, sort_keys=True))
"""
    pga = str(ROOT / "examples" / "pga_pose.phg")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}

    def run(*paths):
        done = subprocess.run([sys.executable, "-c", script, *paths], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    alone = run(pga)
    after = run(str(RIGID), str(ROOT / "examples" / "signed_volume.phg"), pga)
    assert [o["status"] for o in alone["obligations"]] == [o["status"] for o in after["obligations"]]
    assert alone == after


def test_phg_check_twice_writes_the_same_bytes(tmp_path):
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    shutil.copy(RIGID, tmp_path / "m.phg")
    written = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "phg.shell.cli", "check", "m.phg"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        written.append((tmp_path / "m.phg.cert.json").read_bytes())
    assert written[0] == written[1]


# ---- hostile text: printed escaped, refused where it would be recorded ---------------------------
ESCAPES = "\x1b[31mRED\x1b]0;title\x07\u202e"


def test_a_recorded_path_with_terminal_escapes_is_printed_escaped(tmp_path, honest, capsys):
    doc = copy.deepcopy(honest["rigid"][1])
    doc["source"]["path"] = ESCAPES + ".phg"
    status, out, err = verify(capsys, place(tmp_path, honest, resign(doc)))
    assert status == 1 and "cannot read the source" in out
    assert not any(c in out + err for c in "\x1b\x07\u202e")
    assert "\\x1b[31mRED\\x1b]0;title\\x07\\u202e.phg" in out


def test_a_file_name_and_a_key_name_with_escapes_are_printed_escaped(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / f"{ESCAPES}.phg"
    path.write_text(SQUARE.replace("x * y", "x * yy"))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and f"{tmp_path}/\\x1b[31mRED\\x1b]0;title\\x07\\u202e.phg:6:28: name error" in err
    # a name phg keys add refuses, written into the file by hand
    signing.config_dir().mkdir(parents=True)
    (signing.config_dir() / "trusted-keys").write_text(f"{'ab' * 32} {ESCAPES}\n", encoding="utf-8")
    assert main(["keys", "list"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and f"{'ab' * 32}  key " in out and "\\x1b[31mRED" in out


@pytest.mark.parametrize("name", ["a\u2028b", "a\u2029b", "a\x0bb", "a\x0cb", "a\x1cb", "a\x1db", "a\x1eb",
                                  "a\x85b", "a\u202eb", "a\udc85b"])
def test_a_key_name_that_would_break_its_line_is_refused(tmp_path, capsys, monkeypatch, name):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert main(["keys", "add", "cd" * 32, "--name", "first"]) == 0
    before = (signing.config_dir() / "trusted-keys").read_bytes()
    capsys.readouterr()
    assert main(["keys", "add", "ab" * 32, "--name", name]) == 2
    err = capsys.readouterr().err
    assert "phg keys add: --name 'a\\" in err
    assert "expected a name without control, format or line separator characters, found " in err
    assert "at character 2" in err and ("not UTF-8" in err if name[1] == "\udc85" else True)
    assert (signing.config_dir() / "trusted-keys").read_bytes() == before


def test_the_trusted_keys_file_splits_at_line_feeds_only(tmp_path):
    from phg.verifier import trust
    path = tmp_path / "trusted-keys"
    path.write_text(f"{'ab' * 32} Ann\u2028{'cd' * 32} Mallory\x85x\n{'ef' * 32}\r\n", encoding="utf-8")
    keys = trust.read_file(path)
    assert [(k.public.hex(), k.name) for k in keys] == \
        [("ab" * 32, f"Ann\u2028{'cd' * 32} Mallory\x85x"), ("ef" * 32, None)]


def _pem(kind: str, der: bytes) -> bytes:
    import base64
    return f"-----BEGIN {kind}-----\n".encode() + base64.encodebytes(der) + f"-----END {kind}-----\n".encode()


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag, len(body)]) + body


# An elliptic curve key on secp112r1 (OID 1.3.132.0.6), which cryptography does not support.
EC_KEY, SECP112R1 = bytes.fromhex("2a8648ce3d0201"), bytes.fromhex("2b81040006")
SECP112R1_PUBLIC = _pem("PUBLIC KEY", _tlv(0x30, _tlv(0x30, _tlv(0x06, EC_KEY) + _tlv(0x06, SECP112R1))
                                      + _tlv(0x03, b"\x00\x04" + bytes(range(1, 29)))))
SECP112R1_PRIVATE = _pem("EC PRIVATE KEY", _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x04, bytes(range(1, 15)))
                                                + _tlv(0xa0, _tlv(0x06, SECP112R1))))


def test_a_key_on_an_unsupported_curve_is_exit_2(tmp_path, honest, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    public, private = tmp_path / "ec112.pub", tmp_path / "ec112.key"
    public.write_bytes(SECP112R1_PUBLIC)
    private.write_bytes(SECP112R1_PRIVATE)
    expected = "expected an Ed25519 public key, found a key of an algorithm this phg cannot read"
    status, out, err = verify(capsys, place(tmp_path, honest, honest["rigid"][1]), "--trust", public)
    assert status == 2 and f"phg verify: {public}: {expected}" in err
    assert main(["keys", "add", str(public)]) == 2
    assert f"phg keys add: {public}: {expected}" in capsys.readouterr().err
    monkeypatch.setenv("PHG_SIGNING_KEY", str(private))
    (tmp_path / "sq.phg").write_text(SQUARE)
    assert main(["check", str(tmp_path / "sq.phg")]) == 2
    assert (f"PHG_SIGNING_KEY {private}: expected an Ed25519 private key, found a key of an algorithm this phg "
            "cannot read") in capsys.readouterr().err
    assert main(["keys", "own"]) == 2


def test_a_nul_in_the_recorded_path_is_exit_2(tmp_path, honest, capsys):
    doc = copy.deepcopy(honest["rigid"][1])
    doc["source"]["path"] = "ri\0gid.phg"
    err = malformed(capsys, tmp_path, json.dumps(resign(doc)).encode())
    assert "field source.path: expected a file path without NUL characters, found a NUL at character 3" in err


def test_a_file_name_that_is_not_utf8_is_refused_before_checking(tmp_path, capsys):
    name = os.fsdecode(b"m\xff.phg")
    (tmp_path / name).write_text(SQUARE)
    assert main(["check", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert "io error: the file name has the byte 0xff at character" in err and "expected: a file name in UTF-8" in err
    assert not list(tmp_path.glob("*.cert.json"))


TWO_TRAINED = """algebra G3 = Cl(3, 0, 0)
model {first} on G3 {{
    input x: Vector[m]
    param w: Scalar = 1
    loss norm2(w * x) / 1[m^2]
}}
model Other on G3 {{
    input x: Vector[m]
    param w: Scalar = 1
    loss norm2(w * x) / 1[m^2]
}}
"""


@pytest.mark.parametrize("first", ["training_bytes", "inference_bytes"])
def test_models_named_like_the_plans_fields_verify(tmp_path, capsys, first):
    """The memory section is one plan, or one plan per model: told apart by its structure, not by
    whether a model's name is a field of a plan."""
    path = tmp_path / "two.phg"
    path.write_text(TWO_TRAINED.format(first=first))
    assert main(["check", str(path)]) == 0
    cert = tmp_path / "two.phg.cert.json"
    assert set(json.loads(cert.read_text())["memory"]) == {first, "Other"}
    status, out, err = verify(capsys, cert)
    assert status == 0 and "valid: all proven" in out, out + err
    doc = json.loads(cert.read_text())
    doc["memory"][first]["slots"] = "x"                # still told apart, and the field named
    with pytest.raises(document.DocumentError, match=rf"field memory.{first}.slots: expected an integer"):
        document.check_types(doc, "c.json")


def test_an_untrusted_signer_is_reported_without_rederiving(tmp_path, honest, capsys, monkeypatch):
    def refuse(program):
        raise AssertionError("re-derived a certificate no trusted key signed")
    monkeypatch.setattr(certificate, "certify", refuse)
    fresh = Ed25519PrivateKey.generate()
    status, out, _ = verify(capsys, place(tmp_path, honest, resign(honest["rigid"][1], fresh)))
    assert status == 1 and "which is not trusted (phg keys list shows the trusted keys); nothing else was " \
        "checked" in out and "invalid: signature failed" in out
    unsigned = {k: v for k, v in honest["rigid"][1].items() if k != "signature"}
    with pytest.raises(document.DocumentError):     # no signature block at all: not a certificate
        document.check_types(unsigned, "c.json")
