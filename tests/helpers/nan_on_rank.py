"""`python -m dfad ARGS...` under torchrun, except that on rank RANK the DFAD student loss turns NaN
at iteration ITERATION (as if that rank alone diverged). Usage: nan_on_rank.py RANK ITERATION ARGS...
Each rank ends by printing the exit code the command returned."""
from __future__ import annotations

import math
import os
import sys

from dfad.cli import main
from dfad.methods import METHODS


def diverge_at(iteration: int) -> None:
    """The DFAD method's `step` reports a NaN student loss at its `iteration`-th call."""
    method_class = METHODS.get("dfad")
    real_step = method_class.step
    calls = 0

    def step(self):
        nonlocal calls
        calls += 1
        losses = real_step(self)
        return {**losses, "student_loss": math.nan} if calls == iteration else losses

    method_class.step = step


if __name__ == "__main__":
    rank, iteration, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    if int(os.environ["RANK"]) == rank:
        diverge_at(iteration)
    code = main(argv)
    print(f"rank {os.environ['RANK']} exited with {code}", file=sys.stderr)
    sys.exit(code)
