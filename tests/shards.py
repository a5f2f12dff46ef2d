"""A hypothesis sweep split into seeded shards, so that pytest-xdist runs the parts of a long
sweep side by side: shard k of n draws `examples // n` examples from its own reproducible stream."""
from hypothesis import HealthCheck, given, seed, settings


def sweep(strategy, examples: int, shard: int, shards: int, body) -> None:
    """Run body(example) on this shard's share of `examples` drawn from strategy."""
    @seed(shard)
    @settings(max_examples=examples // shards, derandomize=False, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example):
        body(example)

    run()
