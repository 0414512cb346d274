from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas import build_model, count_cost, measure_latency
from nas.blocks import make_branch
from nas.cost import part_costs
from search_spaces import LANDMARKS

H = W = 14


def branch_cost(in_chs, out_chs, kernel, segments, pointwise, factorize=False):
    branch = make_branch(in_chs, out_chs, 1, kernel, segments, pointwise, factorize, False)
    conv_params = sum(m.weight.numel() for m in branch.modules() if isinstance(m, nn.Conv2d))
    return count_cost(branch, (in_chs, H, W)).macs, conv_params


def test_factorized_5x5_costs_18_25ths():
    channels = 24
    macs_5x5, params_5x5 = branch_cost(channels, channels, "5", 1, "none")
    macs_3x3, params_3x3 = branch_cost(channels, channels, "5", 1, "none", factorize=True)
    assert macs_5x5 == H * W * channels * channels * 25
    assert macs_3x3 * 25 == macs_5x5 * 18
    assert params_3x3 * 25 == params_5x5 * 18


def test_depthwise_separable_against_normal_conv():
    channels, out_chs = 16, 40
    separable, _ = branch_cost(channels, out_chs, "3", "dw", "after")
    normal, _ = branch_cost(channels, out_chs, "3", 1, "none")
    assert separable == H * W * channels * (9 + out_chs)
    assert normal == H * W * channels * out_chs * 9


@pytest.mark.parametrize("segments", [1, 2, 4, 8, 32])
def test_segments_divide_spatial_macs(segments):
    channels = 32
    macs, params = branch_cost(channels, channels, "3", segments, "none")
    assert macs * segments == H * W * channels * channels * 9
    assert params * segments == channels * channels * 9


@pytest.mark.parametrize("name", sorted(LANDMARKS))
@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_ptflops_agrees_with_torch_flop_counter(name, input_shape):
    arch = LANDMARKS[name]
    model = build_model(arch, input_shape[0], 10).eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.randn(1, *input_shape))
    independent_macs = counter.get_total_flops() / 2
    macs = count_cost(arch, input_shape).macs
    assert macs == pytest.approx(independent_macs, rel=0.01)
    assert count_cost(arch, input_shape).params == sum(p.numel() for p in model.parameters())


def test_counting_leaves_the_model_untouched():
    model = build_model(LANDMARKS["normal"], 1, 10)
    model.train()
    before = count_cost(model, (1, 28, 28))
    assert model.training
    assert count_cost(model, (1, 28, 28)) == before  # no hooks left behind to double-count


def test_part_costs_add_up():
    arch = LANDMARKS["inception_v1"]
    parts = part_costs(arch, (1, 28, 28))
    total = count_cost(arch, (1, 28, 28))
    assert [p.name for p in parts][:2] == ["stem", "stage1.block1"]
    assert parts[-1].name == "head"
    assert sum(p.macs for p in parts) == total.macs
    assert sum(p.params for p in parts) == total.params
    assert sum(p.share for p in parts) == pytest.approx(1.0)


def test_flops_are_twice_macs():
    cost = count_cost(LANDMARKS["xception"], (1, 28, 28))
    assert cost.flops == 2 * cost.macs


def test_latency_is_measured_per_batch_size():
    latency = measure_latency(LANDMARKS["mobilenet"], (1, 28, 28), batch_sizes=(1, 8), repeats=3)
    assert set(latency) == {1, 8}
    assert all(0 < ms < 10_000 for ms in latency.values())
