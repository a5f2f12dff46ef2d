"""phg release, phg verify RECORD and phg serve (LANGUAGE §14): records and their checks, a real
server on 127.0.0.1 answering predictions, every refused rotation (and the old version answering
after it), bad requests, and a server killed between persisting and swapping, then restarted."""
import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.serve import free_port as _free_port
from phg.shell import records as R
from phg.shell.cli import main

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token"


def _rotor(angle: float) -> np.ndarray:
    return np.array([[np.cos(angle / 2), np.sin(angle / 2), 0.0, 0.0]])


def _params(angle: float, t=(0.1, -0.2, 0.3)) -> dict:
    return {"R": _rotor(angle)[0], "t": np.array(t)}


class World:
    """A released rigid-registration model: its folder, versions' records and parameters."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.source = folder / "rigid.phg"
        shutil.copy(ROOT / "examples" / "rigid_registration.phg", self.source)
        self.records: list[dict] = []
        self.params: list[dict] = []

    def release(self, params: dict, **kw) -> dict:
        """The next version, by `phg release` (the command a user runs)."""
        n = len(self.records) + 1
        p = self.folder / f"p{n}.npz"
        np.savez(p, **params)
        args = ["release", str(self.source), "--params", str(p), "-o", str(self.folder / f"r{n}.json")]
        if self.records:
            args += ["--previous", str(self.folder / f"r{n - 1}.json")]
        assert main(args + kw.get("extra", [])) == 0
        record = json.loads((self.folder / f"r{n}.json").read_text())
        self.records.append(record)
        self.params.append(params)
        return record

    def forged(self, params: dict, previous: dict | None, **kw) -> dict:
        """A record made directly (R.make), for the refusals: another key, a past date, a wrong cert."""
        import phg
        program = phg.load(self.source)
        cert = kw.pop("cert", None) or json.loads(json.dumps(phg.check(program).to_dict()))
        kernels = phg.build(program)
        module = R.sha256(Path(kernels.__file__).read_bytes())
        return R.make(model="RigidRegistration", source_sha256=program.sha256, cert=cert, params=params,
                      module_sha256=module, previous=previous, **kw)


class Server:
    """phg serve in this process (uvicorn on a thread), on a free port of 127.0.0.1."""

    def __init__(self, world: World, state: Path | None = None):
        import uvicorn

        from phg.shell import server as S
        from phg.verifier import trust

        self.service = S.Service(world.source, trust.trusted(None), state, TOKEN)
        self.service.start(world.records[0], world.params[0])
        self.port = _free_port()
        self.uv = uvicorn.Server(uvicorn.Config(S.app(self.service), host="127.0.0.1", port=self.port,
                                                log_level="warning"))
        self.thread = threading.Thread(target=self.uv.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.uv.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self):
        self.uv.should_exit = True
        self.thread.join(timeout=10)


def request(port: int, path: str, body=None, token: str | None = None, content_type="application/json",
            method=None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def rotate(port, record, params, token=TOKEN):
    return request(port, "/rotate", {"release": record, "params": R.encode_params(params)}, token=token)


X = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]])


def expected(world: World, version: int) -> np.ndarray:
    import phg
    m = phg.build(phg.load(world.source)).RigidRegistration()
    m.params = world.params[version - 1]
    return m.predict(x=X)["p"]


def answers(port: int, world: World, version: int):
    status, doc = request(port, "/predict", {"inputs": {"x": X.tolist()}})
    assert status == 200 and doc["version"] == version, doc
    np.testing.assert_array_equal(np.array(doc["outputs"]["p"]), expected(world, version))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("serve"))
    world.release(_params(0.3))
    server = Server(world, state=world.folder / "state")
    yield world, server
    server.stop()


def test_a_record_names_every_digest_and_verifies(served, capsys):
    world, _ = served
    r = world.records[0]
    assert r["version"] == 1 and r["previous"] is None and r["lineage"]["parent"] is None
    assert r["params"]["sha256"] == R.params_digest(world.params[0])
    assert main(["verify", str(world.folder / "r1.json")]) == 0
    assert "valid: RigidRegistration version 1" in capsys.readouterr().out
    # edited parameters on disk: the record no longer verifies, naming the check
    np.savez(world.folder / "p1.npz", **_params(0.31))
    assert main(["verify", str(world.folder / "r1.json")]) == 1
    assert "params" in capsys.readouterr().out
    np.savez(world.folder / "p1.npz", **world.params[0])


def test_the_server_answers_with_the_version_that_computed_it(served):
    world, server = served
    answers(server.port, world, 1)
    assert request(server.port, "/health")[1] == {"status": "ok", "version": 1}
    status, doc = request(server.port, "/version")
    assert doc["version"] == 1 and doc["record"] == R.record_digest(world.records[0])


@pytest.mark.parametrize("body, content_type, status, field", [
    (b"{not json", "application/json", 400, "body"),
    (b"[1, 2]", "application/json", 400, "body"),
    (json.dumps({"inputs": {"x": [[1, 2]]}}).encode(), "application/json", 422, "inputs"),
    (json.dumps({"inputs": {"x": [[1, 2, 3], [1, 2]]}}).encode(), "application/json", 422, "inputs.x"),
    (b'{"inputs": {"x": [[NaN, 0, 0]]}}', "application/json", 400, "body"),
    (b'{"inputs": {"x": [[1e999, 0, 0]]}}', "application/json", 422, "inputs.x"),
    (json.dumps({"inputs": {"q": [[1, 2, 3]]}}).encode(), "application/json", 422, "inputs"),
    (json.dumps({"nothing": 1}).encode(), "application/json", 422, "inputs"),
    (b"x" * 100, "text/plain", 415, "Content-Type"),
    (b'{"inputs": {"x": [["1", "2", "3"]]}}', "application/json", 422, "inputs.x"),
    (b'{"inputs": {"x": [[true, false, true]]}}', "application/json", 422, "inputs.x"),
    (b'{"inputs": {"x": [[1, 2, 1' + b"0" * 400 + b']]}}', "application/json", 422, "inputs.x"),
    (b'{"inputs": {"x": [[1.7e308, 1.7e308, 1.7e308]]}}', "application/json", 422, "outputs.p"),
    (b"\x93NUMPY garbage", "application/x-npy", 400, "body"),
])
def test_a_bad_request_is_a_4xx_naming_the_field_and_the_server_keeps_serving(served, body, content_type, status,
                                                                               field):
    world, server = served
    got, doc = request(server.port, "/predict", body, content_type=content_type)
    assert (got, doc["error"]) == (status, field), doc
    assert doc["detail"]
    assert request(server.port, "/health")[0] == 200


def test_an_oversize_body_is_refused_before_it_is_read(served):
    """A Content-Length over the limit is answered 413 at once, before a byte of the body is sent."""
    world, server = served
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (server.service.max_body + 1))
        reply = b""
        while b"}" not in reply and (chunk := s.recv(65536)):
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and '"error":"body"' in reply
    assert request(server.port, "/health")[0] == 200


def test_npy_bodies_for_large_batches(served):
    world, server = served
    buf = io.BytesIO()
    np.save(buf, X)
    status, doc = request(server.port, "/predict", buf.getvalue(), content_type="application/x-npy")
    assert status == 200
    np.testing.assert_array_equal(np.array(doc["outputs"]["p"]), expected(world, doc["version"]))


def test_every_refused_rotation_names_its_check_and_changes_nothing(served):
    world, server = served
    port = server.port
    v1 = world.records[0]
    v2 = world.release(_params(0.5))
    p2 = world.params[1]
    other = Ed25519PrivateKey.generate()
    off = {"R": np.array([1.0 + 1e-9, 0.0, 0.0, 0.0]), "t": np.zeros(3)}
    cert = json.loads(json.dumps(__import__("phg").check(__import__("phg").load(world.source)).to_dict()))
    cert["obligations"] = cert["obligations"][:-1]
    refusals = [
        ("token", 401, lambda: rotate(port, v2, p2, token=None)),
        ("token", 401, lambda: rotate(port, v2, p2, token="wrong")),
        ("signature", 403, lambda: rotate(port, world.forged(p2, v1, key=other), p2)),
        ("chain", 409, lambda: rotate(port, world.forged(p2, {**v1, "version": 1, "model": "x"}), p2)),
        ("expired", 422, lambda: rotate(port, world.forged(p2, v1, now=datetime.now(timezone.utc) - timedelta(days=91)),
                                        p2)),
        ("params", 422, lambda: rotate(port, v2, _params(0.6))),
        ("certificate", 422, lambda: rotate(port, world.forged(p2, v1, cert=cert), p2)),
        ("manifold", 422, lambda: rotate(port, world.forged(off, v1), off)),
        ("release", 422, lambda: rotate(port, {**v2, "version": "2"}, p2)),
        ("signature", 403, lambda: rotate(port, {**v2, "expires": "2999-01-01T00:00:00Z"}, p2)),
    ]
    for check, status, attempt in refusals:
        got, doc = attempt()
        assert (got, doc["error"]) == (status, check), (check, doc)
        answers(port, world, 1)
    # the rotation itself, then replay and rollback
    assert rotate(port, v2, p2) == (200, {"version": 2, "previous": 1})
    answers(port, world, 2)
    got, doc = rotate(port, v2, p2)
    assert (got, doc["error"]) == (409, "replay")
    got, doc = rotate(port, v1, world.params[0])
    assert (got, doc["error"]) == (409, "version")
    answers(port, world, 2)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    assert "phg_active_version 2.0" in metrics and 'phg_rotations_total{result="refused"}' in metrics


def _serve(world: World, release: int, state: Path, port: int, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PHG_ADMIN_TOKEN": TOKEN}
    if fault:
        env["PHG_FAULT"] = fault
    args = [sys.executable, "-c", "from phg.shell.cli import main; raise SystemExit(main())", "serve",
            str(world.source), "--release", str(world.folder / f"r{release}.json"),
            "--params", str(world.folder / f"p{release}.npz"), "--state", str(state), "--port", str(port)]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if request(port, "/health")[0] == 200:
                return proc
        except OSError:
            pass
        assert time.time() < deadline, "phg serve did not start"
        time.sleep(0.2)


def test_killed_between_persisting_and_swapping_it_restarts_on_the_new_version(tmp_path):
    world = World(tmp_path)
    world.release(_params(0.3))
    world.release(_params(0.7))
    state, port = tmp_path / "state", _free_port()
    proc = _serve(world, 1, state, port, fault="rotate-after-persist")
    try:
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            rotate(port, world.records[1], world.params[1])
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        proc.kill()
    # restarted with the older release on its command line: it resumes the persisted version 2
    proc = _serve(world, 1, state, port)
    try:
        answers(port, world, 2)
        got, doc = rotate(port, world.records[0], world.params[0])
        assert (got, doc["error"]) == (409, "version")
        answers(port, world, 2)
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
    assert "resumed version 2" in err and "refused the release given, version 1" in err


def test_release_refuses_what_it_cannot_sign_with_a_located_message(tmp_path, capsys):
    world = World(tmp_path)
    np.savez(tmp_path / "bad.npz", R=np.array([2.0, 0, 0, 0]), t=np.zeros(3))
    np.savez(tmp_path / "short.npz", R=_rotor(0.1)[0])
    (tmp_path / "prev.json").write_text('{"format": "phg-release/1", "model": 3}')
    cases = [(["--params", str(tmp_path / "bad.npz")], "is not a Rotor"),
             (["--params", str(tmp_path / "short.npz")], "has no array 't'"),
             (["--params", str(tmp_path / "missing.npz")], "missing.npz"),
             (["--params", str(tmp_path / "short.npz"), "--previous", str(tmp_path / "prev.json")],
              "prev.json.model: expected a model's name, found an integer"),
             (["--params", str(tmp_path / "short.npz"), "--model", "Nope"], "has no model 'Nope'")]
    for args, words in cases:
        assert main(["release", str(world.source), *args]) == 2
        assert words in capsys.readouterr().err.replace("\n", "")


def test_learning_while_serving_rotates_in_signed_versions_that_verify(tmp_path, capsys):
    """phg serve --learn: samples of another rotation posted to /observe; the server trains a copy,
    rotates in versions whose held-out loss improved (each with its lineage, each one `phg verify`
    accepts from the state folder's history), and its error on the new rotation falls."""
    world = World(tmp_path)
    world.release(_params(0.3))
    server = Server(world, state=tmp_path / "state")
    try:
        server.service.learn(window=1024, steps=40, every=0.1, least=256)
        rng = np.random.default_rng(5)
        truth = _params(0.9, t=(0.0, 0.3, 0.0))
        world.params.append(truth)                      # expected(world, 2): the truth's outputs

        def error() -> float:
            status, doc = request(server.port, "/predict", {"inputs": {"x": X.tolist()}})
            assert status == 200
            return float(np.abs(np.array(doc["outputs"]["p"]) - expected(world, 2)).max())

        start = error()
        deadline = time.time() + 90
        while server.service.active.number < 3:
            x = rng.normal(size=(256, 3))
            import phg
            m = phg.build(phg.load(world.source)).RigidRegistration()
            m.params = truth
            status, doc = request(server.port, "/observe", {"inputs": {"x": x.tolist(), "y": m.predict(x=x)["p"].tolist()}},
                                  token=TOKEN)
            assert status == 200, doc
            assert time.time() < deadline, f"no version rotated in ({server.service.learner.last_error})"
            time.sleep(0.05)
        assert error() < start / 2
        assert request(server.port, "/observe", {"inputs": {"x": [[1, 2, 3]]}}, token=TOKEN)[0] == 422
        assert request(server.port, "/observe", {"inputs": {"x": [[1, 2, 3]], "y": [[1, 2, 3]]}})[0] == 401
    finally:
        server.service.learner.close()
        server.stop()
    for v in (2, 3):
        record = json.loads((tmp_path / "state" / "versions" / f"v{v}.json").read_text())
        assert record["lineage"]["parent"] == v - 1 and record["lineage"]["data"] and record["lineage"]["steps"] == 40
        assert main(["verify", str(tmp_path / "state" / "versions" / f"v{v}.json")]) == 0
    assert "valid: RigidRegistration version 3" in capsys.readouterr().out


def test_a_record_with_its_signature_block_respelled_keeps_its_digest(tmp_path):
    """The chain is over what was signed: a copy of a record whose signature block was respelled
    (upper-case hex, a key added) by someone without the key is the same version, so the
    record that follows the original still follows it."""
    world = World(tmp_path)
    world.release(_params(0.3))
    v2, v3 = world.release(_params(0.4)), world.release(_params(0.5))
    server = Server(world)
    try:
        respelled = {**v2, "signature": {**v2["signature"], "value": v2["signature"]["value"].upper(), "extra": 1}}
        assert R.record_digest(respelled) == R.record_digest(v2)
        assert rotate(server.port, respelled, world.params[1])[0] == 200
        got, doc = rotate(server.port, v2, world.params[1])
        assert (got, doc["error"]) == (409, "replay")
        assert rotate(server.port, v3, world.params[2]) == (200, {"version": 3, "previous": 2})
    finally:
        server.stop()


def test_a_persisted_version_that_expired_is_followed_by_a_newer_release_not_served(tmp_path):
    from phg.shell import server as S
    from phg.verifier import trust

    world = World(tmp_path)
    world.release(_params(0.3))
    old = world.forged(_params(0.35), world.records[0], now=datetime.now(timezone.utc) - timedelta(days=91))
    state = tmp_path / "state"
    state.mkdir()
    (state / "active.json").write_text(json.dumps({"record": old, "params": R.encode_params(_params(0.35))}))
    newer = world.forged(_params(0.45), old)
    service = S.Service(world.source, trust.trusted(None), state, TOKEN)
    said = service.start(newer, _params(0.45))
    assert service.active.number == 3 and "has expired" in said[0]
    with pytest.raises(S.ServeError, match="expired"):        # and alone it is not served
        S.Service(world.source, trust.trusted(None), tmp_path / "state2", TOKEN).start(old, _params(0.35))


def test_a_model_in_a_format_restarts_on_its_persisted_version(tmp_path):
    """Parameters are persisted as released (the instance holds them rounded to the format), so
    their digest still matches the record after a restart."""
    from phg.shell import server as S
    from phg.verifier import trust

    world = World(tmp_path)
    text = world.source.read_text().replace("model RigidRegistration on G3 {\n",
                                            "model RigidRegistration on G3 {\n    numeric float32\n")
    world.source.write_text(text)
    world.release(_params(0.3))
    for _ in range(2):
        service = S.Service(world.source, trust.trusted(None), tmp_path / "state", TOKEN)
        service.start(world.records[0], world.params[0])
        assert service.active.number == 1


def test_a_release_trained_with_a_prior_records_it_and_its_penalty_proven(tmp_path, capsys):
    """phg release --prior: the record's lineage keeps the prior's sha256, coordinates and scale,
    and the penalty's obligations the verifier proved (the Rotor's deviation log(~R0 R) a
    Bivector, the translation's a Vector[m], the units consistent); phg verify accepts it, and a
    record whose prior field is not one is refused naming it.  A prior of another model is
    refused."""
    import phg
    from phg.prior import Prior

    world = World(tmp_path)
    m = phg.build(phg.load(world.source)).RigidRegistration(seed=0)
    prior = Prior("RigidRegistration", m._coordinates(), {k: v.copy() for k, v in m.params.items()}, np.eye(6), 2.0)
    prior.save(tmp_path / "prior.json")
    record = world.release(_params(0.2), extra=["--prior", str(tmp_path / "prior.json")])
    kept = record["lineage"]["prior"]
    assert kept["sha256"] == R.sha256((tmp_path / "prior.json").read_bytes())
    assert kept["coordinates"] == [["R", "tangent", 0, 3], ["t", "coefficients", 3, 6]] and kept["scale"] == 2.0
    claims = {o["claim"]: o["status"] for o in kept["obligations"]}
    assert claims["deviation_R : Bivector"] == "proven" and claims["deviation_t : Vector[m]"] == "proven"
    assert any(c.startswith("the units of") and s == "proven" for c, s in claims.items())
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "r1.json")]) == 0
    bad = {**record, "lineage": {**record["lineage"], "prior": {"sha256": "x"}}}
    with pytest.raises(R.RecordError, match="lineage.prior"):
        R.check_fields(bad)
    Prior("Other", prior.coordinates, prior.mean, prior.precision).save(tmp_path / "other.json")
    np.savez(tmp_path / "p.npz", **_params(0.1))
    assert main(["release", str(world.source), "--params", str(tmp_path / "p.npz"),
                 "--prior", str(tmp_path / "other.json"), "-o", str(tmp_path / "x.json")]) == 2
    assert "a prior over 'Other'" in capsys.readouterr().err.replace("\n", "")
