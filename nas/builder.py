"""The one builder: an `Arch` value to an `nn.Module` (never touches Optuna)."""

from __future__ import annotations

from nas._arch import Arch
from nas._plan import stage_specs, stem_channels
from nas.blocks import Network

__all__ = ["build_model", "stage_specs"]


def build_model(arch: Arch | str, in_channels: int, num_classes: int) -> Network:
    """Build the network of an architecture for images of `in_channels` and `num_classes`.

    Works for any input resolution of at least 8 pixels (the head pools globally).

    Args:
        arch: an `Arch` or its string form.
        in_channels: image channels (1 for Fashion-MNIST, 3 for CIFAR-10).
        num_classes: output classes.
    """
    if isinstance(arch, str):
        arch = Arch.parse(arch)
    return Network(
        in_channels, num_classes, stem_channels(arch), stage_specs(arch), arch.stem_stride
    )
