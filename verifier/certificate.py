"""The certificate (LANGUAGE §9): what was proven about a source file, and how to re-check it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import z3

from phg import __version__
from phg import support as sup
from phg.program import Program

from . import signing
from .check import Obligation, check_program
from .memory import plan

FORMAT = "phg-certificate/1"
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
                if v.unit is not None and any(not alg.blade_unit(b).dimensionless for b in blades):
                    # LANGUAGE §4: the coefficient of blade b is in unit(value) / unit(b)
                    out[key]["coefficient_units"] = {alg.blade_name(b): str(v.unit / alg.blade_unit(b)) for b in blades}
        return out

    def to_dict(self) -> dict:
        return {"format": FORMAT,
                "source": {"path": self.program.path, "sha256": self.program.sha256},
                "tool": {"phg": __version__, "z3": z3.get_version_string()},
                "ok": self.ok,
                "scope": SCOPE,
                "obligations": [o.to_dict() for o in self.obligations],
                "values": self.values(),
                "memory": self.memory()}

    def memory(self) -> dict | None:
        """The static memory plan of every model with a loss (flat when there is one)."""
        plans = {m.name: plan(m, self.program.trains.get(m.name)).to_dict()
                 for m in self.program.models.values() if m.loss is not None}
        if not plans:
            return None
        return next(iter(plans.values())) if len(plans) == 1 else plans

    def signed(self) -> dict:
        return signing.sign(self.to_dict())

    def write(self, path: str | Path) -> dict:
        document = self.signed()
        Path(path).write_text(json.dumps(document, indent=2) + "\n")
        return document


def certify(program: Program) -> Certificate:
    return Certificate(program, check_program(program))


# ---- phg verify -------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _source_path(cert_path: Path, recorded: str) -> Path:
    p = Path(recorded)
    if p.is_absolute() or p.exists():
        return p
    beside = cert_path.parent / p.name
    return beside if beside.exists() else p


def verify(cert_path: str | Path) -> list[Check]:
    """Every check `phg verify` makes; the certificate is valid when all pass."""
    import phg

    cert_path = Path(cert_path)
    try:
        doc = json.loads(cert_path.read_text())
    except (OSError, ValueError) as exc:
        return [Check("readable", False, f"cannot read {cert_path}: {exc}")]
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return [Check("format", False, f"not a {FORMAT} document")]
    checks = [Check("format", True, FORMAT)]
    ok, detail = signing.check_signature(doc)
    checks.append(Check("signature", ok, detail))
    source = _source_path(cert_path, doc.get("source", {}).get("path", ""))
    try:
        data = source.read_bytes()
    except OSError as exc:
        checks.append(Check("source", False, f"cannot read the source {source}: {exc.strerror}"))
        return checks
    digest = hashlib.sha256(data).hexdigest()
    same = digest == doc.get("source", {}).get("sha256")
    checks.append(Check("source", same, f"{source} sha256 {'matches' if same else 'differs: the source was edited'}"))
    checks.append(_requery(doc.get("obligations", [])))
    if same:
        checks.append(_recheck(phg.loads(data.decode("utf-8"), filename=str(source)), doc))
    return checks


def _requery(obligations: list) -> Check:
    """Run every recorded SMT-LIB2 query again.  A support query proves by unsat and refutes by sat;
    a unit obligation records the answer its status rests on (evidence "z3")."""
    bad = []
    for o in obligations:
        if not o.get("smt2"):
            continue
        s = z3.Solver()
        s.set("rlimit", 4 * 5_000_000)
        try:
            s.from_string(o["smt2"])
            result = s.check()
        except z3.Z3Exception as exc:
            bad.append(f"{o.get('id')}: the query does not parse ({exc})")
            continue
        recorded = (o.get("evidence") or {}).get("z3") if o.get("kind") == "unit" else None
        want = {"sat": z3.sat, "unsat": z3.unsat}[recorded] if recorded in ("sat", "unsat") else \
            {"proven": z3.unsat, "refuted": z3.sat}.get(o.get("status"))
        if want is not None and result != want:
            bad.append(f"{o.get('id')}: status {o.get('status')} but z3 answers {result}")
    n = sum(1 for o in obligations if o.get("smt2"))
    return Check("queries", not bad, "; ".join(bad) if bad else f"{n} recorded queries give the recorded answers")


def _recheck(program: Program, doc: dict) -> Check:
    """Check the source again: the same obligations with the same statuses."""
    fresh = {o.id: o.status for o in certify(program).obligations}
    recorded = {o.get("id"): o.get("status") for o in doc.get("obligations", [])}
    diffs = [f"{oid}: recorded {recorded.get(oid)}, found {fresh.get(oid)}"
             for oid in sorted(set(fresh) | set(recorded)) if fresh.get(oid) != recorded.get(oid)]
    if doc.get("ok") != all(s == "proven" for s in fresh.values()):
        diffs.append("the ok flag does not match the obligations")
    return Check("obligations", not diffs, "; ".join(diffs[:5]) if diffs else f"{len(fresh)} obligations re-derived")
