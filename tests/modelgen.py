"""Random models with random claimed types, for testing that every proven claim is true."""
from __future__ import annotations

from hypothesis import strategies as st

ALGEBRAS = {"G2": (2, 0, 0), "G3": (3, 0, 0), "PGA": (3, 0, 1), "STA": (1, 3, 0)}
INPUT_TYPES = ["Scalar", "Vector", "Bivector", "Even", "Multivector"]


def claim_types(n: int) -> list[str]:
    types = ["Scalar", "Vector", "Bivector", "Pseudoscalar", "Even", "Odd", "Multivector", "Rotor", "Versor",
             "Grades(0, 2)"]
    return types + (["Trivector", "Grades(1, 3)"] if n >= 3 else [])


@st.composite
def expressions(draw, names: list[str], depth: int, logs: bool = True) -> str:
    """`logs`: whether log() may appear (phg builds it only where exp has a closed form)."""
    if depth == 0 or draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(names + ["2", "e1"]))
    sub = lambda: draw(expressions(names, depth - 1, logs))  # noqa: E731
    form = draw(st.integers(0, 15 if logs else 14))
    if form <= 5:
        op = ["*", "^", "|", "&", "+", "-"][form]
        return f"({sub()} {op} {sub()})"
    if form == 6:
        return f"grade({sub()}, {draw(st.integers(0, 2))})"
    if form == 7:
        return f"{draw(st.sampled_from(['even', 'odd', 'dual', 'involute']))}({sub()})"
    if form == 8:
        return f"~({sub()})"
    if form == 9:
        return f"(R >> {sub()})"
    if form == 10:
        return f"(exp(grade({sub()}, 2) / 4) >> {sub()})"
    if form == 11:
        a = sub()
        return f"({a} * ~({a}))"
    if form == 12:
        a = sub()
        return f"({a} * {a})"
    if form == 14:
        return f"commutator({sub()}, {sub()})"
    if form == 15:
        return f"log(R * exp(grade({sub()}, 2) / 4))"
    return f"(R * exp(grade({sub()}, 2) / 4))"


@st.composite
def models(draw, built: bool = True) -> str:
    """`built`: models that phg builds (log() only in algebras where exp has a closed form);
    otherwise log() in any algebra, to be checked."""
    name = draw(st.sampled_from(sorted(ALGEBRAS)))
    p, q, r = ALGEBRAS[name]
    n = p + q + r
    lines = [f"algebra {name} = Cl({p}, {q}, {r})", f"model M on {name} {{", "    param R: Rotor",
             "    input a: Vector", f"    input b: {draw(st.sampled_from(INPUT_TYPES))}"]
    names = ["R", "a", "b"]
    for i in range(draw(st.integers(1, 3))):
        expr = draw(expressions(names, 3, not built or name != "STA"))
        lines.append(f"    let l{i}: {draw(st.sampled_from(claim_types(n)))} = {expr}")
        names.append(f"l{i}")
        if draw(st.integers(0, 3)) == 0:
            sets = ["0", "1", "2", "0, 2"] + (["1, 3"] if n >= 3 else [])
            lines.append(f"    ensure grade(l{i}) in {{{draw(st.sampled_from(sets))}}}")
        if draw(st.integers(0, 5)) == 0:
            lines.append(f"    ensure versor(l{i})")
    lines.append("}")
    return "\n".join(lines) + "\n"


# the groups each algebra of symmetric_models declares (LANGUAGE §20)
GROUPS = {"G2": ["O(2)", "SO(2)"], "G3": ["O(3)", "SO(3)"], "PGA": ["E(3)", "SE(3)", "O(3)", "SO(3)"]}


@st.composite
def symmetric_models(draw) -> str:
    """Random models declaring a symmetry, with outputs built from the operations of expressions()
    and the functions of invariants (gates, norms, scalar functions): some equivariant, some broken
    by a constant, a Rotor parameter, a dual, an input that does not transform."""
    name = draw(st.sampled_from(sorted(GROUPS)))
    p, q, r = ALGEBRAS[name]
    names = ["a", "b", "w"]
    fixed = draw(st.booleans())
    lines = [f"algebra {name} = Cl({p}, {q}, {r})", f"model M on {name} {{",
             f"    symmetry {draw(st.sampled_from(GROUPS[name]))}" + (" except c" if fixed else ""),
             "    param R: Rotor", "    param w: Scalar", "    input a: Vector",
             f"    input b: {draw(st.sampled_from(INPUT_TYPES))}"]
    if fixed:
        lines.append(f"    input c: {draw(st.sampled_from(['Scalar', 'Vector']))}")
        names.append("c")
    for i in range(draw(st.integers(1, 3))):
        expr = draw(expressions(names, 2, False))
        form = draw(st.integers(0, 5))
        if form == 1:
            expr = f"gate({expr}, w * norm2(a) + scalar({draw(expressions(names, 1, False))}))"
        elif form == 2:
            expr = f"{draw(st.sampled_from(['sin', 'cos', 'tanh', 'sigmoid', 'abs']))}(scalar({expr}) / 9)"
        elif form == 3:
            expr = f"normalize(a) * norm({expr}) + w * {expr}"
        lines.append(f"    output o{i} = {expr}")
        names.append(f"o{i}")
    lines.append("}")
    return "\n".join(lines) + "\n"
