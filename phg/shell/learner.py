"""`phg serve --learn` (LANGUAGE §14): train while serving.

Labelled samples posted to /observe go into a window of the most recent ones.  A thread of its own
trains a copy of the active version on the window's training part, compares its mean loss on the
held-out part (every HOLDOUT-th sample, the same for both) with the active version's, and where it
is lower signs a record of the copy (lineage: the parent version, the sha256 of the window's data,
the steps, the seed) and rotates it in through the same checks as any rotation.  A stream that
drifts is followed: the window forgets the old samples, and each round starts from the version
that is serving.
"""
from __future__ import annotations

import hashlib
import threading
import time

import numpy as np

from phg.shell import records as R

HOLDOUT = 4                 # every 4th sample observed is held out


class Learner:
    def __init__(self, service, window: int = 4096, steps: int = 100, every: float = 1.0, least: int = 256,
                 key=None):
        self.service, self.window, self.steps, self.every, self.least = service, window, steps, every, least
        self.key = key
        self.lock = threading.Lock()
        self.data: dict[str, np.ndarray] | None = None
        self.held = 0                   # samples in the window
        self.seen = 0                   # samples observed since the start
        self.trained_on = 0             # `seen` at the last round
        self.stop = threading.Event()
        self.rounds = self.improved = 0
        self.last_error: str | None = None
        self.thread = threading.Thread(target=self._run, name="phg-learner", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def observe(self, inputs: dict[str, np.ndarray]) -> int:
        """Add labelled samples (arrays named after the train block's inputs, checked as fit checks
        them); returns how many the window holds.  ValueError for samples that are not right."""
        model = self.service.active.model
        names = model.SPEC["train"]["inputs"]
        arrays, n = model._inputs(inputs, names, training=True)
        with self.lock:
            if self.data is None:
                self.data = {k: np.zeros((self.window, *a.shape[1:])) for k, a in zip(names, arrays)}
            kept = min(n, self.window)                  # of a batch larger than the window, its last
            rows = (self.seen + np.arange(kept)) % self.window       # a ring: the oldest go first
            for k, a in zip(names, arrays):
                self.data[k][rows] = a[n - kept:]
            self.seen += kept
            self.held = min(self.window, self.held + kept)
            return self.held

    def _snapshot(self):
        with self.lock:
            if self.data is None or self.seen - self.trained_on < self.least or self.held < 2 * HOLDOUT:
                return None
            self.trained_on = self.seen
            data = {k: v[:self.held].copy() for k, v in self.data.items()}
        digest = hashlib.sha256()
        for k in sorted(data):
            digest.update(k.encode() + b"\0" + data[k].tobytes())
        out = np.arange(len(next(iter(data.values())))) % HOLDOUT == 0
        return ({k: v[~out] for k, v in data.items()}, {k: v[out] for k, v in data.items()}, digest.hexdigest())

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.round()
            except Exception as exc:          # a round that fails leaves the serving version as it is
                self.last_error = f"{type(exc).__name__}: {exc}"

    def round(self) -> int | None:
        """One round: the new version's number where one was rotated in, else None."""
        snap = self._snapshot()
        if snap is None:
            return None
        train, held_out, data_sha = snap
        active = self.service.active
        self.rounds += 1
        seed = self.rounds
        copy = type(active.model)(seed=seed)
        copy.params = dict(active.model.params)
        copy.fit(train, steps=self.steps)
        before, after = active.model.loss(**held_out), copy.loss(**held_out)
        if not after < before:
            return None
        params = copy.params.arrays()
        record = R.make(model=active.record["model"], source_sha256=self.service.source_sha256,
                        cert=self.service.cert, params=params, module_sha256=self.service.module_sha256,
                        previous=active.record, key=self.key,
                        lineage={"parent": active.number, "data": data_sha, "steps": self.steps, "seed": seed},
                        paths=self.service.history_paths(active.number + 1))
        version, _ = self.service.rotate(record, params)
        self.improved += 1
        return version.number

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
