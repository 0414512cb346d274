"""The layer plan: each block of a network as plain data, layer by layer (pure Python, no torch).

The rules of the decoupled block live here once: which layers a branch has, their channels and
groups, which layer takes the stride, where a ReLU follows, when the shortcut projects. The
builder (`nas.blocks`) makes one module per planned layer and the dashboard draws the same plan,
so the boxes drawn are the layers built; the stem is planned the same way. The exporter copies
this module into generated files with the builder, leaving out what building never calls (such
as `arch_plan`) and our own imports: it may import only the standard library and our own
torch-free modules.
"""

from __future__ import annotations

from typing import NamedTuple

from nas._arch import Arch
from nas._channels import branch_widths, factorized_kernels, resolve_groups, spatial_conv_shapes

POOLS = ("pool", "shrink")


class Layer(NamedTuple):
    """One layer: a pool, or a conv followed by BatchNorm and optional ReLU."""

    # "pool" (a k x k max pool padded by k // 2), "shrink" (a k x k average pool of stride k,
    # the stem's downscaling of a large image), "pointwise" (a 1 x 1 conv) or "spatial" (a
    # k x k conv, k >= 3)
    kind: str
    kernel: int
    in_chs: int
    out_chs: int
    stride: int = 1
    groups: int = 1
    relu: bool = False  # a ReLU follows (after the BatchNorm)

    @property
    def bn(self) -> bool:
        """BatchNorm follows every conv (which therefore has no bias) and no pool."""
        return self.kind not in POOLS

    @property
    def weights(self) -> int:
        """The conv's weights (it has no bias); a pool has none."""
        if self.kind in POOLS:
            return 0
        return self.out_chs * (self.in_chs // self.groups) * self.kernel**2


class BranchPlan(NamedTuple):
    """One parallel path of a block; its output is concatenated with the other branches'."""

    branch: str  # "1", "3", "5", "7" or "pool", as in the architecture string
    out_chs: int
    layers: tuple[Layer, ...]


class BlockPlan(NamedTuple):
    """Parallel branches, concatenated, plus an optional shortcut added; then one ReLU."""

    in_chs: int
    out_chs: int
    stride: int
    branches: tuple[BranchPlan, ...]
    residual: bool
    projection: Layer | None  # the shortcut's 1 x 1 conv where the shape changes, else identity

    @property
    def concatenates(self) -> bool:
        return len(self.branches) > 1


def stem_plan(in_chs: int, out_chs: int, stride: int = 1) -> tuple[Layer, ...]:
    """The stem: a 3 x 3 conv of stride 1 or 2; from stride 4 on, a 3 x 3 stride-2 max pool
    after it (ResNet's stem: a conv, then a pool); from stride 8 on, the image first averaged
    over stride / 4 x stride / 4 pixels, so that the conv always works at twice the size the
    stages see.

    Pools have no weights and almost no MACs, where the conv at the input's half resolution
    would cost up to several times the stages behind it (5.4 M MACs at 224 x 224, width 16,
    against 1.3-9 M for a landmark's stages and head).

    Args:
        in_chs: image channels.
        out_chs: the stem's width.
        stride: the stem's whole downsampling, a power of 2 (1 keeps the resolution).
    """
    if stride < 1 or stride & (stride - 1):
        raise ValueError(f"the stem stride must be a power of 2, got {stride!r}")
    layers = []
    if stride >= 8:
        layers.append(Layer("shrink", stride // 4, in_chs, in_chs, stride // 4))
    layers.append(Layer("spatial", 3, in_chs, out_chs, min(stride, 2), relu=True))
    if stride >= 4:
        layers.append(Layer("pool", 3, out_chs, out_chs, 2))
    return tuple(layers)


def stem_words(layers: tuple[Layer, ...]) -> str:
    """What a planned stem does, in words, e.g. "2x2 average pool, 3x3 conv stride 2, 3x3 max
    pool stride 2"."""
    words = []
    for layer in layers:
        size = f"{layer.kernel}x{layer.kernel}"
        if layer.kind == "shrink":
            words.append(f"{size} average pool")
        elif layer.kind == "pool":
            words.append(f"{size} max pool stride {layer.stride}")
        else:
            words.append(f"{size} conv" + (f" stride {layer.stride}" * (layer.stride > 1)))
    return ", ".join(words)


def branch_plan(
    in_chs: int,
    out_chs: int,
    stride: int,
    branch: str,
    segments: int | str,
    pointwise: str,
    factorize: bool,
    mid_act: bool,
) -> BranchPlan:
    """The layers of one parallel path of a block.

    Args:
        in_chs: block input channels.
        out_chs: this branch's share of the block output channels.
        stride: stride of the block (taken by the branch's first spatial step).
        branch: "1", "3", "5", "7" (spatial kernel) or "pool" (3x3 max pool -> 1x1).
        segments: groups of the spatial conv, an int or "dw" (see resolve_groups).
        pointwise: where the 1x1 channel mix sits: none, before, after or both.
        factorize: build a k x k (k >= 5) as stacked 3 x 3 (Inception-v3).
        mid_act: ReLU between the pointwise and the spatial step (Inception: yes, Xception: no).
    """
    if branch == "pool":
        pool = Layer("pool", 3, in_chs, in_chs, stride)
        return BranchPlan(branch, out_chs, (pool, Layer("pointwise", 1, in_chs, out_chs)))
    if branch == "1":
        return BranchPlan(branch, out_chs, (Layer("pointwise", 1, in_chs, out_chs, stride),))
    layers: list[Layer] = []
    if pointwise in ("before", "both"):
        layers.append(Layer("pointwise", 1, in_chs, out_chs, relu=mid_act))
    kernels = factorized_kernels(int(branch), factorize)
    shapes = spatial_conv_shapes(in_chs, out_chs, branch, pointwise, factorize)
    for index, (kernel, (cin, cout)) in enumerate(zip(kernels, shapes)):
        last = index == len(kernels) - 1
        # Stacked 3 x 3 keep Inception-v3's ReLU between them; the last one is followed by the
        # 1x1 mix (with or without mid activation) or by the block's own activation.
        relu = not last or (mid_act and pointwise in ("after", "both"))
        groups = resolve_groups(cin, cout, segments)
        first_stride = stride if index == 0 else 1
        layers.append(Layer("spatial", kernel, cin, cout, first_stride, groups, relu))
    if pointwise in ("after", "both"):
        layers.append(Layer("pointwise", 1, shapes[-1][1], out_chs))
    return BranchPlan(branch, out_chs, tuple(layers))


def block_plan(
    in_chs: int,
    out_chs: int,
    stride: int,
    branches: tuple[str, ...],
    segments: int | str,
    pointwise: str,
    factorize: bool,
    mid_act: bool,
    residual: bool,
) -> BlockPlan:
    """One block: its branches split `out_chs` (the first ones taking the rest) and share the
    knobs; a residual projects by a strided 1x1 where channels or resolution change."""
    widths = branch_widths(out_chs, len(branches))
    planned = tuple(
        branch_plan(in_chs, width, stride, branch, segments, pointwise, factorize, mid_act)
        for branch, width in zip(branches, widths)
    )
    projection = None
    if residual and (in_chs != out_chs or stride != 1):
        projection = Layer("pointwise", 1, in_chs, out_chs, stride)
    return BlockPlan(in_chs, out_chs, stride, planned, residual, projection)


def stage_plan(in_chs: int, stage: dict) -> tuple[BlockPlan, ...]:
    """The blocks of one stage: the first takes `in_chs` and the stride, the rest keep the width.

    Args:
        in_chs: channels into the stage (the previous stage's width, or the stem's).
        stage: the stage's knobs as a dict with keys width, depth, stride, branches,
            segments, pointwise, factorize, mid_act, residual.
    """
    blocks = []
    for index in range(stage["depth"]):
        blocks.append(
            block_plan(
                in_chs if index == 0 else stage["width"],
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
    return tuple(blocks)


def stage_plans(stem_chs: int, stages: list[dict]) -> tuple[tuple[BlockPlan, ...], ...]:
    """Every stage's blocks, each stage taking the previous one's width (the first: the stem's)."""
    planned = []
    in_chs = stem_chs
    for stage in stages:
        planned.append(stage_plan(in_chs, stage))
        in_chs = stage["width"]
    return tuple(planned)


def stage_specs(arch: Arch) -> list[dict]:
    """The plain-data stage list that `Network` takes (and the exporter writes as a literal)."""
    # A Stage is a plain frozen dataclass: its fields, in order, are its instance dict. (Not
    # dataclasses.asdict: exported files copy this module, and an import that only this
    # function needs would be left over when the exporter drops the function.)
    return [dict(vars(stage)) for stage in arch.stages]


def arch_plan(arch: Arch) -> tuple[tuple[BlockPlan, ...], ...]:
    """The blocks of every stage of an architecture, as built and as drawn."""
    return stage_plans(arch.stem, stage_specs(arch))
