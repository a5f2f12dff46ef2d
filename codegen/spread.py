"""Running a kernel's independent shares of work side by side, on threads.

A predict kernel computes the samples `_from` to `_to`; a training kernel's slots kernel, the
slots `_from` to `_to` (each slot a fixed share of the batch), or in a loop plan's exact pass the
tiles `_from` to `_to` of a round (codegen.rounds).  The kernels release the GIL
(nogil), so Python threads run shares of one call at once.  Numba's own parallel loops (prange)
would do the same inside the kernel, but its parallel passes more than double a kernel's compile
time (examples/signed_volume.phg: 47 s against 20; rigid registration: 11 s against 4), and
compile time is what a model's size costs first.  Shares are contiguous and their results go to
places of their own (output rows, accumulator slots) or are exact sums, which no order changes
(a loop plan's one exact row, codegen.deposits), so nothing depends on the thread count.
The threads are Numba's count (NUMBA_NUM_THREADS, or numba.set_num_threads in the calling thread),
at most THREADS: the kernel plan sizes per-thread buffers by it.

While shares run side by side, the BLAS the kernels' matrix products call (SciPy's) runs on one
thread: its own threads would contend with the shares for the same cores (a 256-channel step took
4.0 s with them, 1.4 s without, on two cores).  A single share leaves BLAS its threads, and
kernels that call no BLAS (the fused strategy's) leave it alone.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

from phg.plan.buffers import THREADS

_pool: ThreadPoolExecutor | None = None
_size = 0
_owner = 0                      # the process the pool's threads run in
_lock = threading.Lock()
_blas = None                    # the BLAS libraries loaded, as threadpoolctl controls them

# The scalar operations below which a share of a batch is not worth a thread of its own (handing
# a share to a thread costs some tens of microseconds; these take about as long).
SHARE = 2**16


def one_blas_thread():
    """A context in which the loaded BLAS libraries run on one thread each."""
    global _blas
    with _lock:
        if _blas is None:
            import scipy.linalg.cython_blas  # noqa: F401  (the BLAS of numba's np.dot: loaded before it is found)
            from threadpoolctl import ThreadpoolController
            _blas = ThreadpoolController().select(user_api="blas")
    return _blas.limit(limits=1)


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _size, _owner
    with _lock:
        # A forked child inherits the pool but not its threads: it would wait forever on it.
        if _pool is None or _size < workers or _owner != os.getpid():
            if _pool is not None and _owner == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="phg-kernel")
            _size, _owner = workers, os.getpid()
        return _pool


def prepare(blas: bool = False) -> None:
    """What the first call that runs shares side by side would set up, done beforehand: the pool's
    threads and, for kernels that call BLAS, the control of its threads (threadpoolctl inspects
    the loaded libraries once, some megabytes of transient objects).  A model instance does this
    as it is made, so no call of its allocates them (its certified memory does not count them)."""
    workers = threads() - 1
    if workers > 0:
        for f in [_executor(workers).submit(int) for _ in range(workers)]:
            f.result()
    if blas:
        with one_blas_thread():
            pass


def threads() -> int:
    """The threads a call runs shares on side by side: Numba's count, at most THREADS (the rows
    of the kernel plan's per-thread buffers)."""
    return min(numba.get_num_threads(), THREADS)


def shares_of(count: int, shares: int, most: int | None = None) -> int:
    """The shares spread() cuts `count` units of work into, asked for `shares`: at most the
    thread count, and `most` where given."""
    return max(1, min(shares, count, threads(), most if most is not None else THREADS))


def spread(kernel, args: tuple, count: int, shares: int, blas: bool = False, most: int | None = None,
           indexed: bool = False, start: int = 0) -> int:
    """kernel(*args, lo, hi) over [start, start + count) in at most `shares` contiguous shares, no
    more than the thread count nor `most`; `indexed`: kernel(*args, k, lo, hi), k the share's index
    (its row of a per-thread buffer).  The calling thread runs the first share.  `blas`: the kernel
    calls BLAS, kept on one thread while shares run side by side.  An exception of any share is
    raised here, once every share has finished.  Returns the number of shares."""
    shares = shares_of(count, shares, most)
    share = (lambda k: (k,)) if indexed else (lambda k: ())
    if shares == 1:
        kernel(*args, *share(0), start, start + count)
        return 1
    bounds = [start + count * k // shares for k in range(shares + 1)]
    pool = _executor(shares - 1)
    with one_blas_thread() if blas else contextlib.nullcontext():
        futures = [pool.submit(kernel, *args, *share(k), bounds[k], bounds[k + 1]) for k in range(1, shares)]
        try:
            kernel(*args, *share(0), bounds[0], bounds[1])
        finally:
            errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
    return shares
