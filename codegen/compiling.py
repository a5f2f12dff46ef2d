"""Compiling a generated module's kernels ahead of their first call.

Numba compiles a kernel when it is first called, for the types of that call: left lazy, the first
predict or step of a fresh build spends seconds (a minute for a large model) compiling, and a
training rate measured over it is wrong.  Here each kernel is compiled for exactly the argument
types the runtime (codegen.runtime) passes it, typed from arrays laid out as the runtime lays
them out (its own buffer plan, on a throwaway instance), so no kernel runs and no model the user
holds changes.  The kernels are cached (cache=True): a later process loads them from the cache.
"""
from __future__ import annotations

import functools
import itertools
import sys
import time
from collections.abc import Callable, Iterator

import numba
import numpy as np

# progress(model, kernel, seconds): seconds is None as a kernel starts, its compile time once done.
Progress = Callable[[str, str, "float | None"], None]


def _typed(*args) -> tuple:
    return tuple(numba.typeof(a) for a in args)


def _samples(spec: dict, names: list[str]) -> list[np.ndarray]:
    """One sample of each named input, as codegen.parameters.array hands it to a kernel."""
    return [np.zeros((1, *spec["inputs"][n]["shape"], len(spec["inputs"][n]["layout"]))) for n in names]


def kernels(cls) -> Iterator[tuple[str, object, tuple]]:
    """(label, dispatcher, argument types) of every kernel a model class calls, in the order of
    runtime.ModelBase's call sites (predict, the train pass's slots and sums and an exact pass's
    totals, then a step's manifold maps and optimizer)."""
    # Imported here, once a generated module has been imported: its import (codegen.build) decides
    # where Numba caches the shared kernels, in the user's own cache.
    from .accumulate import close, complete, end_round, mark_needed, next_block, odd_totals, open_pass, totals, unmark
    from .optimizers import KINDS, direction

    spec = cls.SPEC
    model = cls(seed=0)                        # (which compiles its parameters' versor checks: it runs them)
    params = model.params.arrays()
    plan = spec["predict"]
    outs = [np.empty((1, *spec["outputs"][o]["shape"], len(spec["outputs"][o]["layout"]))) for o in plan["outputs"]]
    tiles = [np.zeros((1, *shape)) for role, _, shape, _, _ in plan["buffers"] if role == "tiles"]
    yield "predict", cls._predict_kernel, _typed(*_samples(spec, plan["inputs"]), *(params[p] for p in plan["params"]),
                                                 *outs, *tiles, *([0] if tiles else []), 0, 1)
    train = spec.get("train")
    if train is None:
        return
    b = model._plan()
    data = (*_samples(spec, train["inputs"]), *(params[p] for p in train["params"]), 1, 1, b["acc"], b["grid"],
            b["deposits"], b["ranges"])
    yield "train", cls._slots_kernel, _typed(*data, b["tiles"], b["locks"], 0, 0, 1)
    if train["settings"]["accumulate"] == "exact":
        exact = (b["acc"], b["ranges"], b["deposits"], b["grid"])
        yield "exact totals", odd_totals if "numeric" in spec else totals, _typed(*exact, b["sums"], b["work"], 0, 1, False, 1, 0, 1)
        yield "exact rows cleared", close, _typed(*exact)
    if train["strategy"] == "loops" and train["settings"]["accumulate"] == "exact":
        row = (b["acc"][0], b["ranges"][0], b["deposits"][0], b["grid"][0])
        yield "exact pass opened", open_pass, _typed(*row)
        yield "exact round ended", end_round, _typed(*row, 0, 0, 0)
        yield "exact sums marked", mark_needed, _typed(b["ranges"])
        yield "exact blocks", next_block, _typed(b["ranges"], 0, 1)
        yield "exact sums unmarked", unmark, _typed(b["ranges"])
        yield "exact blocks done", complete, _typed(b["ranges"], 0, 1)
    yield "train sums", cls._train_kernel, _typed(*data, b["tiles"], b["locks"], b["work"], b["sums"], b["loss"],
                                                  *(b["grads"][p] for p in train["params"]))
    for name, (tangent_fn, retract_fn) in cls._manifold.items():
        r = params[name].reshape(-1, len(spec["params"][name]["layout"]))
        yield f"{name} tangent", tangent_fn, _typed(r, b["grads"][name].reshape(r.shape), b["tangent"][name])
        yield f"{name} retraction", retract_fn, _typed(r, b["tangent"][name], -1.0, r)
    if cls._population_kernel is not None:                 # cma's losses of a generation
        stacks = [np.zeros((2, *v.shape)) for v in (params[p] for p in train["params"])]
        workspace = (b["tiles"], 0) if train["strategy"] == "loops" else ()
        yield "population", cls._population_kernel, _typed(*_samples(spec, train["inputs"]), *stacks, 1,
                                                           np.zeros(2), *workspace, 0, 1)
    if train["settings"]["optimizer"] not in KINDS:       # cma: no gradient step (codegen.cma)
        return
    kind = KINDS[train["settings"]["optimizer"]]
    for name in spec["params"]:
        d = (b["tangent"][name] if name in train["manifold"] else b["grads"][name]).reshape(-1)     # in place
        yield f"{train['settings']['optimizer']} step", direction, \
            _typed(kind, d, b["state"][name], b["t"] + 1, *b["hyper"], d)


def _compiled(progress: Progress | None, model: str, label: str, step: Callable[[], bool]) -> float:
    """Run one compile step (True when Numba loaded all it compiles from its cache), shown as
    progress says; the seconds it took.  phg's own printers (`printer`) also say what was cached."""
    if progress is not None:
        progress(model, label, None)
    start = time.perf_counter()
    cached = step()
    seconds = time.perf_counter() - start
    if progress is not None:
        if getattr(progress, "shows_cached", False):
            progress(model, label, seconds, cached=cached)
        else:
            progress(model, label, seconds)
    return seconds


def _compile(dispatcher, types) -> bool:
    from .kernel_cache import cache_hits

    before = cache_hits(dispatcher)
    dispatcher.compile(types)
    return cache_hits(dispatcher) > before


def compile_model(cls, progress: Progress | None = None) -> float:
    """Compile (or load from Numba's cache) every kernel of a model class; the seconds it took.
    A kernel already compiled for its types, in this process, is not reported again."""
    from .opaque import bind, unbound

    # The parts first: instantiating the class to type its kernels binds them (codegen.opaque).
    def bind_parts() -> bool:
        bound, loaded = bind(cls._parts)
        return loaded == bound
    parts = [("parts", bind_parts)] if unbound(cls._parts) else []
    kernel_steps = ((label, functools.partial(_compile, dispatcher, types))
                    for label, dispatcher, types in kernels(cls) if types not in dispatcher.overloads)
    return sum(_compiled(progress, cls.SPEC["name"], label, step) for label, step in itertools.chain(parts, kernel_steps))


def compile_network(cls, progress: Progress | None = None) -> float:
    """Compile (or load from Numba's cache) a network's simulation kernel (codegen.spiking), for
    the types simulate passes it; the seconds it took."""
    types = _typed(*cls(seed=0)._compile_arguments())
    if types in cls._simulate_kernel.overloads:
        return 0.0
    return _compiled(progress, cls.SPEC["name"], "simulate", functools.partial(_compile, cls._simulate_kernel, types))


def compile_module(module, progress: Progress | None = None) -> float:
    """Compile every kernel of every model and network of a generated module; the seconds it took."""
    return sum(compile_network(cls, progress) if hasattr(cls, "_simulate_kernel") else compile_model(cls, progress)
               for cls in module.MODELS.values())


def to_stderr(text: str) -> None:
    """Text on stderr at once: a line's start shows while its kernel compiles."""
    sys.stderr.write(text)
    sys.stderr.flush()


def printer(write: Callable[[str], object]) -> Progress:
    """A progress that writes a `compiling MODEL: KERNEL ... 0.8 s` line per kernel through write
    (the line's start as the kernel starts, so a long compilation shows what it is), or
    `... cached (0.0 s)` when Numba loaded the kernel from its cache."""
    def report(model: str, kernel: str, seconds: float | None, cached: bool = False) -> None:
        write(f"compiling {model}: {kernel} ..." if seconds is None else
              f" cached ({seconds:.1f} s)\n" if cached else f" {seconds:.1f} s\n")
    report.shows_cached = True
    return report
