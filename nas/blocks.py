"""The decoupled block and the network skeleton: one code path for the whole spectrum.

Every layer comes from the layer plan (`nas._plan`, which the dashboard draws too); this module
turns planned layers into modules. It depends only on torch, `nas._channels` and `nas._plan`;
the exporter copies all three into the generated file, so searched and exported networks are
built by the same code.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nas._plan import BlockPlan, BranchPlan, Layer, stage_plans, stem_plan


def conv_bn(
    in_chs: int,
    out_chs: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    act: bool = True,
    bn: bool = True,
) -> nn.Sequential:
    """Conv (no bias: BN follows, or a 1x1 that has one) -> [BatchNorm] -> optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=groups, bias=False)
    ]
    if bn:
        layers.append(nn.BatchNorm2d(out_chs))
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def make_layer(layer: Layer) -> nn.Module:
    """One planned layer: a pool, or a conv with its BatchNorm and optional ReLU; a
    pre-activated layer starts with a ReLU that leaves its input (the shortcut's) unchanged."""
    module = _layer_module(layer)
    if layer.pre_relu:
        return nn.Sequential(nn.ReLU(), module)
    return module


def _layer_module(layer: Layer) -> nn.Module:
    # One `if` per kind, each returning: the exporter leaves out the kinds a network never has.
    if layer.kind == "pool":
        return nn.MaxPool2d(layer.kernel, layer.stride, padding=layer.kernel // 2)
    if layer.kind == "avg":
        return nn.AvgPool2d(layer.kernel, layer.stride, padding=layer.kernel // 2)
    if layer.kind == "shrink":
        # ceil_mode: an odd side rounds up, as every strided layer here does (an edge window
        # averages only the pixels it covers).
        return nn.AvgPool2d(layer.kernel, layer.stride, ceil_mode=True)
    return conv_bn(
        layer.in_chs, layer.out_chs, layer.kernel, layer.stride, layer.groups, layer.relu, layer.bn
    )


def make_branch(branch: BranchPlan) -> nn.Sequential:
    """One parallel path of a block, its planned layers in order."""
    return nn.Sequential(*(make_layer(layer) for layer in branch.layers))


def make_stem(layers: tuple[Layer, ...]) -> nn.Sequential:
    """The planned stem as one flat Sequential: [average pool], conv, BatchNorm, ReLU, [pool].

    Flat and numbered from the conv (the average pool is named "shrink"), so that its weights
    are stem.0 and stem.1 whatever the stride, and a stride-1 stem is the Sequential(conv, BN,
    ReLU) that networks had before strided stems, state_dict and all.
    """
    named: dict[str, nn.Module] = {}
    parts: list[nn.Module] = []
    for layer in layers:
        module = make_layer(layer)
        if layer.kind == "shrink":
            named["shrink"] = module
        else:
            parts += list(module) if isinstance(module, nn.Sequential) else [module]
    named.update((str(index), part) for index, part in enumerate(parts))
    return nn.Sequential(OrderedDict(named))


class DecoupledBlock(nn.Module):
    """Parallel branches, concatenated, plus an optional residual, then ReLU.

    One block type covers normal conv (one 3x3 branch, 1 segment), grouped and ResNeXt-style
    convs, Inception modules (several branches, 1x1 before) and depthwise separable convs
    (one segment per channel, 1x1 after); `nas._plan.block_plan` says which layers each has.
    """

    def __init__(self, plan: BlockPlan) -> None:
        super().__init__()
        # Submodules only where the plan has them, so earlier networks keep their state_dict.
        if plan.pre_pool is not None:
            self.pre_pool = make_layer(plan.pre_pool)
        self.branches = nn.ModuleList(make_branch(branch) for branch in plan.branches)
        if plan.post_pool is not None:
            self.post_pool = make_layer(plan.post_pool)
        self.shortcut: nn.Module | None = None
        if plan.residual:
            self.shortcut = (
                nn.Identity() if plan.projection is None else make_layer(plan.projection)
            )
        self.act = nn.ReLU(inplace=True) if plan.act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "pre_pool"):
            x = self.pre_pool(x)
        if len(self.branches) == 1:
            out = self.branches[0](x)
        else:
            out = torch.cat([branch(x) for branch in self.branches], dim=1)
        if hasattr(self, "post_pool"):
            out = self.post_pool(out)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class Network(nn.Module):
    """Stem conv -> stages of decoupled blocks -> global average pool -> linear head.

    Args:
        in_channels: image channels (from the dataset).
        num_classes: classes (from the dataset).
        stem_chs: width of the 3 x 3 stem conv, or a tuple of the widths of its convs.
        stages: one dict per stage with keys width, depth, stride, branches, segments,
            pointwise, factorize, mid_act, residual.
        stem_stride: the stem's downsampling, 1, 2, 4, 8 or 16 (see stem_plan).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stem_chs: int | tuple[int, ...],
        stages: list[dict],
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        self.stem = make_stem(stem_plan(in_channels, stem_chs, stem_stride))
        planned = stage_plans(stem_chs, stages)
        self.stages = nn.Sequential(
            *(nn.Sequential(*(DecoupledBlock(block) for block in blocks)) for blocks in planned)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(planned[-1][-1].out_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))
