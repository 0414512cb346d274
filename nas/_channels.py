"""Channel arithmetic shared by the architecture value and the builder (pure Python, no torch).

The exporter copies this module's functions into generated files, so keep it dependency-free.
"""

from __future__ import annotations

from math import gcd


def branch_widths(out_chs: int, num_branches: int) -> list[int]:
    """Split a block's output channels over its parallel branches, the first ones taking the rest.

    Args:
        out_chs: channels of the concatenated output.
        num_branches: number of parallel branches.
    """
    base, extra = divmod(out_chs, num_branches)
    return [base + (1 if index < extra else 0) for index in range(num_branches)]


def resolve_groups(in_chs: int, out_chs: int, segments: int | str) -> int:
    """Groups of a spatial conv for a requested number of channel segments.

    "dw" asks for one segment per channel. An integer asks for that many segments; a conv can
    only be split into a common divisor of its input and output channels, so the request is
    lowered to the largest such divisor (requests on a narrow conv saturate at depthwise).

    Args:
        in_chs: input channels of the spatial conv.
        out_chs: output channels of the spatial conv.
        segments: requested segments, an int >= 1 or "dw".
    """
    most = gcd(in_chs, out_chs)
    if segments == "dw":
        return most
    wanted = min(int(segments), most)
    for groups in range(wanted, 0, -1):
        if most % groups == 0:
            return groups
    return 1


def factorized_kernels(kernel: int, factorize: bool) -> list[int]:
    """Kernels of the spatial step: a k x k, or (k - 1) / 2 stacked 3 x 3 when factorized."""
    if factorize and kernel >= 5:
        return [3] * ((kernel - 1) // 2)
    return [kernel]


# Branches without a spatial conv: a 1 x 1, and a 3 x 3 max or average pool before a 1 x 1.
POOL_BRANCHES = ("pool", "avgpool")


def branch_steps(
    in_chs: int,
    out_chs: int,
    branch: str,
    pointwise: str,
    factorize: bool,
    inner: int | None = None,
    steps: int = 1,
) -> list[list[tuple[str, int, int, int]]]:
    """The convs of one branch as (kind, kernel, in, out), grouped by step.

    A step is [1x1 before] -> k x k (or its stacked 3 x 3) -> [1x1 after]; a branch repeats it
    `steps` times (Xception's units repeat the separable conv 2-3 times). Every channel count
    inside the branch is `inner` (default: the branch's width) and its last conv outputs
    `out_chs`, except that a spatial conv followed by a 1x1 keeps its input's channels (the
    depthwise step of a separable conv). A 1 x 1 or pool branch is one 1x1.

    Args:
        in_chs: block input channels.
        out_chs: this branch's share of the block output channels.
        branch: "1", "3", "5", "7", "pool" or "avgpool".
        pointwise: where the 1x1 channel mix sits: none, before, after or both.
        factorize: a k x k (k >= 5) as stacked 3 x 3.
        inner: channels between the branch's convs (ResNeXt's bottleneck, Inception's reduce).
        steps: repeats of the step.
    """
    if branch == "1" or branch in POOL_BRANCHES:
        return [[("pointwise", 1, in_chs, out_chs)]]
    mid = out_chs if inner is None else inner
    kernels = factorized_kernels(int(branch), factorize)
    chs = in_chs
    planned = []
    for step in range(steps):
        target = out_chs if step == steps - 1 else mid
        convs = []
        if pointwise in ("before", "both"):
            convs.append(("pointwise", 1, chs, mid))
            chs = mid
        for index, kernel in enumerate(kernels):
            if pointwise in ("after", "both"):
                out = chs
            else:
                out = target if index == len(kernels) - 1 else mid
            convs.append(("spatial", kernel, chs, out))
            chs = out
        if pointwise in ("after", "both"):
            convs.append(("pointwise", 1, chs, target))
            chs = target
        planned.append(convs)
    return planned


def spatial_conv_shapes(
    in_chs: int,
    branch_chs: int,
    branch: str,
    pointwise: str,
    factorize: bool,
    inner: int | None = None,
    steps: int = 1,
) -> list[tuple[int, int]]:
    """(in, out) channels of each spatial conv in one branch, in order (see branch_steps).

    Only k >= 3 branches have spatial convs; 1 x 1 and pool branches return an empty list.
    """
    planned = branch_steps(in_chs, branch_chs, branch, pointwise, factorize, inner, steps)
    return [(cin, cout) for step in planned for kind, _, cin, cout in step if kind == "spatial"]
