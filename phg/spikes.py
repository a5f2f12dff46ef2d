"""Spike trains for a network's spike inputs (LANGUAGE §16)."""
from __future__ import annotations

import math

import numpy as np


def poisson(channels: int, rate: float, dt: float, duration: float | None = None, steps: int | None = None,
            seed: int | None = None, start: int = 0) -> dict[str, np.ndarray]:
    """Independent Poisson trains on the clock of dt, as {"index": channels, "step": steps} sorted by
    step then channel (what a network's simulate takes).  Each channel spikes in a step with
    probability rate * dt, independently of every other step: Brian2's PoissonGroup.  The gaps
    between spikes are drawn (geometric, of that probability) rather than a number per step, so a
    train costs its spikes, not its steps."""
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 0:
        raise ValueError(f"channels: expected a whole number >= 0, got {channels!r}")
    for name, x in (("rate", rate), ("dt", dt)):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
            raise ValueError(f"{name}: expected a finite number >= 0, got {x!r}")
    if not dt > 0:
        raise ValueError("dt: expected a time step > 0")
    if (duration is None) == (steps is None):
        raise ValueError("duration: give either duration (seconds) or steps")
    total = int(steps) if steps is not None else int(round(duration / dt))
    p = rate * dt
    if p >= 1:
        raise ValueError(f"rate: {rate} Hz spikes at every step of {dt} s (rate * dt = {p:g} >= 1)")
    rng = np.random.default_rng(seed)
    if p == 0 or total <= 0 or channels == 0:
        return {"index": np.zeros(0, np.int64), "step": np.zeros(0, np.int64)}
    mean = total * p
    width = int(mean + 6 * math.sqrt(mean) + 16)
    found = []
    reached = np.full(channels, -1, np.int64)           # each channel's last step drawn
    open_ = np.arange(channels)
    while open_.size:
        gaps = rng.geometric(p, size=(open_.size, width)).astype(np.int64)
        at = reached[open_, None] + np.cumsum(gaps, axis=1)
        inside = at < total
        rows, cols = np.nonzero(inside)
        found.append((at[rows, cols], open_[rows]))
        reached[open_] = at[:, -1]
        open_ = open_[reached[open_] < total]
    step = np.concatenate([s for s, _ in found]) + start
    index = np.concatenate([i for _, i in found])
    order = np.lexsort((index, step))
    return {"index": index[order], "step": step[order]}
