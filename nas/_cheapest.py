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
from dataclasses import MISSING, fields

from nas._arch import Arch, Stage
from nas._plan import Layer, stage_plan, stage_specs, stem_channels, stem_plan

Size = tuple[int, int]

SMALL_SPACE = 4096  # assignments: a space this small is counted whole
# Each stage's parameters are s{i}_{knob}, one for each field of a Stage but its stride (which
# the space fixes) and the knobs that came with the papers' blocks; search_spaces._spaces
# names them.
STAGE_KNOBS = tuple(
    field.name for field in fields(Stage) if field.name != "stride" and field.default is MISSING
)

# Per-stage knobs whose cheapest value is known without counting: another block only adds
# MACs, the residual adds a projection or nothing, an activation adds none.
_CHEAPEST_KNOB = {"depth": min, "residual": min, "mid_act": min}


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
    and each stage's own, search_spaces._spaces names them): a stage's MACs depend only on its
    knobs and its input's channels and size, so the search goes stage by stage, keeping the
    cheapest way to reach each width. None for a large space of another layout.
    """
    if space.size() <= SMALL_SPACE:
        archs = (
            space.arch_from_params(dict(zip(space.choices, values)))
            for values in itertools.product(*space.choices.values())
        )
        return min(archs, key=lambda arch: plan_macs(arch, input_shape, num_classes))
    stage_names = [
        [f"s{index}_{knob}" for knob in STAGE_KNOBS] for index in range(1, len(space.strides) + 1)
    ]
    if set(space.choices) != {"stem_width"}.union(*stage_names):
        return None
    image = (int(input_shape[1]), int(input_shape[2]))
    # Output width of the stages chosen so far -> (their MACs, the parameters that choose them).
    reached: dict[int, tuple[int, dict]] = {}
    for stem in space.choices["stem_width"]:
        macs, size = stem_macs(int(input_shape[0]), int(stem), space.stem_stride, image)
        reached[int(stem)] = (macs, {"stem_width": stem})
    for names, stride in zip(stage_names, space.strides):
        options = list(itertools.product(*(_knob_values(space, name) for name in names)))
        ahead: dict[int, tuple[int, dict]] = {}
        for in_chs, (spent, chosen) in reached.items():
            for values in options:
                knobs = dict(zip(STAGE_KNOBS, values))
                macs, next_size = stage_macs(in_chs, _stage_spec(knobs, stride), size)
                width = int(knobs["width"])
                if width not in ahead or spent + macs < ahead[width][0]:
                    ahead[width] = (spent + macs, {**chosen, **dict(zip(names, values))})
        reached, size = ahead, next_size
    _, params = min(
        (spent + _head_macs(width, num_classes), sorted(chosen.items()))
        for width, (spent, chosen) in reached.items()
    )
    return space.arch_from_params(dict(params))


def _stage_spec(knobs: dict[str, str], stride: int) -> dict:
    """A stage's knobs as `stage_plan` takes them, from its parameter values (as sampled)."""
    segments = knobs["segments"]
    stage = Stage(
        width=int(knobs["width"]),
        depth=int(knobs["depth"]),
        stride=stride,
        branches=tuple(knobs["branches"].split(".")),
        segments=segments if segments == "dw" else int(segments),
        pointwise=knobs["pointwise"],
        factorize=knobs["factorize"] == "1",
        mid_act=knobs["mid_act"] == "1",
        residual=knobs["residual"] == "1",
    )
    return dict(vars(stage))


def _knob_values(space, name: str) -> tuple[str, ...]:
    values = space.choices[name]
    pick = _CHEAPEST_KNOB.get(name.split("_", 1)[1])
    return (pick(values, key=int),) if pick is not None else values
