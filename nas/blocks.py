"""The decoupled block and the network skeleton: one code path for the whole spectrum.

This module depends only on torch and `nas._channels`; the exporter copies both into the
generated file, so searched and exported networks are built by the same code.
"""

from __future__ import annotations

import torch
from torch import nn

from nas._channels import branch_widths, factorized_kernels, resolve_groups, spatial_conv_shapes


def conv_bn(
    in_chs: int,
    out_chs: int,
    kernel: int,
    stride: int = 1,
    groups: int = 1,
    act: bool = True,
) -> nn.Sequential:
    """Conv (no bias: BN follows) -> BatchNorm -> optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_chs),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def make_branch(
    in_chs: int,
    out_chs: int,
    stride: int,
    branch: str,
    segments: int | str,
    pointwise: str,
    factorize: bool,
    mid_act: bool,
) -> nn.Sequential:
    """One parallel path of a block; its output is concatenated with the others'.

    Args:
        in_chs: block input channels.
        out_chs: this branch's share of the block output channels.
        stride: stride of the block (applied by the branch's first spatial step).
        branch: "1", "3", "5", "7" (spatial kernel) or "pool" (3x3 max pool -> 1x1).
        segments: groups of the spatial conv, an int or "dw" (see resolve_groups).
        pointwise: where the 1x1 channel mix sits: none, before, after or both.
        factorize: build a k x k (k >= 5) as stacked 3 x 3 (Inception-v3).
        mid_act: ReLU between the pointwise and the spatial step (Inception: yes, Xception: no).
    """
    if branch == "pool":
        pool = nn.MaxPool2d(3, stride, padding=1)
        return nn.Sequential(pool, conv_bn(in_chs, out_chs, 1, act=False))
    if branch == "1":
        return nn.Sequential(conv_bn(in_chs, out_chs, 1, stride, act=False))
    layers: list[nn.Module] = []
    if pointwise in ("before", "both"):
        layers.append(conv_bn(in_chs, out_chs, 1, act=mid_act))
    kernels = factorized_kernels(int(branch), factorize)
    shapes = spatial_conv_shapes(in_chs, out_chs, branch, pointwise, factorize)
    for index, (kernel, (cin, cout)) in enumerate(zip(kernels, shapes)):
        last = index == len(kernels) - 1
        # Stacked 3 x 3 keep Inception-v3's ReLU between them; the last one is followed by the
        # 1x1 mix (with or without mid activation) or by the block's own activation.
        act = not last or (mid_act and pointwise in ("after", "both"))
        groups = resolve_groups(cin, cout, segments)
        layers.append(conv_bn(cin, cout, kernel, stride if index == 0 else 1, groups, act))
    if pointwise in ("after", "both"):
        layers.append(conv_bn(shapes[-1][1], out_chs, 1, act=False))
    return nn.Sequential(*layers)


class DecoupledBlock(nn.Module):
    """Parallel branches, concatenated, plus an optional residual, then ReLU.

    One block type covers normal conv (one 3x3 branch, 1 segment), grouped and ResNeXt-style
    convs, Inception modules (several branches, 1x1 before) and depthwise separable convs
    (one segment per channel, 1x1 after).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        stride: int,
        branches: tuple[str, ...],
        segments: int | str,
        pointwise: str,
        factorize: bool,
        mid_act: bool,
        residual: bool,
    ) -> None:
        super().__init__()
        widths = branch_widths(out_chs, len(branches))
        self.branches = nn.ModuleList(
            make_branch(in_chs, width, stride, branch, segments, pointwise, factorize, mid_act)
            for branch, width in zip(branches, widths)
        )
        self.shortcut: nn.Module | None = None
        if residual:
            needs_projection = in_chs != out_chs or stride != 1
            self.shortcut = (
                conv_bn(in_chs, out_chs, 1, stride, act=False)
                if needs_projection
                else nn.Identity()
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.branches) == 1:
            out = self.branches[0](x)
        else:
            out = torch.cat([branch(x) for branch in self.branches], dim=1)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class Network(nn.Module):
    """Stem conv -> stages of decoupled blocks -> global average pool -> linear head.

    Args:
        in_channels: image channels (from the dataset).
        num_classes: classes (from the dataset).
        stem_chs: width of the 3 x 3 stem conv.
        stages: one dict per stage with keys width, depth, stride, branches, segments,
            pointwise, factorize, mid_act, residual.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stem_chs: int,
        stages: list[dict],
    ) -> None:
        super().__init__()
        self.stem = conv_bn(in_channels, stem_chs, 3)
        in_chs = stem_chs
        built = []
        for stage in stages:
            blocks = []
            for index in range(stage["depth"]):
                blocks.append(
                    DecoupledBlock(
                        in_chs,
                        stage["width"],
                        stage["stride"] if index == 0 else 1,
                        stage["branches"],
                        stage["segments"],
                        stage["pointwise"],
                        stage["factorize"],
                        stage["mid_act"],
                        stage["residual"],
                    )
                )
                in_chs = stage["width"]
            built.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*built)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_chs, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))
