from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nas import Arch, Stage, build_model, decoupling_degree
from nas.blocks import Network
from search_spaces import LANDMARKS
from tests.arch_samples import random_archs


def test_landmark_strings_round_trip():
    for arch in LANDMARKS.values():
        assert Arch.parse(str(arch)) == arch
        assert hash(Arch.parse(str(arch))) == hash(arch)


def test_landmarks_are_distinct_networks():
    assert len({str(arch) for arch in LANDMARKS.values()}) == len(LANDMARKS)


def test_xception_and_inception_blocks_match_the_papers():
    xception = LANDMARKS["xception"].stages[0]
    assert (xception.segments, xception.pointwise, xception.mid_act, xception.residual) == (
        "dw",
        "after",
        False,
        True,
    )
    mobilenet = LANDMARKS["mobilenet"].stages[0]
    assert (mobilenet.segments, mobilenet.pointwise, mobilenet.mid_act) == ("dw", "after", True)
    v1, v3 = LANDMARKS["inception_v1"], LANDMARKS["inception_v3"]
    assert v1.stages[0].branches == ("1", "3", "5", "pool")
    assert [s.factorize for s in v1.stages] == [False] * 3
    assert [s.factorize for s in v3.stages] == [True] * 3
    # v3 differs from v1 by the factorized 5x5 only.
    assert str(v1).replace("_f0_", "_f1_") == str(v3)
    extreme = LANDMARKS["extreme_inception"].stages[0]
    assert (extreme.pointwise, extreme.segments) == ("before", "dw")


@pytest.mark.parametrize(
    "text, token",
    [
        ("", "empty"),
        ("stam16-c32_d2_s2_k3_g1_pnone_f0_a0_r0", "stam16"),
        ("stem16", "no stages"),
        ("stem16-c32_d2_s2_k3_g1_pnone_f0_a0", "9"),
        ("stem16-c32_dx_s2_k3_g1_pnone_f0_a0_r0", "dx"),
        ("stem16-c32_d2_s3_k3_g1_pnone_f0_a0_r0", "stride"),
        ("stem16-c32_d2_s2_k4_g1_pnone_f0_a0_r0", "branches"),
        ("stem16-c32_d2_s2_k3_g0_pnone_f0_a0_r0", "segments"),
        ("stem16-c32_d2_s2_k3_g1_pside_f0_a0_r0", "pointwise"),
        ("stem16-c32_d2_s2_k3_g1_pnone_f2_a0_r0", "f2"),
        ("stem16-c32_d2_s2_k3.3_g1_pnone_f0_a0_r0", "repeat"),
        ("stem16-x32_d2_s2_k3_g1_pnone_f0_a0_r0", "x32"),
    ],
)
def test_bad_strings_name_the_fault(text, token):
    with pytest.raises(ValueError, match=token):
        Arch.parse(text)


def test_canonical_form_resets_knobs_that_cannot_matter():
    def arch(**knobs):
        base = dict(
            width=32,
            depth=1,
            stride=2,
            branches=("3",),
            segments=1,
            pointwise="none",
            factorize=False,
            mid_act=False,
            residual=False,
        )
        return Arch(stem=16, stages=(Stage(**{**base, **knobs}),))

    assert arch(mid_act=True) == arch()  # no 1x1, so no activation between
    assert arch(factorize=True) == arch()  # no 5x5 or 7x7 to factorize
    assert arch(branches=("pool", "1", "3")) == arch(branches=("1", "3", "pool"))
    # 32 segments on 16 -> 32 channels can only be 16 groups: depthwise.
    assert arch(segments=32) == arch(segments="dw") == arch(segments=16)
    assert arch(segments=3) == arch(segments=2)  # 3 does not divide 16; lowered to 2
    one_by_one = arch(branches=("1",), pointwise="after", segments="dw", mid_act=True)
    assert one_by_one == arch(branches=("1",))
    # Two stride-1-joined stages with the same knobs are one deeper stage.
    first = Stage(32, 1, 2, ("3",), 1, "none", False, False, False)
    second = Stage(32, 2, 1, ("3",), 1, "none", False, False, False)
    assert Arch(16, (first, second)) == Arch(
        16, (Stage(32, 3, 2, ("3",), 1, "none", False, False, False),)
    )


stage_strategy = st.builds(
    Stage,
    width=st.sampled_from([8, 12, 16, 24, 32]),
    depth=st.integers(1, 2),
    stride=st.sampled_from([1, 2]),
    branches=st.lists(
        st.sampled_from(["1", "3", "5", "7", "pool"]), min_size=1, max_size=4, unique=True
    ).map(tuple),
    segments=st.sampled_from([1, 2, 3, 4, 8, 16, 64, "dw"]),
    pointwise=st.sampled_from(["none", "before", "after", "both"]),
    factorize=st.booleans(),
    mid_act=st.booleans(),
    residual=st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(stem=st.sampled_from([4, 8, 16]), stages=st.lists(stage_strategy, min_size=1, max_size=3))
def test_canonicalization_keeps_the_network(stem, stages):
    """The canonical Arch builds exactly the network its raw knobs describe."""
    arch = Arch(stem=stem, stages=tuple(stages))
    assert Arch.parse(str(arch)) == arch
    assert str(Arch.parse(str(arch))) == str(arch)
    raw_specs = [
        dict(
            width=s.width,
            depth=s.depth,
            stride=s.stride,
            branches=tuple(s.branches),
            segments=s.segments,
            pointwise=s.pointwise,
            factorize=s.factorize,
            mid_act=s.mid_act,
            residual=s.residual,
        )
        for s in stages
    ]
    torch.manual_seed(0)
    raw = Network(1, 3, stem, raw_specs).eval()
    canonical = build_model(arch, 1, 3).eval()
    raw_state, canonical_state = raw.state_dict(), canonical.state_dict()
    assert [v.shape for v in raw_state.values()] == [v.shape for v in canonical_state.values()]
    canonical.load_state_dict(dict(zip(canonical_state, raw_state.values())))
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(raw(x), canonical(x))


def test_decoupling_degree_orders_the_spectrum():
    degree = {name: decoupling_degree(arch) for name, arch in LANDMARKS.items()}
    assert degree["normal"] == 0.0
    assert degree["xception"] == 1.0
    assert degree["mobilenet"] == 1.0
    for name in ("grouped", "inception_v1", "inception_v3"):
        assert 0.0 < degree[name] < 1.0, name


def test_random_architectures_round_trip():
    for space in ("inception_to_xception", "xception_spectrum"):
        for arch in random_archs(space, 300, seed=1):
            assert Arch.parse(str(arch)) == arch
            assert 0.0 <= decoupling_degree(arch) <= 1.0
