"""Cost before training: MACs and parameters on the built module, latency, one build a trial."""

from __future__ import annotations

import copy
from collections import OrderedDict

import optuna
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import nas.cost
import search_spaces
from nas import Arch, build_model, count_cost, measure_latency
from nas._objective import Objective
from nas._plan import arch_plan, branch_plan, stem_plan
from nas.blocks import make_branch
from nas.cost import part_costs
from nas.data import load_dataset
from nas.pruning import NO_PRUNING
from nas.train import Budget, TrainResult
from search_spaces import LANDMARKS

H = W = 14

# Every landmark's cost on Fashion-MNIST and CIFAR-10 images with 10 classes, as stored in the
# studies searched so far: a change here is a change of every stored trial's MACs or params.
LANDMARK_COSTS = {
    # name: {input shape: (MACs, params)}
    "extreme_inception": {(1, 28, 28): (2188170, 39546), (3, 32, 32): (3061002, 39834)},
    "grouped": {(1, 28, 28): (2789898, 76282), (3, 32, 32): (3687690, 76570)},
    "inception_v1": {(1, 28, 28): (3421578, 109938), (3, 32, 32): (4363530, 110226)},
    "inception_v3": {(1, 28, 28): (3730698, 107810), (3, 32, 32): (4793610, 108098)},
    "mobilenet": {(1, 28, 28): (1264170, 38314), (3, 32, 32): (1816842, 38602)},
    "normal": {(1, 28, 28): (9072138, 292666), (3, 32, 32): (11060490, 292954)},
    "xception": {(1, 28, 28): (6184650, 96778), (3, 32, 32): (8160522, 97066)},
}


def branch_cost(in_chs, out_chs, kernel, segments, pointwise, factorize=False):
    plan = branch_plan(in_chs, out_chs, 1, kernel, segments, pointwise, factorize, False)
    branch = make_branch(plan)
    conv_params = sum(m.weight.numel() for m in branch.modules() if isinstance(m, nn.Conv2d))
    return count_cost(branch, (in_chs, H, W)).macs, conv_params


def test_factorized_5x5_costs_18_25ths():
    channels = 24
    macs_5x5, params_5x5 = branch_cost(channels, channels, "5", 1, "none")
    macs_3x3, params_3x3 = branch_cost(channels, channels, "5", 1, "none", factorize=True)
    assert macs_5x5 == H * W * channels * channels * 25
    assert macs_3x3 * 25 == macs_5x5 * 18
    assert params_3x3 * 25 == params_5x5 * 18


@pytest.mark.parametrize(
    "in_chs, out_chs, ratio",
    [
        # C_in = C_out: two 3x3 of C x C against one 5x5 of C x C: 18/25.
        (24, 24, (18, 25)),
        # C_out = 2 C_in: the first 3x3 maps C_in -> C_out, the second C_out -> C_out:
        # 9 C (2C) + 9 (2C)^2 = 54 C^2 against 25 C (2C) = 50 C^2: 27/25, dearer than the 5x5.
        (16, 32, (27, 25)),
    ],
)
def test_factorizing_a_5x5_costs_by_the_widths_of_its_block(in_chs, out_chs, ratio):
    # A network of one stride-1 block (a 5x5, no 1x1) behind a stem of C_in: the block's MACs
    # are its spatial convs' (BatchNorm and ReLU count none).
    def block_macs(factorize: int) -> int:
        arch = Arch.parse(f"stem{in_chs}-c{out_chs}_d1_s1_k5_g1_pnone_f{factorize}_a0_r0")
        parts = {part.name: part.macs for part in part_costs(arch, (1, H, W))}
        assert set(parts) == {"stem", "stage1.block1", "head"}
        return parts["stage1.block1"]

    unfactorized, factorized = block_macs(0), block_macs(1)
    assert unfactorized == H * W * in_chs * out_chs * 25
    assert factorized * ratio[1] == unfactorized * ratio[0]


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
    assert count_cost(arch, input_shape).params == planned_params(arch, input_shape[0], 10)


def planned_params(arch: Arch, in_chs: int, num_classes: int) -> int:
    """Parameters by the layer plan's arithmetic, not by counting a module: each conv's weights
    (none has a bias), a scale and a shift per channel of the BatchNorm after it, the head's
    weights and biases."""
    layers = list(stem_plan(in_chs, arch.stem, arch.stem_stride))
    for blocks in arch_plan(arch):
        for block in blocks:
            layers += [layer for branch in block.branches for layer in branch.layers]
            layers += [block.projection] if block.projection else []
    convs = sum(layer.weights + 2 * layer.out_chs * layer.bn for layer in layers)
    return convs + arch.out_channels * num_classes + num_classes


@pytest.mark.parametrize("name", sorted(LANDMARKS))
@pytest.mark.parametrize("input_shape", [(1, 28, 28), (3, 32, 32)])
def test_landmark_costs_are_the_stored_ones(name, input_shape):
    macs, params = LANDMARK_COSTS[name][input_shape]
    assert count_cost(LANDMARKS[name], input_shape, 10) == nas.cost.Cost(macs, params)
    # Counted on a given module (what a trial does) it is the same.
    model = build_model(LANDMARKS[name], input_shape[0], 10)
    assert count_cost(model, input_shape) == nas.cost.Cost(macs, params)


def snapshot(model: nn.Module) -> dict:
    """Everything counting could disturb: tensors, modes, hooks."""
    return {
        "state": {key: value.clone() for key, value in model.state_dict().items()},
        "modes": [module.training for module in model.modules()],
        "hooks": [
            len(module._forward_hooks) + len(module._forward_pre_hooks)
            for module in model.modules()
        ],
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["modes"] == after["modes"]
    assert before["hooks"] == after["hooks"]
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key


def test_counting_leaves_the_model_as_it_was(monkeypatch):
    monkeypatch.setattr(nas.cost, "_COSTS", OrderedDict())  # nothing cached: `model` is counted
    torch.manual_seed(0)
    model = build_model(LANDMARKS["inception_v3"], 1, 10)
    model.train()
    model.stages[1].eval()  # a mixed mode must come back mixed
    inputs = torch.randn(2, 1, 28, 28)
    reference = copy.deepcopy(model).eval()
    before = snapshot(model)
    first = count_cost(model, (1, 28, 28))
    arch_cost = count_cost(LANDMARKS["inception_v3"], (1, 27, 27), 10, model=model)
    assert_same(before, snapshot(model))
    assert count_cost(model, (1, 28, 28)) == first  # no hooks left behind to double-count
    assert arch_cost.params == first.params and arch_cost.macs < first.macs
    with torch.no_grad():
        assert torch.equal(copy.deepcopy(model).eval()(inputs), reference(inputs))


def test_timing_leaves_the_model_as_it_was():
    model = build_model(LANDMARKS["xception"], 1, 10).train()
    before = snapshot(model)
    measure_latency(model, (1, 28, 28), batch_sizes=(1,), warmup=1, repeats=1)
    assert_same(before, snapshot(model))
    assert all(parameter.is_contiguous() for parameter in model.parameters())


def test_the_cost_cache_is_keyed_by_the_architecture(monkeypatch):
    monkeypatch.setattr(nas.cost, "_COSTS", OrderedDict())
    arch = Arch.parse("stem8-c16_d1_s2_k3_g2_pafter_f0_a0_r1")
    cost = count_cost(arch, (1, 9, 9), 10)

    def no_build(*_args):
        raise AssertionError("a cached cost was built again")

    monkeypatch.setattr(nas.cost, "build_model", no_build)
    # The string, an equal value and a non-canonical spelling of it are one architecture.
    same = Arch.parse(str(arch))
    assert same is not arch and count_cost(same, (1, 9, 9), 10) is cost
    assert count_cost(str(arch), (1, 9, 9), 10) is cost
    spelled = "stem8-c16_d1_s2_k3_g3_pafter_f1_a0_r1"  # 3 segments of 8 ch are 2; no 5x5
    assert count_cost(spelled, (1, 9, 9), 10) is cost
    with pytest.raises(AssertionError, match="built again"):
        count_cost(arch, (1, 9, 9), 11)  # another head is another cost


def test_part_costs_add_up():
    arch = LANDMARKS["inception_v1"]
    parts = part_costs(arch, (1, 28, 28))
    total = count_cost(arch, (1, 28, 28))
    assert [p.name for p in parts][:2] == ["stem", "stage1.block1"]
    assert parts[-1].name == "head"
    assert sum(p.macs for p in parts) == total.macs
    assert sum(p.params for p in parts) == total.params
    assert sum(p.share for p in parts) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["xception", "inception_v3"])
def test_flops_agree_with_torch_flop_counter(name):
    # torch counts FLOPs (2 per multiply-accumulate) of the convs and the head, as cost does.
    model = build_model(LANDMARKS[name], 1, 10).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 1, 28, 28))
    assert count_cost(LANDMARKS[name], (1, 28, 28)).flops == pytest.approx(
        counter.get_total_flops(), rel=0.01
    )


def test_latency_is_measured_per_batch_size():
    latency = measure_latency(LANDMARKS["mobilenet"], (1, 28, 28), batch_sizes=(1, 8), repeats=3)
    assert set(latency) == {1, 8}
    assert all(0 < ms < 10_000 for ms in latency.values())


# --- one build per trial ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_a_trial_builds_its_network_once(monkeypatch, digits):
    built, timed, trained = [], [], []

    def build(*args):
        built.append(build_model(*args))
        return built[-1]

    def time_it(model, *args, **kwargs):
        timed.append(model)
        return measure_latency(model, *args, **kwargs)

    def instant_train(model, *_args, **_kwargs):
        trained.append(model)
        return TrainResult(val_acc_curve=[0.5], train_loss_curve=[1.0])

    def no_build(*_args):
        raise AssertionError("cost built a second network")

    monkeypatch.setattr("nas._objective.build_model", build)
    monkeypatch.setattr("nas._objective.measure_latency", time_it)
    monkeypatch.setattr("nas._objective.train", instant_train)
    monkeypatch.setattr(nas.cost, "build_model", no_build)
    space = search_spaces.get("inception_to_xception")
    objective = one_epoch_objective(space, digits)
    monkeypatch.setattr(nas.cost, "_COSTS", OrderedDict())  # counting needs the network too
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial(space.params_for(LANDMARKS["grouped"]))
    study.optimize(objective, n_trials=1)
    [model] = built
    assert timed == [model] and trained == [model]
    assert study.trials[0].user_attrs["macs"] == count_cost(model, digits.input_shape).macs


def test_a_skipped_trial_whose_cost_is_known_builds_nothing(monkeypatch, digits):
    def no_build(*_args):
        raise AssertionError("a skipped trial built its network")

    space = search_spaces.get("inception_to_xception")
    count_cost(LANDMARKS["grouped"], digits.input_shape, digits.num_classes)  # now known
    monkeypatch.setattr("nas._objective.build_model", no_build)
    monkeypatch.setattr(nas.cost, "build_model", no_build)
    objective = one_epoch_objective(space, digits, max_mmacs=0.0001)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial(space.params_for(LANDMARKS["grouped"]))
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and "constraint" in trial.user_attrs


def one_epoch_objective(space, data, **options) -> Objective:
    """A one-epoch, unpruned objective on `data`, as the trial-cost tests need it."""
    return Objective(
        space=space,
        data=data,
        budget=Budget(1, 100),
        device="cpu",
        seed=0,
        objectives=("val_acc", "macs"),
        pruner=NO_PRUNING,
        **options,
    )
