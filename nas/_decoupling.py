"""The decoupling degree: how far a network splits the spatial step from the channel mix.

0 is a normal convolution (every spatial filter sees every input channel), 1 is a depthwise-
separable block (no spatial filter sees more than one channel; the channels meet only in 1 x 1
convs). The degree is read from the layer plan (`nas._plan.arch_plan`) only: layer kinds,
channels and groups, never the knobs of the architecture string, so a block shape the grammar
gains later is measured without a change here.

Per block:

- Each branch b has the channel space its spatial step works on. A branch whose first conv is a
  1 x 1 followed by a spatial conv works in a separate space of that 1 x 1's output channels
  (Inception's reduce: the branch chose its own channels before looking at space). A branch
  whose first conv is spatial works on the block's shared input space (the block's in_chs).
  A branch with no spatial conv (a 1 x 1, a pool -> 1 x 1) is a separate space of its out_chs.
- T, the channels the block's spatial filters could see together, is the sum of the separate
  spaces, plus in_chs once if any branch works on the shared input.
- The share of the whole a filter of branch b sees is (space_b / groups_b) / T, with groups_b
  the groups of the branch's first spatial conv (1 for a branch without one). A depthwise
  spatial conv (groups == its in_chs, one channel per segment) mixes no channels in its spatial
  step and sees 0.
- coupling = sum over branches of (out_chs_b / block out_chs) * share_b, each branch weighted
  by its part of the block's output; the block's degree is 1 - coupling.
- An unmixed block, where no layer mixes channels across its input (no 1 x 1 and no spatial
  conv with groups 1: e.g. a depthwise conv with no 1 x 1 anywhere), scores 0: there is no
  channel mix for the spatial step to be decoupled from. A residual shortcut's projection is not
  a branch (it adds the input back, it feeds no spatial step) and counts for neither.

Pooling layers are skipped (they neither mix channels nor learn a spatial filter); a layer kind
this module does not know is taken as a non-spatial conv, like a 1 x 1.

The network's degree is the plain mean of its blocks' (the stem is not a block). Nothing is
clamped: every share lies in [0, 1] and the weights sum to 1, so every block lies in [0, 1].

Why not log(segments) / log(channels), the measure before this one: it depends on width (an
8-group block scored 0.51 at our widths and 0.38 at 4x), gave a depthwise conv without any
channel mix the 1.0 of Xception, and counted parallel full convolutions as split although
each of them sees every channel. Here every quantity is a ratio of channels, so scaling all
widths by the same factor leaves the degree unchanged: 0 for a normal conv and for parallel
full convs, 1 - 1/g for a g-group spatial conv between 1 x 1s, 1 - 1/n for n equal
Inception branches with their own reduces, 1 for depthwise separable.
"""

from __future__ import annotations

from collections.abc import Iterable

from nas._arch import Arch
from nas._plan import POOLS, BlockPlan, BranchPlan, Layer, arch_plan


def _is_pool(layer: Layer) -> bool:
    return layer.kind in POOLS or "pool" in layer.kind


def _convs(branch: BranchPlan) -> list[Layer]:
    """The branch's layers that are convs, in order (pools left out)."""
    return [layer for layer in branch.layers if not _is_pool(layer)]


def _is_depthwise(layer: Layer) -> bool:
    """One input channel per segment (a 1-channel input is a plain conv, not depthwise)."""
    return layer.in_chs > 1 and layer.groups == layer.in_chs


def _mixes(layer: Layer) -> bool:
    """The conv mixes channels across its whole input (groups 1)."""
    return layer.groups == 1 and not _is_depthwise(layer)


def block_degree(block: BlockPlan) -> float:
    """The decoupling degree of one planned block (see the module docstring)."""
    convs = [_convs(branch) for branch in block.branches]
    if not any(_mixes(layer) for layers in convs for layer in layers):
        return 0.0
    # Per branch: (space, shared input?, groups, depthwise?)
    spaces: list[tuple[int, bool, int, bool]] = []
    for branch, layers in zip(block.branches, convs):
        spatial = [index for index, layer in enumerate(layers) if layer.kind == "spatial"]
        if not spatial:
            spaces.append((branch.out_chs, False, 1, False))
            continue
        first = layers[spatial[0]]
        if spatial[0] == 0:
            spaces.append((block.in_chs, True, first.groups, _is_depthwise(first)))
        else:
            space = layers[0].out_chs
            spaces.append((space, False, first.groups, _is_depthwise(first)))
    total = sum(space for space, shared, _, _ in spaces if not shared)
    if any(shared for _, shared, _, _ in spaces):
        total += block.in_chs
    coupling = 0.0
    for branch, (space, _, groups, depthwise) in zip(block.branches, spaces):
        share = 0.0 if depthwise else space / groups / total
        coupling += branch.out_chs / block.out_chs * share
    return 1.0 - coupling


def plan_degree(stages: Iterable[Iterable[BlockPlan]]) -> float:
    """The plain mean of the block degrees of a layer plan (stages of blocks)."""
    degrees = [block_degree(block) for blocks in stages for block in blocks]
    if not degrees:
        raise ValueError("a plan without blocks has no decoupling degree")
    return sum(degrees) / len(degrees)


def decoupling_degree(arch: Arch) -> float:
    """How far the spatial step is split from the channel mix: 0 normal conv .. 1 depthwise
    separable, the mean over the network's blocks (see the module docstring); independent of
    width."""
    return plan_degree(arch_plan(arch))
