"""What a built network is, read from its torch modules alone (never from the layer plan)."""

from __future__ import annotations

from typing import NamedTuple

from torch import nn


class LayerFacts(NamedTuple):
    kind: str  # "pool" (max), "avg" (average pool), "pointwise" or "spatial"
    kernel: int
    in_chs: int | None  # None for a pool (it keeps whatever channels come in)
    out_chs: int | None
    stride: int
    groups: int
    bn: bool
    relu: bool
    pre_relu: bool = False  # a ReLU (not in place: the shortcut reads its input) comes first


def layer_facts(module: nn.Module) -> LayerFacts:
    """One layer of a branch: a bare max or average pool, or a Sequential of conv[, BatchNorm]
    [, ReLU]; either may follow a ReLU in a Sequential of its own (pre-activation)."""
    if isinstance(module, nn.Sequential) and isinstance(module[0], nn.ReLU):
        assert not module[0].inplace, "a ReLU in place would change the shortcut's input"
        assert len(module) == 2, f"one layer follows a pre-activation: {module}"
        return layer_facts(module[1])._replace(pre_relu=True)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        assert module.padding == module.kernel_size // 2, "a pool must keep the resolution"
        kind = "pool" if isinstance(module, nn.MaxPool2d) else "avg"
        return LayerFacts(kind, module.kernel_size, None, None, module.stride, 1, False, False)
    assert isinstance(module, nn.Sequential), f"not a layer: {module}"
    conv, *rest = module
    assert isinstance(conv, nn.Conv2d), f"a layer starts with a conv: {module}"
    (kernel, width), (stride, _) = conv.kernel_size, conv.stride
    assert kernel == width and conv.padding == (kernel // 2, kernel // 2)
    bn = bool(rest) and isinstance(rest[0], nn.BatchNorm2d)
    if bn:
        assert rest[0].num_features == conv.out_channels
        assert conv.bias is None, "BatchNorm follows: the conv needs no bias"
    relu = bool(rest) and isinstance(rest[-1], nn.ReLU)
    assert len(rest) == bn + relu, f"unexpected modules after the conv: {rest}"
    kind = "pointwise" if kernel == 1 else "spatial"
    return LayerFacts(
        kind, kernel, conv.in_channels, conv.out_channels, stride, conv.groups, bn, relu
    )


def branch_facts(branch: nn.Sequential) -> list[LayerFacts]:
    return [layer_facts(layer) for layer in branch]


def out_channels(branch: nn.Sequential) -> int:
    """Channels a built branch hands to the concatenation: its last conv's."""
    last = [layer for layer in branch if isinstance(layer, nn.Sequential)][-1]
    if isinstance(last[0], nn.ReLU):
        last = last[1]  # a pre-activated layer: ReLU, then the conv's Sequential
    return last[0].out_channels
