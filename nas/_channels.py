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


def spatial_conv_shapes(
    in_chs: int, branch_chs: int, branch: str, pointwise: str, factorize: bool
) -> list[tuple[int, int]]:
    """(in, out) channels of each spatial conv in one branch, in order.

    Only k >= 3 branches have spatial convs; 1 x 1 and pool branches return an empty list.
    """
    if branch in ("1", "pool"):
        return []
    count = len(factorized_kernels(int(branch), factorize))
    if pointwise in ("before", "both"):
        return [(branch_chs, branch_chs)] * count
    if pointwise == "after":
        return [(in_chs, in_chs)] * count
    return [(in_chs, branch_chs)] + [(branch_chs, branch_chs)] * (count - 1)
