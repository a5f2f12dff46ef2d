"""The certificate (LANGUAGE §9): what was proven about a source file, and how to re-check it.

`phg verify` believes nothing a certificate says: it reads the source the certificate names,
checks it again, and compares the whole document it would write with the one it was given.  The
recorded SMT-LIB2 queries are compared as text, never parsed or run, and the signature must be
by a trusted key (verifier.trust).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import z3

from phg import files, sources
from phg import support as sup
from phg.numeric import DEFAULT
from phg.program import Program
from phg.version import __version__

from . import document, signing, trust
from .check import Obligation, check_program
from .document import FORMAT
from .memory import plan

SCOPE = "grade, versor, update, unit, memory and quire obligations"


@dataclass
class Certificate:
    program: Program
    obligations: list[Obligation]

    @property
    def ok(self) -> bool:
        return all(o.status == "proven" for o in self.obligations)

    def values(self) -> dict:
        out = {}
        single = len(self.program.models) == 1
        for model in self.program.models.values():
            alg = model.algebra
            for v in model.values.values():
                if v.name is None or v.role == "const":
                    continue
                key = v.name if single else f"{model.name}.{v.name}"
                blades = [b for b in alg.blades if v.support >> b & 1]
                out[key] = {"blades": [alg.blade_name(b) for b in blades],
                            "grades": sup.grades_of(v.support), "unit": None if v.unit is None else str(v.unit),
                            "unit_written": v.role == "const" or (v.declared is not None and v.declared.unit is not None),
                            "versor": v.versor is not None, "shape": list(v.shape), "role": v.role}
                if model.numeric != DEFAULT:            # LANGUAGE §11: the format its kernels compute in
                    out[key]["numeric"] = model.numeric
                if v.unit is not None and any(not alg.blade_unit(b).dimensionless for b in blades):
                    # LANGUAGE §4: the coefficient of blade b is in unit(value) / unit(b)
                    out[key]["coefficient_units"] = {alg.blade_name(b): str(v.unit / alg.blade_unit(b)) for b in blades}
        return out

    def to_dict(self, source_path: str | None = None) -> dict:
        """The document; `source_path` is the source as recorded (by default as it was loaded)."""
        return _interchangeable({
                "format": FORMAT,
                "source": {"path": self.program.path if source_path is None else source_path,
                           "sha256": self.program.sha256},
                "tool": {"phg": __version__, "z3": z3.get_version_string()},
                "ok": self.ok,
                "scope": SCOPE,
                "obligations": [o.to_dict() for o in self.obligations],
                "values": self.values(),
                "memory": self.memory()})

    def memory(self) -> dict | None:
        """The static memory plan of every model with a loss (flat when there is one)."""
        plans = {m.name: plan(m, self.program.trains.get(m.name)).to_dict()
                 for m in self.program.models.values() if m.loss is not None}
        if not plans:
            return None
        return next(iter(plans.values())) if len(plans) == 1 else plans

    def signed(self, source_path: str | None = None) -> dict:
        return signing.sign(self.to_dict(source_path))

    def write(self, path: str | Path) -> dict:
        """Sign and write the certificate; it records the source relative to its own folder, which
        is where `phg verify` looks for it."""
        path = Path(path)
        signed = self.signed(recorded_path(self.program.path, path))
        files.write_bytes(path, (json.dumps(signed, indent=2) + "\n").encode())
        return signed


def certify(program: Program) -> Certificate:
    return Certificate(program, check_program(program))


# Integers beyond this lose digits as RFC 8785 numbers (IEEE doubles); the certificate writes them
# as decimal strings (the accumulator's capacity, 2^108 samples, is one).
EXACT_INTEGER = 2**53 - 1


def _interchangeable(value):
    if isinstance(value, dict):
        return {k: _interchangeable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_interchangeable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > EXACT_INTEGER:
        return str(value)
    return value


def recorded_path(source: str, certificate: Path) -> str:
    """The source's path relative to the certificate's folder (absolute on another drive)."""
    src = Path(source)
    if not src.is_file():
        return source                                   # text that was never a file, e.g. <text>
    try:
        # The certificate's own folder, not a link's target's: it is written over the link.
        return Path(os.path.relpath(src.resolve(), certificate.absolute().parent.resolve())).as_posix()
    except ValueError:
        return src.resolve().as_posix()




# ---- phg verify -------------------------------------------------------------------------------
# The largest source `phg verify` reads.
MAX_SOURCE_BYTES = sources.MAX_SOURCE_BYTES
# The sections of the document, in the order they are compared and reported.
SECTIONS = ("document", "obligations", "queries", "values", "memory")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    """Everything `phg verify` found; `valid` when every check passed."""
    checks: list[Check]
    signer: trust.TrustedKey | None = None
    proven: bool = False                     # the certificate says (and the source confirms) all proven
    counts: dict = field(default_factory=dict)
    first_difference: str | None = None

    @property
    def valid(self) -> bool:
        return all(c.ok for c in self.checks)


def source_of(cert_path: Path, recorded: str) -> Path:
    """Where a certificate's source is: relative to the certificate's folder, never the working
    directory (an absolute path stands as written)."""
    p = Path(recorded)
    return p if p.is_absolute() else cert_path.resolve().parent / p


def read_source(path: Path) -> bytes:
    """The source's bytes: a regular file of at most MAX_SOURCE_BYTES (a FIFO or a device named by
    a certificate must not block or flood the verifier)."""
    return sources.read_file(path, MAX_SOURCE_BYTES)


def verify(cert_path: str | Path, trusted: list[str] | None = None) -> Verdict:
    """Every check `phg verify` makes.  Raises document.DocumentError for a certificate that cannot
    be read as one and trust.TrustError for a key that cannot be; otherwise the verdict."""
    from phg.diagnostics import PhgError
    from phg.dsl import loads

    cert_path = Path(cert_path)
    doc = document.read(cert_path)
    keys = trust.trusted(trusted)
    verdict = Verdict([Check("format", True, FORMAT)])

    sig = signing.check_signature(doc)
    signer = trust.find(keys, sig.public) if sig.valid else None
    if signer is not None:
        verdict.checks.append(Check("signature", True, f"signed by {signer.describe()}"))
        verdict.signer = signer
    elif sig.valid:
        verdict.checks.append(Check("signature", False, f"signed by key {signing.key_id(sig.public)}, which is not "
                                                        "trusted (phg keys list shows the trusted keys)"))
    else:
        verdict.checks.append(Check("signature", False, sig.detail))
    if signer is None and trust.find(keys, _named_key(doc)) is None:
        # Not signed by anyone trusted: re-deriving would only spend the time the document's
        # author chose (the source may be as large as the budget allows) on a verdict of invalid.
        verdict.checks[-1].detail += "; nothing else was checked"
        return verdict

    source = source_of(cert_path, doc["source"]["path"])
    try:
        data = read_source(source)
    except OSError as exc:
        verdict.checks.append(Check("source", False, f"cannot read the source {source}: {exc.strerror or exc}"))
        return verdict
    if hashlib.sha256(data).hexdigest() != doc["source"]["sha256"]:
        # Not the model that was certified: say nothing about what the file holds.
        verdict.checks.append(Check("source", False, f"{source} sha256 differs: the source was edited"))
        return verdict
    try:
        program = loads(data.decode("utf-8"), filename=str(source))
    except (UnicodeDecodeError, PhgError):
        verdict.checks.append(Check("source", False, f"{source} has the recorded sha256 but is not a model this "
                                                     "phg reads (phg check it to see why)"))
        return verdict
    verdict.checks.append(Check("source", True, f"{source} sha256 matches"))

    cert = certify(program)
    derived = json.loads(json.dumps(cert.to_dict(doc["source"]["path"])))
    recorded = {k: v for k, v in doc.items() if k != "signature"}
    for section in SECTIONS:
        diff = _section_difference(section, recorded, derived)
        verdict.checks.append(Check(section, diff is None, diff or _agreement(section, derived)))
    first = _difference(recorded, derived, "")
    verdict.first_difference = first and _describe(*first)
    verdict.proven = derived["ok"] and recorded["ok"] is True
    verdict.counts = {s: sum(1 for o in derived["obligations"] if o["status"] == s)
                      for s in ("proven", "refuted", "unknown")}
    return verdict


def _named_key(doc: dict) -> bytes | None:
    """The public key the signature block names, whether or not the signature matches: a trusted
    signer's certificate edited since is re-derived, to say which field was edited."""
    try:
        return bytes.fromhex(doc["signature"]["public_key"])
    except ValueError:
        return None


def _section_difference(section: str, recorded: dict, derived: dict) -> str | None:
    """The first difference within one section of the document, in words; None if it agrees."""
    def part(doc: dict) -> dict:
        if section == "document":
            return {k: v for k, v in doc.items() if k not in ("obligations", "values", "memory")}
        if section in ("obligations", "queries"):
            obligations = doc.get("obligations", [])
            keep = (lambda o: {"smt2": o.get("smt2")}) if section == "queries" else \
                (lambda o: {k: v for k, v in o.items() if k != "smt2"})
            return {"obligations": [keep(o) for o in obligations] if isinstance(obligations, list) else obligations}
        return {section: doc.get(section)}
    found = _difference(part(recorded), part(derived), "")
    return found and _describe(*found)


def _agreement(section: str, derived: dict) -> str:
    n = len(derived["obligations"])
    return {"document": "format, source, tool versions, scope and ok re-derived",
            "obligations": f"{n} obligations re-derived: ids, claims, statuses, evidence",
            "queries": f"{sum(1 for o in derived['obligations'] if o['smt2'])} SMT-LIB2 queries are the ones the "
                       "source gives (compared as text, not run)",
            "values": f"{len(derived['values'])} values re-derived: blades, grades, units, versor flags, shapes",
            "memory": "the memory plan re-derived" if derived["memory"] is not None else "no memory plan (no loss)",
            }[section]


_MISSING = object()


def _difference(recorded, derived, path: str):
    """(JSON path, recorded, re-derived) of the first place the two differ, or None."""
    if type(recorded) is not type(derived):
        return path, recorded, derived
    if isinstance(derived, dict):
        for key, value in derived.items():
            where = document.join(path, key)
            found = _difference(recorded[key], value, where) if key in recorded else (where, _MISSING, value)
            if found:
                return found
        extra = next((k for k in recorded if k not in derived), None)
        return None if extra is None else (document.join(path, extra), recorded[extra], _MISSING)
    if isinstance(derived, list):
        if len(recorded) != len(derived) and not any(isinstance(v, (dict, list)) for v in recorded + derived):
            return path, recorded, derived          # a list of names or numbers reads best whole
        for i, (a, b) in enumerate(zip(recorded, derived)):
            found = _difference(a, b, f"{path}[{i}]")
            if found:
                return found
        if len(recorded) != len(derived):
            i = min(len(recorded), len(derived))
            return (f"{path}[{i}]", recorded[i] if i < len(recorded) else _MISSING,
                    derived[i] if i < len(derived) else _MISSING)
        return None
    return None if recorded == derived else (path, recorded, derived)


def _describe(path: str, recorded, derived) -> str:
    return f"{path or 'the document'}: recorded {_shown(recorded)}, re-derived {_shown(derived)}"


def _shown(value) -> str:
    if value is _MISSING:
        return "nothing"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
