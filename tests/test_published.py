"""The papers' networks (search_spaces.PUBLISHED): the built modules against the papers' layers
and figures, our MAC count against torch's own counter, and `python -m nas.inspect` on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas import Arch, build_model
from nas import inspect as nas_inspect
from nas.cost import count_cost
from search_spaces import PUBLISHED, PaperFigure, published_names, published_network

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def built(one_thread):
    """Each published network built once, in eval mode, for its paper's input channels."""
    torch.manual_seed(0)
    return {
        name: build_model(network.arch, network.input_shape[0], network.num_classes).eval()
        for name, network in PUBLISHED.items()
    }


@pytest.fixture(scope="module")
def torch_macs(built):
    """Each network's multiply-accumulates by torch's FlopCounterMode (FLOPs / 2) on one image
    of its paper's input."""
    counted = {}
    for name, model in built.items():
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *PUBLISHED[name].input_shape))
        counted[name] = counter.get_total_flops() / 2
    return counted


def figure(name: str, quantity: str, source: str) -> PaperFigure:
    (found,) = [
        f for f in PUBLISHED[name].figures if f.quantity == quantity and f.source == source
    ]
    return found


def layers(module: nn.Module) -> list[str]:
    """The leaf layers of `module` in order, as short words (shape, groups, stride)."""
    words = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            kernel, stride = layer.kernel_size[0], layer.stride[0]
            word = f"conv{kernel} {layer.in_channels}>{layer.out_channels}"
            word += f" g{layer.groups}" if layer.groups > 1 else ""
            word += f" s{stride}" if stride > 1 else ""
            words.append(word)
        elif isinstance(layer, nn.BatchNorm2d):
            words.append("bn")
        elif isinstance(layer, nn.ReLU):
            words.append("relu")
        elif isinstance(layer, nn.MaxPool2d):
            words.append(f"maxpool{layer.kernel_size} s{layer.stride}")
    return words


def conv_macs(module: nn.Module, model: nn.Module, input_shape) -> tuple[int, int]:
    """(conv weights, conv MACs) of `module`, a part of `model`, on one image of
    `input_shape`: each conv's weights times its output map, read from a forward pass."""
    convs = [layer for layer in module.modules() if isinstance(layer, nn.Conv2d)]
    sides: dict[nn.Module, int] = {}
    hooks = [
        conv.register_forward_hook(
            lambda conv, _inputs, out: sides.__setitem__(conv, out.shape[2] * out.shape[3])
        )
        for conv in convs
    ]
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()
    weights = sum(conv.weight.numel() for conv in convs)
    assert all(conv.bias is None for conv in convs)
    return weights, sum(conv.weight.numel() * sides[conv] for conv in convs)


def block_input(model: nn.Module, block: nn.Module, input_shape) -> tuple[int, ...]:
    seen = []
    hook = block.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1:]))
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    hook.remove()
    return tuple(seen[0])


# --- the data ----------------------------------------------------------------------------------


def test_each_published_network_is_a_canonical_string_with_its_papers_input():
    assert published_names() == [
        "mobilenet_v1_imagenet",
        "xception_imagenet",
        "inception_3a",
        "resnext50_block",
    ]
    for name, network in PUBLISHED.items():
        arch = published_network(name)
        assert isinstance(arch, Arch) and str(arch) == network.arch_text
        assert network.num_classes == 1000 and network.figures
        assert network.input_shape == ((3, 299, 299) if "xception" in name else (3, 224, 224))
        assert all(f.source and f.stated for f in network.figures)
    with pytest.raises(ValueError, match="mobilenet_v1_imagenet"):
        published_network("mobilenet_v2")


# --- whole networks: parameters exact, MACs against torch's counter ------------------------------


def test_parameters_are_the_papers_exactly(built):
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in built.items()}
    assert params["mobilenet_v1_imagenet"] == 4_231_976
    assert params["xception_imagenet"] == 22_855_952
    assert figure("mobilenet_v1_imagenet", "params", "Table 1").value == 4_231_976
    assert figure("xception_imagenet", "params", "Table 3").value == 22_855_952
    # The paper's rounded "4.2 million" is what the exact count rounds to.
    assert round(params["mobilenet_v1_imagenet"], -5) == 4_200_000


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_macs_agree_with_torchs_flop_counter(name, built, torch_macs):
    network = PUBLISHED[name]
    ours = count_cost(network.arch, network.input_shape, 1000, model=built[name]).macs
    assert ours == pytest.approx(torch_macs[name], rel=0.01)


def test_mobilenet_macs_are_the_papers_569_million(built, torch_macs):
    ours = count_cost(
        PUBLISHED["mobilenet_v1_imagenet"].arch,
        (3, 224, 224),
        1000,
        model=built["mobilenet_v1_imagenet"],
    ).macs
    for macs in (ours, torch_macs["mobilenet_v1_imagenet"]):
        assert macs == pytest.approx(569e6, rel=0.002)


def test_xceptions_same_padding_costs_the_stated_share_of_macs(built, torch_macs):
    # Fig. 5's stem convs are unpadded; ours pad 'same'. Unpadding the built stem gives the
    # paper's MACs, which the module's note states.
    model = built["xception_imagenet"]
    convs = [model.stem[0], model.stem[3]]
    try:
        for conv in convs:
            conv.padding = (0, 0)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, 299, 299))
    finally:
        for conv in convs:
            conv.padding = (1, 1)
    valid = counter.get_total_flops() / 2
    assert valid == 8_357_403_496
    assert torch_macs["xception_imagenet"] / valid - 1 == pytest.approx(0.0136, abs=0.00005)
    assert "1.36%" in PUBLISHED["xception_imagenet"].differs


# --- the modules' structure ---------------------------------------------------------------------


def test_inception_3a_is_table_1s_module_at_28x28(built):
    model = built["inception_3a"]
    (stage,) = model.stages
    (module,) = stage
    assert block_input(model, module, (3, 224, 224)) == (192, 28, 28)
    branches = [layers(branch) for branch in module.branches]
    assert branches == [
        ["conv1 192>64", "bn"],  # #1x1
        ["conv1 192>96", "bn", "relu", "conv3 96>128", "bn"],  # #3x3 reduce, #3x3
        ["conv1 192>16", "bn", "relu", "conv5 16>32", "bn"],  # #5x5 reduce, #5x5
        ["maxpool3 s1", "conv1 192>32", "bn"],  # pool proj
    ]
    assert isinstance(module.act, nn.ReLU) and module.shortcut is None  # ReLU after the concat
    weights, macs = conv_macs(module, model, (3, 224, 224))
    assert weights == 163_328 and weights / 1024 == 159.5  # Table 1: "159K"
    assert macs == 128_049_152  # Table 1: "128M"


def test_resnext_block_is_table_1s_conv2_bottleneck(built):
    model = built["resnext50_block"]
    (block,) = model.stages[0]
    assert block_input(model, block, (3, 224, 224)) == (256, 56, 56)
    (branch,) = block.branches
    assert layers(branch) == [
        "conv1 256>128",
        "bn",
        "relu",
        "conv3 128>128 g32",
        "bn",
        "relu",
        "conv1 128>256",
        "bn",
    ]
    assert isinstance(block.shortcut, nn.Identity) and isinstance(block.act, nn.ReLU)
    x = torch.randn(1, 256, 56, 56)
    with torch.no_grad():
        assert torch.equal(block(x), torch.relu(branch(x) + x))  # identity shortcut, then ReLU
    weights, macs = conv_macs(block, model, (3, 224, 224))
    assert weights == 70_144 == 32 * (256 * 4 + 3 * 3 * 4 * 4 + 4 * 256)  # Sec. 3.3, Eqn. (4)
    assert macs == 219_971_584 == 70_144 * 56 * 56


def separable(in_chs: int, out_chs: int) -> list[str]:
    """Xception's pre-activated separable conv: ReLU, depthwise 3x3 (no BN), 1x1, BN."""
    return ["relu", f"conv3 {in_chs}>{in_chs} g{in_chs}", f"conv1 {in_chs}>{out_chs}", "bn"]


def test_xception_is_fig_5(built):
    model = built["xception_imagenet"]
    assert layers(model.stem) == ["conv3 3>32 s2", "bn", "relu", "conv3 32>64", "bn", "relu"]
    entry, middle, exit_unit, exit_convs = (
        model.stages[:3],
        model.stages[3],
        model.stages[4][0],
        model.stages[5][0],
    )
    # Entry flow: two separable convs, then a 3x3 stride-2 max pool, beside a strided 1x1.
    for (unit,), in_chs, width in zip(entry, (64, 128, 256), (128, 256, 728)):
        first = separable(in_chs, width)
        assert layers(unit.branches[0]) == first + separable(width, width)
        assert layers(unit.post_pool) == ["maxpool3 s2"]
        assert layers(unit.shortcut) == [f"conv1 {in_chs}>{width} s2", "bn"]
        assert isinstance(unit.act, nn.Identity)  # pre-activation: no ReLU after the add
    # Fig. 5's first unit has no ReLU before its first conv; ours has one, after the stem's
    # ReLU, so it changes nothing (it is not in place: the shortcut reads the same input).
    # Middle flow: 8 units of three separable convs at 728, identity shortcuts.
    assert len(middle) == 8
    for unit in middle:
        assert layers(unit.branches[0]) == separable(728, 728) * 3
        assert isinstance(unit.shortcut, nn.Identity) and not hasattr(unit, "post_pool")
    # Exit flow: 728 -> 728 -> 1024, pool and strided 1x1; then 1536 and 2048 with ReLU after.
    assert layers(exit_unit.branches[0]) == separable(728, 728) + separable(728, 1024)
    assert layers(exit_unit.post_pool) == ["maxpool3 s2"]
    assert layers(exit_unit.shortcut) == ["conv1 728>1024 s2", "bn"]
    assert layers(exit_convs.branches[0]) == [
        "conv3 1024>1024 g1024",
        "conv1 1024>1536",
        "bn",
        "relu",
        "conv3 1536>1536 g1536",
        "conv1 1536>2048",
        "bn",
    ]
    assert exit_convs.shortcut is None and isinstance(exit_convs.act, nn.ReLU)
    assert model.head.in_features == 2048 and model.head.out_features == 1000


# --- python -m nas.inspect -----------------------------------------------------------------------


def inspect_run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "nas.inspect", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_inspect_json_puts_the_papers_figures_beside_ours(capsys, one_thread):
    result = inspect_run("mobilenet_v1_imagenet", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["params"] == 4_231_976 and info["input_shape"] == [3, 224, 224]
    assert info["num_classes"] == 1000 and info["dataset"] == "ImageNet"
    paper = info["published"]
    assert paper["comparable"] and paper["module"] is None
    rows = {(row["quantity"], row["source"]): row for row in paper["figures"]}
    assert rows["params", "Table 1"]["paper"] == 4_231_976
    assert rows["params", "Table 1"]["difference_pct"] == 0
    assert rows["params", "Table 8"]["paper"] == 4_200_000
    assert rows["params", "Table 8"]["difference_pct"] == pytest.approx(0.761, abs=0.001)
    assert rows["macs", "Table 8"]["ours"] == info["macs"]
    assert -0.2 < rows["macs", "Table 8"]["difference_pct"] < 0

    small = ["mobilenet_v1_imagenet", "--input", "3x32x32", "--classes", "10", "--json"]
    assert nas_inspect.main(small) == 0
    counted = json.loads(capsys.readouterr().out)
    assert counted["input_shape"] == [3, 32, 32] and counted["num_classes"] == 10
    # Only the head's size depends on the classes: 1024 x 1000 + 1000 becomes 1024 x 10 + 10.
    assert counted["params"] == 4_231_976 - 1_025_000 + 10_250
    assert counted["macs"] < info["macs"] / 40  # 49 times fewer pixels
    assert counted["published"]["comparable"] is False
    assert all(row["difference_pct"] is None for row in counted["published"]["figures"])


@pytest.mark.parametrize(
    ("name", "weights", "macs"),
    [("inception_3a", 163_328, 128_049_152), ("resnext50_block", 70_144, 219_971_584)],
)
def test_inspect_sums_a_one_module_networks_module(name, weights, macs, capsys, one_thread):
    assert nas_inspect.main([name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    module = info["published"]["module"]
    assert module["parts"] == ["stage1.block1"]
    assert module["conv_weights"] == weights and module["macs"] == macs
    # The module's own parts, not the network: the stem and head cost more on top.
    assert info["macs"] > macs and info["params"] > module["params"] > weights
    rows = {row["quantity"]: row for row in info["published"]["figures"]}
    assert rows["module_macs"]["ours"] == macs and rows["module_weights"]["ours"] == weights
    if name == "inception_3a":
        assert rows["module_weights"]["difference_pct"] == pytest.approx(0.314, abs=0.001)
        assert rows["module_macs"]["difference_pct"] == pytest.approx(0.038, abs=0.001)
    assert nas_inspect.main([name]) == 0
    table = capsys.readouterr().out
    assert f"{weights:,} conv weights" in table and "module MACs" in table


def test_inspect_counts_a_landmark_on_a_given_shape(capsys, one_thread):
    assert nas_inspect.main(["xception", "--input", "3x224x224", "--classes", "5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input_shape"] == [3, 224, 224] and info["num_classes"] == 5
    assert info["arch"].startswith("stem16s8-")  # the landmark's stem for 224 x 224 images
    assert "published" not in info


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["resnet50"], "unknown name 'resnet50'"),
        (["mobilenet_v1_imagenet", "--input", "3x0x5"], "height and width must be 8 to 4096"),
        (["mobilenet_v1_imagenet", "--input", "abc"], "expected CxHxW"),
        (["mobilenet_v1_imagenet", "--classes", "0"], "argument --classes: must be 1 to"),
        (["xception", "--dataset", "cifar10", "--input", "3x32x32"], "cannot go with --dataset"),
    ],
    ids=["unknown name", "zero side", "not a shape", "no classes", "dataset and input"],
)
def test_bad_input_is_one_line_and_exit_2(args, named):
    result = inspect_run(*args)
    assert result.returncode == 2
    assert result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and named in line
    if args[0] == "resnet50":
        assert all(name in line for name in PUBLISHED)
