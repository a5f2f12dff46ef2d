"""Every buffer a training step touches, with its shape, and the exact accumulator's sizes.

The buffers are listed here once, from the hypergraph, the train block and the kernel plan's
accumulator rows: the generated runtime allocates exactly this list (codegen.runtime) and the
memory obligation adds up its bytes (verifier.memory), so the certificate's bound and what a
step allocates cannot drift apart.  A step reads the caller's batch in place and computes each
sample in registers (fused) or a tile of samples at a time in its slot's workspace (loops), so no
buffer grows with the batch.

- accumulators: SLOTS slots (a batch of n samples uses slots(n) of them, each a fixed share of
  the batch whatever the thread count; exact loop kernels write only the first slot of each
  thread's share of them) of
  `rows` sums, DIGITS int64 digits each for `accumulate exact`, one float64 for `float`; with
  `exact`, a grid scale per sum and slot, kept between steps, a ledger per slot (the digits each
  sum touched, and LEDGER words more), and in the loop strategy or beyond REGISTER_SUMS sums a
  pass's deposit state (STATE_ROWS int64) per sum and slot;
- the exact totals' work digits (per thread that reads a share of the sums), the sums, the loss;
  in the loop strategy (phg.plan.loops), a workspace per slot for a tile's slabs, forward and
  adjoint;
- per parameter: its gradient, its coefficients saved before an update (put back when the
  update overflows), the step direction and the optimizer's moments per optimizer coordinate
  (a Euclidean coefficient, or a tangent-bivector coordinate of a Rotor/Motor channel: MOMENTS),
  and the tangent of each Rotor/Motor parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from phg import support as sup
from phg.hypergraph import Hypergraph
from phg.program import TrainSpec

from .loops import TILE

SLOTS = 16                      # accumulator rows per step, at most
SLOT_SAMPLES = TILE             # samples a slot has at least, while it can
DIGITS = 68                     # 32-bit digits of one exact sum (codegen.accumulate)
CHUNK = 1024                    # samples per pass: a level sum stays below 1024 * 2^51 = 2^61
NORMALISE_EVERY = 2**20         # passes between carry propagations
REGISTER_SUMS = 32              # exact sums a pass keeps in registers; more keep it in an array
STATE_ROWS = 6                  # a pass's state per sum in an array (codegen.accumulate)
LEDGER = 4                      # words of an accumulator row's ledger past its sums' digit ranges
# a normalised digit is below 2^32 in magnitude; a pass adds below 2^33 to a digit (two level sums,
# each split into pieces below 2^32 over three digits), a term deposited on its own below 2^32 (and
# counts as a pass)
DIGIT_BOUND = 2**32 + NORMALISE_EVERY * 2**33
# the top digit (weight 2^(32 (DIGITS - 1)) of 2^-1074) holds the sign and up to 2^62: sums below
# 2^1132, so any count below 2^108 of doubles (each below 2^1024)
CAPACITY = 2**(32 * (DIGITS - 1) + 62 - 1074 - 1024)
MOMENTS = {"sgd": 0, "adam": 2, "prm": 3}       # moment arrays per optimizer coordinate

# What each role is called in the certificate's memory plan.
LABELS = {"acc": "accumulators", "grid": "grids", "deposits": "deposit states", "ranges": "ledgers", "work": "work digits",
          "sums": "sums", "loss": "loss", "grads": "gradients", "before": "saved parameters",
          "tiles": "tile workspaces", "tangent": "tangents", "direction": "directions", "state": "optimizer moments"}


def slots(n: int) -> int:
    """The slots a batch of n samples is cut into: as many as give each a tile, up to SLOTS.  It
    depends on n alone, never on the thread count, so a step's float sums are the same with any;
    a small batch then runs whole tiles (loop kernels multiply whole tiles) in few slots, each of
    which lays out the step's weights once."""
    return max(1, min(SLOTS, -(-n // SLOT_SAMPLES)))


def many_sums(rows: int) -> bool:
    """Whether a step's sums are too many for registers: its exact passes then keep their state in
    an array, and its slot function is compiled on its own (codegen.training)."""
    return rows > REGISTER_SUMS


@dataclass(frozen=True)
class Buffer:
    role: str                   # a key of LABELS
    param: str | None           # the parameter's name, for the per-parameter roles
    shape: tuple[int, ...]
    dtype: str                  # "float64" or "int64", 8 bytes an element either way

    @property
    def bytes(self) -> int:
        return 8 * math.prod(self.shape)

    def to_list(self) -> list:
        return [self.role, self.param, list(self.shape), self.dtype]


def coordinates(g: Hypergraph, vid: str) -> tuple[int, ...]:
    """A parameter's optimizer coordinates: (channels, tangent bivectors) on the manifold, else
    (coefficients,)."""
    v = g.values[vid]
    channels = math.prod(v.shape)
    if vid in g.manifold_params():
        return (channels, bin(sup.of_grades(g.algebra, [2])).count("1"))
    return (channels * bin(v.support).count("1"),)


def training(g: Hypergraph, train: TrainSpec, rows: int, tiles: int = 0, deposits: bool = False) -> list[Buffer]:
    """The buffers of a training step of g with `rows` accumulated sums and, in the loop
    strategy, a workspace of `tiles` words per slot (phg.plan.loops), in allocation order;
    `deposits`: exact passes keep their state in an array however few the sums."""
    exact = train.accumulate == "exact"
    out = [Buffer("acc", None, (SLOTS, DIGITS, rows) if exact else (SLOTS, rows), "int64" if exact else "float64"),
           Buffer("grid", None, (SLOTS, rows) if exact else (1, 1), "float64"),
           Buffer("deposits", None, (SLOTS, STATE_ROWS, rows) if exact and (deposits or many_sums(rows))
                  else (1, STATE_ROWS, 1), "int64"),
           Buffer("ranges", None, (SLOTS, rows + LEDGER) if exact else (1, 1), "int64"),
           Buffer("work", None, (SLOTS, DIGITS) if exact else (1, 1), "int64"),
           Buffer("sums", None, (rows,), "float64"),
           Buffer("loss", None, (1,), "float64"),
           Buffer("tiles", None, (SLOTS, tiles) if tiles else (1, 1), "float64")]
    manifold = g.manifold_params()
    for p in g.params:
        v = g.values[p]
        shape = (*v.shape, bin(v.support).count("1"))
        coords = coordinates(g, p)
        out += [Buffer("grads", v.name, shape, "float64"), Buffer("before", v.name, shape, "float64")]
        if p in manifold:
            out.append(Buffer("tangent", v.name, coords, "float64"))
        out += [Buffer("direction", v.name, coords, "float64"),
                Buffer("state", v.name, (MOMENTS[train.optimizer], math.prod(coords)), "float64")]
    return out
