"""Seeded random architectures from each search space, shared by tests."""

from __future__ import annotations

import random

import search_spaces
from nas import Arch


def random_archs(space_name: str, count: int, seed: int = 0) -> list[Arch]:
    """`count` architectures drawn uniformly from a space's parameter choices."""
    space = search_spaces.get(space_name)
    rng = random.Random(seed)
    return [
        space.arch_from_params(
            {name: rng.choice(values) for name, values in space.choices.items()}
        )
        for _ in range(count)
    ]
