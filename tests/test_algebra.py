"""Blade names, canonical order and every product sign, checked against clifford."""
import itertools

import clifford
import numpy as np
import pytest

from phg.algebra import Algebra, AlgebraError

SIGNATURES = [(2, 0, 0), (3, 0, 0), (0, 3, 0), (1, 3, 0), (4, 1, 0), (3, 0, 1), (2, 0, 1), (0, 0, 1)]


def clifford_pair(p, q, r):
    """Our algebra and clifford's, with clifford's blades keyed by our blade masks."""
    ours = Algebra.from_signature("A", p, q, r)
    layout, _ = clifford.Cl(p, q, r)
    # clifford lists the null vector first and then p positive, q negative: our declaration order.
    assert [int(s) for s in layout.sig] == [v.square for v in ours.basis]
    first = min(i for t in layout.bladeTupList for i in t) if ours.n else 1
    masks = np.array([sum(1 << (k - first) for k in tup) for tup in layout.bladeTupList])
    blades = {}
    for i, mask in enumerate(masks):
        v = np.zeros(layout.gaDims)
        v[i] = 1.0
        blades[int(mask)] = layout.MultiVector(v)
    blades["masks"] = masks
    return ours, layout, blades


def as_signed_blade(mvec, blades):
    """(sign, mask) of a multivector that is 0 or +-1 times one blade."""
    nz = np.flatnonzero(mvec.value)
    if not len(nz):
        return 0, None
    assert len(nz) == 1, mvec
    coef = mvec.value[nz[0]]
    assert abs(abs(coef) - 1) < 1e-12
    return int(np.sign(coef)), int(blades["masks"][nz[0]])


@pytest.mark.parametrize("sig", SIGNATURES, ids=lambda s: "Cl%d%d%d" % s)
def test_products_match_clifford(sig):
    ours, layout, blades = clifford_pair(*sig)
    ops = {"gp": lambda a, b: a * b, "op": lambda a, b: a ^ b, "lc": lambda a, b: a.lc(b),
           "regressive": lambda a, b: a & b}
    for kind, fn in ops.items():
        sign, target = ours.tables[kind]
        for a, b in itertools.product(range(ours.dim), repeat=2):
            want_sign, want_mask = as_signed_blade(fn(blades[a], blades[b]), blades)
            assert sign[a, b] == want_sign, (kind, ours.blade_name(a), ours.blade_name(b))
            if want_sign:
                assert target[a, b] == want_mask, (kind, ours.blade_name(a), ours.blade_name(b))


@pytest.mark.parametrize("sig", SIGNATURES, ids=lambda s: "Cl%d%d%d" % s)
def test_unary_signs_match_clifford(sig):
    ours, layout, blades = clifford_pair(*sig)
    for a, blade in blades.items():
        if a == "masks":
            continue
        assert as_signed_blade(~blade, blades) == (ours.reverse_sign(a), a)
        assert as_signed_blade(blade.gradeInvol(), blades) == (ours.involute_sign(a), a)
        assert as_signed_blade(blade.right_complement(), blades) == ours.right_complement(a)


def test_canonical_order_and_names():
    g3 = Algebra.from_signature("G3", 3, 0, 0)
    assert g3.blade_names == ["1", "e1", "e2", "e3", "e12", "e13", "e23", "e123"]
    pga = Algebra.from_signature("PGA", 3, 0, 1)
    assert pga.blade_names == ["1", "e0", "e1", "e2", "e3", "e01", "e02", "e03", "e12", "e13", "e23",
                               "e012", "e013", "e023", "e123", "e0123"]
    assert pga.parse_blade("e21") == (-1, 0b0110)
    assert pga.parse_blade("e032") == (-1, 0b1101)
    assert pga.parse_blade("e11") is None and pga.parse_blade("e5") is None


def test_explicit_basis_matches_signature():
    sta = Algebra.from_basis("STA", [("g0", 1), ("g1", -1), ("g2", -1), ("g3", -1)])
    ref = Algebra.from_signature("C", 1, 3, 0)
    assert sta.blade_names[5] == "g01"
    for kind in ("gp", "op", "lc", "regressive"):
        assert np.array_equal(sta.tables[kind][0], ref.tables[kind][0])


def test_largest_algebra_products_spot_check():
    ours, layout, blades = clifford_pair(4, 4, 0)
    rng = np.random.default_rng(0)
    sign, target = ours.tables["gp"]
    for a, b in rng.integers(0, ours.dim, size=(300, 2)):
        assert (sign[a, b], target[a, b]) == as_signed_blade(blades[a] * blades[b], blades)


@pytest.mark.parametrize("args, message", [
    ((5, 4, 0), "at most 8"),
    ((3, 0, 2), "at most one null"),
    ((-1, 0, 0), "non-negative"),
])
def test_bad_signatures(args, message):
    with pytest.raises(AlgebraError, match=message):
        Algebra.from_signature("A", *args)


def test_bad_basis():
    with pytest.raises(AlgebraError, match="declared twice"):
        Algebra.from_basis("A", [("g0", 1), ("g0", -1)])
    with pytest.raises(AlgebraError, match="prefix"):
        Algebra.from_basis("A", [("x", 1), ("yy", -1)])
