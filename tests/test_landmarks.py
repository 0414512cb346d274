"""The landmarks are their papers' blocks: read from the built modules, compared with the papers.

Each expectation below is written from the paper (the figure or table named), scaled to the
shared skeleton (stem 16; stages of 32 / 64 / 128 channels, two blocks each, stride 2), not
from search_spaces._landmarks' tables. tests/module_facts.py reads what a built layer is.
"""

from __future__ import annotations

from fractions import Fraction

import optuna
import pytest
from torch import nn

import search_spaces
from nas import build_model
from nas.findings import scaled
from search_spaces import LANDMARKS
from tests.module_facts import LayerFacts, branch_facts, layer_facts, out_channels

STAGE_WIDTHS = (32, 64, 128)


def conv(kind, kernel, cin, cout, stride=1, groups=1, relu=False, bn=True, pre_relu=False):
    return LayerFacts(kind, kernel, cin, cout, stride, groups, bn, relu, pre_relu)


def max_pool(stride=1):
    return LayerFacts("pool", 3, None, None, stride, 1, False, False)


def avg_pool(stride=1):
    return LayerFacts("avg", 3, None, None, stride, 1, False, False)


def blocks(name: str) -> list[list[nn.Module]]:
    """Every stage's blocks of the built landmark."""
    model = build_model(LANDMARKS[name], 1, 10)
    return [list(stage) for stage in model.stages]


def stage_inputs() -> list[int]:
    return [16, *STAGE_WIDTHS[:-1]]


def test_the_landmarks_differ_only_in_the_block():
    for name, arch in LANDMARKS.items():
        assert arch.stem == 16 and arch.stem_lead is None and arch.stem_stride == 1, name
        assert [(s.width, s.depth, s.stride) for s in arch.stages] == [
            (32, 2, 2),
            (64, 2, 2),
            (128, 2, 2),
        ], name
    assert set(LANDMARKS) == {
        "normal",
        "grouped",
        "inception_v1",
        "inception_v3",
        "extreme_inception",
        "xception",
        "mobilenet",
    }


# --- GoogLeNet (Szegedy et al. 2014), Table 1 and Fig. 2b ------------------------------------
# inception (3a): #1x1 64, #3x3 reduce 96, #3x3 128, #5x5 reduce 16, #5x5 32, pool proj 32 of
# 256 channels: the 1x1 takes a quarter, the 3x3 half, the 5x5 and the pool an eighth each; the
# 3x3's reduce is 3/4 of its width, the 5x5's half. Every conv has a ReLU (the branch's last
# conv gets it from the ReLU after the concatenation, which is the same function). A 3x3
# stride-2 max pool sits between modules; a module's convs all have stride 1.


@pytest.mark.parametrize("stage", range(3))
def test_inception_v1_is_googlenet_inception_3a(stage):
    first, second = blocks("inception_v1")[stage]
    width, cin = STAGE_WIDTHS[stage], stage_inputs()[stage]
    one, three, five, pool = width // 4, width // 2, width // 8, width // 8
    for block, in_chs in ((first, cin), (second, width)):
        assert [branch_facts(branch) for branch in block.branches] == [
            [conv("pointwise", 1, in_chs, one)],
            [
                conv("pointwise", 1, in_chs, three * 3 // 4, relu=True),
                conv("spatial", 3, three * 3 // 4, three),
            ],
            [
                conv("pointwise", 1, in_chs, five // 2, relu=True),
                conv("spatial", 5, five // 2, five),
            ],
            [max_pool(), conv("pointwise", 1, in_chs, pool)],
        ]
        assert block.shortcut is None and isinstance(block.act, nn.ReLU)
        assert not hasattr(block, "post_pool")
    # The max pool between modules downsamples; the second module keeps the resolution.
    assert layer_facts(first.pre_pool) == max_pool(stride=2)
    assert not hasattr(second, "pre_pool")


# --- Inception-v3 (Szegedy et al. 2015), Fig. 5 -----------------------------------------------
# Fig. 5: the 5x5 of GoogLeNet's module as two stacked 3x3, each with a ReLU; the pool branch an
# average pool (the reference implementation's 35 x 35 module, Mixed_5b: 1x1 64; 1x1 48 -> 64;
# 1x1 64 -> 3x3 96 -> 3x3 96; avg pool -> 1x1 32, of 256). One inner width per branch: the
# stacked pair's first 3x3 keeps the reduce's width (64 of 96), where the paper's widens to 96.
# The grid is reduced as in Fig. 10: every branch strided in parallel (no pool before the
# module, which Sec. 4 calls a representational bottleneck).


@pytest.mark.parametrize("stage", range(3))
def test_inception_v3_is_the_fig5_module(stage):
    first, second = blocks("inception_v3")[stage]
    width, cin = STAGE_WIDTHS[stage], stage_inputs()[stage]
    one, three, double, pool = width // 4, width // 4, width * 3 // 8, width // 8
    for block, in_chs, stride in ((first, cin, 2), (second, width, 1)):
        assert [branch_facts(branch) for branch in block.branches] == [
            [conv("pointwise", 1, in_chs, one, stride=stride)],
            [
                conv("pointwise", 1, in_chs, three * 3 // 4, relu=True),
                conv("spatial", 3, three * 3 // 4, three, stride=stride),
            ],
            [
                conv("pointwise", 1, in_chs, double * 2 // 3, relu=True),
                conv("spatial", 3, double * 2 // 3, double * 2 // 3, stride=stride, relu=True),
                conv("spatial", 3, double * 2 // 3, double),
            ],
            [avg_pool(stride=stride), conv("pointwise", 1, in_chs, pool)],
        ]
        assert block.shortcut is None and isinstance(block.act, nn.ReLU)
        assert not hasattr(block, "pre_pool") and not hasattr(block, "post_pool")


# --- Xception (Chollet 2017), Fig. 5 ----------------------------------------------------------
# An entry-flow unit: ReLU -> SeparableConv -> BN -> ReLU -> SeparableConv -> BN -> 3x3 max pool
# stride 2, plus a 1x1 stride-2 conv (with BN) on the shortcut, added; a middle-flow unit keeps
# the resolution and adds its input (ours has two separable convs, the middle flow three). A
# separable conv is depthwise 3x3 -> pointwise 1x1 with no BN or ReLU between (the reference
# implementation's SeparableConv2D); no ReLU after the add: the next unit starts with one.


@pytest.mark.parametrize("stage", range(3))
def test_xception_is_the_entry_flow_unit(stage):
    first, second = blocks("xception")[stage]
    width, cin = STAGE_WIDTHS[stage], stage_inputs()[stage]

    def separable(in_chs, out_chs):
        return [
            conv("spatial", 3, in_chs, in_chs, groups=in_chs, bn=False, pre_relu=True),
            conv("pointwise", 1, in_chs, out_chs),
        ]

    for block, in_chs in ((first, cin), (second, width)):
        [branch] = block.branches
        assert branch_facts(branch) == separable(in_chs, width) + separable(width, width)
        assert isinstance(block.act, nn.Identity), "pre-activation: no ReLU after the add"
        assert not hasattr(block, "pre_pool")
    assert layer_facts(first.post_pool) == max_pool(stride=2)
    assert layer_facts(first.shortcut) == conv("pointwise", 1, cin, width, stride=2)
    assert not hasattr(second, "post_pool") and isinstance(second.shortcut, nn.Identity)


# --- ResNeXt (Xie et al. 2017), Table 1, 32x4d --------------------------------------------------
# conv2: 1x1 128 -> 3x3 128 in 32 groups -> 1x1 256, each conv with BN, ReLU after the first two
# and after the add; the stride on the 3x3 of a stage's first block, a 1x1 strided projection
# (with BN) on its shortcut. The inner width is half the block's; the cardinality stays across
# stages (the group width doubles with the width). Our first stage's 16 inner channels hold 4
# groups of 4 channels (the paper's "4d"), so 4 groups in every stage.


@pytest.mark.parametrize("stage", range(3))
def test_grouped_is_a_resnext_bottleneck(stage):
    first, second = blocks("grouped")[stage]
    width, cin = STAGE_WIDTHS[stage], stage_inputs()[stage]
    inner = width // 2
    for block, in_chs, stride in ((first, cin, 2), (second, width, 1)):
        [branch] = block.branches
        assert branch_facts(branch) == [
            conv("pointwise", 1, in_chs, inner, relu=True),
            conv("spatial", 3, inner, inner, stride=stride, groups=4, relu=True),
            conv("pointwise", 1, inner, width),
        ]
        assert isinstance(block.act, nn.ReLU)
    assert inner // 4 == 4 * 2**stage  # channels per group: 4, 8, 16
    assert layer_facts(first.shortcut) == conv("pointwise", 1, cin, width, stride=2)
    assert isinstance(second.shortcut, nn.Identity)


# --- the landmarks that kept their blocks ------------------------------------------------------


def test_normal_is_a_plain_3x3():
    for stage, (first, second) in enumerate(blocks("normal")):
        width, cin = STAGE_WIDTHS[stage], stage_inputs()[stage]
        assert branch_facts(first.branches[0]) == [conv("spatial", 3, cin, width, stride=2)]
        assert branch_facts(second.branches[0]) == [conv("spatial", 3, width, width)]
        assert first.shortcut is None and isinstance(first.act, nn.ReLU)


def test_extreme_inception_is_a_1x1_then_a_depthwise_3x3():
    # Xception Fig. 4: one 1x1, then a spatial conv on each of its output channels.
    for stage, (first, _) in enumerate(blocks("extreme_inception")):
        width, cin = STAGE_WIDTHS[stage], stage_inputs()[stage]
        assert branch_facts(first.branches[0]) == [
            conv("pointwise", 1, cin, width, relu=True),
            conv("spatial", 3, width, width, stride=2, groups=width),
        ]
        assert first.shortcut is None and isinstance(first.act, nn.ReLU)


def test_mobilenet_is_depthwise_bn_relu_pointwise_bn_relu():
    # MobileNet (Howard et al. 2017), Fig. 3 right.
    for stage, (first, _) in enumerate(blocks("mobilenet")):
        width, cin = STAGE_WIDTHS[stage], stage_inputs()[stage]
        assert branch_facts(first.branches[0]) == [
            conv("spatial", 3, cin, cin, stride=2, groups=cin, relu=True),
            conv("pointwise", 1, cin, width),
        ]
        assert first.shortcut is None and isinstance(first.act, nn.ReLU)


# --- reaching them, scaling them -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LANDMARKS))
def test_the_full_space_reaches_each_landmark(name):
    space = search_spaces.get("inception_to_xception")
    params = space.params_for(LANDMARKS[name])
    assert params is not None
    assert space.arch_from_params(params) == LANDMARKS[name]
    assert space.sample(optuna.trial.FixedTrial(params)) == LANDMARKS[name]


def test_the_spectrum_ends_at_the_xception_landmark():
    space = search_spaces.get("xception_spectrum")
    assert space.params_for(LANDMARKS["xception"]) == {
        **{name: values[0] for name, values in space.choices.items()},
        "segments": "dw",
    }


# Each branch's share of the width, as the papers give them (GoogLeNet's 3a; Inception-v3's
# 35 x 35 module), in the branches' order 1, 3, 5, pool.
PAPER_SHARES = {
    "inception_v1": (Fraction(64, 256), Fraction(128, 256), Fraction(32, 256), Fraction(32, 256)),
    "inception_v3": (Fraction(64, 256), Fraction(64, 256), Fraction(96, 256), Fraction(32, 256)),
}


@pytest.mark.parametrize("name", sorted(LANDMARKS))
def test_scaling_keeps_widths_whole_and_summing(name):
    for multiplier in range(2, 33):
        arch = scaled(LANDMARKS[name], multiplier / 8)  # constructing it checks the sums
        model = build_model(arch, 1, 10)
        for stage, built in zip(arch.stages, model.stages):
            widths = [out_channels(branch) for branch in built[0].branches]
            assert sum(widths) == stage.width and min(widths) >= 1
            if name in PAPER_SHARES:
                for width, share in zip(widths, PAPER_SHARES[name]):
                    assert abs(width - stage.width * share) < 1, (arch, widths)
            for facts in (branch_facts(branch) for branch in built[0].branches):
                # A reduce (the 1x1 before a spatial conv) stays narrower than its branch.
                if len(facts) > 1 and facts[0].kind == "pointwise":
                    assert 1 <= facts[0].out_chs <= facts[-1].out_chs
