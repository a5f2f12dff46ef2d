"""Data-parallel training on a Dask cluster, bit for bit a fit in one process (LANGUAGE §15).

The data set is cut into partitions, each held by the cluster: numpy arrays into one partition
per worker (samples p N / P to (p + 1) N / P of P, scattered once); dask arrays into their own
chunks along the samples, computed where they are.  A step takes the samples one process's fit
takes (codegen.runtime.ModelBase._batches: the train block's seeded order) and splits them by
partition, in the batch's order; each partition's task runs the step's slots pass on its samples
and answers its sums: with `accumulate exact` as the digits of each exact sum
(codegen.accumulate.digit_totals), which the client adds as integers and rounds once, so the
totals, the step and every later step are those of one process whatever the partitions and
whichever worker answers first.  With `accumulate float` a task answers its samples' float sums,
which the client adds in partition order: a fit is the same run after run on the same
partitions, and with one partition the same as in one process; other partitions round
differently.

A worker builds the model's kernels from its phg source (the same build, checks and cache as
`phg.build`), once per process and thread; nothing but parameters, sample indices and the
answered sums cross the network during a fit.  A task whose worker is lost runs again elsewhere,
and its answer is the same, so the step is: Dask reschedules a running task, recomputes a dask
array's lost chunk from its lineage, and the client scatters a lost numpy partition again from
its own arrays (Dask's memory manager keeps one copy of scattered data, replicated or not).
"""
from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np

from .parameters import batch_of

# Attempts of a task that raised, and of a step whose partitions' data was lost, before the fit
# gives up on the step (a lost worker's running tasks are rescheduled by the scheduler itself).
RETRIES = 2

_MODELS: dict[tuple, object] = {}
_BUILD = threading.Lock()


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError("fit(client=...) trains on a Dask cluster and needs dask.distributed: "
                          "pip install 'dask[distributed]'") from None
    return distributed


def _source_of(model) -> tuple[str, str, str, bool, str]:
    """(phg source, its file name, model name, built unverified, the folder of its module) of a
    model's generated module: what a worker builds the same kernels from."""
    module = sys.modules.get(type(model).__module__)
    source = getattr(module, "SOURCE", None)
    if not isinstance(source, str):
        raise ValueError(f"{model.SPEC['name']} was not imported from a module phg built, so a cluster's "
                         "workers cannot build its kernels; build it with phg.build")
    return (source, module.SOURCE_PATH, model.SPEC["name"], module.CERTIFICATE != "all proven",
            str(Path(module.__file__).parent))


def worker_model(source: str, path: str, name: str, unverified: bool, folder: str):
    """This worker thread's instance of the model, built from its phg source on first use and
    kept.  Where the client's own build is in reach (a worker on the client's machine, the same
    user) it is imported from there, with the kernels Numba cached for it; elsewhere the worker
    builds it in its own cache (phg.build's), never in the client's folder."""
    key = (hashlib.sha256(source.encode("utf-8")).hexdigest(), name, unverified, threading.get_ident())
    model = _MODELS.get(key)
    if model is None:
        import phg
        from phg.codegen.build import cached

        with _BUILD:                      # one build of a module at a time in a process
            program = phg.loads(source, path)
            hit = cached(program, Path(folder))
            here = Path(folder) if hit is not None and (hit[1] == "all proven" or unverified) else None
            module = phg.build(program, here, unverified=unverified)
        model = _MODELS[key] = module.MODELS[name](seed=0)
    return model


def share_sums(model_source: tuple, params: dict, idx, *arrays) -> np.ndarray:
    """A task: the sums of a step's samples `idx` of one partition (all of it for None), at the
    parameters given (codegen.runtime.ModelBase._share_sums)."""
    model = worker_model(*model_source)
    for name, value in params.items():
        model.params[name] = value            # (checked as any assignment is)
    if idx is not None:
        arrays = [np.take(a, idx, axis=0) for a in arrays]
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]
    return model._share_sums(arrays, len(arrays[0]))


class Partitions:
    """The data set's samples as partitions on the cluster: bounds [P + 1] (partition p holds
    samples bounds[p] to bounds[p + 1]) and each partition's futures, one per input; for numpy
    data, the client's own arrays, from which a partition lost with its worker is scattered again."""

    def __init__(self, bounds: np.ndarray, futures: list[list], arrays: list[np.ndarray] | None = None):
        self.bounds, self.futures, self.arrays = bounds, futures, arrays

    @property
    def samples(self) -> int:
        return int(self.bounds[-1])

    def split(self, idx: np.ndarray) -> list[np.ndarray]:
        """The step's samples of each partition, as indices into it, in the batch's order."""
        part = np.searchsorted(self.bounds, idx, side="right") - 1
        order = np.argsort(part, kind="stable")
        cuts = np.searchsorted(part[order], np.arange(len(self.futures) + 1))
        return [idx[order[cuts[p]:cuts[p + 1]]] - self.bounds[p] for p in range(len(self.futures))]

    def piece(self, p: int) -> list[np.ndarray]:
        return [np.ascontiguousarray(a[self.bounds[p]:self.bounds[p + 1]]) for a in self.arrays]

    def restore(self, client) -> bool:
        """Scatter again every numpy partition whose data the cluster lost (its worker died);
        whether any was.  (A dask array's chunks are recomputed by Dask from their lineage.)"""
        if self.arrays is None:
            return False
        lost = [p for p, fs in enumerate(self.futures) if any(f.status != "finished" for f in fs)]
        for p in lost:
            self.futures[p] = client.scatter(self.piece(p), hash=False)
        return bool(lost)


def _numpy_partitions(client, model, data: Mapping, names: list[str]) -> Partitions:
    arrays, n = model._inputs(data, names, training=True)
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise ValueError("the cluster has no workers to train on")
    parts = min(len(workers), n)
    bounds = np.array([p * n // parts for p in range(parts + 1)], dtype=np.int64)
    partitions = Partitions(bounds, [], arrays)
    partitions.futures = [client.scatter(partitions.piece(p), workers=[workers[p]], hash=False) for p in range(parts)]
    return partitions


def _dask_partitions(client, model, data: Mapping, names: list[str]) -> Partitions:
    import dask.array as da
    from distributed import futures_of

    model._require_names(data, names)
    arrays = []
    for name in names:
        a = data[name]
        if not isinstance(a, da.Array):
            raise TypeError(f"input {name!r} is a {type(a).__name__} beside dask arrays; give every input as "
                            "numpy arrays or every one as dask arrays")
        if any(np.isnan(s) for s in a.shape):
            raise ValueError(f"input {name!r} has an unknown number of samples; compute its chunk sizes first "
                             "(dask.array's compute_chunk_sizes)")
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"input {name!r} holds {a.dtype}, not real numbers")
        batch_of(name, np.zeros((0, *a.shape[1:])), model.SPEC["inputs"][name])      # its layout, as fit checks it
        arrays.append(a)
    sizes = {name: a.shape[0] for name, a in zip(names, arrays)}
    if len(set(sizes.values())) > 1:
        raise ValueError("inputs disagree on the number of samples: " + ", ".join(f"{k} has {v}" for k, v in sizes.items()))
    n = arrays[0].shape[0]
    if n == 0:
        raise ValueError(f"the data set is empty: input {names[0]!r} has 0 samples; training needs at least one")
    # every input cut as the first is along the samples, whole along its other axes
    chunks = arrays[0].chunks[0]
    arrays = [a.rechunk({0: chunks, **{k: -1 for k in range(1, a.ndim)}}) for a in arrays]
    arrays = client.persist(arrays)
    # non-finite samples are refused before any step, as in one process: only one index comes back
    for name, a in zip(names, arrays):
        bad = client.compute(da.argmin(da.isfinite(a).reshape(n, -1).all(axis=1))).result()
        if not bool(client.compute(da.isfinite(a[bad]).all()).result()):
            raise ValueError(f"input {name!r} sample {int(bad)} is not finite; training data must be finite")
    keyed = [{f.key: f for f in futures_of(a)} for a in arrays]
    futures = [[keys[(a.name, p, *([0] * (a.ndim - 1)))] for a, keys in zip(arrays, keyed)]
               for p in range(len(chunks))]
    return Partitions(np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64), futures)


def cluster_pass(model, client, data: Mapping):
    """fit(data, client=client)'s data on the cluster and its step's pass: (samples, pass), where
    pass(idx) runs the slots pass of the step over the samples idx (None: all of them) on the
    partitions that hold them and leaves the step's loss and gradient in the model as one
    process's pass does (this module's docstring); it returns the loss."""
    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    spec = model._training()
    settings = spec["settings"]
    name = model.SPEC["name"]
    if settings["optimizer"] == "cma":
        raise ValueError(f"{name} trains with optimizer cma, whose generations run in one process; "
                         "fit(client=...) splits gradient steps")
    if settings["accumulate"] != "exact" and "numeric" in model.SPEC:
        raise ValueError(f"{name} is in {model.SPEC['numeric']} with accumulate float, whose every addition "
                         "rounds in one process's order; train it on a cluster with accumulate exact")
    names = spec["inputs"]
    if not names:
        raise ValueError(f"{name}'s loss reads no input, so there are no samples to split over a cluster")
    source = _source_of(model)
    dask_data = any(type(a).__module__.startswith("dask.") for a in data.values())
    parts = (_dask_partitions if dask_data else _numpy_partitions)(client, model, data, names)

    def step_pass(idx: np.ndarray | None) -> float:
        shares = [None] * len(parts.futures) if idx is None else parts.split(idx)
        current = {p: model.params[p].copy() for p in spec["params"]}   # (the step updates them in place)
        for attempt in range(RETRIES + 1):
            tasks = [client.submit(share_sums, source, current, local, *futures, pure=False, retries=RETRIES)
                     for local, futures in zip(shares, parts.futures) if local is None or len(local)]
            try:
                answers = client.gather(tasks)
                break
            except CancelledError:                    # a partition's data went with its worker
                if attempt == RETRIES or not parts.restore(client):
                    raise
        return model._shares_pass(parts.samples if idx is None else len(idx), answers)

    return parts.samples, step_pass
