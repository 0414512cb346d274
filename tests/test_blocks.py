"""The builder: every landmark and sampled architecture trains; blocks are the papers' blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nas import Arch, build_model
from search_spaces import LANDMARKS
from tests.arch_samples import distinct_random_archs, tiny
from tests.module_facts import LayerFacts, branch_facts, layer_facts, out_channels

SHAPES = [(1, 28, 28), (3, 32, 32)]
# The smallest inputs the skeleton takes (three halvings), one odd: cheap enough for hundreds.
SMALL_SHAPES = [(1, 8, 8), (3, 9, 9)]


pytestmark = pytest.mark.usefixtures("one_thread")


def check_trains(arch, input_shape, num_classes=10):
    torch.manual_seed(0)
    model = build_model(arch, input_shape[0], num_classes)
    out = model(torch.randn(2, *input_shape))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{arch}: {name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{arch}: {name} has a non-finite gradient"


@pytest.mark.parametrize("name", sorted(LANDMARKS))
@pytest.mark.parametrize("input_shape", SHAPES)
def test_landmarks_build_forward_backward(name, input_shape):
    check_trains(LANDMARKS[name], input_shape)


@pytest.mark.parametrize("name", sorted(LANDMARKS))
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 9, 9), (1, 28, 28)])
def test_any_resolution_from_8_pixels(name, input_shape):
    model = build_model(LANDMARKS[name], input_shape[0], 7).eval()
    assert model(torch.randn(1, *input_shape)).shape == (1, 7)


# A few hundred draws per space (fewer distinct ones where the space is small), on narrow
# stages so that each case takes milliseconds; the block designs are the sampled ones.
RANDOM_ARCHS = list(
    dict.fromkeys(
        tiny(arch)
        for space in ("inception_to_xception", "xception_spectrum")
        for arch in distinct_random_archs(space, 200, seed=7)
    )
)


@pytest.mark.parametrize(
    ("arch", "input_shape"),
    [(arch, SMALL_SHAPES[index % 2]) for index, arch in enumerate(RANDOM_ARCHS)],
    ids=str,
)
def test_random_architectures_build_and_train(arch, input_shape):
    check_trains(arch, input_shape)


def test_random_architectures_cover_the_knobs():
    # The narrowing must leave the sample diverse: every knob value still occurs.
    stages = [stage for arch in RANDOM_ARCHS for stage in arch.stages]
    assert len(RANDOM_ARCHS) >= 150
    assert {stage.pointwise for stage in stages} == {"none", "before", "after", "both"}
    assert {stage.factorize for stage in stages} == {False, True}
    assert {stage.residual for stage in stages} == {False, True}
    branches = {branch for stage in stages for branch in stage.branches}
    assert branches == {"1", "3", "5", "7", "pool", "avgpool"}
    segments = {stage.segments for stage in stages if stage.spatial_kernels}
    assert {1, "dw"} <= segments and segments & {2, 4, 8}
    assert any(stage.depth > 1 for stage in stages)
    # The papers' knobs, as the search space samples them.
    assert {stage.downsample for stage in stages} == {"conv", "pre", "post"}
    assert {stage.steps for stage in stages} == {1, 2}
    assert {stage.preact for stage in stages} == {False, True}
    assert {stage.mid_bn for stage in stages} == {False, True}
    assert any(stage.widths for stage in stages) and any(stage.inner for stage in stages)


def test_build_model_accepts_the_string_form():
    arch = LANDMARKS["inception_v3"]
    by_value, by_text = build_model(arch, 1, 10), build_model(str(arch), 1, 10)
    assert [p.shape for p in by_value.parameters()] == [p.shape for p in by_text.parameters()]


# --- the blocks, read from the built modules --------------------------------------------------
# Every landmark has stem 16 and stages of 32 / 64 / 128 channels, two blocks each, stride 2:
# the first block of stage 1 maps 16 -> 32 channels at stride 2, the second 32 -> 32.
# tests/test_landmarks.py checks today's landmarks against their papers. The landmarks before
# the papers' blocks (grouped, inception_v1, inception_v3 and xception had the nine-token
# blocks below) stay pinned here: stored studies hold them, and they must build as they did.


def _earlier(block: str) -> str:
    return "stem16-" + "-".join(f"c{width}_d2_s2_{block}" for width in (32, 64, 128))


EARLIER_BLOCKS = {
    "grouped": _earlier("k3_g8_pboth_f0_a1_r1"),
    "inception_v1": _earlier("k1.3.5.pool_g1_pbefore_f0_a1_r0"),
    "inception_v3": _earlier("k1.3.5.pool_g1_pbefore_f1_a1_r0"),
    "xception": _earlier("k3_gdw_pafter_f0_a0_r1"),
}


def first_blocks(name: str) -> tuple[nn.Module, nn.Module]:
    """The first two blocks of a landmark, as it is now or (where it changed) as it was."""
    arch = Arch.parse(EARLIER_BLOCKS[name]) if name in EARLIER_BLOCKS else LANDMARKS[name]
    model = build_model(arch, 1, 10)
    return model.stages[0][0], model.stages[0][1]


def test_earlier_blocks_are_strings_the_grammar_keeps():
    for text in EARLIER_BLOCKS.values():
        assert str(Arch.parse(text)) == text


def conv(kind, kernel, cin, cout, stride=1, groups=1, relu=False) -> LayerFacts:
    return LayerFacts(kind, kernel, cin, cout, stride, groups, True, relu)


POOL_STRIDE_2 = LayerFacts("pool", 3, None, None, 2, 1, False, False)


def test_normal_block_is_one_full_3x3_then_the_block_relu():
    first, _ = first_blocks("normal")
    [branch] = first.branches
    assert branch_facts(branch) == [conv("spatial", 3, 16, 32, stride=2)]
    assert first.shortcut is None and isinstance(first.act, nn.ReLU)


def test_mobilenet_block_is_depthwise_bn_relu_pointwise_bn_relu():
    first, second = first_blocks("mobilenet")
    [branch] = first.branches
    assert branch_facts(branch) == [
        conv("spatial", 3, 16, 16, stride=2, groups=16, relu=True),
        conv("pointwise", 1, 16, 32),
    ]
    assert isinstance(first.act, nn.ReLU)  # the ReLU after the 1x1's BatchNorm
    assert branch_facts(second.branches[0])[0] == conv("spatial", 3, 32, 32, 1, 32, relu=True)
    assert first.shortcut is None


def test_earlier_xception_block_has_no_activation_between_and_a_projected_residual():
    first, second = first_blocks("xception")
    [branch] = first.branches
    assert branch_facts(branch) == [
        conv("spatial", 3, 16, 16, stride=2, groups=16),
        conv("pointwise", 1, 16, 32),
    ]
    # The first block changes width and resolution: a strided 1x1 projection, no ReLU.
    assert layer_facts(first.shortcut) == conv("pointwise", 1, 16, 32, stride=2)
    assert isinstance(second.shortcut, nn.Identity)


def test_extreme_inception_is_one_1x1_then_a_3x3_per_channel():
    first, _ = first_blocks("extreme_inception")
    [branch] = first.branches
    assert branch_facts(branch) == [
        conv("pointwise", 1, 16, 32, relu=True),
        conv("spatial", 3, 32, 32, stride=2, groups=32),
    ]


def test_earlier_grouped_block_is_a_resnext_bottleneck():
    first, second = first_blocks("grouped")
    [branch] = first.branches
    assert branch_facts(branch) == [
        conv("pointwise", 1, 16, 32, relu=True),
        conv("spatial", 3, 32, 32, stride=2, groups=8, relu=True),
        conv("pointwise", 1, 32, 32),
    ]
    assert layer_facts(first.shortcut) == conv("pointwise", 1, 16, 32, stride=2)
    assert isinstance(second.shortcut, nn.Identity)


@pytest.mark.parametrize("name", ["inception_v1", "inception_v3"])
def test_earlier_inception_module_branches(name):
    first, second = first_blocks(name)
    one, three, five, pool = (branch_facts(branch) for branch in first.branches)
    assert [out_channels(branch) for branch in first.branches] == [8, 8, 8, 8]
    assert one == [conv("pointwise", 1, 16, 8, stride=2)]
    assert three == [conv("pointwise", 1, 16, 8, relu=True), conv("spatial", 3, 8, 8, 2)]
    if name == "inception_v1":
        assert five == [conv("pointwise", 1, 16, 8, relu=True), conv("spatial", 5, 8, 8, 2)]
    else:  # the 5x5 as two stacked 3x3, ReLU between them, the stride on the first
        assert five == [
            conv("pointwise", 1, 16, 8, relu=True),
            conv("spatial", 3, 8, 8, stride=2, relu=True),
            conv("spatial", 3, 8, 8),
        ]
    assert pool == [POOL_STRIDE_2, conv("pointwise", 1, 16, 8)]
    # Later blocks take the stage's own width into every branch.
    assert [facts.in_chs for facts in branch_facts(second.branches[3])] == [None, 32]
    assert first.shortcut is None


def test_uneven_widths_give_the_first_branches_the_rest():
    arch = Arch.parse("stem8-c10_d1_s1_k1.3.5_g1_pnone_f0_a0_r0")
    [block] = build_model(arch, 1, 10).stages[0]
    assert [out_channels(branch) for branch in block.branches] == [4, 3, 3]
    assert build_model(arch, 1, 10)(torch.randn(1, 1, 8, 8)).shape == (1, 10)


def test_both_places_the_1x1_before_and_after_and_mid_act_reaches_both():
    arch = Arch.parse("stem8-c16_d1_s2_k3_g4_pboth_f0_a1_r0")
    [block] = build_model(arch, 1, 10).stages[0]
    assert branch_facts(block.branches[0]) == [
        conv("pointwise", 1, 8, 16, relu=True),
        conv("spatial", 3, 16, 16, stride=2, groups=4, relu=True),
        conv("pointwise", 1, 16, 16),
    ]
