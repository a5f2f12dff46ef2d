"""A model's parameters and the checks every array passes before a kernel reads it.

`M.params` is a mapping that refuses, when a value is assigned or loaded, what would make a kernel
compute nonsense without failing: a wrong shape or dtype, a NaN or infinity, a Rotor or Motor that
is not a normalised versor (V ~V = 1, which for a PGA motor includes the study condition).  Values
are copied in, so a read-only array (np.load with mmap_mode, a view of someone else's data) can be
assigned and the model still owns, and updates, its own."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping

import numba
import numpy as np

from phg.layouts import Axes
from phg.numeric import DEFAULT, FORMATS

from .formats import round_array

# |(V ~V)_k - [k is the scalar]| may be this many roundings of the products summed into
# component k: a versor normalised in float64 passes, one off by 1e-9 does not.
VERSOR_TOLERANCE = 1e-12


def norm_table(alg, layout: list[int]) -> dict:
    """The terms of V ~V for a versor stored on `layout` (blade masks): (V ~V)[k] is the sum over
    terms [i, j, k, sign] of sign * V[i] * V[j].  Computed at build time, where the algebra is
    known; the runtime needs only these numbers."""
    terms, blades = [], []
    for i, a in enumerate(layout):
        for j, b in enumerate(layout):
            sign, target = alg.gp(a, b)
            sign *= alg.reverse_sign(b)
            if sign:
                if target not in blades:
                    blades.append(target)
                terms.append([i, j, blades.index(target), sign])
    return {"blades": [alg.blade_name(b) for b in blades], "terms": terms}


def array(where: str, value, spec: dict, batched: bool) -> np.ndarray:
    """value as float64 [N?, *channels, components], or a ValueError naming where and the layout.
    A value of one component (a Scalar's) may also come without that axis, [N?, *channels], as it
    is declared (and as numpy code has it: the column x[:, 0]); it is read through a view, so no
    sample is copied that the full shape would not copy.  A value in another order of axes comes
    as phg.axes(value, "N K C") and is read in phg's."""
    expected = (*spec["shape"], len(spec["layout"]))
    one = len(spec["layout"]) == 1
    n = "N, " if batched else ""
    layout = f"[{n}{', '.join(map(str, expected))}] (components {', '.join(spec['layout'])})"
    if one:
        bare = f"[{n}{', '.join(map(str, spec['shape']))}]".replace(", ]", "]") if batched or spec["shape"] else "a number"
        layout += f", or {bare} for its one component"
    if isinstance(value, Axes):
        value = value.canonical(where, batched, len(spec["shape"]))
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{where} has dtype {arr.dtype}; expected real numbers (float64) laid out as {layout}")
    want = (arr.shape[0], *expected) if batched and arr.ndim >= 1 else expected
    if one and arr.shape == want[:-1] and not (batched and arr.ndim == 0):     # (a number is no batch)
        arr = arr[..., np.newaxis]
    if arr.shape != tuple(want):
        raise ValueError(f"{where} has shape {list(arr.shape)}; expected {layout}")
    # float32 and integers are widened, strided views copied: the kernels read float64 rows.
    return np.ascontiguousarray(arr, dtype=np.float64)


def batch_of(name: str, value, spec: dict, where: str | None = None) -> np.ndarray:
    """An input as float64 [N, *channels, components] (see parameters.array).  `where`: how
    errors name the value (default: input NAME)."""
    return array(where or f"input {name!r}", value, spec, True)


def declared(spec: dict, arr: np.ndarray) -> np.ndarray:
    """A stored array [*channels, components] as its value is declared: a Scalar's (one component)
    without the component axis, a view of the same numbers (so editing it edits the stored ones)."""
    return arr.reshape(arr.shape[:-1]) if len(spec["layout"]) == 1 else arr


def norm_arrays(norm: dict) -> tuple[np.ndarray, np.ndarray]:
    """norm_table's terms [i, j, k, sign] as an array, and V ~V of a versor."""
    terms = np.array(norm["terms"], dtype=np.int64).reshape(-1, 4)
    return terms, np.array([1.0 if b == "1" else 0.0 for b in norm["blades"]])


@numba.njit(cache=True, nogil=True)
def _off_versor(flat, terms, target, tolerance):
    """The first (channel, component k) where V ~V (norm_table's terms) is further from its
    target than `tolerance` roundings of its products allow, and its value; (-1, -1, 0.0) when
    every channel is a normalised versor.  A loop, so that a check allocates nothing (its
    bytes would count against the certificate's memory bound)."""
    for c in range(flat.shape[0]):
        for k in range(target.shape[0]):
            value = 0.0
            scale = 0.0
            for t in range(terms.shape[0]):
                if terms[t, 2] == k:
                    product = flat[c, terms[t, 0]] * flat[c, terms[t, 1]]
                    value += terms[t, 3] * product
                    scale += abs(product)
            if not abs(value - target[k]) <= tolerance * max(1.0, scale):
                return c, k, value
    return -1, -1, 0.0


def finite(a: np.ndarray) -> bool:
    # One pass, and no temporary array like isfinite's (a training step's allocations are bounded
    # by the certificate's memory plan): a NaN or an infinity makes the sum non-finite, and only a
    # sum that overflowed from finite terms needs the second look, at min and max.
    with np.errstate(over="ignore", invalid="ignore"):
        if a.size == 0 or np.isfinite(a.sum()):
            return True
    return bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def first_non_finite(a: np.ndarray) -> tuple[tuple[int, ...], float]:
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
    return index, float(a[index])


def require_finite_samples(name: str, a: np.ndarray):
    """A NaN or infinity in one sample would turn the batch-mean loss, every gradient and so every
    parameter non-finite; name the sample instead."""
    if not finite(a):
        index, bad = first_non_finite(a)
        where = f"component {index[-1]}" if len(index) == 2 else f"channel {list(index[1:-1])}, component {index[-1]}"
        raise ValueError(f"input {name!r}: sample {index[0]} is not finite ({bad}, at {where}); "
                         "training needs finite data (drop or repair that sample)")


class UnknownParameter(KeyError):
    def __str__(self) -> str:                 # KeyError would quote the whole sentence
        return str(self.args[0])


class Declared(MutableMapping):
    """`M.params`: name -> float64 array as the parameter is declared (`[*channels, components]`,
    a Scalar's `[*channels]`: it has one component), a view of the stored numbers, so editing it
    in place edits the parameter (checked again before the next kernel runs).  An assignment takes
    the declared shape, the shape with a Scalar's one-component axis, or phg.axes(...), and is
    checked as Stored checks it.  `arrays()`: copies as the kernels hold them."""

    def __init__(self, stored: "Parameters"):
        self._stored = stored

    def __getitem__(self, name: str) -> np.ndarray:
        return declared(self._stored._specs[name], self._stored[name]) if name in self._stored._specs \
            else self._stored[name]

    def __setitem__(self, name: str, value):
        self._stored[name] = value

    def __delitem__(self, name: str):
        del self._stored[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def update(self, other=(), /, **kwargs):
        """Every value is checked before any is stored: a bad one leaves all parameters as they were."""
        self._stored.update(other, **kwargs)

    def set_unnormalised(self, name: str, value):
        """See Parameters.set_unnormalised."""
        self._stored.set_unnormalised(name, value)

    def arrays(self) -> dict[str, np.ndarray]:
        """A copy of every parameter as the kernels hold it, [*channels, components] (a Scalar's
        with its one-component axis): the form release records and priors keep."""
        return {name: self._stored[name].copy() for name in self._stored}


class Parameters(MutableMapping):
    """name -> float64 array [*channels, components], as the kernels read it (the model's own
    store; `M.params` shows it as declared, see Declared); see the module's docstring."""

    def __init__(self, model: str, specs: dict, values: Mapping, numeric: str = DEFAULT):
        self._model, self._specs = model, specs
        # a model in a numeric format stores its format's values (LANGUAGE §11)
        self.numeric = numeric
        self._tolerance = VERSOR_TOLERANCE if numeric == DEFAULT else FORMATS[numeric].versor_tolerance
        self._values: dict[str, np.ndarray] = {}
        self._terms: dict[str, tuple] = {}
        self.update(values)

    # ---- the mapping ----------------------------------------------------------------------------
    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._specs:
            raise self._unknown(name)
        return self._values[name]

    def __setitem__(self, name: str, value):
        self._values[name] = self.checked(name, value)

    def __delitem__(self, name: str):
        raise TypeError(f"parameter {name!r} of {self._model} cannot be deleted; every kernel needs it "
                        f"(assign a new value instead, e.g. params[{name!r}] = ...)")

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return repr(dict(self._values))

    def update(self, other=(), /, **kwargs):
        """Every value is checked before any is stored: a bad one leaves all parameters as they were."""
        if isinstance(other, Mapping):
            items = list(other.items())
        elif hasattr(other, "keys"):
            items = [(k, other[k]) for k in other.keys()]
        else:
            items = list(other)
        items += kwargs.items()
        checked = {name: self.checked(name, value) for name, value in items}
        self._values.update(checked)

    # ---- the checks -----------------------------------------------------------------------------
    def set_unnormalised(self, name: str, value):
        """Store coefficients of a Rotor or Motor parameter that need not be a normalised versor
        (shape and finiteness are still checked): loss and grad are functions of the stored
        coefficients, and finite differences step off the manifold.  predict, step and fit
        refuse to run until a versor is assigned again."""
        self._values[name] = self.checked(name, value, versor=False)

    def checked(self, name: str, value, versor: bool = True) -> np.ndarray:
        """A fresh float64 copy of value, or a ValueError naming the parameter and what is wrong."""
        if name not in self._specs:
            raise self._unknown(name)
        spec = self._specs[name]
        arr = np.array(array(f"parameter {name!r}", value, spec, False), dtype=np.float64, copy=True)
        self.round(arr)
        self.require_valid(name, arr, versor)
        return arr

    def require_valid(self, name: str, arr: np.ndarray, versor: bool = True):
        """Finite, and a normalised versor where declared one (unless versor is False).  Also run
        before each kernel, since the stored arrays can be edited in place."""
        spec = self._specs[name]
        if not finite(arr):
            index, bad = first_non_finite(arr)
            raise ValueError(f"parameter {name!r} is not finite: {bad} at {list(index)} "
                             f"(component {spec['layout'][index[-1]]})")
        norm = spec.get("norm")
        if norm is None or not versor:
            return
        terms, target = self._norm_terms(name)
        channel, col, value = _off_versor(arr.reshape(-1, arr.shape[-1]), terms, target, self._tolerance)
        if channel >= 0:
            what, blade = spec["versor"], norm["blades"][col]
            inside = f" in channel {[int(i) for i in np.unravel_index(channel, arr.shape[:-1])]}" if arr.ndim > 1 else ""
            part = "its scalar part" if blade == "1" else f"its {blade} part"
            should = "1" if blade == "1" else "0" + (" (the study condition)" if what == "Motor" else "")
            raise ValueError(f"parameter {name!r} is not a {what}{inside}: {name} ~{name} has {part} = "
                             f"{value!r}, which should be {should}; a {what} is a normalised "
                             f"versor (V ~V = 1), e.g. the identity {', '.join(['1'] + ['0'] * (arr.shape[-1] - 1))}")

    def round(self, arr: np.ndarray) -> None:
        """arr (C-contiguous float64) rounded to the model's format in place."""
        if self.numeric != DEFAULT:
            round_array(arr, self.numeric)

    def _norm_terms(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """norm_arrays of a parameter, made once."""
        if name not in self._terms:
            self._terms[name] = norm_arrays(self._specs[name]["norm"])
        return self._terms[name]

    def _unknown(self, name) -> UnknownParameter:
        return UnknownParameter(f"{self._model} has no parameter {name!r}; its parameters are "
                                f"{', '.join(self._specs) or 'none'}")
