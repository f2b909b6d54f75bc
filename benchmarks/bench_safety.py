"""Many seeded retention worlds (tests/support/worlds.py) through the real retention path: prints the
worlds, the delete requests' names checked against the ground truth, the violations (goal: 0) and
the time. `python benchmarks/bench_safety.py --worlds 10000`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from tests.support.worlds import run_world  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worlds", type=int, default=10000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=3, help="worlds with violations to describe")
    args = parser.parse_args()
    start = time.perf_counter()
    checked = violations = errors = deleting_worlds = injected = 0
    shown = 0
    for seed in range(args.first_seed, args.first_seed + args.worlds):
        world = run_world(seed)
        checked += world.checked
        deleting_worlds += world.checked > 0
        injected += bool(world.injection and world.injection.fired)
        errors += len(world.errors)
        if world.violations:
            violations += len(world.violations)
            if shown < args.show:
                print(world.describe(), end="\n\n")
                shown += 1
    elapsed = time.perf_counter() - start
    print(f"worlds {args.worlds}, with deletions {deleting_worlds}, changes injected {injected}")
    print(f"deletions checked {checked}")
    print(f"violations {violations}")
    print(f"operator errors {errors}")
    print(f"time {elapsed:.1f} s")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
