"""Generated models run by Python instead of Numba (each kernel's py_func), so that hundreds of
random models can be tested without compiling each one."""
from __future__ import annotations

import ctypes

_DOUBLES = ctypes.POINTER(ctypes.c_double)


def interpreted(module, model_name: str, seed: int = 1):
    """An instance of the model class whose kernels and helpers are the Python functions Numba
    would have compiled."""
    cls = module.MODELS[model_name]
    # a subclass with no parts to bind: nothing is compiled (its parts run as Python, below)
    model = type(cls.__name__, (cls,), {"_parts": ()})(seed=seed)
    for kernel in ("_predict_kernel", "_slots_kernel", "_train_kernel"):
        if hasattr(cls, kernel):
            setattr(model, kernel, getattr(cls, kernel).py_func)
    # helpers, and the per-slot functions and parts of loop plans the kernels call
    # (the module's own functions: codegen.lie's exp_factors, imported as _phg_exp_factors, stays)
    for name in [n for n, f in vars(module).items() if n.startswith(("_phg_exp", "_phg_inv", "_phg_slot_", "_phg_part_"))
                 and getattr(f, "__module__", None) == module.__name__]:
        setattr(module, name, getattr(getattr(module, name), "py_func", getattr(module, name)))
    # a part the kernels call by address (codegen.opaque) runs as its Python function, on the
    # workspace's words as ctypes pointers (the kernels pass `_ws.ctypes`, twice)
    for symbol, function, nest in cls._parts:
        name = function.__name__.removesuffix("_c")
        setattr(module, name, lambda wv, wi, length, m, f=function: f(wv.data_as(_DOUBLES), wi.data_as(_DOUBLES),
                                                                      length, m))
    # numba's uint64, the slabs' index type, is a slow cast in Python: Python's int indexes alike
    if hasattr(module, "_phg_index"):
        module._phg_index = int
    return model
