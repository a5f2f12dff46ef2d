"""Obligations and their discharge: grade and versor proofs (Z3), units, memory plan, certificates."""
