"""Shares of a batch on threads (codegen.spread): every sample once, in contiguous shares, the
same result whatever the thread count, errors raised in the caller, and a forked child that
inherits the pool still runs."""
import os
import select

import numba
import numpy as np
import pytest

from phg.codegen import spread as spreading
from phg.codegen.spread import spread


@pytest.fixture(autouse=True)
def four_threads(monkeypatch):
    """Four threads whatever Numba was given (a test worker may have one core's share)."""
    monkeypatch.setattr(spreading, "threads", lambda: 4)


@numba.njit(nogil=True)
def _double(x, out, lo, hi):
    for i in range(lo, hi):
        out[i] = 2.0 * x[i]


def test_every_sample_is_computed_once_in_contiguous_shares():
    seen = []
    spread(lambda lo, hi: seen.append((lo, hi)), (), 10, 4)
    assert sorted(seen)[0][0] == 0 and sorted(seen)[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(sorted(seen), sorted(seen)[1:]))
    assert len(seen) == 4
    x = np.arange(100_003, dtype=np.float64)
    for shares in (1, 2, 7, 10**6):
        out = np.full_like(x, np.nan)
        spread(_double, (x, out), len(x), shares)
        assert np.array_equal(out, 2 * x), shares
    out = np.empty(0)
    spread(_double, (out, out), 0, 8)                       # an empty batch: one empty share


def test_an_error_in_any_share_is_raised_in_the_caller_after_every_share_ended():
    ended = []

    def kernel(lo, hi):
        ended.append(lo)
        if lo > 0:
            raise ValueError(f"share at {lo}")
    with pytest.raises(ValueError, match="share at"):
        spread(kernel, (), 10, 2)
    assert sorted(ended) == [0, 5]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_its_shares():
    x = np.arange(10_000, dtype=np.float64)
    out = np.empty_like(x)
    spread(_double, (x, out), len(x), 2)                    # the parent's pool has its threads
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                            # the child: the inherited pool has none
        try:
            out[:] = 0
            spread(_double, (x, out), len(x), 2)
            os.write(w, b"ok" if np.array_equal(out, 2 * x) else b"wrong")
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 60)
    os.waitpid(pid, 0) if ready else os.kill(pid, 9)
    assert ready and os.read(r, 8) == b"ok"


def test_blas_runs_on_one_thread_while_shares_run_side_by_side():
    """The loop kernels' matrix products call SciPy's BLAS: its own threads would contend with the
    shares for the cores, so each share sees it on one thread; afterwards it has its threads back.
    A kernel that calls no BLAS leaves it as it is."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with threadpool_limits(2, user_api="blas"):
        seen = []
        spread(lambda lo, hi: seen.append(blas_threads()), (), 4, 4, blas=True)
        assert len(seen) == 4 and all(set(s.values()) == {1} for s in seen), seen
        assert set(blas_threads().values()) == {2}
        one = []
        spread(lambda lo, hi: one.append(blas_threads()), (), 4, 1, blas=True)    # one share: BLAS keeps its threads
        assert set(one[0].values()) == {2}
        fused = []
        spread(lambda lo, hi: fused.append(blas_threads()), (), 4, 4)        # a kernel that calls no BLAS
        assert all(set(s.values()) == {2} for s in fused), fused
