"""A Gaussian prior over a model's parameters (LANGUAGE §13): the mean (a parameter set) and a
precision over the model's coordinates, scaled by `scale`.

The coordinates are those of `optimizer cma` (M.search): per parameter, its coefficients, or for
a Rotor or Motor its body-frame bivector coordinates b at the mean, R = R0 exp(b).  The penalty
of parameters theta is

    1/2 d^T S^1/2 precision S^1/2 d,    d = (theta - theta0 for coefficients, log(~R0 R) for versors),

S the scale of each coordinate: `scale` a number (every parameter's), or {parameter: number}.
M.fit(data, prior=prior) minimises the batch-mean loss + penalty / N over N samples (MAP).
`scale = "auto"` lets fit choose the scales by empirical Bayes on the labelled data
(phg.evidence): 0 on a parameter the data contradict, one scale by the evidence on the others.  A prior is plain data: to_dict / from_dict and save / load
(JSON), checked field by field as any file from elsewhere is (a located ValueError, nothing
executed).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "phg-prior/1"
KINDS = ("coefficients", "tangent")
# The most coordinates a prior has (its precision is n x n float64: 800 MB at this size).
MAX_COORDINATES = 10_000
MAX_FILE_BYTES = 2 * 10**9


class PriorError(ValueError):
    """A prior that is not well formed, naming the field."""


@dataclass
class Prior:
    model: str
    coordinates: list[tuple[str, str, int, int]]
    mean: dict[str, np.ndarray]
    precision: np.ndarray
    scale: float | str | dict = "auto"
    # how it was made, for the user: the distillation's samples, loss and steps
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.coordinates = [_coordinate(c, f"coordinates[{i}]") for i, c in enumerate(self.coordinates)]
        n = self.size
        if n > MAX_COORDINATES:
            raise PriorError(f"coordinates: {n:,} coordinates, at most {MAX_COORDINATES:,}")
        at = 0
        for i, (_, _, start, stop) in enumerate(self.coordinates):
            if start != at or stop < start:
                raise PriorError(f"coordinates[{i}]: expected to start at {at} and not end before it, found {start}..{stop}")
            at = stop
        self.mean = {str(k): _finite(np.asarray(v, dtype=np.float64), f"mean.{k}") for k, v in self.mean.items()}
        names = [c[0] for c in self.coordinates]
        if sorted(self.mean) != sorted(names) or len(set(names)) != len(names):
            raise PriorError(f"mean: expected one array for each of {names}, found {sorted(self.mean)}")
        p = _finite(np.asarray(self.precision, dtype=np.float64), "precision")
        if p.shape != (n, n):
            raise PriorError(f"precision: expected a {n} x {n} matrix, found shape {p.shape}")
        if not np.allclose(p, p.T, rtol=1e-9, atol=1e-12 * max(1.0, float(np.abs(p).max(initial=0)))):
            raise PriorError("precision: expected a symmetric matrix")
        self.precision = (p + p.T) / 2
        if isinstance(self.scale, dict):
            if sorted(self.scale) != sorted(names) or not all(_scale(v) for v in self.scale.values()):
                raise PriorError(f"scale: expected a finite number >= 0 for each of {names}, found {self.scale!r}")
            self.scale = {k: float(v) for k, v in self.scale.items()}
        elif not (self.scale == "auto" or _scale(self.scale)):
            raise PriorError(f"scale: expected \"auto\", a finite number >= 0 or one for each parameter, "
                             f"found {self.scale!r}")

    def scales(self, scale=None) -> np.ndarray:
        """The scale of every coordinate: `scale`'s, or the prior's own (a number, or one per
        parameter); a ValueError where it is "auto" (fit chooses it on the data)."""
        scale = self.scale if scale is None else scale
        if scale == "auto":
            raise ValueError("the prior's scale is \"auto\", which fit chooses on the data; give a number here")
        out = np.empty(self.size)
        for name, _, start, stop in self.coordinates:
            out[start:stop] = scale[name] if isinstance(scale, dict) else scale
        return out

    @property
    def size(self) -> int:
        return self.coordinates[-1][3] if self.coordinates else 0

    def to_dict(self) -> dict:
        return {"format": FORMAT, "model": self.model,
                "coordinates": [list(c) for c in self.coordinates],
                "mean": {k: {"shape": list(v.shape), "values": v.reshape(-1).tolist()} for k, v in self.mean.items()},
                "precision": self.precision.tolist(), "scale": self.scale, "info": self.info}

    @classmethod
    def from_dict(cls, d) -> "Prior":
        if not isinstance(d, dict):
            raise PriorError(f"expected a JSON object, found {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise PriorError(f"format: expected {FORMAT!r}, found {d.get('format')!r}")
        for key, kind in (("model", str), ("coordinates", list), ("mean", dict), ("precision", list)):
            if not isinstance(d.get(key), kind):
                raise PriorError(f"{key}: expected a JSON {kind.__name__.replace('str', 'string')}, "
                                 f"found {type(d.get(key)).__name__}")
        mean = {}
        for k, v in d["mean"].items():
            if not (isinstance(v, dict) and isinstance(v.get("shape"), list) and isinstance(v.get("values"), list)
                    and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v["shape"])
                    and math.prod(v["shape"]) == len(v["values"])):
                raise PriorError(f"mean.{k}: expected {{\"shape\": [...], \"values\": [...]}} with as many values "
                                 "as the shape holds")
            mean[k] = np.array(_numbers(v["values"], f"mean.{k}.values"), dtype=np.float64).reshape(v["shape"])
        rows = d["precision"]
        if not all(isinstance(r, list) and len(r) == len(rows) for r in rows):
            raise PriorError("precision: expected a square list of lists")
        precision = np.array([_numbers(r, f"precision[{i}]") for i, r in enumerate(rows)], dtype=np.float64)
        return cls(d["model"], d["coordinates"], mean, precision.reshape(len(rows), len(rows)),
                   d.get("scale", "auto"), d.get("info", {}) if isinstance(d.get("info", {}), dict) else {})

    def save(self, path) -> None:
        from phg import files
        text = json.dumps(self.to_dict())
        files.replace(Path(path), lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path) -> "Prior":
        path = Path(path)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise PriorError(f"{path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise PriorError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes")
        try:
            d = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as exc:
            raise PriorError(f"{path}: not a JSON prior ({exc})") from None
        try:
            return cls.from_dict(d)
        except PriorError as exc:
            raise PriorError(f"{path}: {exc}") from None


def _scale(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _coordinate(c, where: str) -> tuple[str, str, int, int]:
    if not (isinstance(c, (list, tuple)) and len(c) == 4 and isinstance(c[0], str) and c[1] in KINDS
            and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in c[2:])):
        raise PriorError(f"{where}: expected [parameter, \"coefficients\" or \"tangent\", start, stop], found {c!r}")
    return (c[0], c[1], int(c[2]), int(c[3]))


def _numbers(values: list, where: str) -> list[float]:
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        raise PriorError(f"{where}: expected numbers")
    return values


def _finite(a: np.ndarray, where: str) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        raise PriorError(f"{where}: expected finite numbers")
    return a
