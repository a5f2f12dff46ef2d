"""Data-parallel training on a Dask cluster (LANGUAGE §15): the parameters after any number of
steps are bit for bit those of one process with accumulate exact, whatever the workers, the
partitions, the order of their answers, and a worker lost mid-fit."""
import logging
import os
import signal
import sys
import threading

import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import phg
from phg.codegen.cluster import Partitions
from phg.shell.cli import main as cli


def _rigid(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)) * np.exp(rng.normal(size=(n, 1)) * 3)     # magnitudes over some 40 binades
    th = 0.7
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    return {"x": x, "y": x @ rot.T + np.array([0.3, -0.2, 0.1]) + 0.01 * rng.normal(size=(n, 3))}


def _volume(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3, 3))
    return {"v": v, "target": np.linalg.det(v)[:, None] / 10}


def _model(built, stem: str, seed: int = 1):
    module = built[stem][1]
    return next(iter(module.MODELS.values()))(seed=seed)


def _same(a, b) -> None:
    for name in a.params:
        assert np.array_equal(a.params[name], b.params[name]), name


@pytest.mark.parametrize("stem, data", [("rigid_registration", _rigid), ("signed_volume", _volume)])
def test_shares_summed_as_digits_give_one_process_step_bit_for_bit(built, stem, data):
    """Without a cluster: a batch cut into shares in many ways, each share's digits, added in any
    order, make the very loss and gradient of the whole batch in one process."""
    one, shared = _model(built, stem), _model(built, stem)
    d = data(700)
    names = one.SPEC["train"]["inputs"]
    arrays = [np.ascontiguousarray(d[k], dtype=np.float64) for k in names]
    loss = one._train_pass(arrays, 700)
    grads = {k: g.copy() for k, g in one._buffers["grads"].items()}
    rng = np.random.default_rng(3)
    for parts in (1, 2, 7):
        order = rng.permutation(700)
        cuts = np.sort(rng.choice(np.arange(1, 700), parts - 1, replace=False))
        shares = [shared._share_sums([np.ascontiguousarray(a[idx]) for a in arrays], len(idx))
                  for idx in np.split(order, cuts)]
        rng.shuffle(shares)
        assert shared._shares_pass(700, shares) == loss
        for k, g in grads.items():
            assert np.array_equal(shared._buffers["grads"][k], g), (parts, k)


def test_partitions_split_a_batch_in_its_order():
    p = Partitions(np.array([0, 3, 3, 10]), [[None]] * 3)
    assert [list(s) for s in p.split(np.array([9, 0, 4, 2, 7]))] == [[0, 2], [], [6, 1, 4]]


@pytest.fixture(scope="module")
def cluster3():
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield cluster, client


@pytest.fixture(scope="module")
def cluster2():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield cluster, client


CASES = [("rigid_registration", _rigid, 5000, 1000), ("signed_volume", _volume, 3000, None)]


@pytest.mark.parametrize("stem, data, n, batch", CASES)
@pytest.mark.parametrize("workers", ["cluster2", "cluster3"])
def test_25_steps_on_a_cluster_are_bit_identical_to_one_process(built, request, workers, stem, data, n, batch):
    _, client = request.getfixturevalue(workers)
    d = data(n)
    one, spread = _model(built, stem), _model(built, stem)
    history = one.fit(d, steps=25, batch=batch)
    assert np.array_equal(spread.fit(d, steps=25, batch=batch, client=client), history)
    _same(one, spread)


def test_a_worker_killed_mid_fit_changes_no_bit(built, cluster3, monkeypatch):
    cluster, client = cluster3
    restored = []
    original = Partitions.restore
    monkeypatch.setattr(Partitions, "restore", lambda self, c: restored.append(original(self, c)) or restored[-1])
    d = _rigid(5000, seed=1)
    one, spread = _model(built, "rigid_registration"), _model(built, "rigid_registration")
    history = one.fit(d, steps=25, batch=1000)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]                         # the worker that holds the first partition
    # killed a few milliseconds after step 10, while step 11's tasks are on their way or running
    timer = threading.Timer(0.003, os.kill, (pids[victim], signal.SIGKILL))

    def kill(k, loss):
        if k == 9:
            timer.start()

    assert np.array_equal(spread.fit(d, steps=25, batch=1000, client=client, callback=kill), history)
    _same(one, spread)
    timer.join()
    assert victim not in client.scheduler_info()["workers"]
    assert restored == [True]                        # its partition's only copy, scattered again
    client.wait_for_workers(3, timeout=60)           # the nanny's new worker, for the tests after this one


def test_dask_arrays_on_the_cluster_train_as_numpy_arrays_in_one_process(built, cluster2):
    _, client = cluster2
    d = _volume(3000, seed=2)
    one, spread = _model(built, "signed_volume"), _model(built, "signed_volume")
    history = one.fit(d, steps=25)
    # uneven chunks, a target cut differently (fit rechunks it as v), float32 samples stay exact
    on = {"v": da.from_array(d["v"], chunks=(700, 3, 3)), "target": da.from_array(d["target"], chunks=(1000, 1))}
    assert np.array_equal(spread.fit(on, steps=25, client=client), history)
    _same(one, spread)


FLOAT = """algebra G3 = Cl(3, 0, 0)
model Shift on G3 {
    param t: Vector[m] = 0
    input x: Vector[m]
    input y: Vector[m]
    loss norm2(x + t - y) / 1[m^2]
}
train Shift {
    optimizer adam(lr = 0.05)
    batch 300
    accumulate float
}
"""


def test_accumulate_float_on_a_cluster_repeats_itself_on_the_same_partitions(tmp_path, cluster3):
    _, client = cluster3
    module = phg.build(phg.loads(FLOAT, "shift.phg"), tmp_path)
    d = _rigid(2000, seed=4)
    runs = [module.Shift(seed=0) for _ in range(3)]
    histories = [m.fit(d, steps=10, client=client) if k else m.fit(d, steps=10) for k, m in enumerate(runs)]
    assert np.array_equal(histories[1], histories[2])
    _same(runs[1], runs[2])
    # not the same bits as one process (the partitions' sums round differently), but close
    assert np.allclose(runs[0].params["t"], runs[1].params["t"], rtol=1e-12, atol=1e-15)


def test_fit_with_a_client_refuses_what_it_cannot_split(built, tmp_path, cluster2, monkeypatch):
    _, client = cluster2
    model = _model(built, "rigid_registration")
    d = _rigid(100)
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client, got str"):
        model.fit(d, client="tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="input 'y' is a ndarray beside dask arrays"):
        model.fit({"x": da.from_array(d["x"]), "y": d["y"]}, client=client)
    bad = dict(d, x=d["x"].copy())
    bad["x"][17, 1] = np.nan
    with pytest.raises(ValueError, match="'x' sample 17 is not finite"):
        model.fit({k: da.from_array(v, chunks=30) for k, v in bad.items()}, client=client)
    cma = phg.build(phg.loads(FLOAT.replace("adam(lr = 0.05)", "cma(sigma = 0.3)"), "cma.phg"), tmp_path / "cma")
    with pytest.raises(ValueError, match="optimizer cma, whose generations run in one process"):
        cma.Shift().fit(d, client=client)
    before = {k: v.copy() for k, v in model.params.items()}
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'dask\[distributed\]'"):
        model.fit(d, client=client)
    for k, v in before.items():
        assert np.array_equal(model.params[k], v)


def test_phg_train_with_a_scheduler_writes_the_one_process_parameters(tmp_path, cluster2, capsys):
    cluster, _ = cluster2
    data = tmp_path / "pairs.npz"
    np.savez(data, **_rigid(3000, seed=5))
    source = os.path.join(os.path.dirname(__file__), "..", "examples", "rigid_registration.phg")
    alone, spread = tmp_path / "alone.npz", tmp_path / "spread.npz"
    assert cli(["train", source, "--data", str(data), "--steps", "12", "-o", str(alone)]) == 0
    assert cli(["train", source, "--data", str(data), "--steps", "12", "-o", str(spread),
                "--scheduler", cluster.scheduler_address]) == 0
    out = capsys.readouterr().out
    assert "2 workers (bit for bit as in one process)" in out
    with np.load(alone) as a, np.load(spread) as b:
        assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_phg_train_names_a_scheduler_it_cannot_reach(tmp_path, capsys, monkeypatch):
    from phg.shell import train

    monkeypatch.setattr(train, "CONNECT_SECONDS", 2)
    data = tmp_path / "pairs.npz"
    np.savez(data, **_rigid(50))
    source = os.path.join(os.path.dirname(__file__), "..", "examples", "rigid_registration.phg")
    assert cli(["train", source, "--data", str(data), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 2 s" in err
