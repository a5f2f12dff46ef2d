"""What every generated model class shares: parameter initialisation, layouts, and the checks
that turn a wrong array into a clear ValueError before any kernel sees it."""
from __future__ import annotations

import numpy as np


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
    def predict(self, **inputs) -> dict[str, np.ndarray]:
        """Every output for a batch: {'name': array [N, *channels, components]}.  Inputs no output
        depends on may be passed (a whole data set) and are ignored."""
        plan = self.SPEC["predict"]
        arrays, n = self._inputs(inputs, plan["inputs"])
        outs = {o: np.empty((n, *self.SPEC["outputs"][o]["shape"], len(self.SPEC["outputs"][o]["layout"])))
                for o in plan["outputs"]}
        self._predict_kernel(*arrays, *self._params(plan["params"]), *outs.values())
        return outs
