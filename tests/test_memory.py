"""The certificate's memory bounds hold: what predict and a training step allocate, measured as a
new user would (the kernels compiled beforehand, then a fresh model instance), never exceeds them.

Two measures of each call: tracemalloc's peak (every allocation of the interpreter and NumPy) and
the growth of the process's peak resident set (the kernel's count of pages, reset before each call
through /proc/self/clear_refs), which also sees what Numba's runtime allocates.  Each bound is
checked as the certificate states it (any thread count) and at the thread count of the run (its
bytes per thread).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import phg
from bench.memory import measured
from phg.codegen.spread import threads

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 128, 4096, 100_000)


def _inputs(cls, n: int, rng, dtype=np.float64) -> dict:
    return {k: rng.uniform(-1, 1, size=(n, *v["shape"], len(v["layout"]))).astype(dtype)
            for k, v in cls.SPEC["inputs"].items()}


def bounds(plan: dict) -> tuple:
    """(inference(N, converted), training(N, converted)) at the run's thread count, and the same
    as the certificate states them (any thread count)."""
    per_sample, fixed = (int(x) for x in plan["inference_bytes"].split(" * N + "))
    training, most = int(plan["training_bytes"]), plan["threads"]
    less = lambda per_thread: (most - threads()) * per_thread  # noqa: E731
    conversion = plan["conversion_bytes_per_sample"]
    return ((lambda n, c: per_sample * n + fixed - less(plan["inference_bytes_per_thread"])
             - (0 if c else conversion * n)),
            (lambda n, c: training - less(plan["training_bytes_per_thread"]) + (conversion * n if c else 0)),
            (lambda n, c: per_sample * n + fixed), (lambda n, c: training + (conversion * n if c else 0)))


def check_memory(cls, plan: dict, sizes=SIZES) -> list[str]:
    """Every (size, call, measure, first or warm) whose bytes exceed a bound; empty when all hold."""
    rng = np.random.default_rng(5)
    inference, training, any_inference, any_training = bounds(plan)
    warm = cls(seed=0)                              # compiled and loaded, outside every measurement
    small = _inputs(cls, 8, rng)
    warm.predict(**small)
    warm.step(**small)
    faults = []
    for n in sizes:
        cases = [(np.float64, False)] + ([(np.float32, True)] if n == 128 else [])
        for dtype, converted in cases:
            data = _inputs(cls, n, rng, dtype)
            for name, bound, stated in (("predict", inference, any_inference), ("step", training, any_training)):
                model = cls(seed=0)
                call = lambda: getattr(model, name)(**data)  # noqa: E731
                limit = min(bound(n, converted), stated(n, converted))
                for when in ("first", "warm"):
                    for measure, used in zip(("tracemalloc", "peak RSS growth"), measured(call)):
                        if used is not None and used > limit:
                            faults.append(f"N={n} {np.dtype(dtype).name} {name} {when} {measure}: "
                                          f"{used:,} bytes > {limit:,} certified")
    return faults


def widened(channels: int, accumulate: str) -> str:
    from bench.widths import source
    return source(channels, accumulate)


@pytest.mark.parametrize("stem", ["rigid_registration", "pga_pose", "signed_volume", "cgenn_volume"])
def test_every_example_allocates_within_its_certificate(built, stem):
    program, module = built[stem]
    cert = phg.check(program).to_dict()["memory"]
    for graph in program.models.values():
        plan = cert if "training_bytes" in cert else cert[graph.name]
        assert check_memory(getattr(module, graph.name), plan) == []


@pytest.mark.parametrize("channels, accumulate", [(64, "exact"), (24, "float")])
def test_widened_networks_allocate_within_their_certificate(tmp_path, channels, accumulate):
    """Both accumulations in the loop strategy (the examples above cover the fused one)."""
    program = phg.loads(widened(channels, accumulate), f"widened{channels}.phg")
    cert = phg.check(program).to_dict()["memory"]
    module = phg.build(program, tmp_path, progress=lambda *_: None)
    assert module.SignedVolume.SPEC["train"]["strategy"] == "loops"
    assert check_memory(module.SignedVolume, cert) == []
