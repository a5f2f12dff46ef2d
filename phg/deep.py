"""A stack deep enough for the largest model phg accepts.

Lowering, the verifier and the code generator walk expressions and chains of values recursively.
The parser and dsl.budget bound how deep those go (MAX_NESTING, MAX_DEPTH operations); this runs a
stage in a thread whose stack and recursion limit cover that bound with room to spare, so a model
within the limits never overflows and one beyond them is refused, located, before it could.
"""
from __future__ import annotations

import sys
import threading

# Frames per level of the deepest recursions (a value, its edge and a comprehension in between,
# sympy's dense polynomials one per generator), times the deepest chain dsl.budget allows.
RECURSION_LIMIT = 200_000
STACK_BYTES = 1 << 30              # reserved, not committed: only the pages a deep model touches

_lock = threading.Lock()
_active = 0
_saved_limit = 0
_local = threading.local()


def call(fn, *args, **kwargs):
    """fn(*args, **kwargs) on the deep stack; its result, or its exception re-raised here."""
    if getattr(_local, "deep", False):
        return fn(*args, **kwargs)
    outcome: dict = {}

    def run():
        _local.deep = True
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:           # handed to the caller's thread, unchanged
            outcome["error"] = exc

    _enter()
    try:
        previous = threading.stack_size()
        threading.stack_size(STACK_BYTES)
        try:
            worker = threading.Thread(target=run, name="phg-deep", daemon=True)
        finally:
            threading.stack_size(previous)
        worker.start()
        worker.join()
    finally:
        _leave()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _enter():
    global _active, _saved_limit
    with _lock:
        if _active == 0:
            _saved_limit = sys.getrecursionlimit()
            sys.setrecursionlimit(max(_saved_limit, RECURSION_LIMIT))
        _active += 1


def _leave():
    global _active
    with _lock:
        _active -= 1
        if _active == 0:
            sys.setrecursionlimit(_saved_limit)
