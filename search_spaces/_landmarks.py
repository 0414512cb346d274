"""The named designs of the spectrum, each an exact point of the decoupled-block space.

All share one skeleton (stem 16, three stride-2 stages of width 32 / 64 / 128, two blocks each)
so that they differ only in the block, as the papers' comparisons do. For images larger than
the skeleton was designed for, `landmarks_for` puts them behind a strided stem.

A block is described by named parts that work at any stage width (`Block`): the papers'
branch-width proportions (SPLITS), an inner-width ratio (INNERS), the pool kind of a pool
branch (POOL_KINDS) and the kind of unit (UNITS). The search spaces offer the same parts as
parameters, so every landmark is a point of the full space. README.md's "Landmarks" table says
which figure or table of its paper each follows and what had to differ.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass, replace
from fractions import Fraction

from nas import Arch, Stage
from nas._arch import STEM_STRIDES
from nas._channels import POOL_BRANCHES, branch_widths

SKELETON = ((32, 2, 2), (64, 2, 2), (128, 2, 2))  # (width, depth, stride) per stage
STEM = 16
# The side the skeleton was designed for: on 28 x 28 images (Fashion-MNIST) its three halvings
# leave the last stage at 4 x 4. Larger images are brought to about this side by the stem.
REFERENCE_SIDE = 28

# Branch-width proportions of the papers' modules: branch kind -> (its share of the block's
# width, its reduce: the 1x1's width before the spatial conv over the branch's width; None
# where the branch has no reduce). "pool" stands for either pool branch. A split applies to a
# stage whose branches it names all (normalized over them); on any other stage, and for
# "equal", the branches share the width equally (the grammar's default).
SPLITS: dict[str, dict[str, tuple[Fraction, Fraction | None]]] = {
    "equal": {},
    # GoogLeNet (Szegedy et al. 2014), Table 1, inception (3a): 64 / 128 / 32 / 32 of 256
    # channels, the 3x3's reduce 96 for 128 and the 5x5's 16 for 32.
    "googlenet": {
        "1": (Fraction(1, 4), None),
        "3": (Fraction(1, 2), Fraction(3, 4)),
        "5": (Fraction(1, 8), Fraction(1, 2)),
        "pool": (Fraction(1, 8), None),
    },
    # Inception-v3 (Szegedy et al. 2015), Fig. 5 module at 35 x 35 as the reference
    # implementation sizes it (Mixed_5b): 1x1 64 / 1x1 48 -> 64 / 1x1 64 -> 96 -> 96 /
    # pool -> 32 of 256. Our 3 branch is the 48 -> 64 one (a 3x3, as Fig. 5 draws it) and our
    # factorized 5 branch the 64 -> 96 -> 96 one: shares 1/4, 1/4, 3/8, 1/8; reduces 3/4, 2/3.
    "inception_v3": {
        "1": (Fraction(1, 4), None),
        "3": (Fraction(1, 4), Fraction(3, 4)),
        "5": (Fraction(3, 8), Fraction(2, 3)),
        "pool": (Fraction(1, 8), None),
    },
}

# Inner width (every channel count between a branch's convs) over the branch's width, times
# the split's reduce where it has one: "0.5" is ResNeXt's bottleneck (Table 1: 128 inside 256).
INNERS: dict[str, Fraction] = {"1": Fraction(1), "0.5": Fraction(1, 2)}

# The 3x3 pool of a pool branch (stride 1, then a 1x1): GoogLeNet's max, Inception-v3's average.
POOL_KINDS: dict[str, str] = {"max": "pool", "avg": "avgpool"}

# The kind of unit: how a stride-2 block downsamples and how its steps are arranged.
UNITS: dict[str, dict] = {
    # The first spatial conv (and a 1x1 or pool branch) takes the stride.
    "plain": {},
    # GoogLeNet (Fig. 3, Table 1): a 3x3 stride-2 max pool between modules, before the block.
    "pool_first": {"downsample": "pre"},
    # Xception (Fig. 5): two separable convs per unit, each after a ReLU (pre-activation, no
    # ReLU after the add), no BatchNorm between depthwise and pointwise, a 3x3 stride-2 max pool
    # ending a downsampling unit, whose shortcut is then a strided 1x1.
    "xception": {"downsample": "post", "steps": 2, "preact": True, "mid_bn": False},
}


def apportion(total: int, weights) -> tuple[int, ...]:
    """Integers in proportion to `weights` that sum to `total`, each at least 1.

    Largest remainder: each gets the floor of its exact share, then the rest go one each to the
    largest remainders (ties to the earlier); a share below 1 is raised to 1, taken back from
    the largest. ValueError if `total` is below the number of weights.
    """
    weights = [Fraction(weight) for weight in weights]
    if not weights or any(weight <= 0 for weight in weights):
        raise ValueError(f"weights must be positive, got {weights!r}")
    if total < len(weights):
        raise ValueError(f"{total} channels cannot give {len(weights)} branches one each")
    exact = [total * weight / sum(weights) for weight in weights]
    counts = [max(1, math.floor(share)) for share in exact]
    order = range(len(counts))
    while sum(counts) < total:
        index = max(order, key=lambda i: (exact[i] - counts[i], -i))
        counts[index] += 1
    while sum(counts) > total:
        index = max((i for i in order if counts[i] > 1), key=lambda i: (counts[i] - exact[i], i))
        counts[index] -= 1
    return tuple(counts)


def _half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


@functools.lru_cache(maxsize=4096)
def split_widths(
    split: str, width: int, branches: tuple[str, ...], inner: str = "1"
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """(branch widths, inner widths) of a stage of `width` channels under SPLITS[split] and
    INNERS[inner]; None for either where it is the grammar's default.

    Widths are integers summing to `width` at any width (see `apportion`); an inner width is
    its branch's width times the reduce and the inner ratio, rounded half up, at least 1.
    """
    table = SPLITS[split]
    kinds = ["pool" if branch in POOL_BRANCHES else branch for branch in branches]
    applies = len(branches) > 1 and all(kind in table for kind in kinds)
    if applies:
        widths = apportion(width, [table[kind][0] for kind in kinds])
        reduces = [table[kind][1] or Fraction(1) for kind in kinds]
    else:
        widths = tuple(branch_widths(width, len(branches)))
        reduces = [Fraction(1)] * len(branches)
    ratio = INNERS[inner]
    inner_widths = tuple(
        max(1, _half_up(chs * reduce * ratio)) for chs, reduce in zip(widths, reduces)
    )
    return (
        widths if applies else None,
        None if inner_widths == widths else inner_widths,
    )


def rescaled(stage: Stage, width: int) -> Stage:
    """`stage` at `width` channels, its branch and inner widths kept in proportion: branch
    widths apportioned as SPLITS are (`apportion`, in proportion to the old widths), each inner
    width its branch's new width times its old ratio to its branch (rounded half up, >= 1)."""
    widths, inner = None, None
    if stage.widths is not None:
        widths = apportion(width, stage.widths)
    if stage.inner is not None:
        new = widths or branch_widths(width, len(stage.branches))
        inner = tuple(
            max(1, _half_up(Fraction(chs * mid, old)))
            for chs, mid, old in zip(new, stage.inner, stage.branch_widths)
        )
    return replace(stage, width=width, widths=widths, inner=inner)


@dataclass(frozen=True)
class Block:
    """A landmark's block, at any stage width: the nine knobs of the grammar (stride aside) and
    the named parts above. The parts' defaults build what every block meant before them."""

    branches: tuple[str, ...]
    segments: int | str
    pointwise: str
    factorize: bool
    mid_act: bool
    residual: bool
    split: str = "equal"  # a key of SPLITS
    inner: str = "1"  # a key of INNERS
    unit: str = "plain"  # a key of UNITS
    pool: str = "max"  # a key of POOL_KINDS: the pool of a "pool" branch

    def stage(self, width: int, depth: int, stride: int) -> Stage:
        """The stage of `depth` such blocks of `width` channels, the first of stride `stride`."""
        branches = tuple(
            POOL_KINDS[self.pool] if branch in POOL_BRANCHES else branch
            for branch in self.branches
        )
        widths, inner = split_widths(self.split, width, branches, self.inner)
        unit = dict(UNITS[self.unit])
        if stride == 1:
            unit.pop("downsample", None)  # a stride-1 block has nothing to downsample
        return Stage(
            width,
            depth,
            stride,
            branches,
            self.segments,
            self.pointwise,
            self.factorize,
            self.mid_act,
            self.residual,
            widths=widths,
            inner=inner,
            **unit,
        )


# The block of each landmark (README.md's "Landmarks" table gives each its paper's figure).
BLOCKS: dict[str, Block] = {
    # VGG: plain 3x3 convs, cross-channel and spatial correlations learned together.
    "normal": Block(("3",), 1, "none", False, False, False),
    # ResNeXt 32x4d (Table 1): 1x1 -> grouped 3x3 -> 1x1 at half the block's width, ReLU
    # between, residual. Four groups in every stage: the paper keeps the cardinality across
    # stages, and 4 channels per group (its "4d") in our first stage's 16 inner channels.
    "grouped": Block(("3",), 4, "both", False, True, True, inner="0.5"),
    # GoogLeNet (Table 1, Fig. 2b): 1x1 / 1x1->3x3 / 1x1->5x5 / max pool->1x1 in inception
    # (3a)'s widths and reduces, ReLU after each 1x1, a max pool between modules.
    "inception_v1": Block(
        ("1", "3", "5", "pool"), 1, "before", False, True, False, "googlenet", unit="pool_first"
    ),
    # Inception-v3 (Fig. 5): the 5x5 as two stacked 3x3, an average-pool branch, the 35 x 35
    # module's widths; downsampling by strided branches in parallel (its grid reduction, Fig. 10).
    "inception_v3": Block(
        ("1", "3", "5", "pool"), 1, "before", True, True, False, "inception_v3", pool="avg"
    ),
    # Xception fig. 4: one 1x1, then a 3x3 on each output channel separately.
    "extreme_inception": Block(("3",), "dw", "before", False, True, False),
    # Xception (Fig. 5): units of two separable convs (depthwise 3x3 then 1x1, no BN or ReLU
    # between), each after a ReLU; a max pool ends a downsampling unit; residual.
    "xception": Block(("3",), "dw", "after", False, False, True, unit="xception"),
    # MobileNet: depthwise 3x3 -> BN -> ReLU -> 1x1 -> BN -> ReLU, no residual.
    "mobilenet": Block(("3",), "dw", "after", False, True, False),
}


def landmark(name: str, skeleton=SKELETON, stem: int = STEM, stem_stride: int = 1) -> Arch:
    """The landmark `name` on a given skeleton of (width, depth, stride) stages."""
    block = BLOCKS[name]
    stages = tuple(block.stage(width, depth, stride) for width, depth, stride in skeleton)
    return Arch(stem=stem, stages=stages, stem_stride=stem_stride)


def stem_stride_for(input_shape: tuple[int, ...]) -> int:
    """The stem stride that brings images of `input_shape` (C, H, W) to about REFERENCE_SIDE.

    The power of 2 nearest to min(H, W) / REFERENCE_SIDE on a log scale, from 1 to the largest
    the grammar has (16): 8 x 8, 28 x 28 and 32 x 32 images get 1 (the networks as they always
    were), 64 x 64 get 2, 96 and 128 get 4, 224 and 299 get 8, 512 gets 16.
    """
    try:
        channels, height, width = (operator.index(size) for size in input_shape)
    except (TypeError, ValueError):
        channels = height = width = 0
    if min(channels, height, width) < 1:
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    halvings = round(math.log2(min(height, width) / REFERENCE_SIDE))
    most = max(STEM_STRIDES).bit_length() - 1
    return 2 ** min(max(halvings, 0), most)


def landmarks_for(input_shape: tuple[int, ...]) -> dict[str, Arch]:
    """Every landmark, by name, with the stem stride for images of `input_shape` (C, H, W)."""
    stride = stem_stride_for(input_shape)
    return {name: landmark(name, stem_stride=stride) for name in BLOCKS}


# The landmarks as every study before strided stems stored them: a 28 x 28 input, stride 1.
LANDMARKS: dict[str, Arch] = landmarks_for((1, REFERENCE_SIDE, REFERENCE_SIDE))
