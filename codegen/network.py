"""The runtime of a generated spiking network (LANGUAGE §16): its variables, spike inputs and
the clock, around the kernel codegen.spiking emits.

    net = module.Song(seed=1)                  # variables at their initial values
    run = net.simulate({"pre": trains}, duration=1.0, record={"w": [0, 1]})
    run.spikes["post"]                         # (steps, neurons) of every spike
    run.traces["w"]                            # [steps, 2, components]: w of synapses 0 and 1
                                               # (keyed GROUP.NAME where two groups have the name)
    net.values["S"]["w"]                       # the learned weights, [synapses, components]

simulate goes on from where the last call stopped (net.step); a spike input is a 0/1 array of
[steps, channels] from the current step, or {"index": ..., "step": ...} or {"index": ...,
"time": ...} (seconds from the start, on the grid of dt) as Brian2's SpikeGeneratorGroup takes
them; phg.spikes.poisson draws Poisson trains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


# Steps in one simulate call (the clock is an int64 in the kernel), and the bytes its records may take.
MAX_STEPS = 2 ** 40
MAX_RECORD_BYTES = 4 << 30


class SimulationError(ValueError):
    """Bad input to simulate, naming the argument."""


@dataclass
class Simulation:
    """What one simulate call produced."""
    spikes: dict[str, tuple[np.ndarray, np.ndarray]]       # group -> (steps, neurons)
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    steps: tuple[int, int] = (0, 0)                          # the clock's steps run, [from, to)
    dt: float = 0.0
    sizes: dict[str, int] = field(default_factory=dict)       # group -> neurons

    def rate(self, group: str, since: float | None = None) -> float:
        """The mean firing rate of the group's neurons in Hz over the run (or its part from `since`
        seconds on the network's clock)."""
        if group not in self.spikes:
            raise KeyError(f"{group!r} is not a neuron group that spikes; these are {', '.join(self.spikes) or '(none)'}")
        steps, _ = self.spikes[group]
        start = self.steps[0] if since is None else max(self.steps[0], int(round(since / self.dt)))
        span = (self.steps[1] - start) * self.dt * self.sizes[group]
        return float(np.sum(steps >= start)) / span if span > 0 else 0.0


class NetworkBase:
    SPEC: dict = {}
    _simulate_kernel = None

    def __init__(self, seed: int | None = None):
        spec = self.SPEC
        rng = np.random.default_rng(spec["seed"] if seed is None else seed)
        self.values: dict[str, dict[str, np.ndarray]] = {}
        for owner, name, rows, width, init in spec["variables"]:
            self.values.setdefault(owner, {})[name] = _initial(init, rows, width, rng, spec["layouts"][owner][name])
        self._last = [np.zeros(rows) for *_, rows in spec["synapses"]]
        self.step = 0
        self.dt = spec["dt"]

    # ---- the clock ------------------------------------------------------------------------------
    def simulate(self, inputs: Mapping | None = None, duration: float | None = None, steps: int | None = None,
                 record: Mapping | None = None, dt: float | None = None) -> Simulation:
        spec = self.SPEC
        dt = self._time_step(dt)
        count = _steps(duration, steps, dt)
        s0, s1 = self.step, self.step + count
        trains = self._trains(inputs or {}, s0, s1, dt)
        records = self._records(record or {}, count)
        self._check_values()
        self.dt = dt                             # every argument checked: the network may change now
        propagators = self._propagators(dt)
        buffers = self._buffers()
        at = s0
        while at < s1:
            at = self._simulate_kernel(*self._arguments(at, s1, dt, s0, trains, records, propagators, buffers))
            if at < s1:                      # a spike buffer could overflow: double it, go on
                for (_, rows), b in zip(spec["spiking"], buffers):
                    if b[2][0] + rows > b[0].shape[0]:
                        b[0] = np.concatenate([b[0], np.empty_like(b[0])])
                        b[1] = np.concatenate([b[1], np.empty_like(b[1])])
        self.step = s1
        spikes = {g: (b[0][:b[2][0]].copy(), b[1][:b[2][0]].copy()) for (g, _), b in zip(spec["spiking"], buffers)}
        shared = {n for n in (v[1] for v in spec["variables"]) if sum(v[1] == n for v in spec["variables"]) > 1}
        traces = {f"{owner}.{name}" if name in shared else name: r[1]
                  for (owner, name, *_), r in zip(spec["variables"], records) if r[0].size}
        return Simulation(spikes, traces, (s0, s1), dt, dict(spec["groups"]))

    def _buffers(self) -> list:
        """Each spiking group's spike buffers (steps, neurons, count), 4 spikes a neuron to start."""
        return [[np.empty(max(16, 4 * rows), np.int64), np.empty(max(16, 4 * rows), np.int64), np.zeros(1, np.int64)]
                for _, rows in self.SPEC["spiking"]]

    def _arguments(self, at, s1, dt, s0, trains, records, propagators, buffers) -> tuple:
        """The kernel's arguments, in codegen.spiking.Layout's order."""
        arrays = [self.values[owner][name] for owner, name, *_ in self.SPEC["variables"]]
        return (at, s1, dt, *arrays, *self._last, *propagators, *[x for t in trains for x in t],
                *[x for b in buffers for x in b], *[x for r in records for x in r], s0)

    def _compile_arguments(self) -> tuple:
        """The kernel's arguments for a run of no steps, typed as simulate passes them
        (codegen.compiling compiles the kernel for them)."""
        dt = self.dt or 1e-4
        return self._arguments(0, 0, dt, 0, self._trains({}, 0, 0, dt), self._records({}, 0), self._propagators(dt),
                               self._buffers())

    def _propagators(self, dt: float) -> list[np.ndarray]:
        """Each exactly integrated group's (e^(A dt), its affine part), in the kernel's order."""
        return [a for g in self.SPEC["exact"] for a in _propagator(self.SPEC["linear"][g], dt)]

    def _time_step(self, dt) -> float:
        dt = self.dt if dt is None else dt
        if dt is None:
            raise SimulationError(f"dt: network {self.SPEC['name']} has no `dt` in a simulate block; give "
                                  "simulate(..., dt=SECONDS)")
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
            raise SimulationError(f"dt: expected a time step in seconds > 0, got {dt!r}")
        if self.step and dt != self.dt:
            raise SimulationError(f"dt: the network has run with dt {self.dt}; a run goes on with the same step")
        return float(dt)

    def _check_values(self):
        """Every variable as the kernel reads it: float64 rows of its components, finite."""
        for owner, name, rows, width, _ in self.SPEC["variables"]:
            x = self.values.get(owner, {}).get(name) if isinstance(self.values, dict) else None
            if not (isinstance(x, np.ndarray) and x.dtype == np.float64 and x.shape == (rows, width)
                    and x.flags.c_contiguous and x.flags.writeable):
                got = f"shape {list(x.shape)} of {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
                raise SimulationError(f"values[{owner!r}][{name!r}]: expected a writeable float64 array of "
                                      f"[{rows}, {width}], got {got}")
            if not np.all(np.isfinite(x)):
                raise SimulationError(f"values[{owner!r}][{name!r}]: not every number is finite")

    def _trains(self, inputs: Mapping, s0: int, s1: int, dt: float) -> list:
        spec = self.SPEC
        if not isinstance(inputs, Mapping):
            raise SimulationError(f"inputs: expected a dict of spike trains by input name, got {type(inputs).__name__}")
        unknown = [k for k in inputs if k not in spec["inputs"]]
        if unknown:
            raise SimulationError(f"inputs: {unknown[0]!r} is not a spike input of network {spec['name']}; "
                                  f"its inputs are {', '.join(spec['inputs']) or '(none)'}")
        out = []
        for name, channels in spec["inputs"].items():
            carried = spec["payloads"].get(name)
            step, index, payload = _train(inputs.get(name), name, channels, s0, s1, dt, carried)
            out.append((step, index, np.zeros(1, np.int64), payload))
        return out

    def _records(self, record: Mapping, count: int) -> list:
        spec = self.SPEC
        if not isinstance(record, Mapping):
            raise SimulationError(f"record: expected a dict of variable name -> indices, got {type(record).__name__}")
        names = {}
        for owner, name, rows, width, _ in spec["variables"]:
            names.setdefault(name, []).append(owner)
        chosen = {}
        for key in record:
            owner, _, name = key.rpartition(".") if isinstance(key, str) else ("", "", key)
            owners = names.get(name, [])
            if (owner and owner not in owners) or not owners:
                raise SimulationError(f"record: {key!r} is not a variable of network {spec['name']}; its variables "
                                      f"are {', '.join(names)} (or GROUP.NAME)")
            if not owner and len(owners) > 1:
                raise SimulationError(f"record: {key!r} names a variable of {' and '.join(owners)}: "
                                      f"give {owners[0]}.{name}")
            chosen[(owner or owners[0], name)] = record[key]
        out, size = [], 0
        for owner, name, rows, width, _ in spec["variables"]:
            wanted = chosen.get((owner, name))
            if wanted is None:
                out.append((np.zeros(0, np.int64), np.zeros((0, 0, width))))
                continue
            try:
                index = np.arange(rows) if isinstance(wanted, str) and wanted == "all" else np.asarray(wanted)
            except (TypeError, ValueError):
                index = np.zeros((0, 0))
            if index.ndim != 1 or (index.size and not np.issubdtype(index.dtype, np.integer)) or \
                    (index.size and (index.min() < 0 or index.max() >= rows)):
                raise SimulationError(f"record: {name} needs a list of indices in [0, {rows}) or \"all\"")
            size += count * index.size * width * 8
            if size > MAX_RECORD_BYTES:
                raise SimulationError(f"record: {count:,} steps of what is asked take {size:,} bytes, over "
                                      f"{MAX_RECORD_BYTES:,}: record fewer indices, or simulate in parts")
            out.append((index.astype(np.int64), np.zeros((count, index.size, width))))
        return out


def _steps(duration, steps, dt) -> int:
    if (duration is None) == (steps is None):
        raise SimulationError("duration: give either duration (seconds) or steps")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= MAX_STEPS:
            raise SimulationError(f"steps: expected a whole number from 0 to {MAX_STEPS:,}, got {steps!r}")
        return int(steps)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration < 0 or duration / dt > MAX_STEPS:
        raise SimulationError(f"duration: expected seconds >= 0, at most {MAX_STEPS:,} steps of {dt} s, "
                              f"got {duration!r}")
    return int(round(duration / dt))


def _train(given, name: str, channels: int, s0: int, s1: int, dt: float, carried=None) -> tuple:
    """(steps, channels, payloads) of the spikes of [s0, s1), sorted by step then channel;
    `carried`: (the payload's name, its components) where the input's spikes carry one."""
    width = carried[1] if carried else 0
    if given is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, width))
    payload = None
    if carried and not (isinstance(given, Mapping) and carried[0] in given):
        raise SimulationError(f"inputs[{name!r}]: its spikes carry {carried[0]}: give {{'index': ..., 'step': ..., "
                              f"{carried[0]!r}: [spikes, {width}]}}")
    if isinstance(given, Mapping):
        if "index" not in given or ("step" in given) == ("time" in given):
            raise SimulationError(f"inputs[{name!r}]: expected {{'index': ..., 'step': ...}} or {{'index': ..., "
                                  "'time': ...}")
        try:
            index = np.asarray(given["index"])
        except (TypeError, ValueError):
            raise SimulationError(f"inputs[{name!r}]['index']: expected a 1-d array of channels") from None
        if "time" in given:
            try:
                time = np.asarray(given["time"], dtype=np.float64)
            except (TypeError, ValueError):
                raise SimulationError(f"inputs[{name!r}]['time']: expected numbers (seconds)") from None
            if not np.all(np.isfinite(time)):
                raise SimulationError(f"inputs[{name!r}]['time']: times must be finite")
            step = np.round(time / dt)
            if np.any(np.abs(step * dt - time) > 1e-9 * np.maximum(np.abs(time), dt)):
                raise SimulationError(f"inputs[{name!r}]['time']: a spike time is not on the grid of dt {dt}")
        else:
            try:
                step = np.asarray(given["step"])
            except (TypeError, ValueError):
                raise SimulationError(f"inputs[{name!r}]['step']: expected a 1-d array of steps") from None
            if step.size and not np.issubdtype(step.dtype, np.integer):
                raise SimulationError(f"inputs[{name!r}]['step']: expected whole step numbers, got {step.dtype}")
        if index.shape != step.shape or index.ndim != 1:
            raise SimulationError(f"inputs[{name!r}]: index and {'time' if 'time' in given else 'step'} must be "
                                  "1-d arrays of one length")
        if index.size and (not np.issubdtype(index.dtype, np.integer) or index.min() < 0 or index.max() >= channels):
            raise SimulationError(f"inputs[{name!r}]['index']: expected channels in [0, {channels})")
        if carried:
            try:
                payload = np.asarray(given[carried[0]], dtype=np.float64)
            except (TypeError, ValueError):
                payload = np.zeros((0, 0))
            if payload.ndim == 1 and width == 1:
                payload = payload[:, None]
            if payload.shape != (index.size, width) or not np.all(np.isfinite(payload)):
                raise SimulationError(f"inputs[{name!r}][{carried[0]!r}]: expected finite numbers of [spikes, {width}] "
                                      f"(one row a spike), got shape {list(payload.shape)}")
        step = step.astype(np.int64)
        if np.any(step < 0):
            raise SimulationError(f"inputs[{name!r}]: a spike before the start (step < 0)")
        index = index.astype(np.int64)
    else:
        spikes = np.asarray(given)
        if spikes.ndim != 2 or spikes.shape[1] != channels:
            raise SimulationError(f"inputs[{name!r}]: expected a 0/1 array of [steps, {channels}] from the current "
                                  f"step, got shape {list(spikes.shape)}")
        step, index = np.nonzero(spikes)
        step = step.astype(np.int64) + s0
        index = index.astype(np.int64)
    payload = np.zeros((step.size, width)) if payload is None else payload
    keep = (step >= s0) & (step < s1)
    step, index, payload = step[keep], index[keep], payload[keep]
    order = np.lexsort((index, step))
    step, index, payload = step[order], index[order], payload[order]
    if step.size > 1 and np.any((np.diff(step) == 0) & (np.diff(index) == 0)):
        raise SimulationError(f"inputs[{name!r}]: a channel spikes twice in one step")
    return np.ascontiguousarray(step), np.ascontiguousarray(index), np.ascontiguousarray(payload)


def _initial(init: dict, rows: int, width: int, rng, layout: list[str]) -> np.ndarray:
    if init["kind"] == "const":
        row = np.array([init["value"].get(b, 0.0) for b in layout], dtype=np.float64)
        return np.tile(row, (rows, 1))
    if init["kind"] == "normal":
        return rng.normal(0.0, init["args"][0], size=(rows, width))
    return rng.uniform(init["args"][0], init["args"][1], size=(rows, width))


def _propagator(linear, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(e^(A dt), the integral of e^(A s) ds over [0, dt] times b): the exact step of dx/dt = A x + b,
    from the exponential of [[A, b], [0, 0]] dt."""
    from scipy.linalg import expm

    a, b = (np.asarray(x, dtype=np.float64) for x in linear)
    k = a.shape[0]
    m = np.zeros((k + 1, k + 1))
    m[:k, :k], m[:k, k] = a * dt, b * dt
    e = expm(m)
    return np.ascontiguousarray(e[:k, :k]), np.ascontiguousarray(e[:k, k])
