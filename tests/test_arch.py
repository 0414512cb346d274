from __future__ import annotations

import random
import re
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nas._arch
from nas import Arch, Stage, build_model
from nas._arch import MAX_BLOCKS, MAX_STAGES, MAX_TEXT, MAX_WIDTH
from nas.blocks import Network
from search_spaces import LANDMARKS
from tests.arch_samples import random_archs


def test_landmark_strings_round_trip():
    for arch in LANDMARKS.values():
        assert Arch.parse(str(arch)) == arch
        assert hash(Arch.parse(str(arch))) == hash(arch)


def test_landmarks_are_distinct_networks():
    assert len({str(arch) for arch in LANDMARKS.values()}) == len(LANDMARKS)


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
        # Numbers are bounded and ASCII: each refusal names its token.
        ("stem16-c32_d99999999999999999999_s2_k3_g1_pnone_f0_a0_r0", "d99999999999999999999"),
        ("stem16-c32_d2000000000_s2_k3_g1_pnone_f0_a0_r0", "'d2000000000'.*depth"),
        ("stem16-c4097_d2_s2_k3_g1_pnone_f0_a0_r0", "'c4097'.*width.*4096"),
        ("stem99999-c32_d2_s2_k3_g1_pnone_f0_a0_r0", "'stem99999'"),
        ("stem1000000007-c32_d2_s2_k3_g1_pnone_f0_a0_r0", "'stem1000000007': stem width"),
        ("stem16-c32_d2_s2_k3_g5000_pnone_f0_a0_r0", "'g5000'.*segments"),
        ("stem16-c32_d2_s99999999999_k3_g1_pnone_f0_a0_r0", "'s99999999999'.*stride"),
        ("stem16-c\u0663\u0662_d2_s2_k3_g1_pnone_f0_a0_r0", "c\u0663\u0662"),
        ("stem\u0663-c32_d2_s2_k3_g1_pnone_f0_a0_r0", "stem\u0663"),
        ("stem16-c-32_d2_s2_k3_g1_pnone_f0_a0_r0", "stage 1"),
        ("stem16-c0_d2_s2_k3_g1_pnone_f0_a0_r0", "'c0'"),
        pytest.param(
            "stem16-" + "-".join(["c32_d5_s2_k3_g1_pnone_f0_a0_r0"] * 52),
            "260 blocks",
            id="260-blocks",
        ),
        pytest.param(
            "stem16-" + "-".join(["c32_d1_s2_k3_g1_pnone_f0_a0_r0"] * 65),
            "65 stages",
            id="65-stages",
        ),
        pytest.param(
            "stem16-" + "c32_d2_s2_k3_g1_pnone_f0_a0_r0" * 200, "characters", id="6000-chars"
        ),
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


def test_random_architectures_round_trip():
    for space in ("inception_to_xception", "xception_spectrum"):
        for arch in random_archs(space, 300, seed=1):
            assert Arch.parse(str(arch)) == arch
    # The decoupling degree of random architectures (in [0, 1] unclamped, unchanged when every
    # width doubles) and of the landmarks (in spectrum order) is checked in test_decoupling.py.


def test_stage_and_arch_constructors_hold_the_same_bounds():
    base = dict(width=32, depth=1, stride=1, branches=("3",), segments=1, pointwise="none")
    flags = dict(factorize=False, mid_act=False, residual=False)
    for wrong in (dict(width=MAX_WIDTH + 1), dict(depth=MAX_BLOCKS + 1), dict(segments=10**30)):
        with pytest.raises(ValueError, match="must be an int from 1 to"):
            Stage(**{**base, **flags, **wrong})
    with pytest.raises(ValueError, match="stem width"):
        Arch(stem=MAX_WIDTH + 1, stages=(Stage(**base, **flags),))
    # Widths of ImageNet-sized networks (Xception ends at 2048 channels) stay expressible.
    wide = Arch(stem=32, stages=(Stage(**{**base, "width": 2048, "depth": 8}, **flags),))
    assert Arch.parse(str(wide)) == wide and wide.out_channels == 2048


def _hostile_strings(count: int, seed: int) -> list[str]:
    """Hand-picked hostile strings plus seeded mutations of valid ones."""
    valid = [str(arch) for arch in LANDMARKS.values()]
    fixed = [
        "", " ", "-", "--", "_", "stem", "stem-", "stem16-", "stem16--", "stem16-_________",
        "stem-1-c32_d2_s2_k3_g1_pnone_f0_a0_r0", "stem16-c32_d2_s2_k_g1_pnone_f0_a0_r0",
        "stem16-c32_d2_s2_k3..5_g1_pnone_f0_a0_r0", "stem16-c32_d2_s2_k3_gdw_pnone_f0_a0_r0\n",
        "stem16\x00-c32_d2_s2_k3_g1_pnone_f0_a0_r0", "stem\u00b2-c32_d2_s2_k3_g1_pnone_f0_a0_r0",
        "stem16-c32_d2_s2_k3_g\uff11_pnone_f0_a0_r0", "stem1e3-c32_d2_s2_k3_g1_pnone_f0_a0_r0",
        "stem1000000007-c1000000007_d1_s1_k3_g1000000006_pafter_f0_a0_r0",
        "stem4093-c4093_d256_s1_k3_g4092_pafter_f0_a0_r0",
        "stem4096-" + "-".join(f"c{4096 - 2 * (i % 2)}_d4_s1_k1.3.5.7.pool_g4095_pboth_f1_a1_r1"
                               for i in range(MAX_STAGES)),
        "stem4096-" + "-".join(["c4096_d4_s1_k3.5.7_g4095_pnone_f1_a0_r0"] * MAX_STAGES),
        "stem16-" + "9" * 5000, "stem" + "9" * 100000, "-".join(valid) * 20,
    ]  # fmt: skip
    rng = random.Random(seed)
    pieces = ["9" * 25, "-1", "0", "\u0663", "_", "-", ".", "dw", "pool", "", "4096", "4097"]
    numbers = ["0", "1", "2", "3", "7", "64", "4095", "4096", "4097", "257", "9" * 30, "007"]
    mutated = []
    for _ in range(count):
        text = rng.choice(valid)
        for _ in range(rng.randint(1, 3)):
            runs = list(re.finditer("[0-9]+", text))
            kind = rng.random()
            if kind < 0.6 and runs:  # another number in place of one of the string's
                run = rng.choice(runs)
                text = text[: run.start()] + rng.choice(numbers) + text[run.end() :]
            else:
                at = rng.randrange(len(text) + 1)
                if kind < 0.8:
                    text = text[:at] + rng.choice(pieces) + text[at:]
                else:
                    text = text[:at] + text[at + rng.randint(1, 3) :]
        mutated.append(text)
    return fixed + mutated


def test_hostile_strings_parse_and_round_trip_or_raise_value_error(monkeypatch):
    """No string makes parse raise anything but ValueError, or work without bound."""
    calls = []
    real = nas._arch.resolve_groups
    monkeypatch.setattr(nas._arch, "resolve_groups", lambda *args: calls.append(1) or real(*args))
    parsed = refused = 0
    started = time.perf_counter()
    for text in _hostile_strings(1500, seed=16):
        calls.clear()
        try:
            arch = Arch.parse(text)
        except ValueError as error:
            refused += 1
            assert len(str(error)) < 400, "the message quotes a bounded part of the string"
        else:
            parsed += 1
            assert Arch.parse(str(arch)) == arch and len(str(arch)) <= MAX_TEXT
        # Distinct conv shapes per stage, two requests each: a few thousand calls at most, each
        # a search below MAX_WIDTH, so no string keeps the constructor busy.
        assert len(calls) <= 2 * 2 * 5 * 3 * MAX_STAGES, text[:80]
    assert parsed > 100 and refused > 100  # both outcomes were exercised
    assert time.perf_counter() - started < 30
