"""Spin locks, for the threads of a loop kernel's step that deposit into one exact row.

Exact sums do not depend on the order their terms arrive in, so the threads of a step can share
one row rather than each keep its own (phg.plan.buffers): a thread holds the lock of a block of
sums while it deposits a row of terms into them.  Numba has no atomic operations on the CPU, so
the two a lock needs, a compare-and-swap that acquires and a store that releases, are LLVM's own
instructions, compiled once per process from the IR below and bound to symbols that compiled
kernels call (as codegen.deposits binds its C functions).

A lock is one int64 word, 0 when free; the callers put each on a cache line of its own.  Waiting
reads the word until it is free before trying again, so that a waiting thread does not keep
taking the line from the one that holds it.  Locks must be taken and released outside any
function whose pointer arguments are noalias (codegen.opaque): within one, LLVM may move its
stores across a call that is not given those pointers.
"""
from __future__ import annotations

import llvmlite.binding as llvm
from numba import types

_IR = r"""
define void @phg_lock(ptr %base, i64 %word) {
entry:
  %p = getelementptr i64, ptr %base, i64 %word
  br label %try
try:
  %r = cmpxchg ptr %p, i64 0, i64 1 acquire monotonic
  %taken = extractvalue { i64, i1 } %r, 1
  br i1 %taken, label %done, label %wait
wait:
  %v = load atomic i64, ptr %p monotonic, align 8
  %free = icmp eq i64 %v, 0
  br i1 %free, label %try, label %wait
done:
  ret void
}

define void @phg_unlock(ptr %base, i64 %word) {
entry:
  %p = getelementptr i64, ptr %base, i64 %word
  store atomic i64 0, ptr %p release, align 8
  ret void
}
"""


def _compile():
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(_IR)
    module.triple = llvm.get_process_triple()
    module.verify()
    machine = llvm.Target.from_triple(module.triple).create_target_machine()
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    for symbol in ("phg_lock", "phg_unlock"):
        llvm.add_symbol(symbol, engine.get_function_address(symbol))
    return engine


_ENGINE = _compile()            # alive as long as the process: kernels call its code
_SIGNATURE = types.void(types.voidptr, types.int64)
# lock(words.ctypes, k) waits for words[k] to be free and takes it; unlock(words.ctypes, k) frees it.
lock = types.ExternalFunction("phg_lock", _SIGNATURE)
unlock = types.ExternalFunction("phg_unlock", _SIGNATURE)
