"""The memory obligation of training, on the kernel plan's buffers, and the exact accumulator's
`quire` obligation.

Every buffer predict and a training step allocate is listed by the kernel plan
(phg.plan.buffers), from the hypergraph and the train block, before any call runs; the generated
runtime allocates exactly that list (LANGUAGE §17).  Here its bytes are added up, with fixed
allowances for what no buffer holds (measured with tracemalloc and peak RSS, see
tests/test_memory.py): NumPy's array headers, the interpreter's objects during a call, and per
thread a share's bookkeeping, the few words a matrix product hands BLAS and its kernels' stack.

The bounds are functions of the batch size N and of T, the threads a call runs its shares on
(Numba's count, at most THREADS): a per-thread buffer has one row per thread.  The certificate
states them at T = THREADS, so they hold for any thread count, and gives the bytes per thread
beside them.  A call reads inputs given as float64 C-contiguous rows in place; one given otherwise
is first copied so (its float64 bytes per sample).  inference_bytes counts those copies; a step's
bytes do not grow with its batch only when it is given float64 rows, so training_bytes assumes
them and the copies are stated apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import z3

from phg import posit
from phg.hypergraph import Hypergraph
from phg.numeric import FORMATS, QUIRE_PRODUCTS
from phg.plan import kernel_plan
from phg.plan.buffers import (CAPACITY, CHUNK, DIGIT_BOUND, DIGITS, LABELS, NORMALISE_EVERY, OPTIMIZER, SLOTS,
                              THREADS, Buffer)
from phg.program import TrainSpec

from .obligations import Ledger

ARRAY_HEADER = 256              # bytes NumPy allocates per array beside its data
CALL_ALLOWANCE = 65536          # the interpreter's transient objects during one call, and the caches they grow
# per thread: its share's future and views, a matrix product's words for BLAS, and the stack pages
# its kernels touch (peak RSS grew by 29 KB more on a pool thread's first 256-channel predict)
THREAD_ALLOWANCE = 2048 + 32768


def _per_sample(buffers: list[Buffer], roles: set[str]) -> int:
    return sum(b.bytes for b in buffers if b.axis == "samples" and b.role in roles)


def _labelled(buffers: list[Buffer], axis: str | None, skip: frozenset = frozenset()) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in buffers:
        if b.axis == axis and b.role not in skip:
            out[LABELS[b.role]] = out.get(LABELS[b.role], 0) + b.bytes
    return out


@dataclass
class MemoryPlan:
    model: str
    accumulate: str
    training_fixed: dict[str, int]        # label -> bytes, whatever the threads (optimizer's state apart)
    training_per_thread: dict[str, int]   # label -> bytes per thread
    optimizer: dict[str, int]             # the optimizer's own state: label -> bytes
    output_bytes_per_sample: int          # what inference allocates per sample for its outputs
    conversion_bytes_per_sample: int      # a float64 copy of every input a call reads
    inference_fixed_bytes: int
    inference_per_thread: dict[str, int]
    stack_bytes_per_sample: int           # scalars live in one sample's forward and adjoint (bound)

    def training_bytes(self, threads: int = THREADS, optimizer: bool = True) -> int:
        """What a step allocates at `threads` threads, given float64 C-contiguous inputs."""
        return (sum(self.training_fixed.values()) + threads * sum(self.training_per_thread.values())
                + (sum(self.optimizer.values()) if optimizer else 0))

    def inference_bytes(self, n: int, threads: int = THREADS, conversions: bool = True) -> int:
        """What a predict call on n samples allocates at `threads` threads; `conversions`: its inputs
        given otherwise than as float64 C-contiguous rows."""
        per_sample = self.output_bytes_per_sample + (self.conversion_bytes_per_sample if conversions else 0)
        return per_sample * n + self.inference_fixed_bytes + threads * sum(self.inference_per_thread.values())

    def to_dict(self) -> dict:
        per_sample = self.output_bytes_per_sample + self.conversion_bytes_per_sample
        training = dict(self.training_fixed)
        for label, size in self.training_per_thread.items():
            training[label] = training.get(label, 0) + THREADS * size
        training.update(self.optimizer)
        inference = {LABELS["outputs"]: f"{self.output_bytes_per_sample} * N",
                     LABELS["conversions"]: f"{self.conversion_bytes_per_sample} * N",
                     **{label: f"{size} * T" for label, size in self.inference_per_thread.items()},
                     "array headers and interpreter": f"{self.inference_fixed_bytes}"}
        return {"inference_bytes": f"{per_sample} * N + {self.inference_bytes(0)}",
                "training_bytes": f"{self.training_bytes()}",
                "threads": THREADS,
                "inference_bytes_per_thread": sum(self.inference_per_thread.values()),
                "training_bytes_per_thread": sum(self.training_per_thread.values()),
                "conversion_bytes_per_sample": self.conversion_bytes_per_sample,
                "optimizer_bytes": sum(self.optimizer.values()),
                "per_sample_stack_bytes": self.stack_bytes_per_sample,
                "training_buffers": training, "inference_buffers": inference,
                "slots": SLOTS, "accumulate": self.accumulate,
                "note": f"N is the batch size, T the threads a call runs on.  Both bounds hold for any thread count "
                        f"up to {THREADS}; at T threads each is ({THREADS} - T) times its bytes per thread less.  "
                        "inference_bytes counts a float64 copy of each input given otherwise; training_bytes is "
                        "for float64 C-contiguous inputs, which a step reads in place (its bytes do not grow with "
                        "N), and others add conversion_bytes_per_sample * N"}


def plan(g: Hypergraph, train: TrainSpec | None) -> MemoryPlan:
    train = train or TrainSpec(g.name)
    kp = kernel_plan(g, train)
    step = kp.train.buffers
    fixed = _labelled(step, None, OPTIMIZER)
    fixed["array headers"] = len(step) * ARRAY_HEADER
    fixed["interpreter"] = CALL_ALLOWANCE
    per_thread = _labelled(step, "threads")
    per_thread["thread allowance"] = THREAD_ALLOWANCE
    optimizer = {LABELS[r]: sum(b.bytes for b in step if b.role == r) for r in sorted(OPTIMIZER)}
    predict = kp.inference
    threads = _labelled(predict, "threads")
    threads["thread allowance"] = THREAD_ALLOWANCE
    fixed_inference = len(predict) * ARRAY_HEADER + CALL_ALLOWANCE
    cone = set(g.cone(g.loss)) if g.loss else set()
    stack = 2 * 8 * sum(math.prod(g.values[v].shape) * bin(g.values[v].support).count("1")
                        for v in cone if g.values[v].role != "param")
    return MemoryPlan(g.name, train.accumulate, fixed, per_thread, optimizer, _per_sample(predict, {"outputs"}),
                      _per_sample(predict, {"conversions"}), fixed_inference, threads, stack)


def _quire_terms(fmt) -> tuple[int, int]:
    """(M, B): a product of two format values is at most M units of the quire's last place, and
    the quire's bits below its sign hold less than 2^B of them."""
    largest = Fraction(posit.value_range(fmt.posit)[1]) ** 2 * 2**fmt.posit.quire_fraction_bits
    assert largest.denominator == 1              # every product is a multiple of the last place
    return largest.numerator, fmt.quire_bits - 1


def _status(result) -> str:
    """Both claims are refuted by a model of their negation: unsat proves, sat refutes."""
    if result == z3.unsat:
        return "proven"
    return "refuted" if result == z3.sat else "unknown"


class MemoryChecker(Ledger):
    """The `memory <= K * inference` claim of a train block, and the accumulator's capacity."""

    def __init__(self, graph: Hypergraph, train: TrainSpec, source: str | None = None):
        super().__init__(graph, source)
        self.train = train
        self.plan = plan(graph, train)

    def run(self):
        if self.train.memory_factor is not None:
            self.memory()
        if self.train.accumulate == "exact":
            self.quire()
        if FORMATS[self.g.numeric].is_posit:
            self.format_quire()
        return self.obligations

    def memory(self):
        k = self.train.memory_factor
        ctx = z3.Context()          # a context of its own: the recorded query is the same in every process
        n, t = z3.Int("N", ctx), z3.Int("T", ctx)
        s = z3.Solver(ctx=ctx)
        s.set("rlimit", 1_000_000)
        s.add(n >= 1, t >= 1, t <= THREADS)
        if self.train.batch is not None:
            s.add(n == self.train.batch)
        p = self.plan
        num = lambda v: z3.IntVal(v, ctx)  # noqa: E731
        # without the optimizer's own state, against inference on float64 inputs (no copies), at the
        # same thread count: both bounds are linear in N and T
        training = num(p.training_bytes(0, optimizer=False)) + num(sum(p.training_per_thread.values())) * t
        inference = num(p.output_bytes_per_sample) * n + num(p.inference_bytes(0, 0, False)) + \
            num(sum(p.inference_per_thread.values())) * t
        # training > K * inference, over the rationals: K may be fractional
        s.add(z3.ToReal(training) > z3.RealVal(str(k), ctx) * z3.ToReal(inference))
        result = s.check()
        batch = "the batch of the train block" if self.train.batch is not None else "every batch size N >= 1"
        claim = (f"the certified bytes of a training step, the optimizer's state apart, are at most {k:g} times "
                 f"those of inference on {batch}, at any thread count up to {THREADS}")
        evidence = {"training_bytes": f"{p.training_bytes(0, optimizer=False)} + "
                                      f"{sum(p.training_per_thread.values())} * T",
                    "inference_bytes": f"{p.output_bytes_per_sample} * N + {p.inference_bytes(0, 0, False)} + "
                                       f"{sum(p.inference_per_thread.values())} * T",
                    "z3": str(result), "expected": f"memory <= {k:g} * inference"}
        if result == z3.sat:
            model = s.model()
            nv, tv = model[n].as_long(), model[t].as_long()
            tr, inf = p.training_bytes(tv, optimizer=False), p.inference_bytes(nv, tv, False)
            evidence["at"] = {"N": nv, "T": tv, "training_bytes": tr, "inference_bytes": inf}
            evidence["reason"] = (f"at N = {nv} on {tv} thread{'s' * (tv != 1)} a training step needs {tr:,} bytes "
                                  f"and inference {inf:,}: {tr / inf:.3g} times")
        self.add("memory", self.g.name, self.train.memory_span or self.train.span, claim, _status(result), evidence, s.to_smt2())

    def quire(self):
        ctx = z3.Context()
        n = z3.Int("N", ctx)
        s = z3.Solver(ctx=ctx)
        s.set("rlimit", 1_000_000)
        batch = self.train.batch
        s.add(n >= 1)
        if batch is not None:
            s.add(n == batch)
        else:
            s.add(n <= 2**63 - 1)                 # a batch's length is an int64
        # a digit overflows between normalisations, or the sum of N doubles outgrows the top digit
        s.add(z3.Or(z3.IntVal(DIGIT_BOUND, ctx) >= 2**63, n >= CAPACITY))
        result = s.check()
        claim = (f"the exact accumulator ({DIGITS} digits of 32 bits in int64, normalised every "
                 f"{NORMALISE_EVERY} passes of up to {CHUNK} samples) sums "
                 f"{'a batch of ' + str(batch) if batch is not None else 'any batch'} without overflow")
        evidence = {"digit_bound": DIGIT_BOUND, "normalise_every_passes": NORMALISE_EVERY, "chunk": CHUNK,
                    "capacity_samples": CAPACITY, "z3": str(result),
                    "expected": "every digit below 2^63 and fewer than 2^108 samples"}
        if result == z3.sat:
            evidence["reason"] = (f"a batch of {s.model()[n].as_long():,} samples may outgrow the top digit; "
                                  "split it or use `accumulate float`")
        self.add("quire", self.g.name, self.train.span, claim, _status(result), evidence, s.to_smt2())

    def format_quire(self):
        """LANGUAGE §11: a posit format's batch sums are fused in its quire, which holds the exact
        sum of a batch's terms (each a format value, at most maxpos^2 and a multiple of minpos^2)
        when N maxpos^2 stays below its capacity; a larger batch is refused at run time."""
        fmt = FORMATS[self.g.numeric]
        most, bits = _quire_terms(fmt)
        ctx = z3.Context()
        n = z3.Int("N", ctx)
        s = z3.Solver(ctx=ctx)
        s.set("rlimit", 1_000_000)
        batch = self.train.batch
        overflows = n * z3.IntVal(most, ctx) >= z3.IntVal(2**bits, ctx)
        if batch is not None:
            s.add(n == batch, z3.Or(n > QUIRE_PRODUCTS, overflows))
        else:                                     # the runtime refuses a larger batch
            s.add(n >= 1, n <= QUIRE_PRODUCTS, overflows)
        result = s.check()
        claim = (f"the {fmt.name} quire ({fmt.quire_bits} bits) sums {'a batch of ' + str(batch) if batch is not None else 'any batch'} "
                 f"(at most {QUIRE_PRODUCTS:,} terms, each at most maxpos^2) exactly")
        evidence = {"format": fmt.name, "quire_bits": fmt.quire_bits, "largest_term_in_last_places": str(most),
                    "products_at_most": QUIRE_PRODUCTS, "z3": str(result),
                    "expected": f"N maxpos^2 < 2^{bits - fmt.posit.quire_fraction_bits}"}
        if result == z3.sat:
            evidence["reason"] = (f"a batch of {s.model()[n].as_long():,} samples is more than the {fmt.name} quire "
                                  f"sums exactly ({QUIRE_PRODUCTS:,} terms); split it")
        self.add("quire", self.g.name, self.train.span, claim, _status(result), evidence, s.to_smt2())
