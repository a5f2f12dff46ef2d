"""A loop kernel's exact pass over a batch, in rounds of tiles that the threads share.

The threads of an exact step deposit into one row (phg.plan.buffers), each block of sums under a
lock (codegen.deposits).  What a pass does between deposits, settling its level sums before they
could overflow and moving a sum's grid to terms it could not keep (codegen.accumulate.end_round),
touches every sum, so it runs between rounds, while no thread deposits: a round hands each thread
a share of its tiles (codegen.spread), then the pass's bookkeeping runs on the calling thread.

A round gives each thread `per` tiles: one at first and after a round that set terms aside (a sum
whose grid must move sends every term to its digits, one by one, until the round's end moves
it), doubling after each round that set none, and never so many that the pass could take more
than CHUNK terms a sum before it is settled; the next step starts where the last one ended.  A
round costs a hand-off to the threads, some tens of microseconds: a step of a batch of 1,024
samples whose grids hold runs in one round (of 8 tiles a thread on two threads).
"""
from __future__ import annotations

import contextlib

from phg.plan.buffers import ASIDE, CHUNK
from phg.plan.loops import TILE

from .accumulate import end_round, open_pass
from .spread import one_blas_thread, spread


def exact_pass(kernel, args: tuple, n: int, used: list, terms: int, shares: int, kept: dict) -> None:
    """The slots kernel of a loop plan's exact step, kernel(*args, share, from, to) over the tiles
    of n samples in rounds of at most `shares` shares, into the row of `used` (the step's buffers,
    phg.plan.kernel.STEP_BUFFERS) opened anew; `terms`: the most terms a sample gives one sum
    (codegen.looped.terms_per_sample); `kept`: where the tiles a thread's round ended with are
    kept, for the next pass to start with.  The pass is left open for its totals to be read."""
    acc, grid, deposits, ranges, _, locks = used
    open_pass(acc[0], ranges[0], deposits[0], grid[0])
    locks[:] = 0                                    # every lock free, no thread's workspace laid out
    count = -(-n // TILE)
    most = max(1, CHUNK // (TILE * terms))          # tiles a round may hold
    per, start = kept.get("round", 1), 0
    size = min(count, shares * per, most)
    # BLAS on one thread while shares run side by side (codegen.spread): once for every round
    with one_blas_thread() if min(shares, count) > 1 else contextlib.nullcontext():
        while start < count:
            spread(kernel, args, size, shares, start=start, indexed=True)
            aside = int(locks[0, ASIDE])
            locks[0, ASIDE] = 0
            per = 1 if aside else 2 * per
            done = min((start + size) * TILE, n) - start * TILE
            start += size
            size = min(count - start, shares * per, most)
            end_round(acc[0], ranges[0], deposits[0], grid[0], done * terms, aside, size * TILE * terms)
    kept["round"] = min(per, most)
