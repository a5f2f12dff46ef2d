"""A lowered program: its algebras, units, constants, models (one hypergraph each) and training
settings."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from .algebra import Algebra
from .diagnostics import Span
from .hypergraph import Hypergraph
from .units import Unit

OPTIMIZERS = {
    "sgd": {"lr": 0.1},
    "adam": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "prm": {"lr": 1e-3, "softness": 1.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    # CMA-ES (LANGUAGE §12): the initial step size, and lambda (0: 4 + floor(3 ln n))
    "cma": {"sigma": 0.3, "population": 0},
}
# The largest population `cma` takes (a generation's candidates are evaluated side by side).
MAX_POPULATION = 100_000


def hyper_problem(key: str, value: float) -> tuple[str, str] | None:
    """What is wrong with an optimizer setting's value, and what is expected (None: nothing): the
    rule of a train block's settings and of fit()'s overrides alike."""
    if key == "population" and not (value == int(value) and 0 <= value <= MAX_POPULATION and value != 1):
        return (f"population must be 0 (the default) or an integer from 2 to {MAX_POPULATION:,}, got {value:g}",
                "0, or a whole number of candidates >= 2")
    if key in ("lr", "eps", "softness", "sigma") and not value > 0:
        return f"{key} must be positive, got {value:g}", "a number > 0"
    if key in ("beta1", "beta2") and not 0 <= value < 1:
        return f"{key} must lie in [0, 1), got {value:g}", "a number in [0, 1)"
    return None


def default_population(n: int) -> int:
    """CMA-ES's lambda for n coordinates: 4 + floor(3 ln n)."""
    return 4 + int(3 * math.log(n)) if n >= 1 else 4
# One fit() call takes at most this many steps (its loss history alone is 8 bytes a step).
MAX_STEPS = 10**8


@dataclass
class TrainSpec:
    model: str
    optimizer: str = "adam"
    hyper: dict[str, float] = field(default_factory=lambda: dict(OPTIMIZERS["adam"]))
    batch: int | None = None
    steps: int | None = None
    epochs: int | None = None
    accumulate: str = "exact"
    seed: int = 0
    memory_factor: float | None = None
    span: Span | None = None
    memory_span: Span | None = None            # where `memory <= K * inference` is written
    written: tuple[str, ...] | None = None     # the settings the train block gives; None: no block

    def defaults(self, also_given: tuple[str, ...] = ()) -> list[str]:
        """The settings training takes from the documented defaults rather than from the train
        block (or from also_given, set elsewhere), in words: phg train prints them, so that
        nothing is chosen silently."""
        given = (*(self.written or ()), *also_given)
        out = []
        if "optimizer" not in given:
            out.append("optimizer adam(" + ", ".join(f"{k} = {v:g}" for k, v in OPTIMIZERS["adam"].items()) + ")")
        if "batch" not in given:
            out.append("batch: the whole data set")
        if "steps" not in given and "epochs" not in given:
            out.append("epochs 1")
        if "accumulate" not in given:
            out.append("accumulate exact")
        if "seed" not in given:
            out.append("seed 0")
        return out

    def to_dict(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "hyper": self.hyper, "batch": self.batch,
                "steps": self.steps, "epochs": self.epochs, "accumulate": self.accumulate, "seed": self.seed,
                "memory_factor": self.memory_factor}


@dataclass
class Program:
    path: str
    source: str
    algebras: dict[str, Algebra]
    units: dict[str, Unit]
    models: dict[str, Hypergraph]
    trains: dict[str, TrainSpec]
    networks: dict = field(default_factory=dict)          # name -> phg.network.Network (LANGUAGE §16)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict:
        return {"format": "phg-graph/1", "source": {"path": self.path, "sha256": self.sha256},
                "models": [m.to_dict() for m in self.models.values()],
                "train": [t.to_dict() for t in self.trains.values()],
                **({"networks": [n.to_dict() for n in self.networks.values()]} if self.networks else {})}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_dot(self) -> str:
        body = "\n".join(m.to_dot() for m in self.models.values())
        return f"digraph phg {{\n  rankdir=LR;\n{body}\n}}\n"
