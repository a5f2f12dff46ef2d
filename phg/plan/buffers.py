"""Every buffer predict and a training step allocate, with its shape, and the exact
accumulator's sizes.

The buffers are listed here once, from the hypergraph, the train block and the kernel plan: the
generated runtime allocates exactly this list (codegen.runtime) and the memory obligation adds up
its bytes (verifier.memory), so the certificate's bounds and what a call allocates cannot drift
apart.  A buffer's leading axis may be symbolic: one row per sample of the batch (`samples`:
predict's outputs, and the float64 copy of an input given in another layout) or one per thread
that runs a share of the call side by side (`threads`, at most THREADS; codegen.spread).  A step
reads the caller's batch in place and computes each sample in registers (fused) or a tile of
samples at a time in its thread's workspace (loops), so no buffer of a step grows with the batch.

Predict: its outputs, a conversion per input given otherwise than as float64 C-contiguous rows,
and in the loop strategy a workspace per thread for a tile's forward slabs.

A step:
- accumulators: the float sums of SLOTS slots (a batch of n samples uses slots(n) of them, each a
  fixed share of the batch whatever the thread count, so that float sums do not depend on it) of
  `rows` sums, one float64 each; `accumulate exact`: DIGITS int64 digits a sum, a grid scale a
  sum (kept between steps), a ledger (the digits each sum touched, and LEDGER words more) and,
  in the loop strategy or beyond REGISTER_SUMS sums, a pass's deposit state (STATE_ROWS int64, in
  the loop strategy LOOP_STATE_ROWS) a sum, per slot in the fused strategy; in the loop strategy one row (digit columns for the few
  sums that need them: `columns`) that every thread deposits into, under a lock per block of sums
  (exact sums do not depend on which thread summed which sample, nor in what order);
- the exact totals' work digits (per thread that reads a share of the sums), the sums, the loss;
  in the loop strategy (phg.plan.loops), a workspace per thread for a tile's slabs, forward and
  adjoint;
- per parameter: its gradient, its coefficients saved before an update (put back when the
  update overflows), the optimizer's moments per optimizer coordinate (a Euclidean coefficient,
  or a tangent-bivector coordinate of a Rotor/Motor channel: MOMENTS), and the tangent of each
  Rotor/Motor parameter; the step direction takes the place of the gradient (or the tangent).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from phg import support as sup
from phg.hypergraph import Hypergraph
from phg.program import TrainSpec, default_population

from .loops import TILE

SLOTS = 16                      # accumulator rows per step, at most
THREADS = 16                    # threads a call runs shares on side by side, at most (codegen.spread)
SLOT_SAMPLES = TILE             # samples a slot has at least, while it can
DIGITS = 68                     # 32-bit digits of one exact sum (codegen.accumulate)
CHUNK = 1024                    # samples per pass: a level sum stays below 1024 * 2^51 = 2^61
NORMALISE_EVERY = 2**20         # passes between carry propagations
REGISTER_SUMS = 32              # exact sums a pass keeps in registers; more keep it in an array
STATE_ROWS = 4                  # a pass's state per sum in an array (codegen.accumulate)
LOOP_STATE_ROWS = 3             # in the loop kernels, whose ledger keeps the rest
LEDGER = 9                      # words of an accumulator row's ledger past its sums' digit ranges
# Digit columns of a loop kernel's exact row, at least: each holds the digits of eight sums whose
# terms reach them in a step (its pass folds rather than settles), in windows of 256 bits, or of
# one whose digits span more (codegen.accumulate); one per SUMS_PER_COLUMN sums beyond.
COLUMNS = 256
SUMS_PER_COLUMN = 32
# a normalised digit is below 2^32 in magnitude; a pass adds below 2^34 to a digit (two level sums
# and their folded carry, each split into pieces below 2^32 over three digits), a term deposited on
# its own below 2^32 (and counts as a pass)
DIGIT_BOUND = 2**32 + NORMALISE_EVERY * 2**34
# the top digit (weight 2^(32 (DIGITS - 1)) of 2^-1074) holds the sign and up to 2^62: sums below
# 2^1132, so any count below 2^108 of doubles (each below 2^1024)
CAPACITY = 2**(32 * (DIGITS - 1) + 62 - 1074 - 1024)
MOMENTS = {"sgd": 0, "adam": 2, "prm": 3, "cma": 0}   # moment arrays per optimizer coordinate
# A loop kernel's exact row is one, shared by the threads, which deposit into it under spin locks
# (codegen.locks): one lock per block of LOCK_SUMS consecutive sums, each on a cache line of its own
# (LOCK_STRIDE words), after a header of LOCK_HEADER words: the digits' lock (a term set aside
# takes digit room from the whole row), the count of terms set aside in the round, and from
# LAID_OUT a word per thread, whether its workspace holds the pass's invariant values.
LOCK_SUMS = 64
LOCK_STRIDE = 8
LOCK_HEADER = 32
DIGITS_LOCK, ASIDE, LAID_OUT = 0, 1, 8

# What each role is called in the certificate's memory plan.
LABELS = {"acc": "accumulators", "grid": "grids", "deposits": "deposit states", "ranges": "ledgers", "work": "work digits",
          "sums": "sums", "loss": "loss", "grads": "gradients", "before": "saved parameters",
          "tiles": "tile workspaces", "locks": "deposit locks", "tangent": "tangents", "state": "optimizer moments",
          "search": "search distribution", "search_scratch": "search temporaries",
          "population": "candidates' parameters",
          "outputs": "outputs", "conversions": "input conversions"}
# The optimizer's own state: not counted against inference by `memory <= K * inference` (LANGUAGE §17).
OPTIMIZER = frozenset({"before", "state", "search", "search_scratch", "population"})
AXES = ("samples", "threads")


def slots(n: int) -> int:
    """The slots a batch of n samples is cut into: as many as give each a tile, up to SLOTS.  It
    depends on n alone, never on the thread count, so a step's float sums are the same with any;
    a small batch then runs whole tiles (loop kernels multiply whole tiles) in few slots, each of
    which lays out the step's weights once."""
    return max(1, min(SLOTS, -(-n // SLOT_SAMPLES)))


def lock_words(rows: int) -> int:
    """The words of the locks of a loop kernel's shared exact row of `rows` sums."""
    return LOCK_HEADER + LOCK_STRIDE * -(-rows // LOCK_SUMS)


def columns(rows: int) -> int:
    """The digit columns of a loop kernel's exact row of `rows` sums (codegen.accumulate)."""
    return min(rows, max(COLUMNS, -(-rows // SUMS_PER_COLUMN)))


def many_sums(rows: int) -> bool:
    """Whether a step's sums are too many for registers: its exact passes then keep their state in
    an array, and its slot function is compiled on its own (codegen.training)."""
    return rows > REGISTER_SUMS


@dataclass(frozen=True)
class Buffer:
    role: str                   # a key of LABELS
    param: str | None           # the parameter's (or input's, output's) name, for the per-value roles
    shape: tuple[int, ...]      # past the leading axis, where it has one
    dtype: str                  # "float64" or "int64", 8 bytes an element either way
    axis: str | None = None     # a leading axis of one row per sample or per thread (AXES)

    @property
    def bytes(self) -> int:
        """The bytes of the buffer, or of one row of its leading axis."""
        return 8 * math.prod(self.shape)

    def to_list(self) -> list:
        return [self.role, self.param, list(self.shape), self.dtype, self.axis]


def coordinates(g: Hypergraph, vid: str) -> tuple[int, ...]:
    """A parameter's optimizer coordinates: (channels, tangent bivectors) on the manifold, else
    (coefficients,)."""
    v = g.values[vid]
    channels = math.prod(v.shape)
    if vid in g.manifold_params():
        return (channels, bin(sup.of_grades(g.algebra, [2])).count("1"))
    return (channels * bin(v.support).count("1"),)


def training(g: Hypergraph, train: TrainSpec, rows: int, tiles: int = 0) -> list[Buffer]:
    """The buffers of a training step of g with `rows` accumulated sums and, in the loop
    strategy, a workspace of `tiles` words per thread (phg.plan.loops), in allocation order."""
    exact = train.accumulate == "exact"
    loops = tiles > 0
    # exact rows: one in the loop strategy, which its threads share; one per slot in the fused
    lead = (1,) if loops else (SLOTS,)
    if exact:
        out = [Buffer("acc", None, (*lead, DIGITS, columns(rows) if loops else rows), "int64"),
               Buffer("grid", None, (*lead, rows), "float64"),
               Buffer("deposits", None, (*lead, LOOP_STATE_ROWS, rows), "int64") if loops
               else Buffer("deposits", None, (*lead, STATE_ROWS, rows), "int64") if many_sums(rows)
               else Buffer("deposits", None, (1, STATE_ROWS, 1), "int64"),
               Buffer("ranges", None, (*lead, rows + LEDGER), "int64"),
               Buffer("work", None, (DIGITS,), "int64", "threads")]
    else:
        out = [Buffer("acc", None, (SLOTS, rows), "float64"), Buffer("grid", None, (1, 1), "float64"),
               Buffer("deposits", None, (1, STATE_ROWS, 1), "int64"), Buffer("ranges", None, (1, 1), "int64"),
               Buffer("work", None, (1, 1), "int64")]
    out += [Buffer("sums", None, (rows,), "float64"),
            Buffer("loss", None, (1,), "float64"),
            Buffer("tiles", None, (tiles,), "float64", "threads") if loops else Buffer("tiles", None, (1, 1), "float64"),
            Buffer("locks", None, (1, lock_words(rows)), "int64") if loops and exact else Buffer("locks", None, (1, 1), "int64")]
    manifold = g.manifold_params()
    for p in g.params:
        v = g.values[p]
        shape = (*v.shape, bin(v.support).count("1"))
        coords = coordinates(g, p)
        out += [Buffer("grads", v.name, shape, "float64"), Buffer("before", v.name, shape, "float64")]
        if p in manifold:
            out.append(Buffer("tangent", v.name, coords, "float64"))
        out.append(Buffer("state", v.name, (MOMENTS[train.optimizer], math.prod(coords)), "float64"))
    if train.optimizer == "cma":
        n = search_coordinates(g)
        lam = int(train.hyper["population"]) or default_population(n)
        out += [Buffer("search", None, (search_words(n, lam),), "float64"),
                Buffer("search_scratch", None, (search_scratch_words(n, lam),), "float64")]
        # every candidate's parameters, for the one kernel call of a generation (codegen.population)
        sizes = sum(math.prod(g.values[p].shape) * bin(g.values[p].support).count("1") for p in g.params)
        out.append(Buffer("population", None, (lam * sizes,), "float64"))
    return out


def search_coordinates(g: Hypergraph) -> int:
    """The coordinates of `cma`'s one search distribution over every parameter."""
    return sum(math.prod(coordinates(g, p)) for p in g.params)


def search_words(n: int, population: int) -> int:
    """The float64 words a CMA-ES search over n coordinates keeps (codegen.cma.Search.WORDS):
    mean, two paths, the axis lengths, a step and its whitened copy (6n), C, its eigenvectors and
    a product's scratch (3n^2), a generation's normal samples, steps and candidates (3 lambda n),
    the losses, their order and the weights (3 lambda)."""
    return 6 * n + 3 * n * n + 3 * population * n + 3 * population


def search_scratch_words(n: int, population: int) -> int:
    """What a generation allocates and frees again: one eigendecomposition of C (numpy's eigh: the
    eigenvalues and vectors it returns, and LAPACK's dsyevd work space of 1 + 6n + 2n^2 words and
    3 + 5n integers), the candidates reordered by their losses and a copy of their rotors'
    coordinates (3 lambda n), the order and its
    mask (2 lambda), a few vectors (4n), and 8 KiB for numpy's own objects (the temporaries'
    headers, eigh's wrappers: 6.0 KiB measured at n = 3)."""
    return 4 * n * n + 17 * n + 3 * population * n + 3 * population + 1024


def inference(g: Hypergraph, inputs: list[str], outputs: list[str], tiles: int = 0) -> list[Buffer]:
    """The buffers of a predict call of g reading `inputs` (value ids) for `outputs` (names), in
    allocation order: a float64 copy of each input given in another layout, the outputs, and in
    the loop strategy a workspace of `tiles` words per thread for a tile's forward slabs."""
    def rows(vid: str) -> tuple[int, ...]:
        v = g.values[vid]
        return (*v.shape, bin(v.support).count("1"))

    out = [Buffer("conversions", g.values[v].name, rows(v), "float64", "samples") for v in inputs]
    out += [Buffer("outputs", o, rows(g.outputs[o]), "float64", "samples") for o in outputs]
    if tiles:
        out.append(Buffer("tiles", None, (tiles,), "float64", "threads"))
    return out
