"""Generated models run by Python instead of Numba (each kernel's py_func), so that hundreds of
random models can be tested without compiling each one."""
from __future__ import annotations

import re


def interpreted(module, model_name: str, seed: int = 1):
    """An instance of the model class whose kernels and helpers are the Python functions Numba
    would have compiled."""
    cls = getattr(module, re.sub(r"\W", "_", model_name))
    model = cls(seed=seed)
    for kernel in ("_predict_kernel", "_train_kernel"):
        if hasattr(cls, kernel):
            setattr(model, kernel, getattr(cls, kernel).py_func)
    # helpers, and the per-slot functions the training kernels call
    for name in [n for n in vars(module) if n.startswith(("_exp_", "_inv_")) or n.endswith("_train_slot")]:
        setattr(module, name, getattr(getattr(module, name), "py_func", getattr(module, name)))
    return model
