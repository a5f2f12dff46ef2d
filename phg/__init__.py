"""phg: a geometric-algebra compiler and static verifier.

    import phg
    program = phg.load("model.phg")      # parse and lower to the Program Hypergraph
    cert = phg.check(program)            # prove its obligations
    kernels = phg.build(program)         # generate, compile and import the Numba kernels
"""
from __future__ import annotations

from pathlib import Path

from .diagnostics import PhgError, Span
from .layouts import axes
from .prior import Prior
from .program import Program
from .version import __version__

__all__ = ["load", "loads", "check", "build", "axes", "Program", "Prior", "PhgError", "Span", "__version__"]


def loads(text: str, filename: str = "<text>") -> Program:
    """Parse and lower model text; raises PhgError, located in `filename`, when it is malformed."""
    from phg.dsl import loads as lowered
    return lowered(text, filename)


def load(path: str | Path) -> Program:
    """Read a .phg file (UTF-8) and lower it; unreadable files raise PhgError too."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PhgError("io", f"cannot read {path}: {exc.strerror or exc}", Span(path, 1, 1),
                       expected="a readable .phg file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start]
        line = before.count(b"\n") + 1
        col = len(before) - (before.rfind(b"\n") + 1) + 1
        raise PhgError("io", f"byte 0x{data[exc.start]:02x} is not valid UTF-8", Span(path, line, col),
                       expected="a UTF-8 text file") from None
    return loads(text, filename=path)


def check(program: Program):
    """Discharge every obligation of a loaded program; returns a Certificate (`.ok`,
    `.obligations`, `.to_dict()`, `.write(path)` signs and writes it).  Narrowed blade supports
    are written back into the program's hypergraphs."""
    from phg.verifier.certificate import certify
    return certify(program)


def build(program: Program, directory: str | Path | None = None, unverified: bool = False, progress=False):
    """Check the program, write `<stem>.py` (Numba kernels, one class per model) and its
    certificate into `directory` (default: a per-user cache keyed by the source's sha256), and
    import it.  An unproven program is refused (PhgError) unless `unverified`.  When `directory`,
    or the per-user cache, already holds the module phg itself wrote for this very source (every
    byte as this user's phg wrote it; same sha256), it is imported (copied first, with its
    certificate, into `directory`) as it is: no checking, no code generation.  A module built into
    a folder of the user's is kept in the per-user cache too, so every later build of the source
    finds it.  Numba loads compiled kernels from its cache whenever their text is one it compiled
    before, whatever the source around them: an edit of a comment, or of the train block's rate,
    steps, batch, seed or optimizer, compiles nothing.  Any other file there is regenerated, never run; outputs replace a
    symbolic link rather than write through it.

    Numba compiles a kernel on its first call unless `progress` is given: True compiles every
    kernel now, printing `compiling MODEL: KERNEL ... 0.8 s` lines to stderr; a callable
    progress(model, kernel, seconds) is called as each kernel starts (seconds None) and once it
    is compiled (`lambda *_: None` compiles quietly).  Compiled kernels are cached by Numba, so a
    later process loads them rather than compiling again."""
    from phg.codegen import caches
    from phg.codegen.build import cached, copy_built, import_module, stem, write_module

    if not (progress is True or progress is False or progress is None or callable(progress)):
        raise TypeError("progress must be True, False or callable as progress(model, kernel, seconds), "
                        f"got {type(progress).__name__}")

    def ready(module):
        from phg.codegen import derived
        from phg.codegen.compiling import compile_module, printer, to_stderr

        derived.BUILD = build                     # derived models (distill, vjp) are built as this builds

        if progress is True:
            compile_module(module, printer(to_stderr))
        elif progress:
            compile_module(module, progress)
        return module

    shared = caches.cache_dir() / program.sha256[:16]             # one build of a source serves every folder
    target = Path(directory) if directory is not None else shared
    usable = lambda hit: hit is not None and (hit[1] == "all proven" or unverified)  # noqa: E731
    hit = cached(program, target)
    if usable(hit):
        return ready(import_module(hit[0], program.sha256))      # the same source was built here before
    hit = cached(program, shared) if target != shared else None
    copied = copy_built(program, hit[0], target) if usable(hit) else None
    if copied is not None:
        return ready(import_module(copied, program.sha256))      # built before elsewhere: its copy here
    from phg.verifier.certificate import certify            # (the verifier's imports cost a cache hit time)
    from phg.dsl.lower import refuse_ungenerated

    for graph in program.models.values():
        refuse_ungenerated(graph, program.source, "phg build generates every model's kernels")

    cert = certify(program)
    if not cert.ok and not unverified:
        bad = [o for o in cert.obligations if o.status != "proven"]
        first = bad[0]
        raise PhgError("build", f"{len(bad)} obligation{'s' * (len(bad) > 1)} not proven, so no kernels were "
                       f"built; the first: {first.claim} ({first.status})",
                       Span(program.path, first.span.line, first.span.col, first.span.end_line, first.span.end_col),
                       expected="a program whose every obligation is proven",
                       hint="fix the claims `phg check` reports, or build with unverified=True (--unverified)",
                       source=program.source)
    status = "all proven" if cert.ok else "NOT all proven (built with --unverified)"
    path = write_module(program, target, status)
    cert.write(target / f"{stem(program)}.cert.json")
    if target != shared:
        copy_built(program, path, shared)
    return ready(import_module(path, program.sha256))
