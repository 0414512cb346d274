"""The decoupling degree (nas._decoupling): each value below is worked out by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nas import Arch, decoupling_degree
from nas._decoupling import block_degree, plan_degree
from nas._plan import BlockPlan, BranchPlan, Layer, arch_plan
from search_spaces import LANDMARKS
from tests.arch_samples import random_archs


def one_block(stem: int, width: int, branches: str, segments: str, pointwise: str) -> Arch:
    """One stride-1 block of `width` channels behind a `stem`-wide stem."""
    return Arch.parse(f"stem{stem}-c{width}_d1_s1_k{branches}_g{segments}_p{pointwise}_f0_a0_r0")


def pw(cin: int, cout: int) -> Layer:
    return Layer("pointwise", 1, cin, cout)


def conv(kernel: int, cin: int, cout: int, groups: int = 1) -> Layer:
    return Layer("spatial", kernel, cin, cout, groups=groups)


def inception_3a(scale: int = 1) -> BlockPlan:
    """GoogLeNet's inception (3a): 192 in; 1x1 64 | 1x1 96 -> 3x3 128 | 1x1 16 -> 5x5 32 |
    pool -> 1x1 32 (256 out), planned by hand."""
    c = scale
    branches = (
        BranchPlan("1", 64 * c, (pw(192 * c, 64 * c),)),
        BranchPlan("3", 128 * c, (pw(192 * c, 96 * c), conv(3, 96 * c, 128 * c))),
        BranchPlan("5", 32 * c, (pw(192 * c, 16 * c), conv(5, 16 * c, 32 * c))),
        BranchPlan("pool", 32 * c, (Layer("pool", 3, 192 * c, 192 * c), pw(192 * c, 32 * c))),
    )
    return BlockPlan(192 * c, 256 * c, 1, branches, False, None)


def test_a_normal_conv_is_0():
    # One branch on the shared input, groups 1: T = in_chs, share 1, coupling 1.
    assert decoupling_degree(one_block(16, 32, "3", "1", "none")) == 0.0
    assert decoupling_degree(LANDMARKS["normal"]) == 0.0


@pytest.mark.parametrize("pointwise", ["after", "before", "both"])
def test_a_depthwise_separable_block_is_1(pointwise):
    # The depthwise 3x3 sees one channel per filter: share 0, coupling 0.
    assert decoupling_degree(one_block(16, 32, "3", "dw", pointwise)) == 1.0


def test_eight_segments_between_1x1s_are_seven_eighths_at_any_width():
    # 1x1 -> 3x3 of 8 groups -> 1x1: the 3x3 works in the 1x1's space of C channels and each
    # filter sees C / 8 of them: 1 - 1/8 whatever C is.
    for width in (32, 64, 128, 256):
        assert decoupling_degree(one_block(width // 2, width, "3", "8", "both")) == 0.875
    # (log segments / log channels, the definition before, gave 0.6 at 32 and 0.43 at 128.)


def test_parallel_full_convs_are_0():
    # 3x3 and 5x5 side by side, each on the whole shared input: T = in_chs, each share 1.
    for branches in ("3.5", "3.5.7"):
        assert decoupling_degree(one_block(16, 48, branches, "1", "none")) == 0.0


def test_a_1x1_beside_a_full_conv_splits_the_spaces():
    # 1x1 (16 out, its own space of 16) beside a 3x3 on the shared 16 input channels:
    # T = 16 + 16; each branch makes half the output and sees half of T: 1 - 2 * (1/2 * 1/2).
    assert decoupling_degree(one_block(16, 32, "1.3", "1", "none")) == 0.5


def test_an_unmixed_block_is_0():
    # A depthwise conv with no 1x1 anywhere mixes no channels: nothing to decouple from.
    assert decoupling_degree(one_block(32, 32, "3", "dw", "none")) == 0.0
    assert decoupling_degree(one_block(32, 32, "3.5", "dw", "none")) == 0.0
    # Grouped spatial convs without a 1x1 mix channels only within their segments.
    assert decoupling_degree(one_block(32, 32, "3", "8", "none")) == 0.0
    # (log segments / log channels gave the unmixed depthwise conv the 1.0 of Xception.)


def test_inception_3a_widths():
    # Separate spaces 64 + 96 + 16 + 32 = 208 (every branch starts with a 1x1 or has no
    # spatial conv); coupling = (64*64 + 128*96 + 32*16 + 32*32) / (256 * 208) = 35/104.
    assert block_degree(inception_3a()) == pytest.approx(69 / 104, abs=1e-12)
    for scale in (2, 4):
        assert block_degree(inception_3a(scale)) == pytest.approx(69 / 104, abs=1e-12)
    # The same module written in the grammar, behind a 192-channel stem.
    written = "stem192-c256_d1_s1_k1.3.5.pool_g1_pbefore_f0_a1_r0_w64.128.32.32_m64.96.16.32"
    assert decoupling_degree(Arch.parse(written)) == pytest.approx(69 / 104, abs=1e-12)


def test_the_network_degree_is_the_plain_mean_of_its_blocks():
    normal = conv(3, 16, 16)
    separable = (conv(3, 16, 16, groups=16), pw(16, 16))
    plain = BlockPlan(16, 16, 1, (BranchPlan("3", 16, (normal,)),), False, None)
    split = BlockPlan(16, 16, 1, (BranchPlan("3", 16, separable),), False, None)
    assert plan_degree(((plain,), (split, split))) == pytest.approx(2 / 3)
    # Over an architecture: the first stage's 2 normal blocks (0) and the second's 2 separable
    # ones (1) average to 1/2, whatever the stem.
    arch = Arch.parse("stem8-c16_d2_s1_k3_g1_pnone_f0_a0_r0-c32_d2_s2_k3_gdw_pafter_f0_a0_r0")
    assert decoupling_degree(arch) == 0.5
    assert decoupling_degree(replace(arch, stem=24)) == 0.5


def test_pools_are_skipped_and_an_unknown_layer_counts_as_a_1x1():
    # An average pool, then a layer of a kind the plan does not have yet, then a depthwise 3x3:
    # as 1x1 -> depthwise, the block is separable.
    layers = (Layer("avgpool", 2, 16, 16), Layer("squeeze", 1, 16, 8), conv(3, 8, 8, groups=8))
    block = BlockPlan(16, 8, 1, (BranchPlan("3", 8, layers),), False, None)
    assert block_degree(block) == 1.0
    # The same with a full 3x3 after the unknown layer: one space of its 8 channels, share 1.
    layers = (Layer("avgpool", 2, 16, 16), Layer("squeeze", 1, 16, 8), conv(3, 8, 8))
    block = BlockPlan(16, 8, 1, (BranchPlan("3", 8, layers),), False, None)
    assert block_degree(block) == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "stem16-c32_d2_s2_k1.3.5.pool_g1_pbefore_f0_a1_r0-c64_d1_s2_k3_g4_pafter_f0_a0_r1",
        "stem8-c16_d1_s1_k1.3_g2_pnone_f0_a0_r0-c32_d2_s2_k3.5_gdw_pboth_f1_a1_r0",
        "stem16-c32_d1_s1_k3_g8_pboth_f0_a1_r1-c64_d1_s1_k1.3_g1_pnone_f0_a0_r0",
    ],
)
def test_scaling_every_width_leaves_the_degree_unchanged(text):
    arch = Arch.parse(text)

    def scaled(factor: int) -> Arch:
        stages = tuple(replace(stage, width=stage.width * factor) for stage in arch.stages)
        return Arch(stem=arch.stem * factor, stages=stages)

    degree = decoupling_degree(arch)
    assert 0.0 < degree < 1.0
    assert decoupling_degree(scaled(2)) == pytest.approx(degree, abs=1e-12)
    assert decoupling_degree(scaled(4)) == pytest.approx(degree, abs=1e-12)


def test_the_landmarks_in_spectrum_order():
    degree = {name: decoupling_degree(arch) for name, arch in LANDMARKS.items()}
    assert set(degree) == {
        "normal", "inception_v1", "inception_v3", "grouped",
        "extreme_inception", "xception", "mobilenet",
    }  # fmt: skip
    # normal: one full 3x3 per block. inception_v1: inception (3a)'s proportions, each branch in
    # its own space (8 + 12 + 2 + 4 = 26 channels at width 32), weighted by its output share:
    # 1 - (8*8 + 16*12 + 4*2 + 4*4) / (32*26) = 69/104. inception_v3: the 35x35 module's
    # proportions, spaces 8 + 6 + 8 + 4 = 26: 1 - (8*8 + 8*6 + 12*8 + 4*4) / (32*26) = 19/26.
    # grouped: 4 segments between 1x1s. The depthwise ones: no spatial filter sees more than
    # one channel.
    assert degree["normal"] == 0.0
    assert degree["inception_v1"] == pytest.approx(69 / 104, abs=1e-12)
    assert degree["inception_v3"] == pytest.approx(19 / 26, abs=1e-12)
    assert degree["grouped"] == 0.75
    assert degree["extreme_inception"] == degree["xception"] == degree["mobilenet"] == 1.0
    order = sorted(degree, key=degree.get)
    assert order[:4] == ["normal", "inception_v1", "inception_v3", "grouped"]


def layers_of(arch: Arch) -> list[Layer]:
    plan = arch_plan(arch)
    return [
        layer
        for blocks in plan
        for b in blocks
        for branch in b.branches
        for layer in branch.layers
    ]


def test_random_architectures_lie_in_0_1_and_keep_their_degree_when_doubled():
    def depthwise(layer: Layer) -> bool:
        return layer.in_chs > 1 and layer.groups == layer.in_chs

    def exactly_doubled(arch: Arch, doubled: Arch) -> bool:
        # Every layer's channels twice as many, and its groups the same or depthwise in both:
        # a narrow stage that lowered a segments request, or branches that split a width
        # unevenly, change the network's shape, not only its width.
        pairs = list(zip(layers_of(arch), layers_of(doubled)))
        return all(
            (b.in_chs, b.out_chs) == (2 * a.in_chs, 2 * a.out_chs)
            and depthwise(a) == depthwise(b)
            and (depthwise(a) or a.groups == b.groups)
            for a, b in pairs
        )

    compared = 0
    for space in ("inception_to_xception", "xception_spectrum"):
        for arch in random_archs(space, 150, seed=1):
            degree = decoupling_degree(arch)
            assert 0.0 <= degree <= 1.0, arch
            stages = tuple(
                replace(
                    stage,
                    width=2 * stage.width,
                    widths=stage.widths and tuple(2 * chs for chs in stage.widths),
                    inner=stage.inner and tuple(2 * chs for chs in stage.inner),
                )
                for stage in arch.stages
            )
            doubled = Arch(stem=2 * arch.stem, stages=stages, stem_stride=arch.stem_stride)
            if exactly_doubled(arch, doubled):
                compared += 1
                assert decoupling_degree(doubled) == pytest.approx(degree, abs=1e-12), arch
    assert compared >= 100
