"""Seeded random architectures from each search space, shared by tests."""

from __future__ import annotations

import random
from dataclasses import replace

import search_spaces
from nas import Arch
from search_spaces._landmarks import rescaled


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

    Widths shrink by `divisor` (keeping a channel per branch, branch and inner widths in
    proportion); depth stays above one where it
    was, so later blocks (which take the stage's own width) are still built.
    """
    stages = tuple(
        replace(
            rescaled(stage, max(len(stage.branches), stage.width // divisor)),
            depth=min(stage.depth, max_depth),
        )
        for stage in arch.stages
    )
    return Arch(stem=max(1, arch.stem // divisor), stages=stages)


# The papers' blocks at small widths: Xception's units (two-conv stem, pre-activation, no BN
# inside the separable conv, a pool after the branches, a middle that keeps the channels),
# an Inception module with its own widths, a pool before it and an average-pool branch,
# and a ResNeXt bottleneck.
PAPER_BLOCKS = [
    Arch.parse(
        "stem8.16s2-c32_d1_s2post_k3_gdw_pafter_f0_a0_r1_n2_v1_b0"
        "-c32_d2_s1_k3_gdw_pafter_f0_a0_r1_n3_v1_b0"
        "-c48_d1_s2post_k3_gdw_pafter_f0_a0_r1_m40_n2_v1_b0-c64_d1_s1_k3_gdw_pafter_f0_a0_r0_m56_n2_b0"
    ),
    Arch.parse(
        "stem24-c32_d1_s2pre_k1.3.5.avgpool_g1_pbefore_f1_a1_r0_w8.12.6.6_m8.10.4.6"
        "-c32_d1_s2_k1.3.5.pool_g1_pbefore_f0_a1_r1_w8.16.4.4_m8.12.2.4"
    ),
    Arch.parse("stem16s2-c32_d2_s1_k3_g8_pboth_f0_a1_r1_m16-c64_d1_s2_k3_g8_pboth_f0_a1_r1_m32"),
]
