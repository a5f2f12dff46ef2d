"""Distillation (LANGUAGE §13): a model fitted to a teacher's outputs on unlabelled inputs, and
the Gaussian prior that fit leaves (phg.prior).

The fit runs the generated kernels of a distillation model derived from the model's own source
(the generated module keeps it; phg.dsl.derive): the same model, its loss replaced by the squared
distance of its outputs to the teacher's, read as inputs,

    D = (1/N) sum_i sum_o sum_b (o_b(x_i) - t_ob(x_i))^2 / 1[unit of o]^2,

built once per source into phg's kernel cache (codegen.derived) and trained with the model's own train block
(optimizer, batch, steps), Rotors and Motors on their manifold.  The prior's mean is the fitted
parameters; its precision the Gauss-Newton curvature of D there, (2/N) sum_i J_i^T J_i over
the model's coordinates (Rotors and Motors in body-frame bivector coordinates), each row of J_i
the gradient of one output coefficient, read off the distillation kernels on one sample with
the teacher's value one below the model's (then D's gradient is 2 J_i^T e_k).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from phg.dsl.derive import distillation_source
from phg.prior import Prior

from .derived import derived_model
from .parameters import batch_of, require_finite_samples

# The samples the curvature is summed over, at most (evenly spaced among the inputs given).
CURVATURE_SAMPLES = 1_000


def distillation_model(cls):
    """The class of `cls`'s distillation model and the teacher input of each output."""
    return derived_model(cls, "distillation", distillation_source)


def distill(model, teacher: Callable, inputs: Mapping, steps: int | None = None, epochs: int | None = None,
            batch: int | None = None, callback=None, curvature_samples: int = CURVATURE_SAMPLES) -> Prior:
    """M.distill (codegen.runtime): fits `model` to the teacher on `inputs` and returns the prior."""

    if not callable(teacher):
        raise TypeError(f"teacher must be callable as teacher(inputs) -> {{output name: array}}, "
                        f"got {type(teacher).__name__}")
    if not isinstance(inputs, Mapping):
        raise TypeError(f"distill takes the inputs as a mapping {{input name: array}}, got {type(inputs).__name__}")
    spec = model.SPEC
    if not spec["params"] or not spec["outputs"]:
        raise ValueError(f"distill fits a model's parameters to a teacher's outputs; {spec['name']} has "
                         f"{'no parameters' if not spec['params'] else 'no outputs'}")
    needed = spec["predict"]["inputs"]
    arrays, n = model._inputs(inputs, needed, training=True)
    if n == 0:
        raise ValueError("distill needs at least one sample")
    given = dict(zip(needed, arrays))
    targets = teacher(dict(given))
    if not isinstance(targets, Mapping):
        raise TypeError(f"the teacher returned {type(targets).__name__}; expected a mapping {{output name: array}}")
    cls, names = distillation_model(type(model))
    data = dict(given)
    for o, teacher_input in names.items():
        if o not in targets:
            raise ValueError(f"the teacher's outputs lack {o!r} (it returned {sorted(map(str, targets))})")
        t = batch_of(o, targets[o], spec["outputs"][o], f"the teacher's output {o!r}")
        if t.shape[0] != n:
            raise ValueError(f"the teacher's output {o!r} has {t.shape[0]} samples for {n} inputs")
        require_finite_samples(f"the teacher's output {o!r}", t)
        data[teacher_input] = t
    student = cls(seed=0)
    student.params = model.params
    history = student.fit({k: data[k] for k in student._training()["inputs"]}, steps=steps, epochs=epochs,
                          batch=batch, callback=callback)
    model.params = student.params
    precision = curvature(student, names, data, curvature_samples)
    return Prior(spec["name"], model._coordinates(), model.params.arrays(), precision,
                 "auto", {"samples": n, "steps": len(history), "loss": float(history[-1]) if len(history) else None})


def curvature(student, names: dict[str, str], data: dict, samples: int) -> np.ndarray:
    """(2/N) sum_i J_i^T J_i of the distillation loss at the student's parameters, over at most
    `samples` of the N samples (evenly spaced), in the model's coordinates."""
    spec = student._training()
    n = len(next(iter(data.values())))
    rows = np.unique(np.linspace(0, n - 1, min(n, samples)).round().astype(np.int64))
    outputs = student.predict(**{k: data[k][rows] for k in student.SPEC["predict"]["inputs"]})
    coords = student._coordinates()
    size = coords[-1][3]
    total = np.zeros((size, size))
    for j, i in enumerate(rows):
        one = {k: data[k][i:i + 1] for k in spec["inputs"] if k not in names.values()}
        one.update({names[o]: outputs[o][j:j + 1] for o in names})     # every residual 0 ...
        for o, teacher_input in names.items():
            out = outputs[o][j:j + 1]
            for k in range(out[0].size):
                t = out.copy()
                t.reshape(-1)[k] -= 1.0                  # ... but e_k: the gradient is 2 J^T e_k
                student._run_train_kernel({**one, teacher_input: t}, versors=False)
                row = 0.5 * student._gradient_coordinates(coords)
                total += np.outer(row, row)
    return total * (2.0 / len(rows))

