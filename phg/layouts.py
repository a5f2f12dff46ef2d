"""Arrays whose axes are not in phg's order, named so.

phg reads an input as `[N, *channels, components]` and a parameter as `[*channels, components]`
(the components last, in the order `M.layout(name)` lists).  An array laid out otherwise, as
`[N, components, channels]` (components first, as some libraries keep them), has the same shape
when there are as many channels as components, and would be read wrongly without a word: shapes
alone cannot tell the two apart.  `phg.axes(x, "N K C")` says which axis is which (N the samples,
K the components, one C per channel axis, in their declared order), and phg moves them into its
own order, checking that the named axes are the ones the value has.
"""
from __future__ import annotations

import numpy as np

_LETTERS = {"N": "the samples", "K": "the components", "C": "a channel axis"}


class Axes:
    """An array with its axes named (see phg.axes); phg's checks read it in their own order."""

    __slots__ = ("array", "order")

    def __init__(self, array, order: str):
        if not isinstance(order, str):
            raise TypeError(f"phg.axes: the order must be a string of N, K and C such as \"N K C\", got "
                            f"{type(order).__name__}")
        letters = [c for c in order.upper() if c not in " ,[]"]
        wrong = [c for c in letters if c not in _LETTERS]
        if wrong or letters.count("K") != 1 or letters.count("N") > 1:
            raise ValueError(f"phg.axes: order {order!r} should name each axis by a letter, N the samples "
                             "(at most once), K the components (once) and C each channel axis, e.g. \"N K C\"")
        self.array, self.order = np.asarray(array), "".join(letters)

    def __repr__(self) -> str:
        return f"phg.axes(array of shape {list(self.array.shape)}, {' '.join(self.order)!r})"

    def canonical(self, where: str, batched: bool, channels: int) -> np.ndarray:
        """The array in phg's order ([N?, *channels, components]), or a ValueError naming where,
        the order given and the axes the value has."""
        want = ("N" if batched else "") + "C" * channels + "K"
        if sorted(self.order) != sorted(want) or self.array.ndim != len(self.order):
            expected = " ".join(want)
            raise ValueError(f"{where}: phg.axes order {' '.join(self.order)!r} does not fit its array of shape "
                             f"{list(self.array.shape)}; expected {len(want)} axes named {expected!r} in some order "
                             f"({'N the samples, ' if batched else ''}K the components"
                             f"{_channels(channels)})")
        # Where each of phg's axes is in the array: N first, the Cs in their order, K last.
        source = [i for i, c in enumerate(self.order) if c == "N"] + \
                 [i for i, c in enumerate(self.order) if c == "C"] + [self.order.index("K")]
        return np.transpose(self.array, source)


def _channels(count: int) -> str:
    return "" if count == 0 else ", C its channel axis" if count == 1 else f", C each of its {count} channel axes"


def axes(array, order: str) -> Axes:
    """`array` with its axes named by `order`, a letter each: N the samples, K the components, C
    each channel axis in its declared order (spaces and commas are ignored).  Inputs, data sets and
    parameters given so are read in phg's own order, `[N, *channels, components]`:
    `M.predict(x=phg.axes(X, "N K C"))` for X laid out `[N, components, channels]`."""
    return Axes(array, order)
