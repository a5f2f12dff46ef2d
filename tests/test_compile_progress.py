"""Compilation is done by phg build, shown a kernel at a time, and counted apart from training.

One small model (a rotor, so its manifold maps compile too) is compiled once, by `phg build` in a
fresh process with an empty cache; the later processes and this one load its kernels from that
cache."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import phg
from phg.codegen.compiling import kernels

SPIN = """\
algebra G3 = Cl(3, 0, 0)

model Spin on G3 {
    param R: Rotor = 1
    input x: Vector[m]
    input y: Vector[m]
    output p: Vector[m] = R >> x
    loss norm2(p - y)
}

train Spin {
    optimizer adam(lr = 0.05)
    steps 40
    accumulate float
}
"""
LABELS = ["predict", "train", "train sums", "R tangent", "R retraction", "adam step"]
LINE = re.compile(r"compiling Spin: (.+) \.\.\. (?:cached \()?(\d+\.\d) s\)?")
CACHED = re.compile(r"compiling Spin: (.+) \.\.\. cached \((\d+\.\d) s\)")


def _phg(args: list[str], env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from phg.shell.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def spin(tmp_path_factory):
    """The model's file, a cache of its own, and the first `phg build` of it, into a folder of
    the user's: phg train and phg.build find that build in the per-user cache."""
    root = tmp_path_factory.mktemp("compile")
    (root / "spin.phg").write_text(SPIN)
    cache = root / "cache"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "NUMBA_NUM_THREADS": "1"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(cache))
        from phg.codegen.caches import cache_dir
        shared = cache_dir() / phg.load(root / "spin.phg").sha256[:16]
    target = root / "build"
    done = _phg(["build", "spin.phg", "-o", str(target)], env, root)
    assert (shared / "spin.py").read_bytes() == (target / "spin.py").read_bytes()     # kept for every build
    return root, cache, env, target, done


def test_phg_build_compiles_each_kernel_on_a_line_of_its_own(spin):
    root, cache, env, target, done = spin
    assert done.returncode == 0, done.stderr
    lines = [LINE.fullmatch(line) for line in done.stderr.splitlines()]
    assert all(lines), done.stderr
    assert [m.group(1) for m in lines] == LABELS
    wrote = re.fullmatch(r"wrote (.+) \(all proven; models Spin\) in (\d+\.\d) s; kernels compiled in (\d+\.\d) s "
                         r"\((?:all 6 compiled|(\d) of 6 compiled, (\d) cached)\)", done.stdout.strip())
    assert wrote and wrote.group(1) == str(target / "spin.py"), done.stdout
    compiled = sum(float(m.group(2)) for m in lines)
    assert abs(float(wrote.group(3)) - compiled) <= 0.05 * len(lines) + 1e-9
    assert float(wrote.group(3)) > 0      # a fresh cache: the kernels were compiled, not loaded
    # (the optimizer's step is phg's own, shared by every model: its cache may be warm already)
    assert int(wrote.group(4) or 6) >= 5 and sum(CACHED.fullmatch(line) is not None for line in done.stderr.splitlines()) \
        == int(wrote.group(5) or 0)


def test_a_second_build_in_a_new_process_loads_every_kernel_from_numbas_cache(spin):
    root, cache, env, target, _ = spin
    script = f"""
import phg
from phg.codegen.compiling import kernels
module = phg.build(phg.load("spin.phg"), {str(target)!r}, progress=True)
for label, dispatcher, types in kernels(module.Spin):
    print(dispatcher.stats.cache_hits.get(types, 0), sum(dispatcher.stats.cache_misses.values()), label)
"""
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert [CACHED.fullmatch(line).group(1) for line in done.stderr.splitlines()] == LABELS, done.stderr
    loaded = [line.split(" ", 2) for line in done.stdout.splitlines()]
    assert [label for *_, label in loaded] == LABELS
    assert all((int(hits), int(misses)) == (1, 0) for hits, misses, _ in loaded), done.stdout


def test_phg_build_with_progress_leaves_nothing_for_the_first_calls_to_compile(spin, monkeypatch, capsys):
    root, cache, env, target, _ = spin
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    program = phg.load(root / "spin.phg")
    # Quiet and lazy by default: nothing printed, nothing compiled until a first call.  (The
    # optimizer's step is shared by every model: another test may have compiled it already.)
    lazy = phg.build(program, target)
    assert capsys.readouterr().err == ""
    shared = {label: types in d.overloads for label, d, types in kernels(lazy.Spin)}
    assert not any(shared[label] for label in LABELS[:5])
    expected = [k for k in LABELS if not shared[k]]

    events = []
    module = phg.build(program, target, progress=lambda *event: events.append(event))
    assert module is lazy
    assert [(m, k) for m, k, s in events if s is None] == [("Spin", k) for k in expected]
    assert [(m, k) for m, k, s in events if s is not None] == [("Spin", k) for k in expected]
    assert all(s >= 0 for _, _, s in events if s is not None)
    assert capsys.readouterr().err == ""
    compiled = {label: list(d.signatures) for label, d, _ in kernels(module.Spin)}
    assert all(compiled.values())

    model = module.Spin()
    before = {n: v.copy() for n, v in model.params.items()}
    rng = np.random.default_rng(5)
    x = rng.normal(size=(7, 3))
    y = x[:, [1, 0, 2]] * [1, -1, 1]
    model.predict(x=x)
    model.loss(x=x, y=y)
    model.step(x=x, y=y)
    model.fit({"x": x, "y": y}, steps=3, batch=3)
    assert not np.array_equal(model.params["R"], before["R"])       # it did train
    assert {label: list(d.signatures) for label, d, _ in kernels(module.Spin)} == compiled

    # compiled once per process: a later build reports nothing
    phg.build(program, target, progress=True)
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError, match="progress must be True, False or callable"):
        phg.build(program, target, progress="yes")


def test_phg_train_reports_compile_time_apart_from_the_training_rate(spin):
    root, cache, env, target, _ = spin
    rng = np.random.default_rng(6)
    x = rng.normal(size=(64, 3))
    np.savez(root / "pairs.npz", x=x, y=x[:, [1, 0, 2]] * [1, -1, 1])
    start = time.perf_counter()
    done = _phg(["train", "spin.phg", "--data", "pairs.npz", "-o", "spin.params.npz"],
                {**env, "COLUMNS": "200"}, root)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stdout + done.stderr
    # phg build -o built it into a folder of the user's: phg train compiles none of it again
    assert [CACHED.fullmatch(line).group(1) for line in done.stderr.splitlines()] == LABELS, done.stderr
    compile_s = re.search(r"compile\s*[│|]\s*(\d+\.\d\d) s \(the kernels, before the first step: all 6 cached, "
                          r"none compiled\)", done.stdout)
    timing = re.search(r"time\s*[│|]\s*(\d+\.\d\d) s training \((\d+) steps/s\)", done.stdout)
    assert compile_s and timing, done.stdout
    seconds, rate = float(timing.group(1)), int(timing.group(2))
    assert seconds + float(compile_s.group(1)) < wall
    # the rate is the 40 steps over the training time alone (to the rounding of the shown seconds)
    assert 40 / (seconds + 0.006) - 1 <= rate <= (40 / (seconds - 0.005) + 1 if seconds > 0.005 else float("inf"))


def test_an_edit_that_leaves_the_kernels_alone_compiles_nothing(spin):
    """A copy of the model under another name, with a comment, another rate, steps, seed and
    optimizer: a new source, so it is checked again, but its kernels are the same text and Numba
    loads every one from its cache."""
    root, cache, env, target, _ = spin
    edited = "# tuned: a slower rate, fewer steps\n" + SPIN.replace("adam(lr = 0.05)", "sgd(lr = 0.02)") \
        .replace("steps 40", "steps 25\n    seed 3")
    (root / "tuned.phg").write_text(edited)
    x = np.random.default_rng(7).normal(size=(32, 3))
    np.savez(root / "tuned.npz", x=x, y=x[:, [1, 0, 2]] * [1, -1, 1])
    done = _phg(["train", "tuned.phg", "--data", "tuned.npz", "-o", "tuned.params.npz"], {**env, "COLUMNS": "200"}, root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [CACHED.fullmatch(line).group(1) for line in done.stderr.splitlines()] == LABELS[:-1] + ["sgd step"], \
        done.stderr
    assert "all 6 cached, none compiled" in done.stdout
