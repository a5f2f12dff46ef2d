"""Version records (LANGUAGE §14): which parameters of which certified model are live, who released
them, and which record they replace.

A record is a JSON object signed like a certificate (Ed25519 over its RFC 8785 canonical form).
It names the model, a version (the previous record's plus one, or 1), the sha256 of the source,
of the certificate (its content: neither the signature nor where the source was when it was
checked), of the parameters (their names, shapes and float64 values, so the archive's zip
metadata does not count) and of the generated module; the previous record's sha256 (of what
was signed: its canonical form without the signature block), a summary of the certificate, the lineage (parent version,
the training data's sha256, steps, seed), the signer, and when it was made and when it expires.

Whoever reads a record (`phg verify`, `phg serve`) trusts nothing in it until the checks here
pass; each check is named, so a refusal says which one failed.  The checks against what is
running (rollback, replay, the chain) are the server's; the rest are shared.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Mapping

import numpy as np

FORMAT = "phg-release/1"
# A record unrenewed for this long expires (TUF's freeze attack: an attacker who can only replay
# old records cannot keep a client on them forever).
DEFAULT_LIFETIME = timedelta(days=90)
# The largest record read; an honest one is about 2 KB.
MAX_RECORD_BYTES = 64 * 2**10


class RecordError(ValueError):
    """A record that cannot be read as one: `where` (a JSON path), expected, found."""

    def __init__(self, where: str, expected: str, found: str):
        super().__init__(f"{where}: expected {expected}, found {found}")
        self.where, self.expected, self.found = where, expected, found


@dataclass
class Refusal(Exception):
    """A failed check of a record or of what it names: `check` is its name (signature, version,
    replay, chain, expired, source, certificate, module, params, manifold, model)."""
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


# ---- digests ----------------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record_digest(record: Mapping) -> str:
    """The sha256 of what a record says (its canonical form without the signature block, which is
    what was signed): what the next record's `previous` holds.  The signature block stays out, so
    that nobody without the key can make another digest of the same signed record (hex digits
    in the other case, a key added to the block) and break the chain after it."""
    from phg.verifier import signing
    return sha256(signing.canonical(dict(record)))


def certificate_digest(cert: Mapping) -> str:
    """The sha256 of what a certificate says: its canonical form without its signature and without
    the path its source was checked at (the same model certified in another folder, or by another
    signer, has the same digest)."""
    import rfc8785
    body = {k: v for k, v in cert.items() if k != "signature"}
    body["source"] = {k: v for k, v in body["source"].items() if k != "path"}
    return sha256(rfc8785.dumps(json.loads(json.dumps(body))))


def params_digest(params: Mapping[str, np.ndarray]) -> str:
    """The sha256 of parameters: each name (sorted), shape and little-endian float64 values."""
    h = hashlib.sha256()
    for name in sorted(params):
        a = np.ascontiguousarray(params[name], dtype="<f8")
        h.update(f"{name}\0{list(a.shape)}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def certificate_summary(cert: Mapping) -> dict:
    counts = {s: sum(1 for o in cert["obligations"] if o["status"] == s) for s in ("proven", "refuted", "unknown")}
    return {"ok": cert["ok"], **counts}


# ---- making a record --------------------------------------------------------------------------
def _time(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make(*, model: str, source_sha256: str, cert: Mapping, params: Mapping[str, np.ndarray], module_sha256: str,
         previous: Mapping | None, lineage: Mapping | None = None, now: datetime | None = None,
         lifetime: timedelta = DEFAULT_LIFETIME, paths: Mapping | None = None, key=None) -> dict:
    """A signed record of `params` for `model`, following `previous` (None: version 1); `paths`:
    where the source and the parameters are, relative to the record's folder (for `phg verify`)."""
    from phg.verifier import signing

    now = now or datetime.now(timezone.utc)
    version = 1 if previous is None else previous["version"] + 1
    lineage = {"parent": None if previous is None else previous["version"], "data": None, "steps": None,
               "seed": None, **(lineage or {})}
    record = {"format": FORMAT, "model": model, "version": version,
              "source": {"sha256": source_sha256, **({"path": paths["source"]} if paths else {})},
              "certificate": {"sha256": certificate_digest(cert), "summary": certificate_summary(cert)},
              "params": {"sha256": params_digest(params), **({"path": paths["params"]} if paths else {})},
              "module": {"sha256": module_sha256},
              "previous": None if previous is None else record_digest(previous),
              "lineage": lineage, "created": _time(now), "expires": _time(now + lifetime)}
    return signing.sign(record, key)


# ---- reading one ------------------------------------------------------------------------------
_HEX64 = "64 hex digits"


def _is_hex(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _is_count(v) -> bool:
    # RFC 8785's canonical form holds integers up to 2^53 exactly
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 2**53


def _is_time(v) -> bool:
    return isinstance(v, str) and parse_time(v) is not None


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (ValueError, TypeError):
        return None


# field path -> (test, what is expected)
_FIELDS = {
    "model": (lambda v: isinstance(v, str) and v.isidentifier() and len(v) <= 200, "a model's name"),
    "version": (lambda v: _is_count(v) and v >= 1, "a version number (an integer of at least 1)"),
    "source.sha256": (_is_hex, _HEX64),
    "certificate.sha256": (_is_hex, _HEX64),
    "certificate.summary": (lambda v: isinstance(v, dict), "the certificate's summary (an object)"),
    "params.sha256": (_is_hex, _HEX64),
    "module.sha256": (_is_hex, _HEX64),
    "previous": (lambda v: v is None or _is_hex(v), f"null or {_HEX64}"),
    "lineage": (lambda v: isinstance(v, dict), "an object"),
    "lineage.parent": (lambda v: v is None or _is_count(v), "null or a version number"),
    "lineage.data": (lambda v: v is None or _is_hex(v), f"null or {_HEX64}"),
    "lineage.steps": (lambda v: v is None or _is_count(v), "null or a count of steps"),
    "lineage.seed": (lambda v: v is None or _is_count(v), "null or a seed (an integer >= 0)"),
    "created": (_is_time, "a UTC time as YYYY-MM-DDTHH:MM:SSZ"),
    "expires": (_is_time, "a UTC time as YYYY-MM-DDTHH:MM:SSZ"),
    "signature": (lambda v: isinstance(v, dict), "a signature block (an object)"),
}


def _is_prior(v) -> bool:
    """null, or what phg release keeps of a prior: {sha256, coordinates, scale, obligations}."""
    if v is None:
        return True
    if not (isinstance(v, dict) and _is_hex(v.get("sha256")) and isinstance(v.get("coordinates"), list)
            and isinstance(v.get("obligations"), list)):
        return False
    number = lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0  # noqa: E731
    scale = v.get("scale")
    if not (scale == "auto" or number(scale) or (isinstance(scale, dict) and all(
            isinstance(k, str) and number(x) for k, x in scale.items()))):
        return False
    return all(isinstance(c, list) and len(c) == 4 and isinstance(c[0], str) and c[1] in ("coefficients", "tangent")
               and _is_count(c[2]) and _is_count(c[3]) for c in v["coordinates"]) and \
        all(isinstance(o, dict) and isinstance(o.get("claim"), str) and isinstance(o.get("status"), str)
            for o in v["obligations"])


def _kind(v) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true or false", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def check_fields(record, where: str = "release") -> dict:
    """`record` if it is a record by its form (each field of its type), else RecordError naming the
    first field that is not."""
    if not isinstance(record, dict):
        raise RecordError(where, "a release record (a JSON object)", _kind(record))
    if record.get("format") != FORMAT:
        found = record.get("format")
        raise RecordError(f"{where}.format", repr(FORMAT),
                          repr(found[:40]) if isinstance(found, str) else _kind(found) if "format" in record
                          else "no such field")
    for path, (test, expected) in _FIELDS.items():
        value, ok = record, True
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                ok = False
                break
            value = value[part]
        if not ok:
            raise RecordError(f"{where}.{path}", expected, "no such field")
        if not test(value):
            raise RecordError(f"{where}.{path}", expected, _kind(value))
    # a record of parameters trained with a prior says so (phg release --prior); older ones need not
    if "prior" in record["lineage"] and not _is_prior(record["lineage"]["prior"]):
        raise RecordError(f"{where}.lineage.prior", "null or {sha256, coordinates, scale, obligations}",
                          _kind(record["lineage"]["prior"]))
    return record


def parse(data: bytes, name: str) -> dict:
    """A record from untrusted bytes: strict JSON (verifier.document's reader), then its fields."""
    from phg.verifier.document import DocumentError
    from phg.verifier.document import parse as parse_json

    if len(data) > MAX_RECORD_BYTES:
        raise RecordError(name, f"a record of at most {MAX_RECORD_BYTES // 1024} KiB", f"{len(data):,} bytes")
    try:
        doc = parse_json(data, name)
    except DocumentError as exc:
        raise RecordError(exc.where, exc.expected, exc.found) from None
    return check_fields(doc, name)


def check_size(record: Mapping) -> None:
    """A record sent in a request is held to what `phg verify` and `phg serve --release` read."""
    size = len(json.dumps(record))
    if size > MAX_RECORD_BYTES:
        raise RecordError("release", f"a record of at most {MAX_RECORD_BYTES // 1024} KiB", f"{size:,} bytes")


def read(path: str | Path) -> dict:
    from phg import sources
    try:
        data = sources.read_file(path, MAX_RECORD_BYTES)
    except OSError as exc:
        raise RecordError(str(path), "a readable release record", exc.strerror or str(exc)) from None
    return parse(data, str(path))


# ---- the checks ------------------------------------------------------------------------------
def check_signature(record: Mapping, trusted_keys) -> str:
    """The signer's description, or Refusal('signature')."""
    from phg.verifier import signing, trust

    sig = signing.check_signature(dict(record))
    if not sig.valid:
        raise Refusal("signature", sig.detail if len(sig.detail) <= 200 else sig.detail[:200] + "...")
    signer = trust.find(trusted_keys, sig.public)
    if signer is None:
        raise Refusal("signature", f"signed by key {signing.key_id(sig.public)}, which is not trusted "
                                   "(phg keys list shows the trusted keys)")
    return signer.describe()


def check_expiry(record: Mapping, now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    if parse_time(record["expires"]) <= now:
        raise Refusal("expired", f"the record expired at {record['expires']}; release it again")
    if parse_time(record["created"]) > now + timedelta(minutes=5):
        raise Refusal("expired", f"the record says it was made at {record['created']}, in the future")


def check_model(record: Mapping, *, model: str, source_sha256: str, cert: Mapping, module_sha256: str) -> None:
    """The record names this model, this source, this certificate and this generated module."""
    if record["model"] != model:
        raise Refusal("model", f"the record is of model {record['model']!r}, not {model!r}")
    if record["source"]["sha256"] != source_sha256:
        raise Refusal("source", "the record's source sha256 is not the served source's")
    if not cert["ok"]:
        raise Refusal("certificate", "the source's certificate does not prove every obligation")
    if record["certificate"]["sha256"] != certificate_digest(cert):
        raise Refusal("certificate", "the certificate this phg derives from the source is not the one released "
                                     "(a different phg or z3 version, or a different model)")
    if record["module"]["sha256"] != module_sha256:
        raise Refusal("module", "the generated module differs from the one released")


def check_params(record: Mapping, params: Mapping[str, np.ndarray], spec: Mapping) -> None:
    """The parameters are the record's (digest), every one of the model's, of its shapes and
    finite.  Whether rotors and motors are on their manifold, |R ~R - 1| <= 1e-12, the model's
    own parameters check when they are assigned (codegen.parameters)."""
    if params_digest(params) != record["params"]["sha256"]:
        raise Refusal("params", "the parameters' sha256 is not the record's")
    for name, p in spec["params"].items():
        if name not in params:
            raise Refusal("params", f"parameter {name!r} is missing")
        want = (*p["shape"], len(p["layout"]))
        if tuple(params[name].shape) != want:
            raise Refusal("params", f"parameter {name!r} has shape {list(params[name].shape)}, expected {list(want)}")
        if not np.all(np.isfinite(params[name])):
            raise Refusal("params", f"parameter {name!r} is not finite")
    extra = sorted(set(params) - set(spec["params"]))
    if extra:
        raise Refusal("params", f"{extra[0]!r} is not a parameter of {spec['name']}")


def decode_params(text, names, limit: int) -> dict[str, np.ndarray]:
    """Parameters from base64 text of an .npz archive (untrusted: phg.npz's bounded reader)."""
    from phg.npz import ArchiveError, read_arrays

    if not isinstance(text, str):
        raise RecordError("params", "base64 text of an .npz archive", _kind(text))
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise RecordError("params", "base64 text of an .npz archive", "text that is not base64") from None
    try:
        arrays, held = read_arrays(io.BytesIO(data), list(names), limit)
    except ArchiveError as exc:
        raise RecordError("params", "an .npz archive of the parameters", str(exc)) from None
    if any(a.dtype.kind not in "fiu" for a in arrays.values()):
        raise RecordError("params", "numeric arrays", "an array of another kind")
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}


def encode_params(params: Mapping[str, np.ndarray]) -> str:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in params.items()})
    return base64.b64encode(buf.getvalue()).decode("ascii")
