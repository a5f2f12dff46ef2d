"""`phg serve` (LANGUAGE §14): a model's predictions over HTTP, and versions rotated in under load.

One source is served: its certificate is derived and its kernels built once, at start.  A version
is that model with one set of parameters, admitted by a signed release record (phg.shell.records).  The
active version is one reference: a request reads it once and is answered entirely by that version
(the response names it), so a rotation never mixes two; requests already running finish on the
version they took.  A rotation is admitted only after every check (signature by a trusted key,
version above the last activated, chain, expiry, source, certificate, module, parameters,
manifold), the new instance is built and warmed off the event loop, and the last activated
version is written durably to the state folder before the reference is swapped (TUF's order: a
crash between the two restarts on the new version, never on an older one).  A refused rotation
answers 4xx naming the failed check and changes nothing.

Everything a client sends is untrusted: bodies are bounded (MAX_BODY by default), JSON is read
strictly, arrays are checked by the model class, and every bad input is a 4xx with a message.
"""
from __future__ import annotations

import hmac
import io
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phg.shell import records as R

# The largest request body read: 64 MiB (a batch of about a million 3-vectors as .npy).
MAX_BODY = 64 * 2**20
# Where a test kills the server on purpose (PHG_FAULT): after the state is persisted, before the swap.
FAULT_AFTER_PERSIST = "rotate-after-persist"
STATE_FILE = "active.json"


class ServeError(ValueError):
    """The server cannot start as asked (a bad record, parameters, state folder); the message says why."""


@dataclass(frozen=True)
class Version:
    """One admitted version: its number, its record (and that record's digest), its model instance
    and its parameters as released (the instance holds them rounded to the model's format)."""
    number: int
    record: dict
    digest: str
    model: object
    params: dict | None = None


@dataclass
class Refused(Exception):
    status: int
    check: str
    detail: str


class Service:
    """The served model: the source's certificate and kernels, the trusted keys, the active
    version and the state folder."""

    def __init__(self, source: Path, trusted, state: Path | None = None, token: str | None = None,
                 max_body: int = MAX_BODY):
        import phg
        from phg import sources

        self.source_path = Path(source)
        data = sources.read_file(self.source_path)
        self.source_sha256 = R.sha256(data)
        self.program = phg.loads(data.decode("utf-8"), filename=str(self.source_path))
        cert = phg.check(self.program)
        self.cert = json.loads(json.dumps(cert.to_dict()))
        self.kernels = phg.build(self.program, unverified=not cert.ok)
        self.module_sha256 = R.sha256(Path(self.kernels.__file__).read_bytes())
        self.trusted = trusted
        self.state = Path(state) if state is not None else None
        if self.state is not None:
            self.state.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.max_body = max_body
        self.active: Version | None = None
        self.rotation = threading.Lock()           # one rotation at a time (HTTP or the learner)
        self.learner = None
        self.history_problem: str | None = None
        self.metrics = _Metrics()

    # ---- admitting a version ---------------------------------------------------------------------
    def admit(self, record: dict, params: dict[str, np.ndarray], follows: Version | None) -> Version:
        """Every check of a record and its parameters against what is served; the new version's
        instance, warmed.  Raises Refused (nothing changes)."""
        try:
            R.check_fields(record)
            R.check_size(record)
            R.check_signature(record, self.trusted)
            last = self.last_version() if follows is None else max(self.last_version() or 0, follows.number)
            if follows is not None and record["version"] == follows.number and R.record_digest(record) == follows.digest:
                raise R.Refusal("replay", f"version {record['version']} is the active version")
            if last is not None and record["version"] <= last:
                raise R.Refusal("version", f"version {record['version']} is not above the last activated, {last} "
                                           "(a rollback)")
            if follows is not None and record["previous"] != follows.digest:
                raise R.Refusal("chain", "the record's previous-record sha256 is not the active record's")
            R.check_expiry(record)
            if record["model"] not in self.kernels.MODELS:
                raise R.Refusal("model", f"{self.source_path.name} has no model {record['model']!r}")
            R.check_model(record, model=record["model"], source_sha256=self.source_sha256, cert=self.cert,
                          module_sha256=self.module_sha256)
            cls = self.kernels.MODELS[record["model"]]
            R.check_params(record, params, cls.SPEC)
            model = cls(seed=0)
            try:
                model.params = params
            except ValueError as exc:
                raise R.Refusal("manifold", str(exc)) from None
            _warm(model)
        except R.RecordError as exc:
            raise Refused(422, "release", str(exc)) from None
        except R.Refusal as exc:
            status = {"signature": 403, "version": 409, "replay": 409, "chain": 409}.get(exc.check, 422)
            raise Refused(status, exc.check, exc.detail) from None
        return Version(record["version"], record, R.record_digest(record), model, dict(params))

    def last_version(self) -> int | None:
        return self.active.number if self.active is not None else None

    # ---- the state folder ----------------------------------------------------------------------
    def persist(self, version: Version) -> None:
        """Write the version about to go live (its record and parameters as released), durably,
        before the swap: the one file a restart reads.  Refused(503) where it cannot be written
        (the file is replaced whole or not at all, so the state is as it was)."""
        if self.state is None:
            return
        from phg import files
        doc = {"record": version.record, "params": R.encode_params(version.params)}
        try:
            files.replace(self.state / STATE_FILE, lambda f: f.write(json.dumps(doc).encode()), durable=True)
        except OSError as exc:
            raise Refused(503, "state", f"the state folder cannot be written ({exc.strerror or exc}); "
                                        "nothing was activated") from None

    def keep(self, version: Version) -> str | None:
        """Keep an activated version in the state folder's history (`versions/vN.json`, `.npz`,
        for audit: `phg verify` reads one where its paths lead here).  Best effort, after the
        swap: a failure is reported, never undoes the activation."""
        if self.state is None:
            return None
        from phg import files
        history = self.state / "versions"
        try:
            history.mkdir(exist_ok=True)
            files.replace(history / f"v{version.number}.npz", lambda f: np.savez(f, **version.params))
            files.write_bytes(history / f"v{version.number}.json",
                              (json.dumps(version.record, indent=2) + "\n").encode())
        except OSError as exc:
            return f"version {version.number} was not kept in {history}: {exc.strerror or exc}"
        return None

    def history_paths(self, number: int) -> dict | None:
        """Where a record made here for version `number` finds its source and parameters, relative
        to the record in the state folder's history (None without a state folder)."""
        if self.state is None:
            return None
        from phg.verifier.certificate import recorded_path
        return {"source": recorded_path(str(self.source_path), self.state / "versions" / f"v{number}.json"),
                "params": f"v{number}.npz"}

    def learn(self, **settings) -> None:
        """Start training while serving (phg.shell.learner), signing with the user's own key, which
        must be among the trusted keys (else its versions would be refused)."""
        from phg.verifier import signing, trust

        from .learner import Learner
        key = signing.load_key()
        if trust.find(self.trusted, signing.raw_public(key)) is None:
            raise ServeError("--learn signs its versions with your own key, which the trusted keys (--trust) leave "
                             "out; trust it too")
        self.learner = Learner(self, key=key, **settings)
        self.learner.start()

    def persisted(self) -> tuple[dict, dict[str, np.ndarray]] | None:
        """The record and parameters the state folder holds, or None where it holds none."""
        if self.state is None or not (self.state / STATE_FILE).exists():
            return None
        from phg.verifier.document import DocumentError, parse
        try:
            doc = parse((self.state / STATE_FILE).read_bytes(), str(self.state / STATE_FILE))
            record = R.check_fields(doc.get("record"), "record")
            cls = self.kernels.MODELS.get(record["model"])
            if cls is None:
                raise ServeError(f"{self.state / STATE_FILE}: its record is of model {record['model']!r}, which "
                                 f"{self.source_path.name} does not have")
            params = R.decode_params(doc.get("params"), list(cls.SPEC["params"]), self.max_body)
        except (DocumentError, R.RecordError, OSError) as exc:
            raise ServeError(f"the state folder's {STATE_FILE} cannot be read: {exc}") from None
        return record, params

    def activate(self, version: Version) -> None:
        """Persist, then swap: the one place a version goes live."""
        self.persist(version)
        if self.active is not None and os.environ.get("PHG_FAULT") == FAULT_AFTER_PERSIST:
            os.kill(os.getpid(), signal.SIGKILL)
        self.active = version
        self.metrics.active.set(version.number)
        self.history_problem = self.keep(version)

    def start(self, record: dict, params: dict[str, np.ndarray]) -> list[str]:
        """The first version: the persisted one where the state folder holds one at least as new as
        `record` (which is then refused if older), else `record`.  A persisted version that has
        expired is not served, but a newer `record` may still follow it (the chain and the version
        order hold from it).  Returns what it did, to log."""
        said = []
        held = self.persisted()
        follows = None
        if held is not None:
            where = self.state / STATE_FILE
            try:
                follows = self.admit(*held, None)
            except Refused as exc:
                if exc.check != "expired" or record["version"] <= held[0]["version"]:
                    raise ServeError(f"the persisted version in {where} is refused: {exc.check}: {exc.detail}"
                                     + ("; a newer release that follows it may replace it" if exc.check == "expired"
                                        else "")) from None
                follows = Version(held[0]["version"], held[0], R.record_digest(held[0]), None, held[1])
                said.append(f"the persisted version {follows.number} in {where} has expired; the release given "
                            "must follow it")
            else:
                self.activate(follows)
                said.append(f"resumed version {follows.number} from {where}")
            if record["version"] < follows.number:
                said.append(f"refused the release given, version {record['version']}: it is older than the "
                            f"persisted version {follows.number} (a rollback)")
            if record["version"] <= follows.number:
                return said
        try:
            version = self.admit(record, params, follows)
            self.activate(version)
        except Refused as exc:
            raise ServeError(f"the release given is refused: {exc.check}: {exc.detail}") from None
        said.append(f"serving version {version.number}")
        return said

    def rotate(self, record, params: dict[str, np.ndarray]) -> tuple[Version, Version]:
        """Admit and activate a version after the active one: (the new version, the one it replaced).
        Raises Refused, changing nothing."""
        with self.rotation:
            follows = self.active
            try:
                version = self.admit(record, params, follows)
                self.activate(version)
            except Refused:
                self.metrics.rotations.labels("refused").inc()
                raise
            self.metrics.rotations.labels("activated").inc()
            return version, follows

    def authorised(self, header: str | None) -> None:
        if not self.token:
            raise Refused(403, "token", "rotation is off: the server was started without PHG_ADMIN_TOKEN")
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise Refused(401, "token", "a missing or wrong bearer token (Authorization: Bearer TOKEN)")


def _warm(model) -> None:
    """One predict on a sample of zeros: the kernels are compiled (or loaded) and the parameters
    read before the version answers a request."""
    spec = model.SPEC
    inputs = {n: np.zeros((1, *spec["inputs"][n]["shape"], len(spec["inputs"][n]["layout"])))
              for n in spec["predict"]["inputs"]}
    model.predict(**inputs)


class _Metrics:
    """Prometheus series of one server (a registry of its own, so two servers in a process, as in
    the tests, do not share counts)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        self.registry = CollectorRegistry()
        self.requests = Counter("phg_requests", "requests answered", ["path", "status"], registry=self.registry)
        self.latency = Histogram("phg_request_seconds", "time to answer a request", ["path"], registry=self.registry)
        self.rotations = Counter("phg_rotations", "rotations asked for", ["result"], registry=self.registry)
        self.active = Gauge("phg_active_version", "the version answering requests", registry=self.registry)


# ---- HTTP -----------------------------------------------------------------------------------------
def _error(status: int, field_: str, detail: str):
    from starlette.responses import JSONResponse
    return JSONResponse({"error": field_, "detail": detail}, status_code=status)


class BadRequest(Exception):
    def __init__(self, status: int, field_: str, detail: str):
        super().__init__(detail)
        self.status, self.field, self.detail = status, field_, detail


async def _body(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(400, "Content-Length", "expected a number of bytes")
        if int(declared) > limit:
            raise BadRequest(413, "body", f"expected at most {limit:,} bytes, found {int(declared):,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, "body", f"expected at most {limit:,} bytes, found more")
        chunks.append(chunk)
    return b"".join(chunks)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _json(data: bytes) -> dict:
    try:
        doc = json.loads(data, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BadRequest(400, "body", f"expected JSON{where}: {getattr(exc, 'msg', None) or exc.reason}") from None
    except (ValueError, RecursionError) as exc:
        raise BadRequest(400, "body", f"expected JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(400, "body", f"expected a JSON object, found {R._kind(doc)}")
    return doc


def _inputs(request_type: str, data: bytes, spec: dict) -> dict[str, np.ndarray]:
    names = spec["predict"]["inputs"]
    if request_type == "application/x-npy":
        if len(names) != 1:
            raise BadRequest(415, "Content-Type", f"a model with inputs {', '.join(names)} takes JSON or an .npz "
                                                  "archive, not one .npy array")
        return {names[0]: _npy(data, names[0])}
    if request_type == "application/x-npz":
        from phg.npz import ArchiveError, read_arrays
        try:
            arrays, _ = read_arrays(io.BytesIO(data), list(spec["inputs"]), MAX_BODY * 4)
        except ArchiveError as exc:
            raise BadRequest(400, "body", str(exc)) from None
        for name, a in arrays.items():
            if a.dtype.kind not in "fiu":
                raise BadRequest(422, f"inputs.{name}"[:80], f"expected an array of numbers, found dtype {a.dtype.str}")
        return {k: a.astype(np.float64) for k, a in arrays.items()}
    if request_type not in ("application/json", ""):
        raise BadRequest(415, "Content-Type", f"expected application/json, application/x-npy or application/x-npz, "
                                              f"found {request_type[:60]!r}")
    doc = _json(data)
    given = doc.get("inputs")
    if not isinstance(given, dict):
        raise BadRequest(422, "inputs", f"expected an object of arrays named after the inputs ({', '.join(names)}), "
                                        f"found {R._kind(given) if 'inputs' in doc else 'no such field'}")
    out = {}
    for name, value in given.items():
        where = f"inputs.{name}"[:80]
        try:
            a = np.asarray(value)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise BadRequest(422, where, "expected nested lists of numbers of one shape") from None
        if a.dtype.kind not in "fiu":                  # text, true/false, null, ragged lists
            raise BadRequest(422, where, "expected nested lists of numbers of one shape")
        try:
            out[name] = a.astype(np.float64)
        except OverflowError:
            raise BadRequest(422, where, "expected numbers a double holds") from None
    return out


def _npy(data: bytes, name: str) -> np.ndarray:
    from numpy.lib import format as npy
    f = io.BytesIO(data)
    try:
        version = npy.read_magic(f)
        read_header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
        if read_header is None:
            raise ValueError(f"a .npy header of version 1.0 or 2.0, not {version}")
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject or dtype.kind not in "fiu":
            raise ValueError("an array of numbers")
        count = math.prod(shape)                       # Python integers: no wrap-around
        if count * dtype.itemsize != len(data) - f.tell():
            raise ValueError(f"{count * dtype.itemsize:,} bytes of data as its header says")
        a = np.frombuffer(data, dtype=dtype, count=count, offset=f.tell())
        a = a.reshape(shape, order="F" if fortran else "C")
    except ValueError as exc:
        raise BadRequest(400, "body", f"expected one .npy array ({exc})") from None
    return np.asarray(a, dtype=np.float64)


def _predict(version: Version, kind: str, data: bytes, npz: bool):
    """A prediction request answered by `version`, on a worker thread (parsing and rendering a
    large body would hold the event loop, and every other request, for seconds)."""
    from starlette.responses import JSONResponse, Response

    inputs = _inputs(kind, data, version.model.SPEC)
    for name, a in inputs.items():
        if not np.all(np.isfinite(a)):
            raise BadRequest(422, f"inputs.{name}"[:80], "expected finite numbers, found NaN or an infinity")
    try:
        outs = version.model.predict(**inputs)
    except ValueError as exc:
        raise BadRequest(422, "inputs", str(exc)) from None
    for name, a in outs.items():
        if not np.all(np.isfinite(a)):
            raise BadRequest(422, f"outputs.{name}"[:80], "the outputs overflow for these inputs (not finite)")
    if npz:
        buf = io.BytesIO()
        np.savez(buf, **outs)
        return Response(buf.getvalue(), media_type="application/x-npz", headers={"X-PHG-Version": str(version.number)})
    return JSONResponse({"version": version.number, "outputs": {k: v.tolist() for k, v in outs.items()}})


def _rotate(service: Service, data: bytes) -> tuple[Version, Version]:
    """A rotation request, on a worker thread: the body read strictly, the parameters decoded in
    bounded memory, then Service.rotate."""
    from phg.verifier.document import DocumentError, parse
    try:
        doc = parse(data, "body")
    except DocumentError as exc:
        raise BadRequest(400, "body", str(exc)) from None
    record = doc.get("release")
    model = record.get("model") if isinstance(record, dict) else None
    cls = service.kernels.MODELS.get(model) if isinstance(model, str) else None
    names = list(cls.SPEC["params"]) if cls is not None else []
    try:
        params = R.decode_params(doc.get("params"), names, service.max_body)
    except R.RecordError as exc:
        service.metrics.rotations.labels("refused").inc()
        raise BadRequest(422, "params", str(exc)) from None
    return service.rotate(record, params)


def _observe(service: Service, kind: str, data: bytes) -> int:
    spec = service.active.model.SPEC
    inputs = _inputs(kind, data, {**spec, "predict": {"inputs": spec["train"]["inputs"]}})
    try:
        return service.learner.observe(inputs)
    except ValueError as exc:
        raise BadRequest(422, "inputs", str(exc)) from None


def app(service: Service):
    """The Starlette application of a started service."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def counted(path: str, handler):
        async def run(request):
            start = time.perf_counter()
            try:
                response = await handler(request)
            except BadRequest as exc:
                response = _error(exc.status, exc.field, exc.detail)
            except Refused as exc:
                response = _error(exc.status, exc.check, exc.detail)
            service.metrics.requests.labels(path, str(response.status_code)).inc()
            service.metrics.latency.labels(path).observe(time.perf_counter() - start)
            return response
        return run

    async def predict(request):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        # JSON costs about 40 bytes of memory a byte parsed: its bodies get an eighth of the limit
        data = await _body(request, service.max_body // 8 if kind in ("application/json", "") else service.max_body)
        version = service.active                      # read once: this version answers, entirely
        npz = "application/x-npz" in request.headers.get("accept", "")
        return await run_in_threadpool(_predict, version, kind, data, npz)

    async def version_(request):
        v = service.active
        return JSONResponse({"model": v.record["model"], "version": v.number, "record": v.digest,
                             "created": v.record["created"], "expires": v.record["expires"]})

    async def health(request):
        return JSONResponse({"status": "ok", "version": service.active.number})

    async def metrics(request):
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def rotate(request):
        service.authorised(request.headers.get("authorization"))
        data = await _body(request, service.max_body)
        version, follows = await run_in_threadpool(_rotate, service, data)
        return JSONResponse({"version": version.number, "previous": follows.number})

    async def observe(request):
        service.authorised(request.headers.get("authorization"))
        if service.learner is None:
            raise BadRequest(404, "learn", "learning is off: start phg serve with --learn")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data = await _body(request, service.max_body // 8 if kind in ("application/json", "") else service.max_body)
        held = await run_in_threadpool(_observe, service, kind, data)
        learner = service.learner
        return JSONResponse({"held": held, "version": service.active.number, "rounds": learner.rounds,
                             "improved": learner.improved})

    routes = [Route("/predict", counted("/predict", predict), methods=["POST"]),
              Route("/observe", counted("/observe", observe), methods=["POST"]),
              Route("/version", counted("/version", version_), methods=["GET"]),
              Route("/health", counted("/health", health), methods=["GET"]),
              Route("/metrics", metrics, methods=["GET"]),
              Route("/rotate", counted("/rotate", rotate), methods=["POST"])]
    return Starlette(routes=routes)

