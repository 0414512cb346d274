"""The named designs of the spectrum, each an exact point of the decoupled-block space.

All share one skeleton (stem 16, three stride-2 stages of width 32 / 64 / 128, two blocks each)
so that they differ only in the block, as the papers' comparisons do. For images larger than
the skeleton was designed for, `landmarks_for` puts them behind a strided stem.
"""

from __future__ import annotations

import math
import operator

from nas import Arch, Stage
from nas._arch import STEM_STRIDES

SKELETON = ((32, 2, 2), (64, 2, 2), (128, 2, 2))  # (width, depth, stride) per stage
STEM = 16
# The side the skeleton was designed for: on 28 x 28 images (Fashion-MNIST) its three halvings
# leave the last stage at 4 x 4. Larger images are brought to about this side by the stem.
REFERENCE_SIDE = 28

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


def landmark(name: str, skeleton=SKELETON, stem: int = STEM, stem_stride: int = 1) -> Arch:
    """The landmark `name` on a given skeleton of (width, depth, stride) stages."""
    branches, segments, pointwise, factorize, mid_act, residual = BLOCKS[name]
    stages = tuple(
        Stage(width, depth, stride, branches, segments, pointwise, factorize, mid_act, residual)
        for width, depth, stride in skeleton
    )
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
