"""The kernel plan, phg's second intermediate representation: between the Program Hypergraph and
the emitter.  What a model's kernels compute (per-sample scalar programs over blade supports,
their adjoints), what a training step sums, and every buffer it touches with its size.  The
verifier certifies memory and quire claims on it; codegen emits it.
"""
from .kernel import KernelPlan, TrainPlan, kernel_plan

__all__ = ["KernelPlan", "TrainPlan", "kernel_plan"]
