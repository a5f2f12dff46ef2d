"""The loop kernels' exact sums (codegen.deposits, codegen.accumulate) against Fractions, and a
wide network's exact gradients bit for bit under sample permutations and thread counts."""
from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest

import phg
from phg.codegen import accumulate as acc_
from phg.codegen.deposits import deposit_products, deposit_rows
from phg.plan.buffers import ASIDE, DIGITS, LEDGER, LOOP_STATE_ROWS, lock_words


class Rows:
    """`shares` accumulator rows of `sums` sums, as a loop kernel's buffers lay them out."""

    def __init__(self, sums: int, shares: int, columns: int | None = None):
        self.acc = np.zeros((shares, DIGITS, columns or sums), np.int64)
        self.grid = np.full((shares, sums), np.nan)
        self.state = np.zeros((shares, LOOP_STATE_ROWS, sums), np.int64)
        self.ranges = np.zeros((shares, sums + LEDGER), np.int64)
        self.locks = np.zeros((shares, lock_words(sums)), np.int64)
        for s in range(shares):
            self.open(s)

    def open(self, s):
        acc_.open_pass(self.acc[s], self.ranges[s], self.state[s], self.grid[s])

    def row(self, s):
        return self.state[s], self.grid[s], self.acc[s], self.ranges[s]

    def deposit(self, s, ws, q0, at, t0, t1, width, share=0):
        """deposit_rows into row s, as thread `share` of the threads that share it."""
        return deposit_rows(*self.row(s), ws, self.locks[s], share, q0, at, t0, t1, width)

    def products(self, s, ws, pairs, *args, share=0):
        return deposit_products(*self.row(s), ws, self.locks[s], share, pairs, *args)

    def end_round(self, s, terms, aside, coming):
        acc_.end_round(self.acc[s], self.ranges[s], self.state[s], self.grid[s], terms, aside, coming)

    def totals(self, sums=None, q0=0, q1=None):
        """The totals of the sums q0 to q1 (all), into `sums`."""
        sums = np.zeros(self.grid.shape[1]) if sums is None else sums
        acc_.totals(self.acc, self.ranges, self.state, self.grid, sums, np.zeros((1, DIGITS), np.int64), q0,
                    sums.size if q1 is None else q1, False, 1, 0, 1)
        acc_.close(self.acc, self.ranges, self.state, self.grid)
        return sums

    def full(self) -> bool:
        return bool(self.ranges[:, -LEDGER + acc_.FULL].any())


def _terms(rng, kind: str, shape) -> np.ndarray:
    x = rng.normal(size=shape)
    if kind == "binades":                     # 600 binades and more
        x *= np.exp2(rng.integers(-1074, 1000, size=shape))
    elif kind == "subnormal":
        x = rng.integers(-2**20, 2**20, size=shape) * 5e-324
    elif kind == "mixed":                     # ordinary terms, and a few from the ends of the range
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, size=5)] = [1e300, 5e-324, -2.5e-310, 1e-200, -7e250]
    return x


@pytest.mark.parametrize("kind", ["normal", "binades", "subnormal", "mixed", "cancel"])
def test_deposited_rows_sum_exactly(kind):
    """Tiles of terms over two rows (each with its grids, a pass open across tiles, settled when
    terms miss its grids or it fills; totals read across rows, as a Dask share's digits are
    added) total to the correctly rounded exact sum."""
    rng = np.random.default_rng(hash(kind) % 2**32)
    sums, tile = 37, 64
    rows = Rows(sums, 2)
    exact = [Fraction(0)] * sums
    for step in range(2):
        blocks = []
        for t in range(12):
            s = t % 2
            block = _terms(rng, kind if kind != "cancel" else "binades", (tile, sums))
            if kind == "cancel" and t >= 6:      # the last tiles take back the first ones, in the other share
                block = -blocks[t - 5]
            blocks.append(block)
            m = tile - (t == 11) * 9             # a short last tile
            ws = np.concatenate([np.zeros(3), block.reshape(-1)])
            aside = rows.deposit(s, ws, 0, 3, 0, m, sums)
            rows.end_round(s, m, aside, tile)
            for c in range(sums):
                exact[c] += sum(Fraction(float(v)) for v in block[:m, c])
        got = rows.totals()
        for c in range(sums):
            assert got[c] == float(exact[c]), (kind, step, c)
        exact = [Fraction(0)] * sums
        for s in range(2):
            rows.open(s)
        assert not rows.acc.any() and not rows.state[:, :3].any()      # totals leave the rows clear


def test_a_pass_folds_its_level_sums_and_never_reaches_its_digits():
    """Terms on their grids for many more samples than a pass holds (CHUNK): the open pass folds
    its level sums into their carry, no sum takes a digit column (there is one, for nine sums),
    and the totals are exact."""
    rng = np.random.default_rng(3)
    sums, tile = 9, 64
    rows = Rows(sums, 1, columns=1)
    rows.grid[0] = acc_.regrid(np.float64(1.0).view(np.int64))
    rows.open(0)
    exact = [Fraction(0)] * sums
    for t in range(40):                       # 2,560 samples: folded twice
        block = rng.uniform(0, 1, size=(tile, sums))
        aside = rows.deposit(0, block.reshape(-1), 0, 0, 0, tile, sums)
        assert aside == 0
        rows.end_round(0, tile, aside, tile)
        for c in range(sums):
            exact[c] += sum(Fraction(float(v)) for v in block[:, c])
    assert rows.state[0, acc_.CARRY].all() and not rows.ranges[0, :sums].any() and not rows.full()
    assert rows.totals().tolist() == [float(e) for e in exact]


def test_sums_take_windows_of_digits_and_whole_columns_once_they_outgrow_them():
    """A first tile's terms, on no grid yet, reach the digits of every sum: each takes a window
    (eight to a column); terms 2,000 binades apart move a sum's digits to a whole column.  Eight
    sums in five columns, exact totals."""
    rng = np.random.default_rng(5)
    sums, tile = 8, 64
    rows = Rows(sums, 1, columns=5)
    tiles = [rng.normal(size=(tile, sums)) for _ in range(2)]
    tiles[1][7, 3], tiles[1][9, 5] = 1e300, -5e-324
    exact = [float(sum(Fraction(float(v)) for b in tiles for v in b[:, c])) for c in range(sums)]
    for block in tiles:
        rows.end_round(0, tile, rows.deposit(0, block.reshape(-1), 0, 0, 0, tile, sums), tile)
    entries = rows.ranges[0, :sums]
    whole = (entries >> 42) & 1
    assert entries.all() and whole.tolist() == [0, 0, 0, 1, 0, 1, 0, 0] and not rows.full()
    assert rows.totals().tolist() == exact


def test_a_row_out_of_digit_columns_is_marked_and_blocks_of_sums_total_exactly():
    """Terms over 600 binades, which no grid keeps, reach the digits of every sum: a row of fewer
    columns than its sums need is marked FULL, and the sums that found no room DROPPED; the
    others' totals are exact as they are, and summed again a block of as many as the row has
    columns at a time (the others' digits dropped), so are theirs."""
    rng = np.random.default_rng(4)
    sums, columns, tile = 11, 3, 64
    tiles = [np.concatenate([_terms(rng, "normal", (tile, 6)), _terms(rng, "binades", (tile, sums - 6))], axis=1)
             for _ in range(3)]
    exact = [float(sum(Fraction(float(v)) for b in tiles for v in b[:, c])) for c in range(sums)]
    rows = Rows(sums, 1, columns=columns)

    def run():
        rows.open(0)
        for block in tiles:
            rows.end_round(0, tile, rows.deposit(0, block.reshape(-1), 0, 0, 0, tile, sums), tile)

    run()
    assert rows.full()
    dropped = (rows.ranges[0, :sums] & acc_.DROPPED) != 0
    got = np.zeros(sums)
    acc_.totals(rows.acc, rows.ranges, rows.state, rows.grid, got, np.zeros((1, DIGITS), np.int64), 0, sums, False, 1,
                0, 1)
    assert not dropped[:6].any() and dropped[6:].any()         # the ordinary sums keep their windows
    assert [got[c] == exact[c] for c in range(sums) if not dropped[c]] == [True] * int((~dropped).sum())
    assert acc_.mark_needed(rows.ranges) == dropped.sum() > 0
    acc_.close(rows.acc, rows.ranges, rows.state, rows.grid)
    q0 = acc_.next_block(rows.ranges, 0, 0)
    while q0 < sums:                          # as codegen.runtime sums them: a block, a column a sum
        q1 = acc_.next_block(rows.ranges, q0, columns)
        rows.ranges[0, sums + acc_.BLOCK_LO], rows.ranges[0, sums + acc_.BLOCK_HI] = -1 - q0, q1
        run()
        assert not rows.full()
        acc_.totals(rows.acc, rows.ranges, rows.state, rows.grid, got, np.zeros((1, DIGITS), np.int64), q0, q1,
                    True, 1, 0, 1)
        assert acc_.complete(rows.ranges, q0, q1) > 0
        acc_.close(rows.acc, rows.ranges, rows.state, rows.grid)
        q0 = acc_.next_block(rows.ranges, q0, 0)
    acc_.unmark(rows.ranges)
    assert got.tolist() == exact and not rows.ranges[0].any()


def test_deposited_products_sum_exactly():
    """A matrix product's weight terms (Σ s dy x over blade pairs, plus a per-sample part) of wide
    range: the exact sum of each sample's term."""
    rng = np.random.default_rng(7)
    cout, cin, tile, m = 5, 7, 64, 50
    pairs = np.array([[0, 1, 1], [2, 0, -1], [1, 2, 1]], np.int64)
    dy = rng.normal(size=(3, tile, cout)) * np.exp2(rng.integers(-500, 500, size=(3, tile, cout)))
    x = rng.normal(size=(3, tile, cin)) * np.exp2(rng.integers(-500, 500, size=(3, tile, cin)))
    add = rng.normal(size=(tile, cout * cin))
    ws = np.concatenate([dy.reshape(-1), x.reshape(-1), add.reshape(-1), np.full(cin, np.nan)])   # then scratch
    rows = Rows(cout * cin + 3, 1)
    aside = rows.products(0, ws, pairs, 3, 0, dy.size, dy.size + x.size, 0, m, cout, cin, tile,
                             ws.size - cin)
    rows.end_round(0, m, aside, tile)
    got = rows.totals()
    for i in range(cout):
        for j in range(cin):
            total = Fraction(0)
            for t in range(m):
                term = add[t, i * cin + j]
                for b, k, s in pairs:
                    term += s * dy[k, t, i] * x[b, t, j]
                total += Fraction(float(term))
            assert got[3 + i * cin + j] == float(total), (i, j)
    assert got[:3].tolist() == [0.0, 0.0, 0.0]


def test_ties_round_to_even_and_non_finite_terms_mark_the_sum():
    rows = Rows(4, 1)
    one_ulp = 2.0 ** -52
    # 1 + ulp/2 is a tie: even is 1; 1 + ulp + ulp/2 a tie: even is 1 + 2 ulp; a sticky bit far
    # below a tie rounds up; an infinity and a NaN mark their sums
    block = np.array([[1.0, 1.0 + one_ulp, 1.0, 1.0],
                      [one_ulp / 2, one_ulp / 2, one_ulp / 2, np.nan],
                      [0.0, 0.0, 2.0 ** -1000, np.inf]])
    ws = block.reshape(-1)
    aside = rows.deposit(0, ws, 0, 0, 0, 3, 4)
    rows.end_round(0, 3, aside, 64)
    got = rows.totals()
    assert got[0] == 1.0 and got[1] == 1.0 + 2 * one_ulp and got[2] == 1.0 + one_ulp and np.isnan(got[3])
    # again on the grids that tile left, in passes two shares leave open, which the totals read
    # without the digits: the same ties, a negative one, and a sum of two shares' terms
    rows = Rows(4, 2)
    for s in range(2):
        aside = rows.deposit(s, np.array([4.0, 4.0, 4.0, 4.0]), 0, 0, 0, 1, 4)
        rows.end_round(s, 1, aside, 64)
    rows.totals()
    for s in range(2):
        rows.open(s)
    tie = 0.5 + one_ulp / 2                   # with 0.5 taken back below, a tie on top of 1 or 1 + ulp
    first = [1.0, 1.0 + one_ulp, -1.0, 1.0, tie, tie, -tie, tie]     # share 0: two samples of 4 sums
    second = [-0.5, -0.5, 0.5, -0.5, 0.0, 0.0, 0.0, 2.0 ** -40]       # share 1
    for s, terms in enumerate((first, second)):
        aside = rows.deposit(s, np.array(terms), 0, 0, 0, 2, 4)
        assert aside == 0
        rows.end_round(s, 2, aside, 64)
    assert rows.ranges[:, :4].sum() == 0 and rows.ranges[:, 4 + acc_.OPEN].all()     # open passes, no digits
    got = rows.totals()
    assert got.tolist() == [1.0, 1.0 + 2 * one_ulp, -1.0, float(1 + Fraction(one_ulp / 2) + Fraction(2.0 ** -40))]


def test_threads_depositing_into_one_row_at_once_sum_exactly():
    """Two threads deposit tiles of rows and of matrix-product terms into one shared row at the
    same time, starting at different blocks of its sums (codegen.deposits): wide-ranging terms,
    many set aside into the shared digits.  The totals are the exact sums of both threads' terms,
    the round's count of terms set aside is the two threads' own counts added, and every lock is
    free again."""
    import threading

    rng = np.random.default_rng(11)
    cout, cin, tile = 9, 40, 64
    width = cout * cin                            # sums 1 to width: products; then rows of `width`
    sums = 1 + 2 * width
    pairs = np.array([[0, 1, 1], [1, 0, -1]], np.int64)
    rows = Rows(sums, 1)
    rows.grid[0] = acc_.regrid(np.float64(4.0).view(np.int64))     # ordinary terms keep to it, wide ones do not
    rows.open(0)
    work = []
    for share in range(2):
        tiles = []
        for _ in range(6):
            dy = rng.normal(size=(2, tile, cout)) * np.exp2(rng.integers(-40, 40, size=(2, tile, cout)))
            x = rng.normal(size=(2, tile, cin))
            slab = _terms(rng, "mixed", (tile, width))
            tiles.append((dy, x, slab))
        work.append(tiles)
    counts = [0, 0]

    def thread(share):
        for dy, x, slab in work[share]:
            ws = np.concatenate([dy.reshape(-1), x.reshape(-1), slab.reshape(-1), np.full(cin, np.nan)])
            counts[share] += rows.products(0, ws, pairs, 1, 0, dy.size, -1, 0, tile, cout, cin, tile, ws.size - cin,
                                           share=share)
            counts[share] += rows.deposit(0, ws, 1 + width, dy.size + x.size, 0, tile, width, share=share)

    threads = [threading.Thread(target=thread, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rows.locks[0, ASIDE] == sum(counts) > 0
    assert not rows.locks[0, ASIDE + 1:].any()       # every lock free
    got = rows.totals()
    for i in range(cout):
        for j in range(cin):
            total = Fraction(0)
            for share in range(2):
                for dy, x, _ in work[share]:
                    for t in range(tile):
                        total += Fraction(float(dy[1, t, i] * x[0, t, j] - dy[0, t, i] * x[1, t, j]))
            assert got[1 + i * cin + j] == float(total), (i, j)
    for c in range(width):
        total = sum(Fraction(float(v)) for share in range(2) for _, _, slab in work[share] for v in slab[:, c])
        assert got[1 + width + c] == float(total), c


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    from bench.cgenn import source

    out = {}
    for c in (32, 96):
        path = tmp_path_factory.mktemp(f"cgenn{c}") / "cgenn.phg"
        path.write_text(source(c, "exact"))
        out[c] = phg.build(phg.load(path), path.parent / "build").O3CGMLP(seed=0)
    return out


@pytest.mark.parametrize("channels", [32, 96])
def test_wide_exact_gradients_do_not_depend_on_order_or_threads(networks, channels):
    """O3CGMLP's exact gradient, bit for bit, whatever the order of the samples and the number of
    threads (1 or 2), at batches that fill one or several tiles per share."""
    model = networks[channels]
    rng = np.random.default_rng(channels)
    for n in (100, 700):
        v = rng.normal(size=(n, 3, 3))
        target = np.linalg.det(v)[:, None] / 10
        before = numba.get_num_threads()
        try:
            numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
            ref = model.grad(v=v, target=target)
            perm = rng.permutation(n)
            shuffled = model.grad(v=v[perm], target=target[perm])
            numba.set_num_threads(1)
            alone = model.grad(v=v[perm[::-1]], target=target[perm[::-1]])
        finally:
            numba.set_num_threads(before)
        for name in ref:
            assert np.array_equal(ref[name], shuffled[name]), (channels, n, name)
            assert np.array_equal(ref[name], alone[name]), (channels, n, name)


def test_steps_out_of_digit_columns_sum_again_to_the_same_bits(built, tmp_path, monkeypatch):
    """signed_volume built with two digit columns a row.  A first step's terms reach their digits
    (no grid yet), so its slots run again on the grids they set; terms over hundreds of binades
    keep reaching them, so the slots run again for blocks of two of the sums that found no room.
    The gradients are the bits of the build whose rows have a column for every sum."""
    import phg.plan.buffers
    program, module = built["signed_volume"]
    monkeypatch.setattr(phg.plan.buffers, "COLUMNS", 2)
    monkeypatch.setattr(phg.plan.buffers, "SUMS_PER_COLUMN", 10**9)
    narrow_program = phg.load(program.path)
    narrow = phg.build(narrow_program, tmp_path / "narrow", progress=lambda *_: None).SignedVolume
    assert narrow.SPEC["train"]["buffers"][0][2][-1] == 2 and module.SignedVolume.SPEC["train"]["buffers"][0][2][-1] > 2
    rng = np.random.default_rng(9)
    n = 512
    v = rng.normal(size=(n, 3, 3))
    wide = v * np.exp2(rng.integers(-150, 150, size=(n, 1, 1)))
    for data in (v, wide):
        target = np.linalg.det(data)[:, None] / 10
        model, reference = narrow(seed=0), module.SignedVolume(seed=0)
        calls = []
        kernel = type(model)._slots_kernel
        model._slots_kernel = lambda *args: (calls.append(args[-2:]), kernel(*args))   # (from, to) of each share
        for step in range(2):
            calls.clear()
            got, want = model.grad(v=data, target=target), reference.grad(v=data, target=target)
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
            passes = sum(lo == 0 for lo, _ in calls)          # each pass's first share starts at 0
            if data is v:
                assert passes == (2 if step == 0 else 1), (step, passes)
            else:                                      # then blocks of the sums that found no room
                assert passes > (2 if step == 0 else 1), (step, passes)
