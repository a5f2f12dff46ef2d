"""What every generated model class shares: parameter initialisation, layouts, and the checks
that turn a wrong array into a clear ValueError before any kernel sees it."""
from __future__ import annotations

import numpy as np

from .accumulate import DIGITS, SLOTS, many_sums
from phg.program import OPTIMIZERS

from .optimizers import KINDS, STATE, direction


class ModelBase:
    SPEC: dict = {}

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = {}
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
            self.params[name] = value

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
    def _array(self, name: str, value, spec: dict, batched: bool) -> np.ndarray:
        expected = (*spec["shape"], len(spec["layout"]))
        where = f"{'input' if batched else 'parameter'} {name!r}"
        layout = f"[{'N, ' if batched else ''}{', '.join(map(str, expected))}] (components {', '.join(spec['layout'])})"
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise ValueError(f"{where} has dtype {arr.dtype}; expected real numbers (float64) laid out as {layout}")
        want = (arr.shape[0], *expected) if batched and arr.ndim >= 1 else expected
        if arr.shape != tuple(want):
            raise ValueError(f"{where} has shape {list(arr.shape)}; expected {layout}")
        # float32 and integers are widened, strided views copied: the kernels read float64 rows.
        return np.ascontiguousarray(arr, dtype=np.float64)

    def _inputs(self, given: dict, needed: list[str]) -> tuple[list[np.ndarray], int]:
        unknown = sorted(set(given) - set(self.SPEC["inputs"]))
        if unknown:
            raise ValueError(f"{self.SPEC['name']} has no input {unknown[0]!r}; its inputs are "
                             f"{', '.join(self.SPEC['inputs'])}")
        missing = [n for n in needed if n not in given]
        if missing:
            raise ValueError(f"missing input {missing[0]!r} (needed: {', '.join(needed)})")
        checked = {n: self._array(n, a, self.SPEC["inputs"][n], True) for n, a in given.items()}
        sizes = {n: a.shape[0] for n, a in checked.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError("inputs disagree on the number of samples: " +
                             ", ".join(f"{n} has {k}" for n, k in sizes.items()))
        # With no input the outputs depend on (parameters only), the batch size comes from the others.
        return [checked[n] for n in needed], next(iter(sizes.values()), 1)

    def _params(self, names: list[str]) -> list[np.ndarray]:
        return [self._array(n, self.params[n], self.SPEC["params"][n], False) for n in names]

    # ---- inference ------------------------------------------------------------------------------
    def predict(self, /, **inputs) -> dict[str, np.ndarray]:
        """Every output for a batch: {'name': array [N, *channels, components]}.  Inputs no output
        depends on may be passed (a whole data set) and are ignored.  (self is positional-only in
        predict, loss, grad and step, so that an input may be named self.)"""
        plan = self.SPEC["predict"]
        arrays, n = self._inputs(inputs, plan["inputs"])
        outs = {o: np.empty((n, *self.SPEC["outputs"][o]["shape"], len(self.SPEC["outputs"][o]["layout"])))
                for o in plan["outputs"]}
        self._predict_kernel(*arrays, *self._params(plan["params"]), *outs.values())
        return outs

    # ---- training -------------------------------------------------------------------------------
    def _training(self) -> dict:
        spec = self.SPEC.get("train")
        if spec is None:
            raise ValueError(f"{self.SPEC['name']} has no loss, so it cannot be trained; add `loss EXPR` to the model")
        return spec

    def _plan(self) -> dict:
        """Every buffer a step touches, allocated once (the static memory plan of the certificate)."""
        if getattr(self, "_buffers", None) is None:
            spec = self._training()
            settings = spec["settings"]
            q = spec["rows"]                         # the memory plan's accumulator rows
            exact = settings["accumulate"] == "exact"
            kind = settings["optimizer"]
            coords = {}
            for name, p in self.SPEC["params"].items():
                channels = int(np.prod(p["shape"], dtype=np.int64))
                if name in spec["manifold"]:
                    coords[name] = (channels, len(spec["manifold"][name]["tangent"]))
                else:
                    coords[name] = (channels * len(p["layout"]),)
            self._buffers = {
                "acc": np.zeros((SLOTS, q, DIGITS), np.int64) if exact else np.zeros((SLOTS, q)),
                "grid": np.full((SLOTS, q) if exact else (1, 1), np.nan),    # unknown until a first pass
                "deposits": np.zeros((SLOTS, q, 4) if exact and many_sums(q) else (1, 1, 4), np.int64),
                "work": np.zeros(DIGITS if exact else 1, np.int64),
                "sums": np.zeros(q),
                "loss": np.zeros(1),
                "grads": {n: np.zeros((*p["shape"], len(p["layout"]))) for n, p in self.SPEC["params"].items()},
                "tangent": {n: np.zeros(coords[n]) for n in spec["manifold"]},
                "direction": {n: np.zeros(c) for n, c in coords.items()},
                "state": {n: np.zeros((STATE[kind], int(np.prod(c)))) for n, c in coords.items()},
                "t": 0,
                # the optimizer's hyper-parameters in direction()'s order; unused ones at prm's defaults
                "hyper": tuple(float({**OPTIMIZERS["prm"], **settings["hyper"]}[k])
                               for k in ("lr", "beta1", "beta2", "eps", "softness")),
            }
        return self._buffers

    def _run_train_kernel(self, inputs: dict) -> float:
        spec = self._training()
        arrays, n = self._inputs(inputs, spec["inputs"])
        if n == 0:
            raise ValueError("an empty batch has no mean loss; pass at least one sample")
        b = self._plan()
        params = self._params(spec["params"])
        self._train_kernel(*arrays, *params, n, b["acc"], b["grid"], b["deposits"], b["work"], b["sums"], b["loss"],
                           *(b["grads"][p] for p in spec["params"]))
        return float(b["loss"][0])

    def loss(self, /, **inputs) -> float:
        """The batch-mean loss."""
        return self._run_train_kernel(inputs)

    def grad(self, /, **inputs) -> dict[str, np.ndarray]:
        """Gradients of the batch-mean loss with respect to every parameter's stored coefficients,
        keyed like params (Euclidean: a Rotor's manifold step uses its tangent, see step)."""
        self._run_train_kernel(inputs)
        return {n: g.copy() for n, g in self._buffers["grads"].items()}

    def step(self, /, **inputs) -> float:
        """One optimizer step on this batch (the train block's optimizer); returns the batch loss
        before the step.  Rotor and Motor parameters move by the exponential map."""
        spec = self._training()
        settings = spec["settings"]
        loss = self._run_train_kernel(inputs)
        b = self._buffers
        b["t"] += 1
        kind = KINDS[settings["optimizer"]]
        for name, p in self.SPEC["params"].items():
            value = self._array(name, self.params[name], p, False)
            d = b["direction"][name]
            if name in spec["manifold"]:
                tangent_fn, retract_fn = self._manifold[name]
                r = value.reshape(-1, len(p["layout"]))
                tangent_fn(r, b["grads"][name].reshape(r.shape), b["tangent"][name])
                direction(kind, b["tangent"][name].reshape(-1), b["state"][name], b["t"], *b["hyper"], d.reshape(-1))
                retract_fn(r, d, -1.0, r)
            else:
                flat = value.reshape(-1)
                direction(kind, b["grads"][name].reshape(-1), b["state"][name], b["t"], *b["hyper"], d)
                flat -= d
            self.params[name] = value
        return loss

    def schedule(self, n: int, steps: int | None = None, epochs: int | None = None,
                 batch: int | None = None) -> tuple[int, int]:
        """(batch size, number of steps) fit() uses on n samples: the arguments where given, else
        the train block's; without steps or epochs, one epoch."""
        settings = self._training()["settings"]
        batch = min(batch or settings["batch"] or n, n)
        if steps is None and epochs is None:
            steps, epochs = settings["steps"], settings["epochs"]
        return batch, steps if steps is not None else (epochs or 1) * -(-n // batch)

    def fit(self, data: dict, steps: int | None = None, epochs: int | None = None, batch: int | None = None,
            callback=None) -> np.ndarray:
        """Train on a data set {input name: array [N, ...]} with the train block's settings
        (steps, epochs and batch override them).  Each epoch visits the samples in a fresh
        random order (seeded by the train block's seed); returns the loss of every step."""
        settings = self._training()["settings"]
        names = self._training()["inputs"]
        arrays, n = self._inputs(data, names)
        batch, total = self.schedule(n, steps, epochs, batch)
        per_epoch = -(-n // batch)
        if total < 0:
            raise ValueError(f"steps must be >= 0, got {total}")
        rng = np.random.default_rng(settings["seed"])
        # The batch buffers are allocated once, before the first step.
        buffers = [np.empty((batch, *a.shape[1:])) for a in arrays] if batch < n else []
        history = np.empty(total)
        order = rng.permutation(n)
        whole = dict(zip(names, arrays))
        for k in range(total):
            start = (k % per_epoch) * batch
            if k and start == 0:
                order = rng.permutation(n)
            idx = order[start:start + batch]
            if batch == n:                             # full batch: the mean needs no shuffling
                chunk = whole
            elif len(idx) < batch:                     # the epoch's last, short batch
                chunk = {nm: a[idx] for nm, a in zip(names, arrays)}
            else:
                for buf, a in zip(buffers, arrays):
                    np.take(a, idx, axis=0, out=buf)
                chunk = dict(zip(names, buffers))
            history[k] = self.step(**chunk)
            if callback is not None:
                callback(k, history[k])
        return history
