"""Models derived from a model's own source (phg.dsl.derive): its distillation program (codegen.distill)
and its vector-Jacobian-product program (codegen.vjp), built on first use through phg.build, which
the API lends this module (the verifier narrows the derived program's supports, and no stage of
the pipeline imports the API), into phg's kernel cache, then kept on the model's class.
"""
from __future__ import annotations

import sys

# phg.build(program, unverified=...) -> module, set by phg.build when it first builds a module
BUILD = None


def derived_model(cls, kind: str, derive) -> tuple[type, dict]:
    """The class of `cls`'s derived model of `kind` ("distillation", "vjp"), made from the text
    derive(source, model name, SPEC["outputs"], path) returns with its names, and those names."""
    attr = f"_derived_{kind}"
    cached = cls.__dict__.get(attr)
    if cached is not None:
        return cached
    from phg.dsl import loads

    if BUILD is None:
        raise RuntimeError(f"the {kind} model is built with phg.build; load the model's module with it")
    module = sys.modules[cls.__module__]
    text, names = derive(module.SOURCE, cls.SPEC["name"], cls.SPEC["outputs"], module.SOURCE_PATH)
    built = BUILD(loads(text, f"{module.SOURCE_PATH} ({kind} of {cls.SPEC['name']})"), unverified=True)
    setattr(cls, attr, (built.MODELS[cls.SPEC["name"]], names))
    return getattr(cls, attr)
