"""The standing adversarial test of retention: a few hundred seeded worlds (tests/support/worlds.py)
through the real retention path; any delete the ground truth forbids fails with the seed and the world."""

from __future__ import annotations

import pytest

from tests.support.worlds import run_world

SEEDS = range(300)


@pytest.mark.parametrize("first", range(0, len(SEEDS), 50))
def test_no_world_loses_what_it_must_keep(first: int) -> None:
    failures = []
    for seed in SEEDS[first:first + 50]:
        world = run_world(seed)
        if world.violations:
            failures.append(world.describe())
    assert not failures, "\n\n".join(failures)


def test_the_worlds_do_delete_so_that_the_invariant_is_exercised() -> None:
    worlds = [run_world(seed) for seed in range(300)]
    assert sum(w.checked for w in worlds) > 0
    assert any(w.injection is not None and w.injection.fired for w in worlds)
