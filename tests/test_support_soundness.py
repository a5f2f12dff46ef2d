"""The inferred blade support over-approximates: evaluated with clifford on random inputs of the
declared supports, no blade outside the support is ever non-zero."""
import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st

import phg
from phg.diagnostics import PhgError

from exprgen import ALGEBRAS, NotDefined, evaluate, reference, text, trees
from shards import sweep

TRIALS = 3
EXPRESSIONS = 2000
SHARDS = 4          # in parallel under pytest-xdist


def model_source(ref, supports, expr_text):
    p, q, r = ALGEBRAS[ref.name]
    lines = [f"algebra {ref.name} = Cl({p}, {q}, {r})", f"model M on {ref.name} {{"]
    for name, blades in supports.items():
        names = ", ".join(ref.ours.blade_name(b) for b in sorted(blades))
        lines.append(f"    input {name}: Blades({names})")
    lines += [f"    output y = {expr_text}", "}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("shard", range(SHARDS))
def test_inferred_support_contains_every_nonzero_blade(shard):
    sweep(st.data(), EXPRESSIONS, shard, SHARDS, _support_contains_every_nonzero_blade)


def _support_contains_every_nonzero_blade(data):
    ref = reference(data.draw(st.sampled_from(sorted(ALGEBRAS)), label="algebra"))
    dim = ref.ours.dim
    names = ["a", "b", "c"][:data.draw(st.integers(1, 3))]
    supports = {n: data.draw(st.sets(st.integers(0, dim - 1), min_size=1, max_size=dim)) for n in names}
    tree = data.draw(trees(ref, names, 5), label="expression")
    source = model_source(ref, supports, text(ref, tree))
    try:
        program = phg.loads(source)
    except PhgError as exc:
        # A constant sub-expression with no value (the inverse of e0, say) is refused: fine.
        assume(not exc.message.startswith("cannot evaluate"))
        raise
    model = program.models["M"]
    inferred = model.values[model.outputs["y"]].support
    rng = np.random.default_rng(len(source))
    evaluated = 0
    for _ in range(TRIALS):
        inputs = {n: ref.mv({b: rng.normal() for b in s}) for n, s in supports.items()}
        with np.errstate(all="ignore"):
            try:
                value = evaluate(ref, tree, inputs)
            except (NotDefined, ZeroDivisionError):
                continue
        if not np.isfinite(value.value).all() or np.abs(value.value).max() > 1e12:
            continue
        evaluated += 1
        outside = {b for b in ref.support_of(value) if not inferred >> b & 1}
        assert not outside, (source, [ref.ours.blade_name(b) for b in outside], value)
    assume(evaluated > 0)
