"""Hostile variants of the example and test models never crash phg, never hang and always exit as
the contract says: 0 or 1 for a model that loads, 2 with a located diagnostic for one that does
not (`python -m bench fuzz N` runs more of them)."""
import random

import pytest

import mutate

GRAPH_CASES, CHECK_CASES = 1_700, 300
SECONDS_PER_CASE = 15          # the budgets make every stage count its work; this only catches a hang


def _cases(n: int, seed: int, kinds):
    rng = random.Random(seed)
    texts = mutate.sources()
    # `check` of the signed-volume example plans its training kernel (seconds); the others check fast.
    pool = [t for t in texts if kinds == "graph" or "SignedVolume" not in t]
    return [mutate.mutate(rng.choice(pool), rng) for _ in range(n)]


@pytest.mark.parametrize("command, n, seed", [("graph", GRAPH_CASES, 14), ("check", CHECK_CASES, 15)])
def test_mutated_models_exit_cleanly(tmp_path, command, n, seed):
    path = tmp_path / "fuzz.phg"
    statuses = set()
    for i, text in enumerate(_cases(n, seed, command)):
        status, err, seconds, problem = mutate.run_case(path, text, command)
        assert problem is None, f"case {i}: {problem}\n--- source:\n{text[:2000]}\n--- stderr:\n{err[-3000:]}"
        assert seconds < SECONDS_PER_CASE, f"case {i} took {seconds:.1f} s\n{text[:2000]}"
        statuses.add(status)
    assert 2 in statuses and 0 in statuses       # both malformed and well-formed variants were run
