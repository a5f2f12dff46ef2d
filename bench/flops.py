"""The machine's own limit as a peer: the floating-point operations of a loss+grad step's channel
mixes (counted from the model's loop plan) and the rate of a plain float64 matrix product on the
same threads, timed in the same run."""
from __future__ import annotations

import time

import numpy as np


def mix_flops(program, model: str) -> int:
    """Floating-point operations per sample of the matrix-product contractions of a loss+grad
    step of `model` (a checked program): 2 cin cout per blade pair forward, and again for each
    adjoint product taken (dx, and dW for float sums)."""
    from phg.plan.kernel import kernel_plan

    g = program.models[model]
    lp = kernel_plan(g, program.trains.get(model)).loops
    if lp is None:
        return 0
    total = 0
    for op in lp.ops:
        if op.kind != "contract" or not op.blas:
            continue
        w, x, y = (lp.slabs[v] for v in (*op.sources, op.target))
        each = 2 * x.channels * y.channels * len(op.pairs)
        total += each
        if op.trained:
            total += each * ((x.adjoint is not None) + (w.adjoint is not None and not lp.exact))
    return total


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a float64 size x size matrix product on numba's thread count (best of repeats)."""
    import numba
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(size, size)), rng.normal(size=(size, size))
    with threadpool_limits(numba.get_num_threads(), user_api="blas"):
        a @ b
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            seconds.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(seconds)
