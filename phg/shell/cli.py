"""The `phg` command (LANGUAGE §7)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from phg import deep, load, sources
from phg import support as sup
from phg.diagnostics import Note, PhgError, Span
from phg.program import Program
from phg.terminal import printable, printable_lines
from phg.version import __version__

from .console import cached_kernels, compile_progress, text as _text

EXIT_OK, EXIT_FAILED, EXIT_INPUT = 0, 1, 2
EXIT_INTERNAL = 3             # a bug in phg itself
WIDE = 100_000                  # columns of output that is not a terminal


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="phg", description="Geometric-algebra compiler and static verifier.")
    ap.add_argument("--version", action="version", version=f"phg {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser("check", help="prove every obligation and write FILE.cert.json")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.add_argument("--json", action="store_true", help="print the certificate instead of the tables")
    check.add_argument("-o", dest="output", metavar="CERT", help="where to write the certificate (one FILE only)")
    build = sub.add_parser("build", help="check, then write DIR/<stem>.py (Numba kernels) beside its certificate")
    build.add_argument("file", metavar="FILE")
    build.add_argument("-o", dest="output", metavar="DIR", help="where to write (default: beside FILE)")
    build.add_argument("--unverified", action="store_true", help="build even if some obligation is not proven")
    train = sub.add_parser("train", help="run a model's train block on arrays named after its inputs")
    train.add_argument("file", metavar="FILE")
    train.add_argument("--data", required=True, metavar="DATA.npz", help="arrays [N, ...] named after the inputs")
    train.add_argument("-o", dest="output", metavar="PARAMS.npz", help="where to save the parameters "
                       "(default: FILE's stem + .params.npz, beside FILE)")
    train.add_argument("--model", help="which model to train, when the file trains several")
    train.add_argument("--steps", type=int, help="override the train block's steps (a positive integer, at most 10^8)")
    train.add_argument("--plot", metavar="LOSS.png", help="draw the loss curve (needs matplotlib: pip install matplotlib)")
    train.add_argument("--unverified", action="store_true", help="train even if some obligation is not proven")
    train.add_argument("--prior", metavar="PRIOR.json", help="train MAP with this prior (LANGUAGE §13; M.distill "
                       "makes one, Prior.save writes it)")
    train.add_argument("--lr", type=float, help="the learning rate, overriding the train block's (no recompiling)")
    train.add_argument("--batch", type=int, help="override the train block's batch (a positive integer)")
    train.add_argument("--seed", type=int, help="the seed of the initial values and of the samples' order, "
                       "overriding the train block's")
    train.add_argument("--schedule", metavar="SCHEDULE", help="lr over the steps: constant (default), cosine, or "
                       "step:EVERY:FACTOR (lr times FACTOR every EVERY steps)")
    train.add_argument("--validation", "--val", dest="val", metavar="VAL.npz", help="a validation set (arrays named "
                       "after the inputs): its loss once an epoch, on the summary")
    train.add_argument("--patience", type=int, metavar="N", help="with --validation: stop after N validations without a "
                       "new lowest and keep the lowest's parameters (early stopping)")
    train.add_argument("--resume", metavar="PARAMS.npz", help="continue a run phg train saved: its parameters, "
                       "and the optimizer state and the samples' order saved beside them (PARAMS.state.npz)")
    train.add_argument("--force", action="store_true", help="overwrite the parameters file if it exists")
    train.add_argument("--scheduler", metavar="ADDRESS", help="train data-parallel on this Dask cluster (e.g. "
                       "tcp://10.0.0.5:8786; LANGUAGE §15), bit for bit as in one process with accumulate exact "
                       "(needs dask.distributed: pip install 'dask[distributed]')")
    verify = sub.add_parser("verify", help="re-derive a certificate from its source; its signer must be trusted")
    verify.add_argument("cert", metavar="CERT")
    verify.add_argument("--trust", action="append", metavar="KEY",
                        help="trust only this public key (64 hex digits or a PEM file); repeatable "
                             "(default: the trusted-keys file and your own key)")
    keys = sub.add_parser("keys", help="list, add or remove the keys phg verify trusts")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys_sub.add_parser("list", help="the trusted keys, and your own")
    add = keys_sub.add_parser("add", help="trust a public key (64 hex digits or a PEM file)")
    add.add_argument("key", metavar="KEY")
    add.add_argument("--name", help="who the key belongs to, shown by phg verify")
    remove = keys_sub.add_parser("remove", help="stop trusting a key (its hex digits, key id or PEM file)")
    remove.add_argument("key", metavar="KEY_OR_ID")
    keys_sub.add_parser("own", help="print your own public key, for others to trust")
    rel = sub.add_parser("release", help="write a signed version record of a model's parameters (LANGUAGE §14)")
    rel.add_argument("file", metavar="FILE")
    rel.add_argument("--params", required=True, metavar="P.npz", help="the parameters released (phg train writes them)")
    rel.add_argument("--previous", metavar="PREV.json", help="the record this one follows (default: version 1)")
    rel.add_argument("-o", dest="output", metavar="RECORD.json",
                     help="where to write (default: FILE's stem + .vN.release.json, beside FILE)")
    rel.add_argument("--model", help="which model, when the file has several")
    rel.add_argument("--data", metavar="DATA.npz", help="the training data, for the lineage (its sha256)")
    rel.add_argument("--steps", type=int, help="training steps, for the lineage")
    rel.add_argument("--seed", type=int, help="training seed, for the lineage")
    rel.add_argument("--prior", metavar="PRIOR.json", help="the prior the parameters were trained with, for the "
                     "lineage (its sha256, coordinates, scale, and what the verifier proves of its penalty)")
    rel.add_argument("--days", type=float, help="days until the record expires (default 90)")
    rel.add_argument("--trust", action="append", metavar="KEY", help="keys trusted to have signed --previous")
    serve = sub.add_parser("serve", help="serve a released model over HTTP; rotate in new versions (LANGUAGE §14)")
    serve.add_argument("file", metavar="FILE")
    serve.add_argument("--release", required=True, metavar="RECORD.json")
    serve.add_argument("--params", required=True, metavar="P.npz")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--state", metavar="DIR", help="where the last activated version is kept across restarts")
    serve.add_argument("--trust", action="append", metavar="KEY", help="trust only these keys to sign records")
    serve.add_argument("--max-body", type=int, default=64 * 2**20, metavar="BYTES",
                       help="the largest request body read (default 64 MiB)")
    serve.add_argument("--learn", action="store_true",
                       help="train on samples posted to /observe and rotate in each version that improves")
    serve.add_argument("--window", type=int, default=4096, help="--learn: the most recent samples kept (4096)")
    serve.add_argument("--learn-steps", type=int, default=100, help="--learn: steps a round (100)")
    serve.add_argument("--learn-every", type=float, default=1.0, metavar="SECONDS",
                       help="--learn: seconds between rounds (1); a round needs 256 new samples")
    graph = sub.add_parser("graph", help="print the Program Hypergraph")
    graph.add_argument("file", metavar="FILE")
    graph.add_argument("--format", choices=("dot", "json"), default="dot")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out, err = _console(sys.stdout), _console(sys.stderr)

    def command() -> int:
        if args.command == "check":
            return _check(args, out, err)
        if args.command == "verify":
            from .serving import is_record, verify_record
            if is_record(args.cert):
                return verify_record(args.cert, args.trust, out, err)
            return _verify(args.cert, args.trust, out, err)
        if args.command in ("release", "serve"):
            from . import serving
            return getattr(serving, args.command)(args, out, err)
        if args.command == "keys":
            return _keys(args, out, err)
        if args.command == "build":
            return _build(args, out, err)
        if args.command == "train":
            from .train import train_command
            return train_command(args, out, err)
        program = _load(args.file)
        sys.stdout.write(program.to_json() + "\n" if args.format == "json" else program.to_dot())
        return EXIT_OK

    try:
        # On a stack deep enough for the largest model the parser and lowering accept; a server
        # (phg serve) comes back as what runs it, on this thread (signals reach the main thread only).
        result = deep.call(command)
        return result() if callable(result) else result
    except PhgError as exc:
        err.print(Text(_rendered(exc)))
        return EXIT_INPUT
    except Exception as exc:        # a bug in phg, not in the input: said so, with where it happened
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        err.print(_text(f"phg: internal error: {type(exc).__name__}: {exc} (at {Path(frame.filename).name}:"
                       f"{frame.lineno}); please report it with the file that caused it"))
        return EXIT_INTERNAL


def _rendered(exc: PhgError) -> str:
    """A located error as printed: the file it names is one line with its control characters
    escaped (a file name may hold a line break), then every line made printable."""
    def safe(span):
        return span and dataclasses.replace(span, file=printable(span.file))
    shown = dataclasses.replace(exc, span=safe(exc.span), notes=[Note(safe(n.span), n.message) for n in exc.notes])
    return printable_lines(shown.render())


def _console(stream) -> Console:
    """Rich draws for an 80-column terminal when it cannot ask one; a pipe or a file has no width,
    so there a table is as wide as its cells (COLUMNS, where set, still decides)."""
    wide = stream.isatty() or os.environ.get("COLUMNS")
    return Console(file=stream, highlight=False, soft_wrap=True, width=None if wide else WIDE)


def _load(path: str, recorded: bool = False) -> Program:
    """The program in the file at `path`, once it is known to be a source phg reads (a FIFO or a
    device would block or never end); `recorded`: its path goes into a certificate, which is
    UTF-8 text, so a file name that is not UTF-8 is refused before any work is done."""
    where = Span(path, 1, 1)
    if recorded:
        at = next((i for i, c in enumerate(path) if 0xdc80 <= ord(c) <= 0xdcff), None)
        if at is not None:
            raise PhgError("io", f"the file name has the byte 0x{ord(path[at]) - 0xdc00:02x} at character {at + 1}, "
                           "which is not UTF-8, and the certificate records the name", where,
                           expected="a file name in UTF-8", hint="rename the file")
    try:
        sources.check_file(path)
    except FileNotFoundError:
        pass                                    # load says so, as for any other unreadable file
    except OSError as exc:
        raise PhgError("io", f"cannot read {path}: {exc.strerror or exc}", where,
                       expected=f"a regular .phg file of at most {sources.MAX_SOURCE_BYTES // 2**20} MiB") from None
    return load(path)


def _check(args, out: Console, err: Console) -> int:
    from phg.verifier.certificate import certify
    from phg.verifier.signing import SigningKeyError

    if args.output and len(args.files) > 1:
        err.print(_text("phg check: -o names one certificate, so give one FILE"))
        return EXIT_INPUT
    status = EXIT_OK
    for path in args.files:
        program = _load(path, recorded=True)
        cert = certify(program)
        target = Path(args.output) if args.output else Path(path + ".cert.json") if not path.endswith(".phg") \
            else Path(path).with_suffix(".phg.cert.json")
        try:
            document = cert.write(target)
        except (SigningKeyError, OSError) as exc:
            err.print(_text(f"phg check: cannot write the certificate {target}: {exc}"))
            return EXIT_INPUT
        if args.json:
            out.print_json(json.dumps(document), ensure_ascii=True)
        else:
            _print_certificate(out, err, program, cert, target)
        if not cert.ok:
            status = EXIT_FAILED
    return status


def _build(args, out: Console, err: Console) -> int:
    import time

    from phg import build

    program = _load(args.file, recorded=True)
    directory = Path(args.output) if args.output else Path(args.file).resolve().parent
    if directory.exists() and not directory.is_dir():
        err.print(Text(f"phg build: -o {args.output} is a file; expected a folder to write the module and its "
                       "certificate into (made if missing)"))
        return EXIT_INPUT
    compiling = compile_progress(err)
    start = time.perf_counter()
    try:
        module = build(program, directory, unverified=args.unverified, progress=compiling)
    except PhgError as exc:
        if exc.kind != "build":
            raise
        err.print(Text(_rendered(exc)))
        return EXIT_FAILED
    seconds = time.perf_counter() - start
    built = "; ".join(f"{what} {', '.join(names)}" for what, names in (("models", program.models),
                                                                        ("networks", program.networks)) if names)
    out.print(_text(f"wrote {module.__file__} ({module.CERTIFICATE}; {built}) in "
                   f"{seconds - compiling.seconds:.1f} s; kernels compiled in {compiling.seconds:.1f} s "
                   f"({cached_kernels(compiling)})"))
    return EXIT_OK if module.CERTIFICATE == "all proven" else EXIT_FAILED


def _print_certificate(out: Console, err: Console, program: Program, cert, target: Path):
    _print_values(out, program)
    order = {"refuted": 0, "unknown": 1, "proven": 2}
    obligations = sorted(cert.obligations, key=lambda o: order[o.status])
    for o in obligations:
        if o.status != "proven":
            err.print(Text(_diagnostic(program, o)))
    table = Table(title=_text(f"{program.path}: obligations"), title_justify="left")
    for col in ("status", "kind", "claim", "where"):
        table.add_column(col)
    colours = {"proven": "green", "refuted": "bold red", "unknown": "yellow"}
    for o in obligations:
        table.add_row(_text(o.status, style=colours[o.status]), _text(o.kind), _text(o.claim),
                      _text(f"{o.span.line}:{o.span.col}"))
    out.print(table)
    counts = {s: sum(1 for o in cert.obligations if o.status == s) for s in order}
    verdict = "all proven" if cert.ok else "NOT all proven"
    out.print(_text(f"{verdict}: {counts['proven']} proven, {counts['refuted']} refuted, {counts['unknown']} unknown; "
                   f"certificate written to {target}"))


def _diagnostic(program: Program, o) -> str:
    ev = o.evidence
    notes = []
    message = o.claim
    if "counterexample" in ev:
        cex = ev["counterexample"]
        if "blade" in cex:
            where = f" in channel {cex['channel']}" if cex["channel"] else ""
            found = _grades(program, o.model, ev.get("support", []))
            part = "its scalar part (blade 1)" if cex["blade"] == "1" else f"its {cex['blade']} part"
            message += (f": found grades {found}; " if found else ": ") + \
                f"{part} is {cex['coefficient']}{where} at the counterexample"
        else:
            message += f": {cex['failure']}"
        notes.append("counterexample ({}): {}".format("exact" if cex["exact"] else "50 digits",
                     "; ".join(f"{k} = {_mv_text(v)}" for k, v in cex["inputs"].items())))
    elif "reason" in ev:
        notes.append(ev["reason"])
    elif o.status == "unknown" and ev.get("solver"):
        notes.append(ev["solver"])
    located = [Note(Span(program.path, n["line"], n["col"], n.get("end_line"), n.get("end_col")), n["note"])
               for n in ev.get("spans", [])]
    expected = "blades " + ", ".join(ev["claimed"]) if "claimed" in ev else ev.get("expected")
    err = PhgError(o.status, message, Span(program.path, o.span.line, o.span.col, o.span.end_line, o.span.end_col),
                   expected=expected, hint="; ".join(notes) if notes else None, notes=located,
                   source=program.source)
    return _rendered(err)


def _grades(program: Program, model: str, blades: list[str]) -> str:
    """The grades of a value's blades (by name), as "0, 2"; "" where they cannot be read."""
    graph = program.models.get(model)
    if graph is None:
        return ""
    algebra = graph.algebra
    grades = set()
    for name in blades:
        if name == "1":
            grades.add(0)
            continue
        parsed = algebra.parse_blade(name)
        if parsed is None:
            return ""
        grades.add(bin(parsed[1]).count("1"))
    return ", ".join(str(g) for g in sorted(grades))


SHOWN_CHANNELS = 8                  # of a counterexample's input, in a message; the certificate has all


def _mv_text(value: dict) -> str:
    if value and all(isinstance(v, dict) for v in value.values()):
        shown = [f"{ch}: {_mv_text(m)}" for ch, m in list(value.items())[:SHOWN_CHANNELS]]
        if len(value) > SHOWN_CHANNELS:
            shown.append(f"... {len(value) - SHOWN_CHANNELS:,} channels more, in the certificate")
        return "[" + ", ".join(shown) + "]"
    text = ""
    for b, c in value.items():
        term = c if b == "1" else f"{c}*{b}"
        text += term if not text else (f" - {term[1:]}" if term.startswith("-") else f" + {term}")
    return text or "0"


def _verify(cert: str, trusted: list[str] | None, out: Console, err: Console) -> int:
    from phg.verifier.certificate import verify
    from phg.verifier.document import DocumentError
    from phg.verifier.trust import TrustError

    try:
        verdict = verify(cert, trusted)
    except (DocumentError, TrustError) as exc:
        err.print(_text(f"phg verify: {exc}"))
        return EXIT_INPUT
    table = Table(title=_text(f"phg verify {cert}"), title_justify="left")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in verdict.checks:
        table.add_row(_text(c.name), _text("ok" if c.ok else "FAILED", style="green" if c.ok else "bold red"),
                      _text(c.detail))
    out.print(table)
    failed = [c.name for c in verdict.checks if not c.ok]
    if failed:
        first = f"; first difference: {verdict.first_difference}" if verdict.first_difference else ""
        out.print(_text(f"invalid: {', '.join(failed)} failed{first}"))
        return EXIT_FAILED
    counts = ", ".join(f"{n} {s}" for s, n in verdict.counts.items())
    signer = f"signed by {verdict.signer.describe()}"
    if not verdict.proven:
        out.print(_text(f"authentic, NOT all proven: {counts}; {signer}"))
        return EXIT_FAILED
    out.print(_text(f"valid: all proven ({counts}), every field re-derived from the source; {signer}"))
    return EXIT_OK


def _keys(args, out: Console, err: Console) -> int:
    from phg.verifier import signing, trust

    try:
        if args.keys_command == "add":
            key = trust.add(args.key, args.name)
            out.print(_text(f"trusting {key.describe()}: {key.public.hex()}"))
        elif args.keys_command == "remove":
            key = trust.remove(args.key)
            out.print(_text(f"no longer trusting key {key.key_id}{f' ({key.name})' if key.name else ''}"))
        elif args.keys_command == "own":
            own = signing.load_key()            # made now if there is none, so it can be handed out
            out.print(_text(f"{signing.public_hex(own)}  key {signing.key_id(signing.raw_public(own))}"))
        else:
            listed = trust.read_file()
            own = trust.own_key()
            for k in listed:
                out.print(_text(f"{k.public.hex()}  key {k.key_id}{f'  {k.name}' if k.name else ''}"))
            if own is not None and all(k.public != own.public for k in listed):
                out.print(_text(f"{own.public.hex()}  key {own.key_id}  (your own signing key, trusted by default)"))
            if not listed and own is None:
                out.print(_text(f"no trusted keys ({trust.trusted_keys_path()} does not list any, and you have no "
                               "signing key yet)"))
    except (trust.TrustError, signing.SigningKeyError, OSError) as exc:
        err.print(_text(f"phg keys {args.keys_command}: {exc}"))
        return EXIT_INPUT
    return EXIT_OK


def _print_values(console: Console, program: Program):
    for model in program.models.values():
        alg = model.algebra
        table = Table(title=_text(f"{program.path}: model {model.name} on {alg.describe()}"), title_justify="left")
        for col in ("value", "role", "blades", "grades", "unit", "shape", "declared", "versor"):
            table.add_column(col)
        free = []
        for v in model.values.values():
            if v.role == "temp" or (v.role == "const" and v.name is None):
                continue
            blades = ", ".join(alg.blade_name(b) for b in alg.blades if v.support >> b & 1) or "0"
            if v.unit is None:
                free.append(v.name)
            cells = (v.name, v.role, blades, ", ".join(map(str, sup.grades_of(v.support))) or "-", _unit_cell(v),
                     f"[{', '.join(map(str, v.shape))}]" if v.shape else "-",
                     v.declared.describe() if v.declared else "", "yes" if v.versor else "")
            table.add_row(*(_text(c) for c in cells))  # Text: no rich markup in [m] or [4]
        console.print(table)
        if free:
            console.print(_text(f"note: the model does not determine the unit of {', '.join(free)}; "
                               "write it in the type to have it checked, e.g. Vector[m]"))
    if not program.models:
        console.print(_text(f"{program.path}: no models"))


def _unit_cell(v) -> str:
    if v.unit is None:
        return "free"
    written = v.declared is not None and v.declared.unit is not None or v.role == "const"
    return str(v.unit) if written else f"{v.unit} (inferred)"


if __name__ == "__main__":
    sys.exit(main())
