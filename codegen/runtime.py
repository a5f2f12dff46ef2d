"""What every generated model class shares: parameter initialisation, layouts, and the checks
that turn a wrong array into a clear ValueError before any kernel sees it."""
from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np

from phg.numeric import FORMATS, QUIRE_PRODUCTS
from phg.plan.buffers import DIGITS, slots
from phg.plan.kernel import STEP_BUFFERS, TOTAL_BUFFERS
from phg.program import MAX_STEPS, OPTIMIZERS, hyper_problem

from .opaque import bind
from .optimizers import KINDS, direction
from .parameters import Declared, Parameters, array, batch_of, declared, finite, require_finite_samples
from .accumulate import (BLOCK_HI, BLOCK_LO, FULL, WINDOWS, close, complete, digit_totals, mark_needed, next_block,
                         odd_totals, round_digits, totals, unmark)
from .rounds import exact_pass
from .spread import SHARE, prepare, shares_of, spread, threads

# Exact totals below which a share of them is not worth a thread (each takes some 0.1 us).
TOTALS_PER_PIECE = 2048


class TrainingDiverged(ArithmeticError):
    """A step whose loss, gradient or update is not finite (a learning rate too large, a loss that
    overflows).  The parameters are left as they were before that step; `history` holds the
    losses of the steps fit() completed."""

    def __init__(self, message: str, history: np.ndarray | None = None):
        super().__init__(message)
        self.history = history if history is not None else np.empty(0)


def _count(name: str, value, default):
    """A positive integer setting of fit(), or None where not given (bool is not a count)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return int(value)


class Validation:
    """fit()'s validation set: its mean loss every `every` steps and after the last, and early
    stopping after `patience` evaluations without a new lowest (the parameters then go back to
    the lowest's).  The result is the model's `validation`."""

    def __init__(self, model, data, patience, every):
        if data is None:
            raise ValueError("patience and validate_every watch a validation set; give it as "
                             "validation={input name: array}")
        if not isinstance(data, Mapping):
            raise TypeError(f"validation takes a mapping {{input name: array}} like fit's data, got {type(data).__name__}")
        names = model._training()["inputs"]
        if not names:
            raise ValueError(f"{model.SPEC['name']}'s loss reads no input, so there is nothing to validate on")
        self.arrays, self.n = model._inputs(data, names, training=True)
        if self.n == 0:
            raise ValueError(f"the validation set is empty: input {names[0]!r} has 0 samples")
        self.model, self.patience, self.every = model, _count("patience", patience, None), _count("validate_every", every, None)
        model.validation = None

    def begin(self, per_epoch: int, total: int) -> None:
        self.every = self.every or per_epoch
        self.total, self.steps, self.losses = total, [], []
        self.best, self.best_params, self.waited = math.inf, None, 0

    def after(self, k: int) -> bool:
        """After step k: whether the fit stops (patience ran out; the best parameters restored)."""
        if (k + 1) % self.every and k + 1 < self.total:
            return False
        model = self.model
        loss = model._train_pass(self.arrays, self.n, versors=False)
        self.steps.append(k + 1)
        self.losses.append(loss)
        if loss < self.best:
            self.best, self.waited = loss, 0
            self.best_params = {n: v.copy() for n, v in model.params.items()} if self.patience else None
        else:
            self.waited += 1
        stop = self.patience is not None and self.waited >= self.patience
        if stop:
            for name, value in self.best_params.items():
                np.copyto(model.params[name], value)
        model.validation = {"step": np.array(self.steps), "loss": np.array(self.losses),
                            "best": self.steps[int(np.argmin(self.losses))], "stopped": stop}
        return stop


def _hyper_tuple(hyper: Mapping) -> tuple[float, ...]:
    """An optimizer's settings in direction()'s order; those it has not, at prm's defaults."""
    return tuple(float({**OPTIMIZERS["prm"], **hyper}[k]) for k in ("lr", "beta1", "beta2", "eps", "softness"))


def learning_rate(schedule):
    """fit()'s schedule as a function (k, total) -> the factor of lr at step k (see fit)."""
    if schedule is None or schedule == "constant":
        return lambda k, total: 1.0
    if schedule == "cosine":
        return lambda k, total: 0.5 * (1.0 + math.cos(math.pi * k / total))
    if isinstance(schedule, tuple) and len(schedule) == 3 and schedule[0] == "step":
        _, every, factor = schedule
        if isinstance(every, bool) or not isinstance(every, Integral) or every < 1:
            raise ValueError(f"a step schedule's EVERY must be a positive integer, got {every!r}")
        if isinstance(factor, bool) or not isinstance(factor, Real) or not 0 < factor <= 1:
            raise ValueError(f"a step schedule's FACTOR must lie in (0, 1], got {factor!r}")
        return lambda k, total: float(factor) ** (k // every)
    if callable(schedule):
        def rate(k, total):
            factor = schedule(k, total)
            if isinstance(factor, bool) or not isinstance(factor, Real) or not math.isfinite(factor) or factor < 0:
                raise ValueError(f"the schedule gave {factor!r} at step {k}; expected a finite number >= 0")
            return float(factor)
        return rate
    raise ValueError(f"unknown schedule {schedule!r}; expected \"constant\", \"cosine\", (\"step\", EVERY, FACTOR) "
                     "or a function (k, total) -> factor of lr")


class ModelBase:
    SPEC: dict = {}
    # the last fit's validation losses (fit's validation): {"step", "loss", "best", "stopped"}
    validation = None
    # optimizer cma's kernel of a generation's losses (codegen.population), where the model has one
    _population_kernel = None
    # per-sample adjoints of the loss with respect to the inputs (codegen.vjp), where generated
    _inputs_kernel = None
    # a Rotor/Motor parameter's log(~R0 R) and its adjoint, where log() is generated (codegen.relative)
    _relative: dict = {}
    # (symbol, function) of the loop plan's parts its kernels call by address (codegen.opaque)
    _parts: tuple = ()

    def __init__(self, seed: int | None = None):
        """Initial parameters drawn with `seed`; by default the train block's seed (0 without one),
        so that Model() starts where phg train starts."""
        bind(self._parts)                    # before any kernel of the class is compiled or loaded
        prepare(blas=self.SPEC["predict"]["strategy"] == "loops")
        if seed is None:
            seed = (self.SPEC.get("train") or {}).get("settings", {}).get("seed", 0)
        rng = np.random.default_rng(seed)
        values = {}
        for name, p in self.SPEC["params"].items():
            shape = (*p["shape"], len(p["layout"]))
            init = p["init"] or {"kind": "const", "value": {}}
            if init["kind"] == "normal":
                value = rng.normal(0.0, init["args"][0], size=shape)
            elif init["kind"] == "uniform":
                value = rng.uniform(init["args"][0], init["args"][1], size=shape)
            else:
                value = np.zeros(shape)
                for blade, c in init["value"].items():
                    value[..., p["layout"].index(blade)] = c
            values[name] = value
        self._parameters = Parameters(self.SPEC["name"], self.SPEC["params"], values,
                                      self.SPEC.get("numeric", "float64"))
        self._declared = Declared(self._parameters)

    @property
    def params(self) -> Declared:
        """name -> float64 array [*channels, components] (a Scalar's [*channels]), checked when
        assigned (see codegen.parameters)."""
        return self._declared

    @params.setter
    def params(self, values: Mapping):
        missing = [n for n in self.SPEC["params"] if n not in values]
        if missing:
            raise ValueError(f"assigning params replaces every parameter, and {missing[0]!r} is missing; "
                             f"to set some, use params.update(...)")
        self._parameters.update(values)

    def __repr__(self) -> str:
        return f"<{self.SPEC['name']} model: params {', '.join(self.params)}>"

    def layout(self, name: str) -> list[str]:
        """The blades, in canonical order, of a parameter's, input's or output's last axis."""
        for group in ("params", "inputs", "outputs"):
            if name in self.SPEC[group]:
                return list(self.SPEC[group][name]["layout"])
        known = sorted({*self.SPEC["params"], *self.SPEC["inputs"], *self.SPEC["outputs"]})
        raise KeyError(f"{self.SPEC['name']} has no value {name!r}; it has {', '.join(known)}")

    # ---- checking arrays ------------------------------------------------------------------------
    def _inputs(self, given: dict, needed: list[str], training: bool = False) -> tuple[list[np.ndarray], int]:
        """The needed inputs checked and as float64; with `training` (fit's data set) also finite
        (one non-finite sample makes the mean loss, and after one step every parameter,
        non-finite).  loss, grad and step check the samples only when the step's result is not
        finite (_run_train_kernel).  Inference is per sample, so it keeps a NaN where it was given
        one."""
        self._require_names(given, needed)
        checked = {n: batch_of(n, a, self.SPEC["inputs"][n]) for n, a in given.items()}
        if training:
            for n in needed:
                require_finite_samples(n, checked[n])
        sizes = {n: a.shape[0] for n, a in checked.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError("inputs disagree on the number of samples: " +
                             ", ".join(f"{n} has {k}" for n, k in sizes.items()))
        # With no input the outputs depend on (parameters only), the batch size comes from the others.
        return [checked[n] for n in needed], next(iter(sizes.values()), 1)

    def _require_names(self, given: Mapping, needed: list[str]) -> None:
        """A ValueError unless `given` names inputs of the model, every needed one among them."""
        unknown = sorted(set(given) - set(self.SPEC["inputs"]))
        if unknown:
            raise ValueError(f"{self.SPEC['name']} has no input {unknown[0]!r}; its inputs are "
                             f"{', '.join(self.SPEC['inputs'])}")
        missing = [n for n in needed if n not in given]
        if missing:
            raise ValueError(f"missing input {missing[0]!r} (needed: {', '.join(needed)})")

    def _params(self, names: list[str], versors: bool = True) -> list[np.ndarray]:
        """The stored arrays, checked again: they may have been edited in place since assigned.
        loss and grad (versors False) are functions of the stored coefficients, also of a Rotor or
        Motor's off its manifold (params.set_unnormalised); predict and step need the versor."""
        for n in names:
            stored = self._parameters[n]
            array(f"parameter {n!r}", stored, self.SPEC["params"][n], False)
            if stored.dtype != np.float64 or not stored.flags.c_contiguous or not stored.flags.writeable:
                self._parameters.set_unnormalised(n, stored)     # a copy kernels can read and steps update
            self._parameters.require_valid(n, self._parameters[n], versor=versors)
        return [self._parameters[n] for n in names]

    # ---- inference ------------------------------------------------------------------------------
    def predict(self, /, **inputs) -> dict[str, np.ndarray]:
        """Every output for a batch: {'name': array [N, *channels, components]}.  Inputs no output
        depends on may be passed (a whole data set) and are ignored.  (self is positional-only in
        predict, loss, grad and step, so that an input may be named self.)"""
        return self._predict(inputs)

    def _predict(self, inputs: Mapping, versors: bool = True) -> dict[str, np.ndarray]:
        """predict; without `versors`, a function of the stored coefficients, also of a Rotor's or
        Motor's off its manifold (as loss and grad: phg.torch's forward, finite differences)."""
        plan = self.SPEC["predict"]
        arrays, n = self._inputs(inputs, plan["inputs"])
        outs = {o: np.empty((n, *self.SPEC["outputs"][o]["shape"], len(self.SPEC["outputs"][o]["layout"])))
                for o in plan["outputs"]}
        args = (*arrays, *self._params(plan["params"], versors), *outs.values())
        shares = shares_of(n, n * plan["work"] // SHARE)
        tiles = [shape for role, _, shape, _, _ in plan["buffers"] if role == "tiles"]
        if tiles:           # the loop strategy: a workspace per thread, the kernel plan's (phg.plan.buffers)
            spread(self._predict_kernel, (*args, np.zeros((shares, *tiles[0]))), n, shares, blas=True, indexed=True)
        else:
            spread(self._predict_kernel, args, n, shares)
        return outs

    # ---- training -------------------------------------------------------------------------------
    def _training(self) -> dict:
        spec = self.SPEC.get("train")
        if spec is None:
            raise ValueError(f"{self.SPEC['name']} has no loss, so it cannot be trained; add `loss EXPR` to the model")
        return spec

    def _plan(self) -> dict:
        """Every buffer a step touches, allocated once: the kernel plan's list (phg.plan.buffers),
        which the certificate's memory bound adds up."""
        if getattr(self, "_buffers", None) is None:
            spec = self._training()
            settings = spec["settings"]
            b = {"grads": {}, "before": {}, "tangent": {}, "state": {}, "axes": {}}
            b["threads"] = threads()                  # the rows of per-thread buffers
            for role, param, shape, dtype, axis in spec["buffers"]:
                if role == "search_scratch":              # what a generation allocates and frees
                    continue
                shape = (b["threads"], *shape) if axis == "threads" else tuple(shape)
                # the grids are unknown until a first pass
                array = np.full(shape, np.nan) if role == "grid" else np.zeros(shape, dtype)
                if param is None:
                    b[role] = array
                    b["axes"][role] = axis
                else:
                    b[role][param] = array
            b["t"] = 0
            b["grids"] = False                    # whether a step has set the exact sums' grids
            b["hyper"] = _hyper_tuple(settings["hyper"])
            self._buffers = b
        return self._buffers

    def _run_train_kernel(self, inputs: dict, versors: bool = True) -> float:
        spec = self._training()
        arrays, n = self._inputs(inputs, spec["inputs"])
        if n == 0:
            raise ValueError("an empty batch has no mean loss; pass at least one sample")
        if n > QUIRE_PRODUCTS and "numeric" in self.SPEC and FORMATS[self.SPEC["numeric"]].is_posit:
            raise ValueError(f"a batch of {n:,} samples is more than the {self.SPEC['numeric']} quire sums exactly "
                             f"({QUIRE_PRODUCTS:,}); split it")
        loss = self._train_pass(arrays, n, versors)
        # A non-finite sample shows in the loss or a gradient; only then are the samples read
        # again, to name it (a pass over the batch that the kernel's own pass makes unnecessary).
        if not (np.isfinite(loss) and all(finite(g) for g in self._buffers["grads"].values())):
            for name, a in zip(spec["inputs"], arrays):
                require_finite_samples(name, a)
        return loss

    def _train_pass(self, arrays: list[np.ndarray], n: int, versors: bool = True) -> float:
        params = self._params(self._training()["params"], versors)
        k, used = self._accumulate(arrays, params, n)
        return self._finish(arrays, params, n, k, used)

    def _accumulate(self, arrays: list[np.ndarray], params: list[np.ndarray], n: int,
                    digits: np.ndarray | None = None) -> tuple[int, list]:
        """The slots pass over n samples; with exact sums, their totals read into the plan's sums,
        or with `digits` ([sums, DIGITS + 1] int64, codegen.accumulate.digit_totals) kept as digits
        and the rows left clear (a share of a batch summed elsewhere: codegen.cluster).  (slots,
        the step buffers used)."""
        spec = self._training()
        b = self._plan()
        k = slots(n)
        shares = shares_of(k, n * spec["stack_symbols"] // SHARE, b["threads"])
        # leading rows, still contiguous: a slot's rows of the first k, a thread's of the first `shares`
        used = [b[role][:shares] if b["axes"][role] == "threads" else b[role][:k] for _, role in STEP_BUFFERS]
        exact = spec["settings"]["accumulate"] == "exact"
        if exact and spec["strategy"] == "loops":       # one row, which the threads share, in rounds of tiles
            slots_pass = functools.partial(exact_pass, self._slots_kernel, (*arrays, *params, n, k, *used), n, used,
                                           spec["terms_per_sample"], shares, b)
        else:
            slots_pass = functools.partial(spread, self._slots_kernel, (*arrays, *params, n, k, *used), k, shares,
                                           blas=spec["strategy"] == "loops", most=shares, indexed=True)
        slots_pass()
        if exact:
            self._exact_totals(slots_pass, used, digits)
            if digits is not None or spec["strategy"] == "fused":   # (a loop step's kernel clears its own)
                acc, grid, deposits, ranges = used[:4]
                close(acc, ranges, deposits, grid)
        return k, used

    def _finish(self, arrays: list[np.ndarray], params: list[np.ndarray], n: int, k: int, used: list) -> float:
        """The step's loss and gradient from the sums the slots left (exact: read into the plan's
        sums; float: in the slots' rows), over n samples."""
        spec = self._training()
        b = self._buffers
        self._train_kernel(*arrays, *params, n, k, *used, *(b[role] for _, role in TOTAL_BUFFERS),
                           *(b["grads"][p] for p in spec["params"]))
        return float(b["loss"][0])

    def _share_sums(self, arrays: list[np.ndarray], n: int) -> np.ndarray:
        """A share of a step's batch, n samples, summed for a cluster (codegen.cluster): with exact
        sums, each sum's digits [sums, DIGITS + 1] (codegen.accumulate.digit_totals); with float
        sums, the slots' rows added in the order a step's kernel adds them [sums]."""
        spec = self._training()
        params = self._params(spec["params"])
        rows = len(self._plan()["sums"])
        if spec["settings"]["accumulate"] == "exact":
            digits = np.zeros((rows, DIGITS + 1), np.int64)
            self._accumulate(arrays, params, n, digits)
            return digits
        k, used = self._accumulate(arrays, params, n)
        total = np.zeros(rows)
        for row in used[0][:k]:
            total += row
        return total

    def _shares_pass(self, n: int, shares: list[np.ndarray]) -> float:
        """The loss and gradient of a step over a batch of n samples from its shares' sums
        (_share_sums): digits added as integers and each sum rounded once, the same doubles as
        one process's exact totals whatever the shares; float sums added in the order given."""
        spec = self._training()
        b = self._plan()
        params = self._params(spec["params"])
        empty = [np.empty((0, *self.SPEC["inputs"][name]["shape"], len(self.SPEC["inputs"][name]["layout"])))
                 for name in spec["inputs"]]
        used = [b[role][:1] for _, role in STEP_BUFFERS]
        # the slots kernel on no samples: a loop step's invariant values in its first workspace
        # (which its kernel reads; a loop plan's exact one lays them out where its flag among the
        # locks says it has not), the rows left as the step's kernel closes them
        b["locks"][:] = 0
        self._slots_kernel(*empty, *params, 0, 1, *used, 0, 0, 1)
        exact = spec["settings"]["accumulate"] == "exact"
        total = np.zeros((len(b["sums"]), DIGITS + 1), np.int64) if exact else np.zeros(len(b["sums"]))
        for share in shares:
            if share.shape != total.shape or share.dtype != total.dtype:
                raise ValueError(f"a share's sums are {share.dtype}{list(share.shape)}, not the "
                                 f"{total.dtype}{list(total.shape)} of {self.SPEC['name']}'s step")
            total += share
        if exact:
            round_digits(total, b["sums"], "numeric" in self.SPEC)
        else:
            used[0][0] = total
        return self._finish(empty, params, n, 1, used)

    def _exact_totals(self, slots_pass, used: list, digits: np.ndarray | None = None) -> None:
        """The exact totals of a step's sums, whose slots pass just ran (into the plan's sums, or
        kept as `digits`): pieces of the sums side by side; the step's kernel then reads them.  A
        loop kernel's row keeps digits for few of its sums (codegen.accumulate: those whose terms
        its grids do not keep); where it found no room for some, their totals are not exact, the
        others' are.  On a first step (no grid yet, every
        term reaches the digits) the pass runs again on the grids its terms set; where room still
        runs out, the sums that found none are summed again, a block of as many as a row has
        columns at a time, the others' totals read as they are.  Exact whichever way it runs;
        only the time differs."""
        b = self._buffers
        acc, grid, deposits, ranges = used[:4]
        sums = b["sums"]
        rows = len(sums)
        full = lambda: any(r[rows + FULL] for r in ranges)  # noqa: E731

        # in a numeric format rounded to odd, which the step's kernel rounds to the format (LANGUAGE §11)
        read_totals, target = ((odd_totals if "numeric" in self.SPEC else totals), sums) if digits is None \
            else (digit_totals, digits)

        def read(q0: int, q1: int, needed: bool) -> None:
            pieces = shares_of((q1 - q0) // TOTALS_PER_PIECE, b["threads"], b["threads"])
            spread(read_totals, (acc, ranges, deposits, grid, target, b["work"], q0, q1, needed, pieces), pieces, pieces)

        if full() and not b["grids"]:
            close(acc, ranges, deposits, grid)
            slots_pass()
        b["grids"] = True
        read(0, rows, False)
        if not full():
            return
        mark_needed(ranges)
        close(acc, ranges, deposits, grid)
        q0, whole = next_block(ranges, 0, 0), False
        while q0 < rows:
            # a window for each sum of a block (WINDOWS a column); where one outgrows its window and
            # finds no column, the block's others are done and the rest try again, and where none
            # was done, with a whole column each (which cannot run out)
            q1 = next_block(ranges, q0, acc.shape[2] * (1 if whole else WINDOWS))
            for r in ranges:
                r[rows + BLOCK_LO], r[rows + BLOCK_HI] = (-1 - q0 if whole else q0), q1
            slots_pass()
            read(q0, q1, True)
            whole = complete(ranges, q0, q1) == 0
            close(acc, ranges, deposits, grid)
            q0 = next_block(ranges, q0, 0)
        unmark(ranges)

    def loss(self, /, **inputs) -> float:
        """The batch-mean loss."""
        return self._run_train_kernel(inputs, versors=False)

    def grad(self, /, **inputs) -> dict[str, np.ndarray]:
        """Gradients of the batch-mean loss with respect to every parameter's stored coefficients,
        keyed like params (Euclidean: a Rotor's manifold step uses its tangent, see step)."""
        self._run_train_kernel(inputs, versors=False)
        return {n: declared(self.SPEC["params"][n], g).copy() for n, g in self._buffers["grads"].items()}

    def step(self, /, **inputs) -> float:
        """One optimizer step on this batch (the train block's optimizer); returns the batch loss
        before the step.  Rotor and Motor parameters move by the exponential map.  With `cma`, a
        step is a generation, and it returns the best candidate's loss."""
        if self._training()["settings"]["optimizer"] == "cma":
            spec = self._training()
            arrays, n = self._inputs(inputs, spec["inputs"])
            return self._generation(arrays, n if spec["inputs"] else 1)
        return self._step(self._run_train_kernel(inputs))

    @property
    def search(self) -> dict:
        """With `optimizer cma`, the search distribution after the generations run so far: the
        fitted uncertainty (LANGUAGE §12).  "mean" and "covariance" (sigma^2 C) are over the
        coordinates listed in "coordinates" (per parameter: its coefficients, or for a Rotor or
        Motor its body-frame bivector coordinates at the parameter, whose mean is then zero: the
        parameter itself is the mean); also "sigma", "generation" and "evaluations"."""
        if self._training()["settings"]["optimizer"] != "cma":
            raise AttributeError(f"{self.SPEC['name']} trains with {self._training()['settings']['optimizer']}, "
                                 "not cma, so it has no search distribution")
        search, coords = self._evolution()
        return {**search.state(), "coordinates": list(coords)}

    def _coordinates(self) -> list[tuple[str, str, int, int]]:
        """(parameter, "tangent" or "coefficients", start, stop) of every parameter in one vector:
        a Rotor's or Motor's body-frame bivector coordinates, any other's coefficients (the
        coordinates of cma's search and of a prior, LANGUAGE §12, §13)."""
        spec = self._training()
        coords, start = [], 0
        for name, p in self.SPEC["params"].items():
            if name in spec["manifold"]:
                size = math.prod(p["shape"]) * len(spec["manifold"][name]["tangent"])
                kind = "tangent"
            else:
                size, kind = self._parameters[name].size, "coefficients"
            coords.append((name, kind, start, start + size))
            start += size
        return coords

    def _origin(self, coords) -> np.ndarray:
        """The parameters' own coordinates: their coefficients, and 0 for a Rotor or Motor (its
        coordinates are taken at itself)."""
        return np.concatenate([np.zeros(stop - start) if kind == "tangent" else self._parameters[name].reshape(-1)
                               for name, kind, start, stop in coords])

    def _gradient_coordinates(self, coords) -> np.ndarray:
        """The gradient the last training pass left, in `coords` (a Rotor's or Motor's in its
        body-frame bivector coordinates: the tangent its step uses)."""
        grads = self._buffers["grads"]
        out = np.empty(coords[-1][3])
        for name, kind, start, stop in coords:
            g = grads[name]
            if kind == "tangent":
                r = self._parameters[name].reshape(-1, len(self.SPEC["params"][name]["layout"]))
                self._manifold[name][0](r, g.reshape(r.shape), out[start:stop].reshape(r.shape[0], -1))
            else:
                out[start:stop] = g.reshape(-1)
        return out

    def _deviation(self, prior) -> np.ndarray:
        """d: the parameters' coordinates relative to the prior's mean (theta - theta0, or
        log(~R0 R) for a Rotor or Motor)."""
        out = np.empty(prior.size)
        for name, kind, start, stop in prior.coordinates:
            value = self._parameters[name]
            if kind == "tangent":
                r = value.reshape(-1, len(self.SPEC["params"][name]["layout"]))
                self._relative[name][0](r, prior.mean[name].reshape(r.shape), out[start:stop].reshape(r.shape[0], -1))
            else:
                out[start:stop] = value.reshape(-1) - prior.mean[name].reshape(-1)
        return out

    def penalty(self, prior, scale=None) -> tuple[float, dict[str, np.ndarray]]:
        """The prior's penalty at the parameters (phg.prior; scale: a number or one per parameter,
        default the prior's own), and its gradient on every parameter's stored coefficients, keyed
        like params (LANGUAGE §13)."""
        self._check_prior(prior)
        grads = {n: np.zeros_like(v) for n, v in self._parameters.items()}
        value = self._penalize(prior, prior.scales(scale), 1.0, grads)
        return value, {n: declared(self.SPEC["params"][n], g) for n, g in grads.items()}

    def _penalize(self, prior, scales: np.ndarray, n: float, grads: dict) -> float:
        """Adds the gradient of penalty / n to `grads` (on stored coefficients); returns penalty / n.
        `scales`: each coordinate's (Prior.scales)."""
        root = np.sqrt(scales)
        d = self._deviation(prior)
        w = root * (prior.precision @ (root * d))
        w /= n
        for name, kind, start, stop in prior.coordinates:
            g = grads[name]
            if kind == "tangent":
                r = self._parameters[name].reshape(-1, len(self.SPEC["params"][name]["layout"]))
                self._relative[name][1](r, prior.mean[name].reshape(r.shape), w[start:stop].reshape(r.shape[0], -1),
                                        g.reshape(r.shape))
            else:
                g.reshape(-1)[:] += w[start:stop]
        return 0.5 * float(d @ w)

    def _check_prior(self, prior) -> None:
        """A located ValueError unless `prior` is a Prior over this model's coordinates."""
        from phg.prior import Prior

        if not isinstance(prior, Prior):
            raise TypeError(f"prior must be a phg.Prior (from M.distill or Prior.load), got {type(prior).__name__}")
        name = self.SPEC["name"]
        if prior.model != name:
            raise ValueError(f"the prior is over model {prior.model!r}, not {name!r}")
        mine = self._coordinates()
        if [tuple(c) for c in prior.coordinates] != mine:
            raise ValueError(f"the prior's coordinates {prior.coordinates} are not {name}'s {mine}")
        for pname, p in self.SPEC["params"].items():
            shape = (*p["shape"], len(p["layout"]))          # or as declared, as params gives it
            if prior.mean[pname].shape not in (shape, declared(p, np.empty(shape)).shape):
                raise ValueError(f"the prior's mean of {pname!r} has shape {prior.mean[pname].shape}, not {shape}")
            if pname in self._training()["manifold"]:
                if pname not in self._relative:
                    raise ValueError(f"a prior on {pname!r} needs log(), which is generated only where exp has a "
                                     "closed form (G2, G3, 2D and 3D PGA)")
                self._parameters.require_valid(pname, prior.mean[pname])

    def vjp(self, cotangents: Mapping, /, wrt_inputs=True, wrt_params: bool = True, **inputs
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The vector-Jacobian product of the outputs at these inputs (LANGUAGE §19; codegen.vjp):
        with `cotangents` {output: array shaped like predict's}, the gradients of the sum over
        samples, channels and blades of cotangent times output, with respect to each input, per
        sample ({input: [N, *channels, components]}; `wrt_inputs` True, False or names), and to
        each parameter, summed over the batch ({param: its declared shape}; unless `wrt_params`
        is False).  Parameters are the stored coefficients (a Rotor's need not be normalised);
        its gradients are Euclidean, as grad's."""
        from .vjp import vjp

        return vjp(self, cotangents, inputs, wrt_inputs, wrt_params)

    def _renormalised(self, name: str, coefficients: np.ndarray) -> np.ndarray:
        """A Rotor or Motor parameter's coefficients (any shape holding its channels) renormalised
        channel by channel, as a step ends (codegen.manifold): R (s^-1/2 - p s^-3/2 I / 2) where
        R ~R = s + p I; a model without a loss has no manifold maps, and takes its VJP program's."""
        from .vjp import vjp_model

        trained = type(self) if self.SPEC.get("train") else vjp_model(type(self))[0]
        _, retract = trained._manifold[name]
        r = np.array(coefficients, dtype=np.float64).reshape(-1, len(self.SPEC["params"][name]["layout"]))
        retract(r, np.zeros((r.shape[0], len(trained.SPEC["train"]["manifold"][name]["tangent"]))), 0.0, r)
        return r

    def input_grad(self, /, of: str | None = None, wrt=None, **inputs):
        """Per sample, the gradient of an output of one coefficient per sample (`of`; by default
        the only output) with respect to the inputs: {input: [N, *channels, components]}, or the
        one array when `wrt` names one input (an energy's forces are minus its input gradient)."""
        from .vjp import input_grad

        return input_grad(self, inputs, of, wrt)

    def distill(self, teacher, inputs: Mapping, steps: int | None = None, epochs: int | None = None,
                batch: int | None = None, callback=None, curvature_samples: int | None = None):
        """Fit this model to a teacher's outputs on unlabelled inputs and return the prior that
        fit leaves (LANGUAGE §13; codegen.distill): `teacher(inputs)` takes a dict of input arrays and
        returns a dict of output arrays named and laid out as predict's (a NumPy function, a
        PyTorch module wrapped in a function, another model's predict as lambda d: other.predict(**d)).  The parameters become
        the distilled ones; the prior's mean is them, its precision the Gauss-Newton curvature of
        the distillation loss, its scale "auto".  steps, epochs, batch and callback as fit's."""
        from .distill import CURVATURE_SAMPLES, distill

        return distill(self, teacher, inputs, steps, epochs, batch, callback,
                       CURVATURE_SAMPLES if curvature_samples is None else _count("curvature_samples", curvature_samples, None))

    def choose_scale(self, data: Mapping, prior, steps: int | None = None, epochs: int | None = None,
                     batch: int | None = None, callback=None, **settings) -> tuple[float, np.ndarray]:
        """The prior's scale by empirical Bayes on `data` (the Laplace evidence: phg.evidence), and
        the history of the fit at that scale, which leaves the parameters at its MAP.  What
        fit(data, prior=prior) runs when the prior's scale is "auto".  `settings`: fit()'s
        keyword overrides (lr, beta1, beta2, eps, softness, schedule, seed), for each fit it runs."""
        from phg.evidence import choose_scale

        self._check_prior(prior)
        if self._training()["settings"]["optimizer"] == "cma":
            raise ValueError("a prior's scale \"auto\" is chosen from the loss's curvature, which optimizer cma "
                             "does not compute; give the prior a number as its scale")
        unknown = sorted(set(settings) - {"lr", "beta1", "beta2", "eps", "softness", "schedule", "seed"})
        if unknown:
            raise TypeError(f"choose_scale() got an unexpected keyword argument {unknown[0]!r}")
        schedule, seed = settings.pop("schedule", None), settings.pop("seed", None)
        with self._settings_for_fit({k: v for k, v in settings.items() if v is not None}, schedule, seed):
            return choose_scale(self, data, prior, steps, epochs, batch, callback)

    def optimizer_state(self) -> dict[str, np.ndarray]:
        """What continues training where it stopped: "t", the optimizer's steps so far (its
        moments' bias correction); "order", the steps of the samples' order the last fit reached
        (where fit(start=...) resumes it); "moments.NAME", each parameter's moments.  With the
        parameters, load_optimizer_state then continues bit for bit."""
        if self._training()["settings"]["optimizer"] == "cma":
            raise ValueError("optimizer cma's search distribution is not saved as an optimizer state; "
                             "a cma fit cannot be resumed yet")
        b = self._plan()
        out = {"t": np.array(b["t"], dtype=np.int64), "order": np.array(getattr(self, "_order", 0), dtype=np.int64)}
        out.update({f"moments.{name}": state.copy() for name, state in b["state"].items()})
        return out

    def load_optimizer_state(self, state: Mapping) -> None:
        """The optimizer's state from optimizer_state()'s arrays, each checked (a ValueError naming
        the array); a bad one changes nothing."""
        if self._training()["settings"]["optimizer"] == "cma":
            raise ValueError("optimizer cma's search distribution is not saved as an optimizer state; "
                             "a cma fit cannot be resumed yet")
        b = self._plan()
        counts = {}
        for key in ("t", "order"):
            value = np.asarray(state.get(key, np.zeros(0)))
            if value.shape != () or value.dtype.kind not in "iu" or value < 0:
                raise ValueError(f"the optimizer state's {key!r} must be one integer >= 0, got "
                                 f"{value.dtype}{list(value.shape)}" + (f" {value}" if value.shape == () else ""))
            counts[key] = int(value)
        moments = {}
        for name, mine in b["state"].items():
            key = f"moments.{name}"
            if key not in state:
                raise ValueError(f"the optimizer state has no {key!r}; it holds {', '.join(sorted(state)) or 'nothing'}")
            value = np.asarray(state[key])
            if value.shape != mine.shape or value.dtype.kind != "f" or not finite(np.ascontiguousarray(value, np.float64)):
                raise ValueError(f"the optimizer state's {key!r} must be finite floats of shape {list(mine.shape)}, "
                                 f"got {value.dtype}{list(value.shape)}")
            moments[name] = value
        b["t"], self._order = counts["t"], counts["order"]
        for name, value in moments.items():
            b["state"][name][...] = value

    def _restart(self, params: Mapping) -> None:
        """The parameters set to `params` and the optimizer's state (moments, step count) cleared."""
        self.params = params
        b = self._plan()
        b["t"] = 0
        for state in b["state"].values():
            state[...] = 0.0

    def _evolution(self):
        """(the search, its coordinates: (parameter, "tangent" or "coefficients", start, stop)),
        made on first use from the parameters as they are: the plan's "search" buffer holds it."""
        b = self._plan()
        if b.get("search_state") is None:
            from .cma import Search
            settings = self._training()["settings"]
            coords = self._coordinates()
            search = Search(self._origin(coords), settings["hyper"]["sigma"], int(settings["hyper"]["population"]),
                            settings["seed"], storage=b["search"])
            b["search_state"] = (search, coords)
        return b["search_state"]

    def _generation(self, arrays: list[np.ndarray], n: int, prior=None) -> float:
        """One CMA-ES generation on this batch: lambda candidates (a Rotor or Motor's R_mean exp(x)
        for its body-frame coordinates x), their losses, the distribution moved, the parameters
        set to its mean.  Returns the best candidate's loss.  `prior`: (Prior, its scales, N), each
        candidate's penalty / N added to its loss."""
        search, coords = self._evolution()
        b = self._buffers
        spec = self._training()
        for name in self.SPEC["params"]:                     # the mean, kept while candidates run
            np.copyto(b["before"][name], self._parameters[name])
        candidates = search.ask()
        losses = search.losses                              # the plan's row for them (tell copies in)
        losses[:] = np.nan
        if self._population_kernel is not None:
            stacks = self._stacks(coords, candidates, b["before"])
            args = (*arrays, *(stacks[p] for p in self.SPEC["params"]), n if arrays else 1, losses)
            work = search.population * max(n, 1) * spec["stack_symbols"] // SHARE
            if spec["strategy"] == "loops":              # each share in its thread's workspace
                spread(self._population_kernel, (*args, b["tiles"]), search.population, work, blas=True,
                       most=b["threads"], indexed=True)
            else:
                spread(self._population_kernel, args, search.population, work)
        for i in np.flatnonzero(np.isnan(losses)):         # a format's sum its bound left open
            self._set_coordinates(coords, candidates[i], b["before"])
            losses[i] = self._train_pass(arrays, n)
        if prior is not None:
            p, scales, total = prior
            root = np.sqrt(scales)
            for i, x in enumerate(candidates):
                self._set_coordinates(coords, x, b["before"])
                d = root * self._deviation(p)
                losses[i] += 0.5 / total * float(d @ (p.precision @ d))
        search.tell(losses)
        best = float(np.min(search.losses))
        self._set_coordinates(coords, search.mean, b["before"])
        for name, kind, start, stop in coords:                # the rotor is the mean: re-centred
            if kind == "tangent":
                np.copyto(b["before"][name], self._parameters[name])
        search.recentre(np.concatenate([np.arange(start, stop) for _, kind, start, stop in coords
                                        if kind == "tangent"] or [np.zeros(0, np.int64)]).astype(np.int64))
        return best

    def _stacks(self, coords, candidates: np.ndarray, means: dict) -> dict[str, np.ndarray]:
        """Every candidate's parameters, a stack [lambda, *shape, components] per parameter in the
        plan's "population" buffer: coefficients as they are, a Rotor or Motor at means[name] exp(x)."""
        b = self._buffers
        lam = len(candidates)
        flat, stacks, at = b["population"], {}, 0
        for name, kind, start, stop in coords:
            p = self.SPEC["params"][name]
            shape = (lam, *p["shape"], len(p["layout"]))
            size = int(np.prod(shape))
            stack = stacks[name] = flat[at:at + size].reshape(shape)
            at += size
            if kind == "tangent":
                np.copyto(stack, means[name])                # every candidate at the mean rotor
                rows = stack.reshape(-1, len(p["layout"]))
                x = np.ascontiguousarray(candidates[:, start:stop]).reshape(rows.shape[0], -1)
                self._manifold[name][1](rows, x, 1.0, rows)
            else:
                stack.reshape(lam, -1)[:] = candidates[:, start:stop]
            self._parameters.round(stack)                    # a format's values (LANGUAGE §11)
        return stacks

    def _set_coordinates(self, coords, x: np.ndarray, means: dict) -> None:
        """The parameters at search coordinates x: coefficients as they are, a Rotor or Motor at
        means[name] exp(x); each rounded to the model's format."""
        for name, kind, start, stop in coords:
            value = self._parameters[name]
            if kind == "tangent":
                width = self.SPEC["params"][name]["layout"]
                r = means[name].reshape(-1, len(width))
                self._manifold[name][1](r, x[start:stop].reshape(r.shape[0], -1), 1.0, value.reshape(r.shape))
            else:
                value.reshape(-1)[:] = x[start:stop]
            self._parameters.round(value)

    def _step(self, loss: float) -> float:
        """The optimizer's update from the gradients of the pass just run."""
        spec = self._training()
        settings = spec["settings"]
        b = self._buffers
        grads = b["grads"]
        bad = next((n for n in self.SPEC["params"] if not finite(grads[n])), None)
        if not np.isfinite(loss) or bad is not None:
            what = f"the gradient of {bad!r}" if np.isfinite(loss) else "the loss"
            raise TrainingDiverged(f"{what} is not finite (batch loss {loss:.6g}); no update was made")
        for name in self.SPEC["params"]:
            np.copyto(b["before"][name], self._parameters[name])
        b["t"] += 1
        kind = KINDS[settings["optimizer"]]
        # The step direction takes the place of the coordinates it is made from (codegen.optimizers
        # reads each before it writes it): the tangent on the manifold, the gradient elsewhere.
        for name, p in self.SPEC["params"].items():
            value = self._parameters[name]             # a float64 array this model owns: updated in place
            if name in spec["manifold"]:
                tangent_fn, retract_fn = self._manifold[name]
                r = value.reshape(-1, len(p["layout"]))
                d = b["tangent"][name]
                tangent_fn(r, b["grads"][name].reshape(r.shape), d)
                direction(kind, d.reshape(-1), b["state"][name], b["t"], *b["hyper"], d.reshape(-1))
                retract_fn(r, d, -1.0, r)
            else:
                d = b["grads"][name].reshape(-1)
                direction(kind, d, b["state"][name], b["t"], *b["hyper"], d)
                flat = value.reshape(-1)                # a view: the parameter itself
                flat -= d
        for name in self.SPEC["params"]:               # a format's values (LANGUAGE §11)
            self._parameters.round(self._parameters[name])
        bad = next((n for n in self.SPEC["params"] if not finite(self._parameters[n])), None)
        if bad is not None:
            for name in self.SPEC["params"]:
                np.copyto(self._parameters[name], b["before"][name])
            raise TrainingDiverged(f"the update of parameter {bad!r} overflows (batch loss {loss:.6g}); the "
                                   "parameters are left as they were before that step (a smaller learning rate "
                                   "may help)")
        return loss

    def schedule(self, n: int, steps: int | None = None, epochs: int | None = None,
                 batch: int | None = None) -> tuple[int, int]:
        """(batch size, number of steps) fit() uses on n samples: the arguments where given, else
        the train block's, else the defaults of LANGUAGE §6 (the whole data set as one batch, one
        epoch).  A batch larger than the data set is the whole data set."""
        settings = self._training()["settings"]
        if n < 1:
            raise ValueError("the data set is empty (0 samples); training needs at least one")
        steps, epochs = _count("steps", steps, None), _count("epochs", epochs, None)
        if steps is not None and epochs is not None:
            raise ValueError(f"give steps or epochs, not both (got steps={steps}, epochs={epochs})")
        batch = min(_count("batch", batch, settings["batch"] or n), n)
        if steps is None and epochs is None:
            steps, epochs = settings["steps"], settings["epochs"]
        total = steps if steps is not None else (epochs or 1) * -(-n // batch)
        if total > MAX_STEPS:
            what = f"steps={steps}" if steps is not None else f"{epochs or 1} epochs of {-(-n // batch)} steps"
            raise ValueError(f"{what} is more than the {MAX_STEPS:,} steps one fit() may take; "
                             "call fit() again to train further")
        return batch, total

    def _batches(self, n: int, batch: int, total: int, start: int = 0):
        """The samples of each of fit's `total` steps from step `start` of the order: epochs of
        batches in a fresh random order (seeded by the train block's seed), the last batch of an
        epoch short where n is not a multiple of the batch.  One process and a cluster
        (codegen.cluster) take the same."""
        per_epoch = -(-n // batch)
        run = getattr(self, "_in_fit", None)
        rng = np.random.default_rng(self._training()["settings"]["seed"] if run is None else run["seed"])
        order = rng.permutation(n)
        for _ in range(start // per_epoch):          # the epochs a resumed fit's order has passed
            order = rng.permutation(n)
        for k in range(start, start + total):
            first = (k % per_epoch) * batch
            if k > start and first == 0:
                order = rng.permutation(n)
            yield order[first:first + batch]

    def samples(self, data: Mapping) -> int:
        """The number of samples in a training data set, checked as fit() checks it."""
        names = self._training()["inputs"]
        _, n = self._inputs(data, names, training=True)
        return n if names else 1

    def fit(self, data: Mapping, steps: int | None = None, epochs: int | None = None, batch: int | None = None,
            callback=None, prior=None, client=None, *, lr: float | None = None, beta1: float | None = None,
            beta2: float | None = None, eps: float | None = None, softness: float | None = None,
            schedule=None, seed: int | None = None, start: int = 0, validation: Mapping | None = None,
            patience: int | None = None, validate_every: int | None = None, progress=None) -> np.ndarray:
        """Train on a data set {input name: array [N, ...]} with the train block's settings
        (steps, epochs and batch override them).  Each epoch visits the samples in a fresh
        random order (seeded by the train block's seed); returns the loss of every step.  Data
        with a non-finite sample is refused before any step; a step whose update is not finite
        raises TrainingDiverged, with the parameters as they were before it.  `callback(step,
        loss)` runs after each step; where it returns True, fit stops there (the history so far).

        lr, beta1, beta2, eps, softness (the optimizer's settings), `schedule` and `seed` (the
        samples' order) override the train block's for this call: they are arguments of the
        step, not of its kernels, so nothing compiles again.  `schedule` scales lr by step k of
        the fit's T: "constant" (the default), "cosine" (0.5 (1 + cos(pi k / T))), ("step",
        EVERY, FACTOR) (FACTOR^floor(k / EVERY)), or a function (k, T) -> factor.  `start`: the
        samples' order begins at that step (as a fit that already took `start` steps left it:
        optimizer_state()["order"], to resume one).

        `validation` (a data set like `data`, checked before any step): its mean loss is taken
        every `validate_every` steps (default: once an epoch) and after the last, kept in M.validation
        ({"step": steps taken, "loss": their validation losses, "best": the step of the lowest,
        "stopped": whether patience stopped the fit}).  `patience` P: the fit stops once P
        evaluations in a row were no lower than the best, and the parameters go back to the best
        step's (early stopping).

        Kernels not compiled yet in this process are compiled before the first step, a
        `compiling MODEL: KERNEL ... 0.8 s` line each on stderr (`progress`: False for none, or a
        callable progress(model, kernel, seconds) as phg.build's).

        `prior` (a phg.Prior, LANGUAGE §13): MAP training, each step's objective the batch-mean
        loss + the prior's penalty / N (N the samples in `data`), the history that objective;
        with the prior's scale "auto", fit first chooses it by empirical Bayes (see
        choose_scale) and trains with it.

        `client` (a dask.distributed.Client, LANGUAGE §15): the steps run data-parallel on its
        cluster (codegen.cluster); with `accumulate exact` the parameters are bit for bit those
        of a fit in one process.  `data` may then hold dask arrays already on the cluster."""
        overrides = {k: v for k, v in (("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps),
                                       ("softness", softness)) if v is not None}
        with self._settings_for_fit(overrides, schedule, seed):
            if isinstance(start, bool) or not isinstance(start, Integral) or start < 0:
                raise ValueError(f"start must be a non-negative integer (steps of the order taken), got {start!r}")
            watch = None if validation is None and patience is None and validate_every is None else \
                Validation(self, validation, patience, validate_every)
            self._compile_first(progress)
            return self._fit(data, steps, epochs, batch, callback, prior, client, int(start), watch)

    @contextlib.contextmanager
    def _settings_for_fit(self, overrides: dict, schedule, seed):
        """fit()'s optimizer settings, schedule and seed in force while it runs (and in the fits
        it runs itself, choose_scale's), then the train block's again."""
        if not overrides and schedule is None and seed is None:
            yield
            return
        settings = self._training()["settings"]
        hyper = {**OPTIMIZERS[settings["optimizer"]], **settings["hyper"]}
        for key, value in overrides.items():
            if settings["optimizer"] == "cma" or key not in hyper:
                known = ", ".join(k for k in hyper if settings["optimizer"] != "cma") or \
                    "none at fit: sigma and population shape its search, set them in the train block"
                raise ValueError(f"optimizer {settings['optimizer']} has no setting {key!r} to override "
                                 f"(its settings: {known})")
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"{key} must be a number, got {value!r} ({type(value).__name__})")
            problem = hyper_problem(key, float(value))
            if problem is not None:
                raise ValueError(f"{problem[0]} ({problem[1]} expected)")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        saved = getattr(self, "_in_fit", None)
        self._in_fit = {"hyper": {**hyper, **{k: float(v) for k, v in overrides.items()}},
                        "rate": learning_rate(schedule), "seed": settings["seed"] if seed is None else int(seed)}
        try:
            yield
        finally:
            self._in_fit = saved
            if getattr(self, "_buffers", None) is not None:
                self._buffers["hyper"] = _hyper_tuple(hyper)

    def _compile_first(self, progress) -> None:
        """The model's kernels compiled (or loaded from Numba's cache) where this process has not
        yet, shown as `progress` says (see fit)."""
        if not (progress is None or progress is True or progress is False or callable(progress)):
            raise TypeError(f"progress must be True, False or callable as progress(model, kernel, seconds), "
                            f"got {type(progress).__name__}")
        self._training()                       # (a model without a loss has no step to compile)
        if progress is False or type(self)._train_kernel.overloads:
            return
        from .compiling import compile_model, printer, to_stderr

        compile_model(type(self), printer(to_stderr) if progress is None or progress is True else progress)

    def _fit(self, data, steps, epochs, batch, callback, prior, client, start: int = 0, watch=None) -> np.ndarray:
        settings = self._training()["settings"]
        if prior is not None:
            self._check_prior(prior)
            if prior.scale == "auto":
                if client is not None:
                    raise ValueError("a prior's scale \"auto\" is chosen from the whole data set in one process "
                                     "(choose_scale); fit on a cluster with the scale it chose, prior.scale = NUMBER")
                return self.choose_scale(data, prior, steps=steps, epochs=epochs, batch=batch, callback=callback)[1]
            scales = prior.scales()
        names = self._training()["inputs"]
        if not isinstance(data, Mapping):
            raise TypeError(f"fit takes the data as a mapping {{input name: array}}, got {type(data).__name__}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable as callback(step, loss), got {type(callback).__name__}")
        if client is not None:                         # the step's sums over the cluster's partitions
            from .cluster import cluster_pass

            arrays, (n, spread_pass) = [], cluster_pass(self, client, data)
        else:
            arrays, n = self._inputs(data, names, training=True)
        if not names:
            n = 1                                      # a loss of the parameters alone: one "sample"
        elif n == 0:
            raise ValueError(f"the data set is empty: input {names[0]!r} has 0 samples; training needs at least one")
        batch, total = self.schedule(n, steps, epochs, batch)
        # The batch buffers are allocated once, before the first step.
        buffers = [np.empty((batch, *a.shape[1:])) for a in arrays] if batch < n else []
        history = np.empty(total)
        evolve = settings["optimizer"] == "cma"          # steps are generations (LANGUAGE §12)
        if watch is not None:
            watch.begin(-(-n // batch), total)
        self._order = start
        for k, idx in enumerate(self._batches(n, batch, total, start)):
            if client is not None:
                chunk = None
            elif batch == n:                           # full batch: the mean needs no shuffling
                chunk = arrays
            elif len(idx) < batch:                     # the epoch's last, short batch
                chunk = [a[idx] for a in arrays]
            else:
                for buf, a in zip(buffers, arrays):
                    np.take(a, idx, axis=0, out=buf)
                chunk = buffers
            try:                                       # the whole data set was checked above
                if evolve:
                    history[k] = self._generation(chunk, len(idx) if names else 1,
                                                  None if prior is None else (prior, scales, n))
                else:
                    loss = self._train_pass(chunk, len(idx) if names else 1) if chunk is not None \
                        else spread_pass(None if batch == n else idx)
                    if prior is not None:
                        loss += self._penalize(prior, scales, n, self._buffers["grads"])
                    self._rate_at(k, total)
                    history[k] = self._step(loss)
            except TrainingDiverged as exc:
                raise TrainingDiverged(f"training diverged at step {k + 1} of {total}: {exc}", history[:k].copy()) \
                    from None
            self._order = start + k + 1
            stop = callback is not None and callback(k, history[k]) is True
            if watch is not None and watch.after(k):
                stop = True
            if stop:
                return history[:k + 1].copy()
        return history

    def _rate_at(self, k: int, total: int) -> None:
        """The optimizer's settings for step k of a fit's `total`: fit()'s, lr on its schedule."""
        run = getattr(self, "_in_fit", None)
        if run is not None and "lr" in run["hyper"]:
            self._buffers["hyper"] = _hyper_tuple({**run["hyper"], "lr": run["hyper"]["lr"] * run["rate"](k, total)})
