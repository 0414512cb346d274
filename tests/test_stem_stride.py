"""The stem's stride: grammar, the built stem, its cost, the spaces and landmarks for an input
size, the exported file and the trial page's description."""

from __future__ import annotations

import gzip
import importlib.util
import math
import random
import re
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

import search_spaces
from dashboard import callbacks
from dashboard.data import FrameCache
from dashboard.storage import StorageReader
from dashboard.trial_data import stem_text
from nas import Arch, build_model, decoupling_degree
from nas._arch import STEM_STRIDES
from nas._cheapest import plan_macs
from nas.cost import count_cost, part_costs
from nas.export import generate_code
from search_spaces import LANDMARKS, REFERENCE_SIDE, landmarks_for, stem_stride_for

OLD_STUDY = Path(__file__).with_name("data") / "old_study"
# From tests/test_export.py: several branches, a 1x1 before, a residual.
TINY = "stem8-c16_d1_s2_k1.3.pool_g1_pbefore_f0_a1_r0-c24_d1_s2_k3_gdw_pafter_f0_a0_r1"

pytestmark = pytest.mark.usefixtures("one_thread")


def old_strings(count: int = 12) -> list[str]:
    """Architecture strings an earlier version stored (tests/data/old_study), a seeded few."""
    dump = gzip.decompress(OLD_STUDY.joinpath("studies_e34f29c.sql.gz").read_bytes()).decode()
    stored = sorted(set(re.findall(r"stem[0-9]+-[a-z0-9_.\-]+", dump)))
    return random.Random(17).sample(stored, count)


def layout(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


# --- the grammar -----------------------------------------------------------------------------


@pytest.mark.parametrize("stride", STEM_STRIDES)
@pytest.mark.parametrize("name", sorted(LANDMARKS))
def test_strings_round_trip_with_and_without_a_stem_stride(name, stride):
    arch = replace(LANDMARKS[name], stem_stride=stride)
    text = str(arch)
    stem = text.split("-")[0]
    assert stem == ("stem16" if stride == 1 else f"stem16s{stride}")
    assert Arch.parse(text) == arch and Arch.parse(text).stem_stride == stride
    assert text.split("-")[1:] == str(LANDMARKS[name]).split("-")[1:]
    assert (arch == LANDMARKS[name]) == (stride == 1)


@pytest.mark.parametrize("text", [TINY, *map(str, LANDMARKS.values()), *old_strings()])
def test_stored_strings_keep_their_text_and_stride_one(text):
    arch = Arch.parse(text)
    assert str(arch) == text and arch.stem_stride == 1
    assert Arch(arch.stem, arch.stages) == arch  # every existing constructor call still works


@pytest.mark.parametrize(
    "token",
    ["stem16s3", "stem16s", "stem16s04", "stem16s1", "stem16s32", "stem16s\u0664", "stem16s2s2"],
)
def test_a_bad_stem_stride_is_refused_by_its_token(token):
    with pytest.raises(ValueError, match=re.escape(repr(token))):
        Arch.parse(token + "-c32_d2_s2_k3_g1_pnone_f0_a0_r0")


@pytest.mark.parametrize("stride", [0, 3, 32, -2, True, 2.0, "4"])
def test_the_constructor_refuses_a_stem_stride_outside_the_grammar(stride):
    with pytest.raises(ValueError, match="stem stride"):
        replace(LANDMARKS["normal"], stem_stride=stride)


def test_total_stride_counts_the_stem_and_decoupling_ignores_it():
    for arch in LANDMARKS.values():
        strided = replace(arch, stem_stride=8)
        assert arch.total_stride == 8 and strided.total_stride == 64
        assert decoupling_degree(strided) == decoupling_degree(arch)


# --- the built stem --------------------------------------------------------------------------


@pytest.mark.parametrize("stride", STEM_STRIDES)
def test_the_built_stem_is_an_average_pool_a_conv_and_a_max_pool(stride):
    model = build_model(replace(LANDMARKS["xception"], stem_stride=stride), 3, 10)
    modules = list(model.stem)
    if stride >= 8:  # the image averaged first, so that the conv works at 2x the stages' size
        shrink = modules.pop(0)
        assert isinstance(shrink, nn.AvgPool2d) and shrink.ceil_mode
        assert (shrink.kernel_size, shrink.stride) == (stride // 4, stride // 4)
    conv, bn, relu, *pools = modules
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    assert isinstance(relu, nn.ReLU)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (3, 16, (3, 3))
    assert conv.stride == (min(stride, 2),) * 2 and conv.padding == (1, 1) and conv.bias is None
    assert len(pools) == (1 if stride >= 4 else 0)
    for pool in pools:
        assert isinstance(pool, nn.MaxPool2d)
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
    with torch.no_grad():
        after = model.stem(torch.zeros(1, 3, 224, 299)).shape[2:]
    assert tuple(after) == (math.ceil(224 / stride), math.ceil(299 / stride))


def test_a_224_image_reaches_the_stages_at_28_pixels():
    model = build_model(landmarks_for((3, 224, 224))["normal"], 3, 10)
    with torch.no_grad():
        assert model.stem(torch.zeros(1, 3, 224, 224)).shape == (1, 16, 28, 28)


def test_old_exports_build_the_network_we_build(tmp_path):
    """The files an earlier version exported hold its builder: same state_dict as ours."""
    for path in sorted(OLD_STUDY.glob("export_*.py.txt")):
        module_path = tmp_path / path.name.replace(".py.txt", ".py")
        module_path.write_text(path.read_text())
        spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        ours = build_model(module.ARCH, module.INPUT_SHAPE[0], module.NUM_CLASSES)
        assert layout(ours) == layout(module.build_model()), path.name
        assert str(ours.stem) == str(module.build_model().stem)


@pytest.mark.parametrize("name", sorted(LANDMARKS))
def test_the_weights_do_not_depend_on_the_stem_stride(name):
    # Pools hold no state: a network's state_dict is the same for every stem stride.
    reference = layout(build_model(LANDMARKS[name], 3, 10))
    assert list(reference)[:2] == ["stem.0.weight", "stem.1.weight"]
    for stride in STEM_STRIDES[1:]:
        strided = build_model(replace(LANDMARKS[name], stem_stride=stride), 3, 10)
        assert layout(strided) == reference, stride


@pytest.mark.parametrize("name", sorted(LANDMARKS))
@pytest.mark.parametrize("input_shape", [(3, 64, 64), (1, 96, 80)])
def test_strided_landmarks_train(name, input_shape):
    torch.manual_seed(0)
    model = build_model(landmarks_for(input_shape)[name], input_shape[0], 5)
    out = model(torch.randn(2, *input_shape))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    assert all(parameter.grad is not None for parameter in model.parameters())


# --- cost ------------------------------------------------------------------------------------


def test_at_96_pixels_each_landmark_costs_about_what_it_costs_at_28():
    for name, arch in landmarks_for((3, 96, 96)).items():
        strided = count_cost(arch, (3, 96, 96)).macs
        small = count_cost(LANDMARKS[name], (3, 28, 28)).macs
        assert 0.7 < strided / small < 1.3, name  # 24 pixels reach the stages, not 28


@pytest.mark.parametrize("name", ["normal", "xception"])
def test_at_224_pixels_the_stages_cost_what_they_cost_at_28(name):
    """Stride 8 brings 224 to 28 exactly: every block and the head cost what they cost on a
    28 x 28 image; the stem's conv works at 56 x 56, after a 2 x 2 average pool (pools cost
    no MACs)."""
    strided = part_costs(landmarks_for((3, 224, 224))[name], (3, 224, 224))
    small = part_costs(LANDMARKS[name], (3, 28, 28))
    assert [(p.name, p.macs, p.params) for p in strided[1:]] == [
        (p.name, p.macs, p.params) for p in small[1:]
    ]
    stem_weights = 16 * 3 * 3 * 3
    assert strided[0].name == "stem" and strided[0].macs == stem_weights * 56 * 56
    assert small[0].macs == stem_weights * 28 * 28


def test_at_224_pixels_the_stem_stride_saves_most_of_the_cost():
    for name, arch in landmarks_for((3, 224, 224)).items():
        strided = count_cost(arch, (3, 224, 224)).macs
        full = count_cost(LANDMARKS[name], (3, 224, 224)).macs
        small = count_cost(LANDMARKS[name], (3, 28, 28)).macs
        assert full / strided > 30, name
        # Only the stem's conv, at twice the stages' size, costs more than at 28 x 28.
        assert strided / small < 1.75, name


@pytest.mark.parametrize("input_shape", [(3, 224, 224), (3, 61, 77), (1, 299, 299)])
def test_the_plan_counts_the_strided_stem_as_ptflops_does(input_shape):
    for name, arch in landmarks_for(input_shape).items():
        assert arch.stem_stride > 1
        assert plan_macs(arch, input_shape, 10) == count_cost(arch, input_shape, 10).macs, name


# --- the spaces and landmarks for an input size ----------------------------------------------


@pytest.mark.parametrize(
    "side, stride",
    [(8, 1), (28, 1), (32, 1), (39, 1), (40, 2), (64, 2), (96, 4), (128, 4), (224, 8)]
    + [(299, 8), (512, 16), (4096, 16)],
)
def test_stem_stride_for_brings_the_stages_near_the_reference_side(side, stride):
    assert stem_stride_for((3, side, side)) == stride
    assert stem_stride_for((1, side, 5 * side)) == stride  # the shorter side decides
    assert REFERENCE_SIDE == 28


@pytest.mark.parametrize("shape", [(3, 0, 28), (3, 28), (3, 28, 28, 1), (3, 2.5, 28), None, "x"])
def test_stem_stride_for_refuses_what_is_not_an_image_shape(shape):
    with pytest.raises(ValueError, match="input_shape"):
        stem_stride_for(shape)


def test_landmarks_for_a_28_pixel_input_are_the_landmarks():
    assert landmarks_for((1, 28, 28)) == LANDMARKS
    assert [str(arch) for arch in LANDMARKS.values()] == [
        str(search_spaces.landmark(name)) for name in LANDMARKS
    ]
    big = landmarks_for((3, 224, 224))
    assert list(big) == list(LANDMARKS)
    assert all(arch == replace(LANDMARKS[name], stem_stride=8) for name, arch in big.items())


@pytest.mark.parametrize("space_name", search_spaces.names())
@pytest.mark.parametrize("input_shape", [(3, 64, 64), (3, 224, 224), (1, 512, 384)])
def test_a_space_for_an_input_reaches_the_landmarks_for_it(space_name, input_shape):
    space = search_spaces.get(space_name)
    sized = space.for_input(input_shape)
    assert sized.stem_stride == stem_stride_for(input_shape) > 1
    assert sized.choices == space.choices and sized.size() == space.size()
    assert space.for_input((3, 32, 32)) is space
    strided = landmarks_for(input_shape)
    reached = 0
    for name, arch in LANDMARKS.items():
        params = space.params_for(arch)
        assert sized.params_for(arch) is None, name  # a stride-1 landmark is another network
        assert space.params_for(strided[name]) is None, name
        if params is None:
            continue
        reached += 1
        assert sized.params_for(strided[name]) == params
        assert sized.sample(optuna.trial.FixedTrial(params)) == strided[name]
    assert reached >= 1


def test_a_sized_space_samples_only_its_stem_stride():
    sized = search_spaces.get("inception_to_xception").for_input((3, 96, 96))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        arch = sized.sample(study.ask())
        assert arch.stem_stride == 4 and str(arch).split("-")[0].endswith("s4")
        assert sized.params_for(arch) is not None


# --- the exported file and the trial page ----------------------------------------------------


def test_a_strided_export_builds_our_network_and_checks_itself(capsys):
    arch = landmarks_for((3, 96, 96))["inception_v1"]
    code = generate_code(arch, input_shape=(3, 96, 96), num_classes=10, provenance={"study": "t"})
    stem_line = "STEM_STRIDE = 4  # 3x3 conv stride 2, 3x3 max pool stride 2: 96x96 -> 24x24"
    assert f"\n{stem_line}\n" in code
    assert "    # stage 1: 16 -> 32 channels, 24x24 -> 12x12\n" in code
    namespace: dict = {"__name__": "exported"}
    exec(compile(code, "<export>", "exec"), namespace)
    assert namespace["ARCH"] == str(arch) and namespace["STEM_STRIDE"] == 4
    exported = namespace["build_model"]()
    assert layout(exported) == layout(build_model(arch, 3, 10))
    assert sum(isinstance(module, nn.MaxPool2d) for module in exported.stem) == 1
    namespace["_self_check"]()
    assert capsys.readouterr().out.startswith("ok: ")


def test_a_stride_one_export_says_its_stem_keeps_the_resolution():
    code = generate_code(TINY, input_shape=(1, 8, 8), num_classes=10, provenance={})
    assert "\nSTEM_STRIDE = 1  # 3x3 conv: 8x8 -> 8x8\n" in code
    assert "MaxPool2d" in code  # TINY has a pool branch; the stem adds none
    assert "MaxPool2d" not in generate_code(
        LANDMARKS["normal"], input_shape=(1, 8, 8), num_classes=10, provenance={}
    )


@pytest.mark.parametrize("stride", STEM_STRIDES)
def test_the_trial_page_describes_the_built_stem(stride):
    arch = replace(LANDMARKS["mobilenet"], stem_stride=stride)
    words = []
    for module in build_model(arch, 3, 10).stem:  # what was built, in the page's words
        if isinstance(module, nn.AvgPool2d):
            words.append(f"{module.kernel_size}x{module.kernel_size} average pool")
        elif isinstance(module, nn.MaxPool2d):
            words.append(f"3x3 max pool stride {module.stride}")
        elif isinstance(module, nn.Conv2d):
            words.append("3x3 conv" + (" stride 2" if module.stride == (2, 2) else ""))
    assert stem_text(arch, 3) == ", ".join(words) + ", 3 → 16 ch"
    assert stem_text(arch, None).endswith(", image → 16 ch")


def test_the_trial_page_of_a_strided_network_draws_and_counts_its_stem(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(storage=url, study_name="big", directions=["maximize", "minimize"])
    attrs = {"objectives": ["val_acc", "macs"], "input_shape": [3, 224, 224], "num_classes": 10}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    arch = landmarks_for((3, 224, 224))["xception"]
    cost = count_cost(arch, (3, 224, 224))
    record = {"arch": str(arch), "macs": cost.macs, "params": cost.params}
    study.add_trial(optuna.trial.create_trial(values=[0.5, cost.macs], user_attrs=record))
    reader = StorageReader(url)
    try:
        page = str(callbacks.trial_view(FrameCache(reader), "big", 0).to_plotly_json())
    finally:
        reader.close()
    assert "2x2 average pool, 3x3 conv stride 2, 3x3 max pool stride 2, 3 → 16 ch" in page
    assert f"{16 * 27 * 56 * 56:,}" in page  # the stem's row of the cost table
