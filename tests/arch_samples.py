"""Seeded random architectures from each search space, shared by tests."""

from __future__ import annotations

import random
from dataclasses import replace

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


def distinct_random_archs(space_name: str, count: int, seed: int = 0) -> list[Arch]:
    """The distinct architectures among `count` draws, in draw order (small spaces repeat)."""
    return list(dict.fromkeys(random_archs(space_name, count, seed)))


def tiny(arch: Arch, divisor: int = 4, max_depth: int = 2) -> Arch:
    """The same block designs on narrower, shallower stages, for tests that train many networks.

    Widths shrink by `divisor` (keeping a channel per branch); depth stays above one where it
    was, so later blocks (which take the stage's own width) are still built.
    """
    stages = tuple(
        replace(
            stage,
            width=max(len(stage.branches), stage.width // divisor),
            depth=min(stage.depth, max_depth),
        )
        for stage in arch.stages
    )
    return Arch(stem=max(1, arch.stem // divisor), stages=stages)
