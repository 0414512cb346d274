"""Cost before training: MACs and parameters (ptflops) and measured latency.

Units: ptflops counts multiply-accumulates (MACs); FLOPs = 2 x MACs. Every label says which.
We use ptflops' `aten` backend, which counts the convolutions and matrix products at the ATen
level (functional ops included) and nothing else; element-wise BN/ReLU/pool work is left out,
as in the papers' cost figures.
"""

from __future__ import annotations

import copy
import statistics
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import torch
from ptflops import get_model_complexity_info
from torch import nn

from nas._arch import Arch
from nas.builder import build_model


@dataclass(frozen=True)
class Cost:
    """Multiply-accumulates and parameters of one forward pass of one image."""

    macs: int
    params: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def mmacs(self) -> float:
        return self.macs / 1e6


@dataclass(frozen=True)
class PartCost:
    """The cost of one named part of a network (stem, a block, the head)."""

    name: str
    macs: int
    params: int
    share: float  # of the whole network's MACs


class _Unseen(nn.Module):
    """Runs a module that ptflops cannot touch.

    ptflops registers hooks on the children of what it counts (and never removes them) and
    switches it to eval mode; this wrapper holds the module without registering it, so it has
    no children and the counted module keeps its hooks and mode as they were.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "module", module)  # bypasses nn.Module's registration

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def _module_macs(module: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of `module` on one input of `input_shape` (C, H, W), via ptflops' aten backend.

    The module is counted in eval mode where it lies and left as it was: same mode, no hooks,
    parameters and buffers untouched (eval-mode BatchNorm does not update its statistics).
    """
    modes = [(part, part.training) for part in module.modules()]
    device = next(module.parameters(), torch.empty(0)).device
    module.eval()
    try:
        with torch.no_grad():
            macs, _ = get_model_complexity_info(
                _Unseen(module),
                tuple(input_shape),
                input_constructor=lambda shape: torch.zeros(1, *shape, device=device),
                as_strings=False,
                print_per_layer_stat=False,
                backend="aten",
                verbose=False,
            )
    finally:
        for part, training in modes:
            part.training = training
    if macs is None:
        raise RuntimeError(f"ptflops could not count {type(module).__name__} on {input_shape}")
    return int(macs)


def _module_cost(module: nn.Module, input_shape: tuple[int, ...]) -> Cost:
    return Cost(_module_macs(module, input_shape), _param_count(module))


def _param_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


# Costs by (architecture, input shape, classes): a search samples the same architecture often
# (duplicates, landmarks), and the dashboard and the exporter ask again for stored ones.
_COSTS: OrderedDict[tuple[Arch, tuple[int, ...], int], Cost] = OrderedDict()
_COSTS_KEPT = 4096
_COSTS_LOCK = threading.Lock()  # the dashboard serves requests from several threads


def known_cost(arch: Arch, input_shape: tuple[int, ...], num_classes: int = 10) -> Cost | None:
    """The cost `count_cost` already counted for this network, or None (nothing is built)."""
    key = (arch, tuple(int(size) for size in input_shape), int(num_classes))
    with _COSTS_LOCK:
        cost = _COSTS.get(key)
        if cost is not None:
            _COSTS.move_to_end(key)
        return cost


def count_cost(
    arch: Arch | str | nn.Module,
    input_shape: tuple[int, ...],
    num_classes: int = 10,
    *,
    model: nn.Module | None = None,
) -> Cost:
    """MACs and parameters of a network for one image of `input_shape` (C, H, W).

    Args:
        arch: an `Arch`, its string, or an already built module (counted, not cached).
        input_shape: (channels, height, width) of one image.
        num_classes: classes of the head (changes the head's cost only).
        model: the already built network of `arch` for `num_classes`, counted (and left as it
            was) if the cost is not cached yet; without it a network is built to count.
    """
    input_shape = tuple(int(size) for size in input_shape)
    if isinstance(arch, nn.Module):
        return _module_cost(arch, input_shape)
    arch = Arch.parse(arch) if isinstance(arch, str) else arch
    key = (arch, input_shape, int(num_classes))
    cost = known_cost(arch, input_shape, num_classes)
    if cost is not None:
        return cost
    if model is None:
        model = build_model(arch, input_shape[0], num_classes)
    cost = _module_cost(model, input_shape)
    with _COSTS_LOCK:
        _COSTS[key] = cost
        if len(_COSTS) > _COSTS_KEPT:
            _COSTS.popitem(last=False)
    return cost


def part_costs(
    arch: Arch | str,
    input_shape: tuple[int, ...],
    num_classes: int = 10,
) -> list[PartCost]:
    """The cost of the stem, every block and the head, in network order."""
    arch = Arch.parse(arch) if isinstance(arch, str) else arch
    model = build_model(arch, input_shape[0], num_classes).eval()
    parts: list[tuple[str, nn.Module]] = [("stem", model.stem)]
    for stage_index, stage in enumerate(model.stages, 1):
        for block_index, block in enumerate(stage, 1):
            parts.append((f"stage{stage_index}.block{block_index}", block))
    parts.append(("head", nn.Sequential(model.pool, nn.Flatten(1), model.head)))

    shapes: dict[str, tuple[int, ...]] = {}

    def record_shape(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            shapes[name] = tuple(args[0].shape[1:])

        return hook

    # The head part is a new Sequential around the model's pool, so its shape is read there.
    hooked = parts[:-1] + [("head", model.pool)]
    hooks = [module.register_forward_pre_hook(record_shape(name)) for name, module in hooked]
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()

    counted = [
        (name, _module_macs(module, shapes[name]), _param_count(module)) for name, module in parts
    ]
    total = sum(macs for _, macs, _ in counted) or 1
    return [PartCost(name, macs, params, macs / total) for name, macs, params in counted]


def measure_latency(
    arch: Arch | str | nn.Module,
    input_shape: tuple[int, ...],
    *,
    device: str = "cpu",
    batch_sizes: tuple[int, ...] = (1, 64),
    warmup: int = 3,
    repeats: int = 15,
    num_classes: int = 10,
    cpu_threads: int | None = None,
) -> dict[int, float]:
    """Median forward latency in milliseconds per batch, for each batch size.

    The model runs in eval mode under inference_mode, channels_last, after `warmup` untimed
    runs; CUDA timings synchronize before reading the clock.

    Args:
        arch: an `Arch`, its string, or a built module (left as it was: it is timed on a copy).
        input_shape: (channels, height, width) of one image.
        device: "cpu", "cuda" or "cuda:i".
        batch_sizes: the batch sizes to time (1 for interactive use, a larger one for serving).
        warmup: untimed runs first (allocator, cudnn autotuning, caches).
        repeats: timed runs; the median is reported because shared machines are noisy.
        num_classes: classes of the head.
        cpu_threads: torch threads on a CPU for the measurement (restored afterwards); None
            keeps the current setting.
    """
    if isinstance(arch, nn.Module):
        # Timed on a copy: moving, channels_last and eval mode would otherwise stay with the
        # caller's module (and channels_last weights re-initialize to other values).
        model = copy.deepcopy(arch)
    else:
        model = build_model(arch, input_shape[0], num_classes)
    model = model.to(device).eval().to(memory_format=torch.channels_last)
    is_cuda = str(device).startswith("cuda")
    threads_before = torch.get_num_threads()
    if cpu_threads is not None and not is_cuda:
        torch.set_num_threads(cpu_threads)
    try:
        return _time_batches(model, input_shape, device, is_cuda, batch_sizes, warmup, repeats)
    finally:
        torch.set_num_threads(threads_before)


def _time_batches(
    model, input_shape, device, is_cuda, batch_sizes, warmup, repeats
) -> dict[int, float]:
    latencies: dict[int, float] = {}
    with torch.inference_mode():
        for batch_size in batch_sizes:
            inputs = torch.randn(batch_size, *input_shape, device=device)
            inputs = inputs.contiguous(memory_format=torch.channels_last)
            times = []
            for run in range(warmup + repeats):
                if is_cuda:
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                model(inputs)
                if is_cuda:
                    torch.cuda.synchronize(device)
                if run >= warmup:
                    times.append((time.perf_counter() - start) * 1e3)
            latencies[batch_size] = statistics.median(times)
    return latencies
