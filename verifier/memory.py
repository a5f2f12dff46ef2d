"""The memory obligation of training, on the kernel plan's buffers, and the exact accumulator's
`quire` obligation.

Every buffer a training step touches is listed by the kernel plan (phg.plan.buffers), from the
hypergraph and the train block, before any step runs; the generated runtime allocates exactly
that list.  Here its bytes are added up, with a fixed allowance per array for NumPy's array
headers and one for the interpreter's bookkeeping during a step (both measured with tracemalloc,
see tests/test_training.py).  Inference allocates its outputs, which grow with the batch; a step
reads the caller's batch in place, so its buffers do not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import z3

from phg.hypergraph import Hypergraph
from phg.plan import kernel_plan
from phg.plan.buffers import CAPACITY, CHUNK, DIGIT_BOUND, DIGITS, LABELS, NORMALISE_EVERY, SLOTS
from phg.program import TrainSpec

from .obligations import Ledger

ARRAY_HEADER = 256              # bytes NumPy allocates per array beside its data
STEP_ALLOWANCE = 8192           # the interpreter's transient objects during one step


def _coefficients(g: Hypergraph, vid: str) -> int:
    v = g.values[vid]
    return math.prod(v.shape) * bin(v.support).count("1")


@dataclass
class MemoryPlan:
    model: str
    buffers: dict[str, int]             # training buffers, bytes each
    output_bytes_per_sample: int        # what inference allocates per sample
    stack_bytes_per_sample: int         # scalars live in one sample's forward and adjoint (bound)
    accumulate: str

    @property
    def training_bytes(self) -> int:
        return sum(self.buffers.values())

    def inference_bytes(self, n: int) -> int:
        return self.output_bytes_per_sample * n + self.inference_fixed

    @property
    def inference_fixed(self) -> int:
        return ARRAY_HEADER                  # the output arrays' headers (one per output, at least)

    def to_dict(self) -> dict:
        return {"inference_bytes": f"{self.output_bytes_per_sample} * N + {self.inference_fixed}",
                "training_bytes": f"{self.training_bytes}",
                "per_sample_stack_bytes": self.stack_bytes_per_sample,
                "training_buffers": self.buffers, "slots": SLOTS, "accumulate": self.accumulate,
                "note": "N is the batch size; a training step does not copy its batch, so its bytes do not "
                        "grow with N"}


def plan(g: Hypergraph, train: TrainSpec | None) -> MemoryPlan:
    train = train or TrainSpec(g.name)
    planned = kernel_plan(g, train).train
    buffers = {label: 0 for label in LABELS.values()}
    for b in planned.buffers:
        buffers[LABELS[b.role]] += b.bytes
    buffers["array headers"] = len(planned.buffers) * ARRAY_HEADER
    buffers["interpreter"] = STEP_ALLOWANCE
    outputs = sum(_coefficients(g, v) for v in g.outputs.values()) * 8
    cone = set(g.cone(g.loss)) if g.loss else set()
    stack = 2 * 8 * sum(_coefficients(g, v) for v in cone if g.values[v].role != "param")
    return MemoryPlan(g.name, buffers, outputs, stack, train.accumulate)


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
        return self.obligations

    def memory(self):
        k = self.train.memory_factor
        ctx = z3.Context()          # a context of its own: the recorded query is the same in every process
        n = z3.Int("N", ctx)
        s = z3.Solver(ctx=ctx)
        s.set("rlimit", 1_000_000)
        s.add(n >= 1)
        if self.train.batch is not None:
            s.add(n == self.train.batch)
        inference = self.plan.output_bytes_per_sample * n + self.plan.inference_fixed
        # training > K * inference, over the rationals: K may be fractional
        s.add(z3.ToReal(z3.IntVal(self.plan.training_bytes, ctx)) > z3.RealVal(str(k), ctx) * z3.ToReal(inference))
        result = s.check()
        batch = "the batch of the train block" if self.train.batch is not None else "every batch size N >= 1"
        claim = f"a training step needs at most {k:g} times the memory of inference on {batch}"
        evidence = {"training_bytes": self.plan.training_bytes,
                    "inference_bytes": self.plan.to_dict()["inference_bytes"], "z3": str(result)}
        evidence["expected"] = f"memory <= {k:g} * inference"
        if result == z3.sat:
            nv = s.model()[n].as_long()
            inf = self.plan.inference_bytes(nv)
            evidence["at"] = {"N": nv, "training_bytes": self.plan.training_bytes, "inference_bytes": inf}
            evidence["reason"] = (f"at N = {nv} a training step needs {self.plan.training_bytes:,} bytes and "
                                  f"inference {inf:,}: {self.plan.training_bytes / inf:.3g} times")
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
