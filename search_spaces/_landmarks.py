"""The named designs of the spectrum, each an exact point of the decoupled-block space.

All share one skeleton (stem 16, three stride-2 stages of width 32 / 64 / 128, two blocks each)
so that they differ only in the block, as the papers' comparisons do.
"""

from __future__ import annotations

from nas import Arch, Stage

SKELETON = ((32, 2, 2), (64, 2, 2), (128, 2, 2))  # (width, depth, stride) per stage
STEM = 16

# The block of each landmark: branches, segments, pointwise place, factorize, mid act, residual.
BLOCKS = {
    # VGG: plain 3x3 convs, cross-channel and spatial correlations learned together.
    "normal": (("3",), 1, "none", False, False, False),
    # ResNeXt: 1x1 -> grouped 3x3 (8 segments) -> 1x1, ReLU between, residual.
    "grouped": (("3",), 8, "both", False, True, True),
    # GoogLeNet module: 1x1 / 1x1->3x3 / 1x1->5x5 / pool->1x1, ReLU after each 1x1.
    "inception_v1": (("1", "3", "5", "pool"), 1, "before", False, True, False),
    # Inception-v3: the same with the 5x5 as two stacked 3x3 (18/25 of the cost).
    "inception_v3": (("1", "3", "5", "pool"), 1, "before", True, True, False),
    # Xception fig. 4: one 1x1, then a 3x3 on each output channel separately.
    "extreme_inception": (("3",), "dw", "before", False, True, False),
    # Xception: depthwise 3x3 then 1x1, no activation between, residual.
    "xception": (("3",), "dw", "after", False, False, True),
    # MobileNet: depthwise 3x3 -> BN -> ReLU -> 1x1 -> BN -> ReLU, no residual.
    "mobilenet": (("3",), "dw", "after", False, True, False),
}


def landmark(name: str, skeleton=SKELETON, stem: int = STEM) -> Arch:
    """The landmark `name` on a given skeleton of (width, depth, stride) stages."""
    branches, segments, pointwise, factorize, mid_act, residual = BLOCKS[name]
    stages = tuple(
        Stage(width, depth, stride, branches, segments, pointwise, factorize, mid_act, residual)
        for width, depth, stride in skeleton
    )
    return Arch(stem=stem, stages=stages)


LANDMARKS: dict[str, Arch] = {name: landmark(name) for name in BLOCKS}
