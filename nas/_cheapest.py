"""The cheapest architecture of a search space, found without building a network.

A search refuses a --max-mmacs below it before anything exists: every trial would be skipped,
for ever. The MACs here are what ptflops' aten backend counts on the built network (every
convolution's weights times its output pixels, the head's weights and bias; pools, BatchNorm,
ReLU and additions cost nothing), read off the layer plan so that the thousands of candidates
cost milliseconds; the caller counts the one found with `nas.cost.count_cost`, and
tests/test_search_stops.py checks the two counts agree on every landmark and sampled network.
"""

from __future__ import annotations

import itertools

from nas._arch import Arch
from nas._channels import branch_widths
from nas._plan import Layer, branch_plan, stage_plan, stage_specs, stem_channels, stem_plan

Size = tuple[int, int]

SMALL_SPACE = 4096  # assignments: a space this small is counted whole


def _least_int(values):
    return (min(values, key=int),)


def _first(values):
    return values[:1]


def _pool_first_or_all(values):
    return ("pool_first",) if "pool_first" in values else values


# Per-stage knobs (search_spaces._spaces.STAGE_KNOBS) whose cheapest value is known without
# counting, each a function of the offered values to those worth counting: another block only
# adds MACs, the residual adds a projection or nothing, an activation adds none, a max and an
# average pool cost the same (nothing). A pool before the block (unit pool_first) runs the
# same layers as the plain unit, each on at most as many pixels (the plain unit's layers
# before its strided conv see the full resolution), so plain is never cheaper; the xception
# unit (more steps, at the full resolution, but possibly narrower) is counted.
_CHEAPEST_KNOB = {
    "depth": _least_int,
    "residual": _least_int,
    "mid_act": _least_int,
    "pool": _first,
    "unit": lambda values: tuple(
        value for value in values if value != "plain" or "pool_first" not in values
    ),
}


def layer_macs(layer: Layer, size: Size) -> tuple[int, Size]:
    """MACs of one planned layer on an input of `size` (height, width), and its output size."""
    # Odd kernels padded by kernel // 2: the output is the input divided by the stride, rounded up.
    out = ((size[0] - 1) // layer.stride + 1, (size[1] - 1) // layer.stride + 1)
    return layer.weights * out[0] * out[1], out


def stem_macs(
    in_chs: int, stem_chs: int | tuple[int, ...], stem_stride: int, size: Size
) -> tuple[int, Size]:
    """MACs of the stem (its conv; pools cost none) on `size`, and its output size."""
    total = 0
    for layer in stem_plan(in_chs, stem_chs, stem_stride):
        macs, size = layer_macs(layer, size)
        total += macs
    return total, size


def stage_macs(in_chs: int, stage: dict, size: Size) -> tuple[int, Size]:
    """MACs of one stage's blocks (a `stage_specs` entry) on `size`, and its output size."""
    total = 0
    for block in stage_plan(in_chs, stage):
        if block.pre_pool is not None:
            size = layer_macs(block.pre_pool, size)[1]
        for branch in block.branches:
            branch_size = size
            for layer in branch.layers:
                macs, branch_size = layer_macs(layer, branch_size)
                total += macs
        if block.post_pool is not None:
            branch_size = layer_macs(block.post_pool, branch_size)[1]
        if block.projection is not None:
            total += layer_macs(block.projection, size)[0]
        size = branch_size
    return total, size


def _halved(size: Size, stride: int) -> Size:
    return ((size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1)


def _branch_macs(in_chs: int, out_chs: int, stride: int, knobs: tuple, size: Size) -> int:
    """MACs of one planned branch (`branch_plan`'s arguments after the stride) on `size`."""
    total = 0
    for layer in branch_plan(in_chs, out_chs, stride, *knobs).layers:
        macs, size = layer_macs(layer, size)
        total += macs
    return total


def _search_stage_macs(
    in_chs: int, stage: dict, size: Size, counted: dict | None = None
) -> tuple[int, Size]:
    """`stage_macs` for the search: the same count, a branch at a time, each branch shape
    counted once into `counted` (a search meets it in thousands of stages). It hands each
    branch the arguments `block_plan` does, but for the ReLUs and BatchNorms, which cost no
    MACs; tests/test_search_stops.py checks the two counts agree."""
    counted = {} if counted is None else counted
    count = len(stage["branches"])
    widths = stage.get("widths") or branch_widths(stage["width"], count)
    inner = stage.get("inner") or (None,) * count
    steps = stage.get("steps", 1)
    total = 0
    for index in range(stage["depth"]):
        chs, stride = (in_chs, stage["stride"]) if index == 0 else (stage["width"], 1)
        downsample = stage.get("downsample", "conv") if stride == 2 else "conv"
        if downsample == "pre":
            size = _halved(size, 2)
        branch_stride = 1 if downsample != "conv" else stride
        for branch, width, mid in zip(stage["branches"], widths, inner):
            knobs = (branch, stage["segments"], stage["pointwise"], stage["factorize"], False, mid)
            key = (chs, width, branch_stride, knobs, steps, size)
            if key not in counted:
                counted[key] = _branch_macs(chs, width, branch_stride, (*knobs, steps), size)
            total += counted[key]
        out = _halved(size, 1 if downsample == "pre" else stride)  # post: pool stride 2
        if stage["residual"] and (chs != stage["width"] or (stride != 1 and downsample != "pre")):
            total += chs * stage["width"] * out[0] * out[1]  # the 1x1 projection
        size = out
    return total, size


def plan_macs(arch: Arch, input_shape: tuple[int, ...], num_classes: int) -> int:
    """MACs of the whole network of `arch` for one image of `input_shape` (C, H, W)."""
    size = (int(input_shape[1]), int(input_shape[2]))
    total, size = stem_macs(int(input_shape[0]), stem_channels(arch), arch.stem_stride, size)
    in_chs = arch.stem
    for stage in stage_specs(arch):
        macs, size = stage_macs(in_chs, stage, size)
        total += macs
        in_chs = stage["width"]
    return total + _head_macs(arch.out_channels, num_classes)


def _head_macs(width: int, num_classes: int) -> int:
    return width * num_classes + num_classes  # the linear head's weights and bias


def cheapest_architecture(space, input_shape: tuple[int, ...], num_classes: int) -> Arch | None:
    """The architecture of `space` (a search_spaces.SearchSpace) with the fewest MACs.

    A small space is counted whole. A large one must have the standard parameters (the stem's
    and each stage's own: the space's `stage_knobs`, of search_spaces._spaces.STAGE_KNOBS): a
    stage's MACs depend only on its knobs and its input's channels and size, so the search
    goes stage by stage, keeping the cheapest way to reach each width. None for a large space
    of another layout.
    """
    if space.size() <= SMALL_SPACE:
        archs = (
            space.arch_from_params(dict(zip(space.choices, values)))
            for values in itertools.product(*space.choices.values())
        )
        return min(archs, key=lambda arch: plan_macs(arch, input_shape, num_classes))
    stage_knobs = space.stage_knobs
    stage_names = [
        [f"s{index}_{knob}" for knob in stage_knobs] for index in range(1, len(space.strides) + 1)
    ]
    if set(space.choices) != {"stem_width"}.union(*stage_names):
        return None
    image = (int(input_shape[1]), int(input_shape[2]))
    counted: dict = {}  # branch shape -> its MACs
    # Output width of the stages chosen so far -> (their MACs, the parameters that choose them).
    reached: dict[int, tuple[int, dict]] = {}
    for stem in space.choices["stem_width"]:
        macs, size = stem_macs(int(input_shape[0]), int(stem), space.stem_stride, image)
        reached[int(stem)] = (macs, {"stem_width": stem})
    for names, stride in zip(stage_names, space.strides):
        # Many assignments build the same stage (a split or an inner width of no branch that
        # takes it): each stage is counted once, for the first assignment that builds it.
        unique: dict[tuple, tuple[tuple, dict]] = {}
        for values in itertools.product(*(_knob_values(space, name) for name in names)):
            spec = _stage_spec(space, dict(zip(stage_knobs, values)), stride)
            unique.setdefault(tuple(spec.items()), (values, spec))
        options = list(unique.values())
        ahead: dict[int, tuple[int, dict]] = {}
        for in_chs, (spent, chosen) in reached.items():
            for values, spec in options:
                macs, next_size = _search_stage_macs(in_chs, spec, size, counted)
                width = spec["width"]
                if width not in ahead or spent + macs < ahead[width][0]:
                    ahead[width] = (spent + macs, {**chosen, **dict(zip(names, values))})
        reached, size = ahead, next_size
    _, params = min(
        (spent + _head_macs(width, num_classes), sorted(chosen.items()))
        for width, (spent, chosen) in reached.items()
    )
    return space.arch_from_params(dict(params))


def _stage_spec(space, knobs: dict[str, str], stride: int) -> dict:
    """A stage's knobs as `stage_plan` takes them, from its parameter values (as sampled),
    built by the space's own rule."""
    return dict(vars(space.stage_from_knobs(knobs, stride)))


def _knob_values(space, name: str) -> tuple[str, ...]:
    values = space.choices[name]
    pick = _CHEAPEST_KNOB.get(name.split("_", 1)[1])
    return pick(values) if pick is not None else values
