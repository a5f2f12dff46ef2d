"""phg's version: what certificates and generated modules record, in a module of its own so that
the stages read it without importing phg's API (which imports them)."""
__version__ = "0.1.0"
