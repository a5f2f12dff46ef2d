"""Check claims numerically with clifford on random admissible inputs."""
from __future__ import annotations

import numpy as np

from cliffeval import Reference

REL = 1e-7


def _finite(x) -> bool:
    return bool(np.isfinite(x.value).all()) and float(np.abs(x.value).max(initial=0)) < 1e8


def grade_holds(ref: Reference, x, mask: int, scale: float = 1.0) -> bool:
    """No blade outside mask is non-zero beyond rounding; `scale` bounds the size of the terms
    that were added up (a sandwich by a large versor cancels terms of |V|^2 |x|)."""
    scale = max(scale, float(np.abs(x.value).max(initial=0)))
    return all(mask >> ref.masks[i] & 1 for i in np.flatnonzero(np.abs(x.value) > REL * scale))


def cone_scale(graph, values: dict, value_id: str) -> float:
    """The square of the largest coefficient among the values value_id was computed from."""
    top = 1.0
    for v in graph.cone(value_id):
        for x in values.get(v, {}).values():
            if np.isfinite(x.value).all():
                top = max(top, float(np.abs(x.value).max(initial=0)))
    return top * top


# Where x ~x is below this share of |x|^2, rounding (about eps * dim of it) leaves it undecided
# whether x is invertible: a true versor may have x ~x = 1 with |x|^2 huge (a boost in an indefinite
# signature), a null element has x ~x = 0 at any size.  Such a trial decides nothing.
SINGULAR = 1e-12


def versor_holds(ref: Reference, x, normalised: bool) -> bool | None:
    """Whether x is a versor (normalised: x ~x = 1) to rounding; None where x ~x cannot be told
    from zero."""
    scale = max(1.0, float(np.abs(x.value).max(initial=0))) ** 2
    vv = x * ~x
    s = float(vv(0))
    if np.abs((vv - s).value).max() > REL * scale:
        return False
    if abs(s) <= SINGULAR * scale:
        return None
    if normalised and abs(s - 1) > REL * scale:
        return False
    inverse = ~x / s
    for i in range(ref.alg.n):
        image = x * ref.mv({1 << i: 1.0}) * inverse
        if np.abs((image - image(1)).value).max() > REL * scale:
            return False
    return True


def holds(graph, obligations, trials: int = 20, seed: int = 0) -> dict:
    """For each grade or versor obligation (by id): whether its claim held on every admissible input
    tried, or None where no input gave the value a finite definition or decided the claim."""
    ref = Reference(graph)
    rng = np.random.default_rng(seed)
    leaves = [v for v in graph.values.values() if graph.producer(v.id) is None and v.const is None]
    verdict = {o.id: None for o in obligations}
    for _ in range(trials if obligations else 0):
        inputs = {v.id: ref.random_value(v, rng) for v in leaves}
        with np.errstate(all="ignore"):
            try:
                values = ref.evaluate(inputs, {o.value_id for o in obligations})
            except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
                continue
        for o in obligations:
            if verdict[o.id] is False:
                continue
            for x in values[o.value_id].values():
                if not _finite(x):
                    continue
                ok = grade_holds(ref, x, o.mask, cone_scale(graph, values, o.value_id)) if o.kind == "grade" else \
                    versor_holds(ref, x, o.versor in ("Rotor", "Motor"))
                if ok is not None:
                    verdict[o.id] = ok
    return verdict
