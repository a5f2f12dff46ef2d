"""The kernel plan of one model: what its kernels compute, per sample and per batch, what a step
accumulates, and every buffer a step touches.

The plan is made once per checked hypergraph (its supports as the verifier left them) and read by
both later stages: the verifier proves the memory and quire claims on its buffers
(verifier.memory), codegen emits them (codegen.runtime allocates exactly these) and prints the
programs: the fused strategy's (phg.plan.fused: predict's, a step's forward, adjoint and sums) or
the loop plan (phg.plan.loops).

Two strategies are planned, and the plan records which each kernel takes and why:

- `fused`: every channel and blade unrolled into straight-line code per sample, forward, loss and
  adjoint in registers, with parameter-only coefficients hoisted out of the sample loop; the
  fastest for small models, but its code, and the compiler's time, grow with the channels;
- `loops` (phg.plan.loops): channels as loops over slabs of a workspace, samples in tiles, channel
  mixing as matrix products; its code grows with the distinct operations only.

The rule: `fused` while the products it would unroll per sample are at most UNROLL_LIMIT, else
`loops`; a loss that depends on no sample (a model of its parameters alone) trains fused, and so
does a model in a numeric format with `accumulate float` (its batch sums round each addition).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from phg.hypergraph import Hypergraph
from phg.numeric import DEFAULT
from phg.program import TrainSpec

from . import buffers
from .fused import FusedStep, Sums, predict_program
from .loops import LoopPlan, loop_plan, sample_dependent, unrolled
from .scalar import ScalarProgram

# The strategies by name, as SPEC["predict"]["strategy"] of a generated class gives them: fused,
# every channel and blade unrolled into per-sample straight-line code; loops, channels as loops
# over slabs, samples in tiles, channel mixing as matrix products (phg.plan.loops).
FUSED, LOOPS = "fused", "loops"
# Products per sample the fused code may unroll (loops.unrolled, its parameters' coefficients and
# sums counted).  Rigid registration unrolls 64, PGA pose 313: fused, they build in seconds and run
# fastest.  examples/signed_volume.phg unrolls 699 (568 before sums and parameters were counted):
# fused it built in 19 s (1 thread) and its exact step at 65,536 samples took 154 ms; in loops
# 7 s and 47 ms (float steps about 15% slower).  At 16 channels (1,708) its fused build took
# 91-210 s, its loop build 19 s.
UNROLL_LIMIT = 400


# The kernels' calling convention, read by the emitters (codegen.training, codegen.looped) and by
# the runtime (codegen.runtime), so that neither spells it out: after the arrays of the inputs and
# parameters (and predict's outputs), the batch size and the slots, then the step's buffers by
# their roles (phg.plan.buffers) under the names the kernels give them; the slots kernel then
# takes the share of the threads' rows it runs and its first and last slot (codegen.spread; in a
# loop plan's exact pass, its first and last tile of a round: codegen.rounds), the
# train kernel the buffers it reads the totals into, then a gradient per parameter.
STEP_BUFFERS = (("_acc", "acc"), ("_grid", "grid"), ("_dep", "deposits"), ("_rng", "ranges"), ("_tiles", "tiles"),
                ("_locks", "locks"))
TOTAL_BUFFERS = (("_work", "work"), ("_sums", "sums"), ("_loss", "loss"))
SPAN = ("_from", "_to")                            # the samples (or slots) a kernel's call runs: codegen.spread
SHARE = ("_share", *SPAN)                          # and which thread's rows, where it has per-thread buffers
SLOTS_ARGUMENTS = ("_n", "_slots", *(a for a, _ in STEP_BUFFERS), *SHARE)
TRAIN_ARGUMENTS = ("_n", "_slots", *(a for a, _ in STEP_BUFFERS), *(a for a, _ in TOTAL_BUFFERS))
PREDICT_ARGUMENTS = {"fused": SPAN, "loops": ("_tiles", *SHARE)}     # after the outputs


@dataclass
class TrainPlan:
    sums: Sums
    buffers: list[buffers.Buffer]
    strategy: str = FUSED
    reason: str = ""
    fused: FusedStep | None = None      # the fused strategy's step (phg.plan.fused)


@dataclass
class KernelPlan:
    model: str
    strategy: str              # of every kernel of the model
    reason: str                # the rule's reading
    train: TrainPlan | None    # None for a model without a loss
    loops: LoopPlan | None = None       # the loop plan, shared by inference and training
    inference: list[buffers.Buffer] = field(default_factory=list)       # what a predict call allocates
    graph: Hypergraph | None = field(default=None, repr=False)

    @cached_property
    def predict(self) -> ScalarProgram | None:
        """The fused strategy's inference program, made when first asked for (the emitter: a check
        does not need it)."""
        if self.loops is not None:
            return None
        _, _, outputs = predicted(self.graph)
        return predict_program(self.graph, [self.graph.outputs[o] for o in outputs])


def predicted(g: Hypergraph) -> tuple[list[str], list[str], list[str]]:
    """What predict reads and writes: the inputs and parameters (value ids) its outputs depend
    on, and the outputs (names)."""
    outputs = sorted(g.outputs)
    cone = {u for o in outputs for u in g.cone(g.outputs[o])}
    return [v for v in g.inputs if v in cone], [p for p in g.params if p in cone], outputs


def choose(g: Hypergraph, wanted: list[str]) -> tuple[str, str]:
    """The strategy for the kernel of `wanted`, and the rule's reading."""
    size = unrolled(g, wanted)
    if size <= UNROLL_LIMIT:
        return FUSED, f"{size} products per sample unrolled, at most {UNROLL_LIMIT}"
    return LOOPS, f"{size} products per sample unrolled, more than {UNROLL_LIMIT}"


def _train_plan(g: Hypergraph, train: TrainSpec, lp: LoopPlan | None, strategy: str, reason: str) -> TrainPlan:
    if lp is not None:
        return TrainPlan(Sums(False, lp.rows), buffers.training(g, train, lp.rows, lp.words), strategy, reason)
    step = FusedStep(g, TOTAL_BUFFERS[1][0])
    return TrainPlan(step.sums, buffers.training(g, train, step.sums.rows), strategy, reason, step)


def _plan(g: Hypergraph, train: TrainSpec) -> KernelPlan:
    wanted = [g.outputs[o] for o in sorted(g.outputs)] + ([g.loss] if g.loss is not None else [])
    strategy, reason = choose(g, wanted)
    if strategy == LOOPS and g.loss is not None and (g.loss not in sample_dependent(g) or not g.values[g.loss].support):
        strategy, reason = FUSED, reason + "; but its loss depends on no sample, which the fused code sums"
    if strategy == LOOPS and g.loss is not None and g.numeric != DEFAULT and train.accumulate != "exact":
        strategy, reason = FUSED, reason + (f"; but in {g.numeric} with accumulate float each addition of a batch sum "
                                            "rounds, in the order the fused code adds")
    lp = loop_plan(g, wanted, g.loss is not None, train.accumulate == "exact") if strategy == LOOPS else None
    planned = _train_plan(g, train, lp, strategy, reason) if g.loss is not None else None
    inputs, _, outputs = predicted(g)
    forward = lp.forward_words if lp is not None else 0      # predict reads the forward slabs only
    return KernelPlan(g.name, strategy, reason, planned, lp, buffers.inference(g, inputs, outputs, forward), g)


def kernel_plan(g: Hypergraph, train: TrainSpec | None = None) -> KernelPlan:
    """The plan of a checked graph g with its train block (the defaults of LANGUAGE §6 when it has
    none); made once and kept with g while its supports and the train block stay as they are."""
    train = train or TrainSpec(g.name)
    key = (tuple((v.id, v.support) for v in g.values.values()), train.accumulate, train.optimizer, UNROLL_LIMIT)
    held = g.derived.get("kernel plan")
    if held is None or held[0] != key:
        held = g.derived["kernel plan"] = (key, _plan(g, train))
    return held[1]
