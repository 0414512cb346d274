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
from nas._channels import POOL_BRANCHES, branch_steps, branch_widths, resolve_groups

POOLS = ("pool", "shrink", "avg")
# The stage knobs that came with the papers' blocks and the values every earlier network has
# (nas._arch.Stage's defaults): a stage's spec holds them only where it differs, so the specs
# (and exported STAGES) of earlier networks keep their text.
OPTIONAL_KNOBS = {
    "downsample": "conv",
    "widths": None,
    "inner": None,
    "steps": 1,
    "preact": False,
    "mid_bn": True,
}


class Layer(NamedTuple):
    """One layer: a pool, or a conv followed by BatchNorm and optional ReLU."""

    # "pool" (a k x k max pool padded by k // 2), "avg" (the same as an average pool),
    # "shrink" (a k x k average pool of stride k, the stem's downscaling of a large image),
    # "pointwise" (a 1 x 1 conv) or "spatial" (a k x k conv, k >= 3)
    kind: str
    kernel: int
    in_chs: int
    out_chs: int
    stride: int = 1
    groups: int = 1
    relu: bool = False  # a ReLU follows (after the BatchNorm)
    batchnorm: bool = True  # False only where Xception has none: a spatial conv before a 1x1
    pre_relu: bool = False  # a ReLU comes first (pre-activation), leaving its input unchanged

    @property
    def bn(self) -> bool:
        """BatchNorm follows a conv unless the plan says otherwise, and never a pool. No conv
        has a bias: BatchNorm follows it, or (Xception's depthwise step) a 1x1 does."""
        return self.batchnorm and self.kind not in POOLS

    @property
    def weights(self) -> int:
        """The conv's weights (it has no bias); a pool has none."""
        if self.kind in POOLS:
            return 0
        return self.out_chs * (self.in_chs // self.groups) * self.kernel**2


class BranchPlan(NamedTuple):
    """One parallel path of a block; its output is concatenated with the other branches'."""

    branch: str  # "1", "3", "5", "7", "pool" or "avgpool", as in the architecture string
    out_chs: int
    layers: tuple[Layer, ...]


class BlockPlan(NamedTuple):
    """[A pool], parallel branches, concatenated, [a pool], plus an optional shortcut added;
    then one ReLU unless the block is pre-activated."""

    in_chs: int
    out_chs: int
    stride: int
    branches: tuple[BranchPlan, ...]
    residual: bool
    projection: Layer | None  # the shortcut's 1 x 1 conv where the shape changes, else identity
    pre_pool: Layer | None = None  # downsampling before the block (shortcut included)
    post_pool: Layer | None = None  # downsampling of the branches' output, before the add
    act: bool = True  # the ReLU after the add (a pre-activated block has its ReLUs first)

    @property
    def concatenates(self) -> bool:
        return len(self.branches) > 1


def stem_plan(in_chs: int, out_chs: int | tuple[int, ...], stride: int = 1) -> tuple[Layer, ...]:
    """The stem: a 3 x 3 conv of stride 1 or 2 (or two, Xception's stem, the first strided);
    from stride 4 on, a 3 x 3 stride-2 max pool after it (ResNet's stem: a conv, then a pool);
    from stride 8 on, the image first averaged over stride / 4 x stride / 4 pixels, so that
    the conv always works at twice the size the stages see.

    Pools have no weights and almost no MACs, where the conv at the input's half resolution
    would cost up to several times the stages behind it (5.4 M MACs at 224 x 224, width 16,
    against 1.3-9 M for a landmark's stages and head).

    Args:
        in_chs: image channels.
        out_chs: the stem's width, or the widths of its convs in order.
        stride: the stem's whole downsampling, a power of 2 (1 keeps the resolution).
    """
    if stride < 1 or stride & (stride - 1):
        raise ValueError(f"the stem stride must be a power of 2, got {stride!r}")
    widths = (out_chs,) if isinstance(out_chs, int) else tuple(out_chs)
    layers = []
    if stride >= 8:
        layers.append(Layer("shrink", stride // 4, in_chs, in_chs, stride // 4))
    for index, width in enumerate(widths):
        conv_stride = min(stride, 2) if index == 0 else 1
        layers.append(Layer("spatial", 3, in_chs, width, conv_stride, relu=True))
        in_chs = width
    if stride >= 4:
        layers.append(Layer("pool", 3, in_chs, in_chs, 2))
    return tuple(layers)


def stem_words(layers: tuple[Layer, ...]) -> str:
    """What a planned stem does, in words, e.g. "2x2 average pool, 3x3 conv stride 2, 3x3 max
    pool stride 2"."""
    words = []
    for layer in layers:
        size = f"{layer.kernel}x{layer.kernel}"
        if layer.kind in ("shrink", "avg"):
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
    inner: int | None = None,
    steps: int = 1,
    preact: bool = False,
    mid_bn: bool = True,
) -> BranchPlan:
    """The layers of one parallel path of a block.

    Args:
        in_chs: block input channels.
        out_chs: this branch's share of the block output channels.
        stride: stride of the branch (taken by its first spatial step, or its pool or 1x1).
        branch: "1", "3", "5", "7" (spatial kernel), "pool" or "avgpool" (3x3 max or average
            pool -> 1x1).
        segments: groups of the spatial conv, an int or "dw" (see resolve_groups).
        pointwise: where the 1x1 channel mix sits: none, before, after or both.
        factorize: build a k x k (k >= 5) as stacked 3 x 3 (Inception-v3).
        mid_act: ReLU between the pointwise and the spatial step (Inception: yes, Xception: no).
        inner: channels between the branch's convs (default: out_chs); see branch_steps.
        steps: repeats of [1x1] -> spatial -> [1x1] (Xception's units: 2 or 3).
        preact: a ReLU before each step instead of after it (Xception).
        mid_bn: BatchNorm between a spatial conv and the 1x1 after it (Xception: none).
    """
    planned = branch_steps(in_chs, out_chs, branch, pointwise, factorize, inner, steps)
    if branch in POOL_BRANCHES:
        kind = "pool" if branch == "pool" else "avg"
        pool = Layer(kind, 3, in_chs, in_chs, stride, pre_relu=preact)
        return BranchPlan(branch, out_chs, (pool, Layer("pointwise", 1, in_chs, out_chs)))
    if branch == "1":
        layer = Layer("pointwise", 1, in_chs, out_chs, stride, pre_relu=preact)
        return BranchPlan(branch, out_chs, (layer,))
    layers: list[Layer] = []
    for step, convs in enumerate(planned):
        for index, (kind, kernel, cin, cout) in enumerate(convs):
            following = convs[index + 1][0] if index + 1 < len(convs) else None
            if following is None:
                # Between steps the ReLU follows a step (post-activation) or starts the next;
                # after the last the block's own activation (or the next block's) follows.
                relu = not preact and step < len(planned) - 1
            elif kind == "pointwise":
                relu = mid_act  # the 1x1 before the spatial step
            else:
                # Stacked 3 x 3 keep Inception-v3's ReLU between them; before the 1x1 mix
                # the knob decides.
                relu = following == "spatial" or mid_act
            spatial = kind == "spatial"
            first_spatial = (
                spatial and step == 0 and not any(layer.kind == "spatial" for layer in layers)
            )
            layers.append(
                Layer(
                    kind,
                    kernel,
                    cin,
                    cout,
                    stride if first_spatial else 1,
                    resolve_groups(cin, cout, segments) if spatial else 1,
                    relu,
                    batchnorm=mid_bn or not (spatial and following == "pointwise"),
                    pre_relu=preact and index == 0,
                )
            )
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
    downsample: str = "conv",
    widths: tuple[int, ...] | None = None,
    inner: tuple[int, ...] | None = None,
    steps: int = 1,
    preact: bool = False,
    mid_bn: bool = True,
) -> BlockPlan:
    """One block: its branches split `out_chs` (equally, the first ones taking the rest, unless
    `widths` says otherwise) and share the knobs; a residual projects by a strided 1x1 where
    channels or resolution change. A strided block downsamples by its convs, or by a 3x3
    stride-2 max pool before it ("pre") or after its branches ("post")."""
    widths = widths or tuple(branch_widths(out_chs, len(branches)))
    inner = inner or (None,) * len(branches)
    pooled = stride == 2 and downsample in ("pre", "post")
    branch_stride = 1 if pooled else stride
    planned = tuple(
        branch_plan(
            in_chs,
            width,
            branch_stride,
            branch,
            segments,
            pointwise,
            factorize,
            mid_act,
            chs,
            steps,
            preact,
            mid_bn,
        )
        for branch, width, chs in zip(branches, widths, inner)
    )
    pre_pool = Layer("pool", 3, in_chs, in_chs, 2) if pooled and downsample == "pre" else None
    post_pool = Layer("pool", 3, out_chs, out_chs, 2) if pooled and downsample == "post" else None
    projection = None
    # A pool before the block has downsampled the shortcut's input too.
    if residual and (in_chs != out_chs or (stride != 1 and pre_pool is None)):
        projection = Layer("pointwise", 1, in_chs, out_chs, 1 if pre_pool else stride)
    return BlockPlan(
        in_chs, out_chs, stride, planned, residual, projection, pre_pool, post_pool, not preact
    )


def stage_plan(in_chs: int, stage: dict) -> tuple[BlockPlan, ...]:
    """The blocks of one stage: the first takes `in_chs` and the stride, the rest keep the width.

    Args:
        in_chs: channels into the stage (the previous stage's width, or the stem's).
        stage: the stage's knobs as a dict with keys width, depth, stride, branches,
            segments, pointwise, factorize, mid_act, residual, and any of OPTIONAL_KNOBS.
    """
    optional = {knob: stage.get(knob, default) for knob, default in OPTIONAL_KNOBS.items()}
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
                **optional,
            )
        )
    return tuple(blocks)


def stage_plans(
    stem_chs: int | tuple[int, ...], stages: list[dict]
) -> tuple[tuple[BlockPlan, ...], ...]:
    """Every stage's blocks, each stage taking the previous one's width (the first: the stem's,
    its last conv's where it has several)."""
    planned = []
    in_chs = stem_chs if isinstance(stem_chs, int) else stem_chs[-1]
    for stage in stages:
        planned.append(stage_plan(in_chs, stage))
        in_chs = stage["width"]
    return tuple(planned)


def stage_specs(arch: Arch) -> list[dict]:
    """The plain-data stage list that `Network` takes (and the exporter writes as a literal)."""
    # A Stage is a plain frozen dataclass: its fields, in order, are its instance dict. (Not
    # dataclasses.asdict: exported files copy this module, and an import that only this
    # function needs would be left over when the exporter drops the function.)
    return [
        {
            knob: value
            for knob, value in vars(stage).items()
            if knob not in OPTIONAL_KNOBS or value != OPTIONAL_KNOBS[knob]
        }
        for stage in arch.stages
    ]


def arch_plan(arch: Arch) -> tuple[tuple[BlockPlan, ...], ...]:
    """The blocks of every stage of an architecture, as built and as drawn."""
    return stage_plans(arch.stem, stage_specs(arch))


def stem_channels(arch: Arch) -> int | tuple[int, ...]:
    """The stem's width as `Network` takes it: one int, or each conv's where there are two."""
    return arch.stem if arch.stem_lead is None else arch.stem_widths
