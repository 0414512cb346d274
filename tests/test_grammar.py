"""The grammar's knobs for the papers' blocks: their tokens, one string per network, the errors
that name the token, and what each builds (read from the torch modules)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from nas import Arch, build_model
from nas.cost import count_cost
from tests.module_facts import LayerFacts, branch_facts, layer_facts

pytestmark = pytest.mark.usefixtures("one_thread")

XCEPTION_UNIT = "stem8.16s2-c32_d1_s2post_k3_gdw_pafter_f0_a0_r1_n2_v1_b0"
INCEPTION = "stem24-c32_d1_s1_k1.3.5.avgpool_g1_pbefore_f0_a1_r0_w8.12.6.6_m8.10.4.6"
RESNEXT = "stem16-c32_d1_s1_k3_g8_pboth_f0_a1_r1_m16"


def conv(kind, kernel, cin, cout, stride=1, groups=1, bn=True, relu=False, pre_relu=False):
    return LayerFacts(kind, kernel, cin, cout, stride, groups, bn, relu, pre_relu)


@pytest.mark.parametrize(
    "text",
    [
        XCEPTION_UNIT,
        INCEPTION,
        RESNEXT,
        "stem16-c32_d1_s2pre_k3_g1_pnone_f0_a0_r1",
        "stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_n3",
        "stem16-c32_d1_s1_k3.5_g1_pnone_f0_a0_r0_w20.12",
        "stem16-c32_d1_s1_k3_gdw_pafter_f0_a0_r0_b0",
    ],
)
def test_new_tokens_round_trip(text):
    arch = Arch.parse(text)
    assert str(arch) == text
    assert Arch.parse(str(arch)) == arch


def test_equivalent_networks_share_one_string():
    def same(text: str, canonical: str) -> None:
        assert str(Arch.parse(text)) == canonical
        # ... and build the same modules (the state_dict's shapes, in order).
        shapes = [
            [tuple(v.shape) for v in build_model(t, 1, 10).state_dict().values()]
            for t in (text, canonical)
        ]
        assert shapes[0] == shapes[1]

    base = "stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0"
    # Equal shares are the default widths; a branch order moves its widths along.
    same(
        "stem16-c32_d1_s1_k3.5_g1_pnone_f0_a0_r0_w16.16", "stem16-c32_d1_s1_k3.5_g1_pnone_f0_a0_r0"
    )
    same(
        "stem16-c32_d1_s1_k5.3_g1_pnone_f0_a0_r0_w12.20",
        "stem16-c32_d1_s1_k3.5_g1_pnone_f0_a0_r0_w20.12",
    )
    # A stride-1 stage has nothing to downsample; a single conv has nothing inside it.
    same("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_m8", base)
    # No spatial conv before a 1x1: no BatchNorm to leave out; a 1x1 branch has no inner width.
    same(base + "_b0", base)
    same(
        "stem16-c32_d1_s1_k1.3_g1_pbefore_f0_a1_r0_m9.12",
        "stem16-c32_d1_s1_k1.3_g1_pbefore_f0_a1_r0_m16.12",
    )
    # A 1x1-only stage has no step to repeat.
    same("stem16-c32_d1_s1_k1_g1_pnone_f0_a0_r0_n2", "stem16-c32_d1_s1_k1_g1_pnone_f0_a0_r0")


@pytest.mark.parametrize(
    "text, token",
    [
        ("stem16-c32_d1_s1pre_k3_g1_pnone_f0_a0_r0", "s1pre"),
        ("stem16-c32_d1_s2mid_k3_g1_pnone_f0_a0_r0", "s2mid"),
        ("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_n1", "n1"),
        ("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_n99", "n99"),
        ("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_v0", "v0"),
        ("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_b1", "b1"),
        ("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_x1", "x1"),
        ("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_v1_n2", "n2"),
        ("stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0_w3.x", "w3.x"),
        ("stem16-c32_d1_s1_k3.5_g1_pnone_f0_a0_r0_w20.20", "w20.20 sum to 40"),
        ("stem16-c32_d1_s1_k3.5_g1_pnone_f0_a0_r0_w32", "w32 need one value per branch (2)"),
        ("stem0.16-c32_d1_s1_k3_g1_pnone_f0_a0_r0", "stem0.16"),
        ("stem8.x-c32_d1_s1_k3_g1_pnone_f0_a0_r0", "stem8.x"),
    ],
)
def test_errors_name_the_token(text, token):
    with pytest.raises(ValueError, match=re.escape(token)):
        Arch.parse(text)


def block_of(text: str, stage: int = 0, block: int = 0) -> nn.Module:
    return build_model(text, 3, 10).stages[stage][block]


def test_xception_unit_is_built_as_the_paper_draws_it():
    """ReLU before each separable conv, no BN between depthwise and 1x1, a 3x3 stride-2 max pool
    after the branch, a strided 1x1 with BN on the shortcut, no ReLU after the add."""
    model = build_model(XCEPTION_UNIT, 3, 10)
    stem = [layer_facts(model.stem[i : i + 3]) for i in (0, 3)]
    assert stem == [conv("spatial", 3, 3, 8, 2, relu=True), conv("spatial", 3, 8, 16, relu=True)]
    (unit,) = model.stages[0]
    (branch,) = unit.branches
    assert branch_facts(branch) == [
        conv("spatial", 3, 16, 16, groups=16, bn=False, pre_relu=True),
        conv("pointwise", 1, 16, 32),
        conv("spatial", 3, 32, 32, groups=32, bn=False, pre_relu=True),
        conv("pointwise", 1, 32, 32),
    ]
    assert layer_facts(unit.post_pool) == LayerFacts("pool", 3, None, None, 2, 1, False, False)
    assert layer_facts(unit.shortcut) == conv("pointwise", 1, 16, 32, stride=2)
    assert isinstance(unit.act, nn.Identity)
    # The output is the branch (then pooled) plus the projected, un-activated input.
    x = torch.randn(2, 16, 9, 9)
    unit.eval()
    with torch.no_grad():
        expected = unit.post_pool(branch(x.clone())) + unit.shortcut(x.clone())
        torch.testing.assert_close(unit(x), expected)


def test_pre_activation_leaves_the_identity_shortcut_its_negative_inputs():
    text = "stem32-c32_d1_s1_k3_gdw_pafter_f0_a0_r1_n3_v1_b0"
    unit = block_of(text).eval()
    x = -torch.rand(2, 32, 6, 6) - 0.5  # all negative: a ReLU in place would zero the shortcut
    with torch.no_grad():
        torch.testing.assert_close(unit(x) - unit.branches[0](x.clone()), x)


def test_inception_module_has_its_own_branch_and_reduce_widths():
    module = block_of(INCEPTION)
    one, three, five, pool = (branch_facts(branch) for branch in module.branches)
    assert one == [conv("pointwise", 1, 24, 8)]
    assert three == [conv("pointwise", 1, 24, 10, relu=True), conv("spatial", 3, 10, 12)]
    assert five == [conv("pointwise", 1, 24, 4, relu=True), conv("spatial", 5, 4, 6)]
    assert pool == [
        LayerFacts("avg", 3, None, None, 1, 1, False, False),
        conv("pointwise", 1, 24, 6),
    ]
    assert isinstance(module.branches[3][0], nn.AvgPool2d)
    assert isinstance(module.act, nn.ReLU)


def test_a_pool_before_the_block_downsamples_it_and_its_shortcut():
    module = block_of("stem16-c32_d1_s2pre_k3_g1_pnone_f0_a0_r1")
    assert layer_facts(module.pre_pool) == LayerFacts("pool", 3, None, None, 2, 1, False, False)
    assert branch_facts(module.branches[0]) == [conv("spatial", 3, 16, 32)]
    assert layer_facts(module.shortcut) == conv("pointwise", 1, 16, 32)  # stride 1: pooled
    assert build_model("stem16-c32_d1_s2pre_k3_g1_pnone_f0_a0_r1", 1, 10)(
        torch.randn(1, 1, 28, 28)
    ).shape == (1, 10)


def test_resnext_bottleneck_is_half_the_output_width():
    module = block_of(RESNEXT)
    assert branch_facts(module.branches[0]) == [
        conv("pointwise", 1, 16, 16, relu=True),
        conv("spatial", 3, 16, 16, groups=8, relu=True),
        conv("pointwise", 1, 16, 32),
    ]


def test_steps_repeat_the_spatial_step_with_a_relu_between():
    module = block_of("stem16-c32_d1_s2_k3_g1_pnone_f0_a0_r0_m24_n3")
    assert branch_facts(module.branches[0]) == [
        conv("spatial", 3, 16, 24, stride=2, relu=True),
        conv("spatial", 3, 24, 24, relu=True),
        conv("spatial", 3, 24, 32),
    ]


def test_cost_counts_the_new_layers():
    """ptflops' count (convs and the head; pools and BatchNorm cost none in its aten backend)
    against the layers' MACs by hand, on an 8x8 input."""
    # Stem 3->8 stride 2, then 8->16, at 4x4; unit: dw 16 + 1x1 16->32, dw 32 + 1x1 32->32 at
    # 4x4, then the pool to 2x2 and the projection 16->32 at 2x2; head 32->10 and its bias.
    stem = 16 * (3 * 8 * 9) + 16 * (8 * 16 * 9)
    unit = 16 * (16 * 9 + 16 * 32 + 32 * 9 + 32 * 32) + 4 * 16 * 32
    assert count_cost(XCEPTION_UNIT, (3, 8, 8), 10).macs == stem + unit + 32 * 10 + 10
