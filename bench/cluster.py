"""Training on a Dask cluster (LANGUAGE §15): throughput beside plain fit, the cost a step pays
for being distributed, and from those a projection to a large cluster (stated as one).

On this machine, in one run: plain fit in one process (all its threads, and one thread), then a
LocalCluster of processes with 1 and 2 workers of one thread each (NUMBA_NUM_THREADS=1 in the
workers), the same steps of the same model on the same data, checked bit for bit against plain
fit (accumulate exact).  Throughput is samples summed per second of fit, after a first step
that builds and warms each worker's kernels.  The per-step overhead is a step whose batch gives
each partition one sample: its time is the scheduling, the parameters out, the digits back and
their exact sum.

The projection for 10^9 samples on 64 workers (one step, the whole data set as its batch):
  time = overhead(64) + 10^9 / 64 / (one worker's samples/s, overhead removed)
with overhead(W) the measured 1- and 2-worker overheads extended linearly in W (the client
submits and adds W answers).  It assumes what loopback cannot show: a network that moves a
step's parameters and digits (printed) in far less than the compute, and workers as fast as
this machine's cores.

    python -m bench cluster [--models rigid,volume] [--samples 200000] [--batches 65536] [--steps 10]
                            [--workers 1,2]
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEMS = {"rigid": "rigid_registration", "volume": "signed_volume"}


def _data(which: str, n: int) -> dict:
    rng = np.random.default_rng(0)
    if which == "rigid":
        x = rng.normal(size=(n, 3))
        th = 0.7
        rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
        return {"x": x, "y": x @ rot.T + [0.3, -0.2, 0.1] + 0.01 * rng.normal(size=(n, 3))}
    v = rng.normal(size=(n, 3, 3))
    return {"v": v, "target": np.linalg.det(v)[:, None] / 10}


def _timed_fit(cls, data, steps, batch, client=None) -> tuple[float, object]:
    model = cls(seed=1)
    model.fit(data, steps=1, batch=batch, client=client)        # warm: kernels built, data placed
    model = cls(seed=1)
    start = time.perf_counter()
    model.fit(data, steps=steps, batch=batch, client=client)
    return time.perf_counter() - start, model


def _same(a, b) -> bool:
    return all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def _one(cls, data: dict, batch: int, args, counts: list[int]) -> None:
    from distributed import Client, LocalCluster

    done = args.steps * batch
    seconds, plain = _timed_fit(cls, data, args.steps, batch)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    seconds1, _ = _timed_fit(cls, data, args.steps, batch)
    numba.set_num_threads(threads)
    rows = len(plain._buffers["sums"])
    print(f"\n{cls.SPEC['name']} ({cls.SPEC['train']['strategy']} kernels, {rows} exact sums; "
          f"{len(next(iter(data.values()))):,} samples, batch {batch:,}, {args.steps} steps)")
    print(f"  plain fit, {threads} threads: {done / seconds:12,.0f} samples/s")
    print(f"  plain fit, 1 thread:  {done / seconds1:12,.0f} samples/s")
    overheads, rates = {}, {}
    for w in counts:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR, env={"NUMBA_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
            seconds_w, spread = _timed_fit(cls, data, args.steps, batch, client)
            tiny, _ = _timed_fit(cls, data, args.steps, w, client)
        overheads[w] = tiny / args.steps
        rates[w] = done / seconds_w
        print(f"  {w} worker{'s' * (w > 1)}:            {rates[w]:12,.0f} samples/s "
              f"({rates[w] / (done / seconds):.2f}x plain fit, {rates[w] / (done / seconds1):.2f}x one thread); "
              f"overhead {1e3 * overheads[w]:.1f} ms a step; bit-identical: {_same(plain, spread)}")
    one = min(counts)
    per_worker = batch / max(1e-9, batch / rates[one] - overheads[one])
    per_task = (overheads[max(counts)] - overheads[one]) / max(1, max(counts) - one)
    overhead64 = overheads[one] + max(0.0, per_task) * (64 - one)
    projected = overhead64 + 1e9 / 64 / per_worker
    traffic = rows * 69 * 8
    print(f"  projection (not measured): 10^9 samples on 64 workers, one step: {projected:.1f} s "
          f"({1e9 / 64 / per_worker:.1f} s compute at {per_worker:,.0f} samples/s a worker, "
          f"{overhead64 * 1e3:.0f} ms overhead); each worker sends {traffic / 1e3:.0f} kB of digits a step")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cluster")
    parser.add_argument("--models", default="rigid,volume")
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--batches", default="65536", help="batch sizes, comma-separated: how the cost grows")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args(argv)
    import phg

    counts = [int(w) for w in args.workers.split(",")]
    print(f"{os.cpu_count()} cores; plain fit with {numba.get_num_threads()} threads and with 1; workers of 1 thread")
    for which in args.models.split(","):
        module = phg.build(phg.load(ROOT / "examples" / f"{STEMS[which]}.phg"), progress=lambda *_: None)
        cls = next(iter(module.MODELS.values()))
        data = _data(which, args.samples)
        for size in args.batches.split(","):
            _one(cls, data, min(int(size), args.samples), args, counts)
    return 0
