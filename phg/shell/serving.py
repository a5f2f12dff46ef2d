"""`phg release`, `phg verify RECORD` and `phg serve` (LANGUAGE §14)."""
from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from phg.shell import records as R
from phg.diagnostics import PhgError

from .console import text as _text

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2


def _fail(err: Console, message: str, code: int = EXIT_INPUT) -> int:
    err.print(_text(message))
    return code


def is_record(path: str) -> bool:
    """Whether the JSON file at `path` says it is a release record (else it is read as a certificate)."""
    try:
        with open(path, "rb") as f:
            head = f.read(R.MAX_RECORD_BYTES + 1)
        return len(head) <= R.MAX_RECORD_BYTES and json.loads(head).get("format") == R.FORMAT
    except (OSError, ValueError, AttributeError, RecursionError):
        return False


def _model_name(program, requested: str | None) -> str:
    names = list(program.models)
    if requested is not None:
        if requested not in program.models:
            raise ValueError(f"{program.path} has no model {requested!r}; it has {', '.join(names)}")
        return requested
    if len(names) != 1:
        raise ValueError(f"{program.path} has {len(names)} models ({', '.join(names)}); name one with --model")
    return names[0]


def _params(path: str, cls) -> dict[str, np.ndarray]:
    """The parameters in the archive at `path`, checked as a model checks an assignment."""
    from phg.npz import ArchiveError, read_arrays
    names = list(cls.SPEC["params"])
    try:
        arrays, held = read_arrays(path, names)
    except (ArchiveError, OSError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{path} has no array {missing[0]!r} (model {cls.SPEC['name']} has parameters "
                         f"{', '.join(names)}); it has {', '.join(sorted(held)) or 'no arrays'}")
    model = cls(seed=0)
    try:
        model.params = arrays
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    # as the kernels hold them (a Scalar's with its component axis), the form release records
    # digest; the numbers as given (a model in a numeric format rounds its own copy)
    stored = model.params.arrays()
    return {k: np.asarray(v, dtype=np.float64).reshape(stored[k].shape) for k, v in arrays.items()}


def _built(program):
    """(certificate as a dict, kernels module, the module's sha256)."""
    import phg
    cert = phg.check(program)
    kernels = phg.build(program, unverified=True)
    return json.loads(json.dumps(cert.to_dict())), kernels, R.sha256(Path(kernels.__file__).read_bytes())


def release(args, out: Console, err: Console) -> int:
    import phg
    from phg.verifier import trust
    from phg.verifier.certificate import recorded_path

    try:
        program = phg.load(args.file)
    except PhgError as exc:
        err.print(Text(exc.render()))
        return EXIT_INPUT
    try:
        name = _model_name(program, args.model)
        previous = R.read(args.previous) if args.previous else None
        if args.days is not None and not (0 < args.days <= 3650):
            raise ValueError(f"--days: expected a number of days in (0, 3650], found {args.days}")
        for flag, value in (("--steps", args.steps), ("--seed", args.seed)):
            if value is not None and not 0 <= value <= 2**53:
                raise ValueError(f"{flag}: expected an integer from 0 to 2^53, found {value}")
    except (ValueError, R.RecordError) as exc:
        return _fail(err, f"phg release: {exc}")
    cert, kernels, module_sha = _built(program)
    if not cert["ok"]:
        return _fail(err, f"phg release: {args.file} has obligations not proven, and only a certified model is "
                          "released (phg check shows them)", EXIT_FAILED)
    cls = kernels.MODELS[name]
    try:
        params = _params(args.params, cls)
    except ValueError as exc:
        return _fail(err, f"phg release: {exc}")
    if previous is not None:
        try:
            R.check_signature(previous, trust.trusted(args.trust))
        except R.Refusal as exc:
            return _fail(err, f"phg release: the previous record {args.previous} is not trusted: {exc.detail}",
                         EXIT_FAILED)
        if previous["model"] != name:
            return _fail(err, f"phg release: the previous record {args.previous} is of model {previous['model']!r}, "
                              f"not {name!r}")
    lineage = {"steps": args.steps, "seed": args.seed}
    if args.data:
        try:
            lineage["data"] = R.sha256(Path(args.data).read_bytes())
        except OSError as exc:
            return _fail(err, f"phg release: cannot read --data {args.data}: {exc.strerror or exc}")
    if args.prior:
        try:
            lineage["prior"] = _prior_lineage(args.prior, program, name, cls)
        except ValueError as exc:
            return _fail(err, f"phg release: --prior {exc}")
        if any(o["status"] != "proven" for o in lineage["prior"]["obligations"]):
            return _fail(err, f"phg release: --prior {args.prior}: the penalty's obligations are not all proven",
                         EXIT_FAILED)
    version = 1 if previous is None else previous["version"] + 1
    target = Path(args.output) if args.output else Path(args.file).with_suffix("").with_name(
        f"{Path(args.file).stem}.v{version}.release.json")
    if not target.parent.is_dir():
        return _fail(err, f"phg release: cannot write {target}: the folder {target.parent} does not exist")
    record = R.make(model=name, source_sha256=program.sha256, cert=cert, params=params, module_sha256=module_sha,
                    previous=previous, lineage=lineage,
                    lifetime=timedelta(days=args.days) if args.days else R.DEFAULT_LIFETIME,
                    paths={"source": recorded_path(program.path, target),
                           "params": recorded_path(str(Path(args.params)), target)})
    from phg import files
    files.write_bytes(target, (json.dumps(record, indent=2) + "\n").encode())
    out.print(_text(f"released {name} version {version} to {target} (signed by key {record['signature']['key_id']}; "
                    f"expires {record['expires']})"))
    return EXIT_OK


def _prior_lineage(path: str, program, name: str, cls) -> dict:
    """What a release record keeps of the prior its parameters were trained with (LANGUAGE §13):
    the file's sha256, its coordinates and scale, and the penalty's obligations, those the
    verifier proves of the penalty program (phg.dsl.derive: each parameter's deviation from the
    prior's mean typed as its coordinates claim, log(~R0 R) a Bivector, and the units consistent).
    ValueError where the file is not a prior over this model."""
    import phg
    from phg.dsl.derive import penalty_source
    from phg.prior import Prior, PriorError

    try:
        raw = Path(path).read_bytes()
        prior = Prior.load(path)
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    except PriorError as exc:
        raise ValueError(str(exc)) from None
    coordinates = [tuple(c) for c in prior.coordinates]
    if prior.model != name or coordinates != cls(seed=0)._coordinates():
        raise ValueError(f"{path}: a prior over {prior.model!r}'s coordinates {coordinates}, not over {name}'s")
    text, deviations = penalty_source(program.source, name, str(program.path))
    cert = phg.check(phg.loads(text, f"{program.path} (the penalty of {name})"))
    obligations = [{"claim": o.claim, "status": o.status} for o in cert.obligations
                   if o.value_id in deviations.values() or o.kind == "unit"]
    return {"sha256": R.sha256(raw), "coordinates": [list(c) for c in coordinates], "scale": prior.scale,
            "obligations": obligations}


def verify_record(path: str, trusted: list[str] | None, out: Console, err: Console) -> int:
    """`phg verify RECORD`: the record's form, signer, expiry, and the source, certificate, module
    and parameters it names (paths relative to the record's folder) against their digests."""
    import phg
    from phg.verifier import trust
    from phg.verifier.certificate import source_of

    try:
        record = R.read(path)
        keys = trust.trusted(trusted)
    except (R.RecordError, trust.TrustError) as exc:
        return _fail(err, f"phg verify: {exc}")
    checks: list[tuple[str, bool, str]] = []

    def run(name, fn):
        try:
            checks.append((name, True, fn() or "ok"))
            return True
        except R.Refusal as exc:
            checks.append((exc.check, False, exc.detail))
            return False

    trusted_ok = run("signature", lambda: f"signed by {R.check_signature(record, keys)}")
    if trusted_ok:
        run("expired", lambda: R.check_expiry(record) or f"expires {record['expires']}")
        recorded = record["source"].get("path")
        source = source_of(Path(path), recorded) if isinstance(recorded, str) and "\0" not in recorded else None
        program = None
        if source is None:
            checks.append(("source", False, "the record names no source path to check"))
        else:
            try:
                program = phg.load(source)
            except PhgError as exc:
                checks.append(("source", False, f"{source} cannot be read as a model: {str(exc).splitlines()[0]}"))
        if program is not None:
            cert, kernels, module_sha = _built(program)
            if run("model", lambda: R.check_model(record, model=record["model"], source_sha256=program.sha256,
                                                  cert=cert, module_sha256=module_sha)
                   or f"{source} sha256, its certificate and generated module match"):
                params_path = record["params"].get("path")
                if isinstance(params_path, str) and "\0" not in params_path and record["model"] in kernels.MODELS:
                    where = source_of(Path(path), params_path)
                    try:
                        params = _params(str(where), kernels.MODELS[record["model"]])
                    except ValueError as exc:
                        checks.append(("params", False, str(exc)))
                    else:
                        run("params", lambda: R.check_params(record, params, kernels.MODELS[record["model"]].SPEC)
                            or f"{where} sha256 matches; finite, on their manifolds")
    table = Table(title=_text(f"phg verify {path}"), title_justify="left")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for name, ok, detail in checks:
        table.add_row(_text(name), _text("ok" if ok else "FAILED", style="green" if ok else "bold red"), _text(detail))
    out.print(table)
    failed = [c for c, ok, _ in checks if not ok]
    if failed:
        out.print(_text(f"invalid: {', '.join(failed)} failed"))
        return EXIT_FAILED
    out.print(_text(f"valid: {record['model']} version {record['version']}"))
    return EXIT_OK


def serve(args, out: Console, err: Console):
    """The server started and checked, returned as the function that runs it (or an exit status)."""
    from phg.shell import server as S
    from phg.verifier import trust

    try:
        keys = trust.trusted(args.trust)
        record = R.read(args.release)
    except (R.RecordError, trust.TrustError) as exc:
        return _fail(err, f"phg serve: {exc}")
    try:
        service = S.Service(Path(args.file), keys, Path(args.state) if args.state else None,
                            os.environ.get("PHG_ADMIN_TOKEN") or None, args.max_body)
    except PhgError as exc:
        err.print(Text(exc.render()))
        return EXIT_INPUT
    except OSError as exc:
        return _fail(err, f"phg serve: cannot read {args.file} or make --state {args.state}: {exc.strerror or exc}")
    cls = service.kernels.MODELS.get(record["model"])
    if cls is None:
        return _fail(err, f"phg serve: {args.release} is of model {record['model']!r}, which {args.file} does not have")
    for name, value, low in (("--window", args.window, 16), ("--learn-steps", args.learn_steps, 1)):
        if not low <= value <= 10**8:
            return _fail(err, f"phg serve: {name}: expected an integer from {low} to 10^8, found {value}")
    if not 0.01 <= args.learn_every <= 86400:
        return _fail(err, f"phg serve: --learn-every: expected seconds from 0.01 to 86400, found {args.learn_every}")
    try:
        params = _params(args.params, cls)
        said = service.start(record, params)
        if args.learn:
            service.learn(window=args.window, steps=args.learn_steps, every=args.learn_every)
    except (ValueError, S.ServeError) as exc:
        return _fail(err, f"phg serve: {exc}", EXIT_FAILED)
    for line in said:
        err.print(_text(f"phg serve: {line}"))

    def run() -> int:
        import uvicorn
        err.print(_text(f"phg serve: {record['model']} version {service.active.number} on "
                        f"http://{args.host}:{args.port}"))
        uvicorn.run(S.app(service), host=args.host, port=args.port, log_level="warning")
        return EXIT_OK
    return run
