"""The proxy trainer: one short, fixed recipe that every trial of a search shares.

The whole training split lives on the device as one uint8 tensor; batches are slices of a
random permutation of indices, normalized (and, for CIFAR-10, cropped and flipped) on the
device. There is no DataLoader: on a GPU its per-sample indexing, collation and host-to-device
copies would starve the device; on a CPU they are cheap at these image sizes (about 1% of a
step, bench/results/throughput_cpu.md), and the CPU speed comes from channels_last instead.
"""

from __future__ import annotations

import gc
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from nas._faults import fault_point
from nas.data import Dataset


@dataclass(frozen=True)
class Recipe:
    """The hyperparameters of every proxy run; a search compares architectures under one recipe.

    Tuned for budgets of a few tens of thousands to a few hundred thousand images of
    Fashion-MNIST (see bench/accuracy.py for the figures it earns).
    """

    # Large enough that the per-step Python overhead of a 28 x 28 network stays small next to
    # its arithmetic...
    batch_size: int = 128
    # ...but a budget that would get fewer steps than this at `batch_size` trains at half the
    # batch: in the 3 x 10,000 CPU budget, 468 steps instead of 234 rank architectures more
    # like a 10x longer training does (Kendall tau 0.712 against 0.684) for 1.15x the time
    # (bench/results/fidelity_budgets.md). Long budgets keep the larger, faster batch.
    min_steps: int = 500
    # SGD with Nesterov momentum: no extra state per weight, robust across architectures, and
    # the choice of the short-schedule CIFAR speed runs (airbench) this recipe imitates.
    peak_lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    # One-cycle shape: linear warm-up (BatchNorm statistics settle before large steps), then
    # linear decay to zero, which gives most of a long schedule's accuracy in a short one.
    warmup_fraction: float = 0.2
    # Decays conv and linear weights only: decaying BatchNorm gains and biases fights the
    # normalization and does not regularize.
    weight_decay: float = 5e-4
    # Softened targets keep logits from exploding in the first steps and make validation
    # accuracy after few epochs less noisy between seeds.
    label_smoothing: float = 0.1
    # Inference needs no activations kept for backward: large batches amortize overhead.
    eval_batch_size: int = 256
    # bf16 autocast on CUDA: about twice the matmul rate of fp32, no loss scaling needed.
    cuda_bf16: bool = True
    # bf16 autocast on a CPU: faster only where the CPU computes bf16 natively (AVX512-BF16,
    # AMX), and then a study's results would depend on which CPU ran each trial; off.
    cpu_bf16: bool = False
    # NHWC memory for the model and every batch: the CPU trains 1.2-1.9x faster in it (plain
    # against plain_channels_last, bench/results/throughput_cpu.md). Off keeps PyTorch's NCHW,
    # to compare the two on a GPU, where the faster one depends on cuDNN's kernels for them.
    channels_last: bool = True
    # On CUDA, cuDNN times its kernels once per new input shape and keeps the fastest; a run
    # shows it two shapes (the training and the evaluation batch). Whether the timing pays for
    # itself within one trial is what bench/autotune.py measures; off also suits runs that
    # must not depend on which kernel won the timing.
    cudnn_benchmark: bool = True

    def batch_size_for(self, budget: Budget, split_size: int) -> int:
        """The batch a run of `budget` trains at, on a training split of `split_size` images."""
        epoch_size = min(budget.train_size or split_size, split_size)
        batch = min(self.batch_size, epoch_size)
        if budget.epochs * (epoch_size // batch) < self.min_steps:
            batch = max(1, min(self.batch_size // 2, epoch_size))
        return batch


DEFAULT_RECIPE = Recipe()
# The batch of every budget before `min_steps`: what a run or study that did not record its
# batch trained at.
BATCH_SIZE_BEFORE_MIN_STEPS = 128

# Random crop and flip only where the proxy runs are long enough to overfit without them.
AUGMENTED_DATASETS = ("cifar10",)
# On CUDA, checking the loss means a host-device sync; check this often (always on CPU).
CUDA_FINITE_CHECK_EVERY = 16


@dataclass(frozen=True)
class Budget:
    """Training budget of one trial: `epochs` passes of `train_size` images each.

    Each epoch draws `train_size` images afresh (without replacement) from the whole training
    split, so a short budget still sees many distinct images. None means the whole split.
    """

    epochs: int
    train_size: int | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.train_size is not None and self.train_size < 1):
            raise ValueError(f"budget needs epochs >= 1 and train_size >= 1, got {self!r}")

    def __str__(self) -> str:
        return f"{self.epochs}x{self.train_size or 'full'}"

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Parse "EPOCHSxSIZE" or "EPOCHSxfull", e.g. "3x12000" or "10xfull"."""
        match = re.fullmatch(r"\s*(\d+)\s*x\s*(\d+|full)\s*", text.lower())
        if match is None:
            raise ValueError(f"budget {text!r} is not EPOCHSxSIZE or EPOCHSxfull, e.g. 3x12000")
        size = match.group(2)
        return cls(int(match.group(1)), None if size == "full" else int(size))


def auto_budget(device: str, dataset: str) -> Budget:
    """The default budget of one trial for a device and a dataset.

    On a CPU a typical trial of the search space (1-10 MMACs at 28 x 28) should finish in about
    20 seconds, so that a 200-trial search takes about an hour on a laptop. On two AMD EPYC
    cores our trainer runs the landmarks at 1,200-4,800 training images/s and evaluates about
    three times faster, so 3 epochs of 10,000 images plus three passes over the 10,000
    validation images take 8-31 s at batch 128 (median landmark 16 s; bench/results/
    accuracy_cpu.md), and already reach 85.5-89% validation accuracy; the batch 64 that
    `Recipe.min_steps` picks for this budget costs 1.15x that and ranks architectures better.
    CIFAR-10 images (3 x 32 x 32) cost about 1.3x more, hence fewer. On a GPU the same models
    train at tens of thousands of images/s, so the whole training split fits: 6 epochs
    (Fashion-MNIST) or 8 (CIFAR-10, which learns slower and is augmented) take seconds.
    The digits set is tiny on any device.
    """
    if dataset == "digits":
        return Budget(15, None)
    if resolve_device(device).startswith("cuda"):
        return Budget(8 if dataset == "cifar10" else 6, None)
    return Budget(3, 8_000 if dataset == "cifar10" else 10_000)


def final_epochs(device: str, dataset: str) -> int:
    """The default epochs of final training (`train_final`) for a device and a dataset.

    On a CPU, 10 epochs of the 60,000 Fashion-MNIST images took `normal` (9.1 MMACs) 223 s on
    two cores to 93.6% test accuracy (one seed, bench/results/accuracy_cpu.md), most of what
    longer training gives; a GPU trains 30 in less time. The digits set is tiny anywhere.
    """
    if dataset == "digits" or resolve_device(device).startswith("cuda"):
        return 30
    return 10


@dataclass
class TrainResult:
    """What one training run produced; epochs are counted from 1.

    `val_acc_curve` holds the accuracy after each completed epoch (on the test split when it
    comes from `train_final`). A diverged run keeps the curve up to the last good epoch and
    says why in `failure`.
    """

    val_acc_curve: list[float] = field(default_factory=list)
    train_loss_curve: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # training + evaluation
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    images_seen: int = 0
    stopped_early: bool = False
    failure: str | None = None
    device: str = "cpu"
    budget: str = ""
    batch_size: int = 0

    @property
    def val_acc(self) -> float:
        return self.val_acc_curve[-1] if self.val_acc_curve else 0.0


def resolve_device(spec: str = "auto") -> str:
    """Turn "auto", "cpu", "cuda" or "cuda:N" into an available device name.

    Raises:
        ValueError: for an unknown spelling or a CUDA device this machine does not have.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return spec
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise ValueError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if int(match.group(1) or 0) >= count:
        raise ValueError(
            f"device {spec!r} is not available: this machine has {count} usable CUDA "
            f"device(s) (torch {torch.__version__}); use --device cpu or auto"
        )
    return spec


def cpu_threads() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than exist)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def prepare_backend(device: str, recipe: Recipe = DEFAULT_RECIPE) -> None:
    """The process-wide settings a run on `device` (already resolved) trains under.

    Args:
        device: "cpu", "cuda" or "cuda:N".
        recipe: the hyperparameters (its `cudnn_benchmark` applies on CUDA).
    """
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = recipe.cudnn_benchmark
    else:
        torch.set_num_threads(cpu_threads())


def release_device_memory(device: str) -> None:
    """Give the memory of a failed run's dropped tensors back to `device`.

    PyTorch's CUDA caching allocator keeps freed blocks reserved for this process; after an
    out-of-memory failure they would stay unusable by the other workers sharing the GPU.
    """
    gc.collect()  # what only reference cycles still hold
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def train(
    model: nn.Module,
    data: Dataset,
    budget: Budget,
    *,
    device: str = "cpu",
    seed: int = 0,
    recipe: Recipe = DEFAULT_RECIPE,
    on_epoch: Callable[[int, float], bool | None] | None = None,
) -> TrainResult:
    """Train `model` on `data.train_*` for `budget`, validating on `data.val_*` after each epoch.

    The parameters are re-initialized from `seed`, which also drives batch order and
    augmentation, so a run depends only on (architecture, data, budget, seed, recipe); on a
    CPU the same seed gives the identical curve. The model is left on `device`.

    Args:
        model: the network; it is trained in place.
        data: the dataset (its tensors may live on the CPU).
        budget: epochs and images per epoch.
        device: "cpu", "cuda", "cuda:N" or "auto".
        seed: seed of initialization, batch order and augmentation.
        recipe: the hyperparameters.
        on_epoch: called as on_epoch(epoch, val_acc) after each epoch; True stops training.

    Returns:
        The curves and timings; a non-finite loss ends training with `failure` set, not an
        exception.
    """
    fault_point("trial:started")
    device = resolve_device(device)
    on_cuda = device.startswith("cuda")
    autocast = _autocast(device, recipe)
    prepare_backend(device, recipe)
    _reset_parameters(model, seed)
    memory_format = _memory_format(recipe)
    model.to(device, memory_format=memory_format)
    generator = torch.Generator(device).manual_seed(seed)
    # The whole split in one uint8 tensor: 39 MB for Fashion-MNIST, 150 MB for CIFAR-10.
    train_x = data.train_x.to(device).contiguous(memory_format=memory_format)
    train_y = data.train_y.to(device)
    val_x, val_y = data.val_x.to(device), data.val_y.to(device)
    mean, scale = normalization(data, device)
    augment = data.name in AUGMENTED_DATASETS

    epoch_size = min(budget.train_size or len(train_x), len(train_x))
    batch_size = recipe.batch_size_for(budget, len(train_x))
    steps_per_epoch = epoch_size // batch_size  # a ragged last batch would be a noisy step
    total_steps = budget.epochs * steps_per_epoch
    warmup_steps = max(1, round(recipe.warmup_fraction * total_steps))
    decayed = [p for p in model.parameters() if p.ndim > 1]
    not_decayed = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [
            {"params": decayed, "weight_decay": recipe.weight_decay},
            {"params": not_decayed, "weight_decay": 0.0},
        ],
        lr=0.0,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
    )
    result = TrainResult(device=device, budget=str(budget), batch_size=batch_size)

    global_step = 0
    for epoch in range(1, budget.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x), device=device, generator=generator)
        losses = torch.zeros(steps_per_epoch, device=device)
        for step in range(steps_per_epoch):
            indices = order[step * batch_size : (step + 1) * batch_size]
            images = normalize(train_x[indices], mean, scale, memory_format)
            if augment:
                # The crop's gather writes channels_last memory (a no-op to keep it so).
                images = crop_and_flip(images, generator).contiguous(memory_format=memory_format)
            # One-cycle: linear warm-up to the peak, then linear decay to zero.
            lr = recipe.peak_lr * min(
                (global_step + 1) / warmup_steps,
                (total_steps - global_step) / max(1, total_steps - warmup_steps),
            )
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                logits = model(images)
            loss = F.cross_entropy(
                logits.float(), train_y[indices], label_smoothing=recipe.label_smoothing
            )
            losses[step] = loss.detach()
            check_now = not on_cuda or (step + 1) % CUDA_FINITE_CHECK_EVERY == 0
            if (check_now or step == steps_per_epoch - 1) and not losses.isfinite().all():
                bad_step = int((~losses.isfinite()).nonzero()[0]) + 1
                result.failure = f"diverged: non-finite loss at epoch {epoch} step {bad_step}"
                result.images_seen += bad_step * batch_size
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            global_step += 1
        if result.failure:
            result.train_seconds += _elapsed(epoch_start, device)
            break
        result.images_seen += steps_per_epoch * batch_size
        result.train_loss_curve.append(losses.mean().item())
        result.train_seconds += _elapsed(epoch_start, device)
        eval_start = time.perf_counter()
        val_acc = evaluate(model, val_x, val_y, data=data, device=device, recipe=recipe)
        result.eval_seconds += _elapsed(eval_start, device)
        result.val_acc_curve.append(val_acc)
        result.epoch_seconds.append(_elapsed(epoch_start, device))
        stop = on_epoch is not None and on_epoch(epoch, val_acc)
        fault_point("trial:epoch-done")
        if stop:
            result.stopped_early = epoch < budget.epochs
            break
    return result


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    data: Dataset,
    device: str = "cpu",
    recipe: Recipe = DEFAULT_RECIPE,
) -> float:
    """Top-1 accuracy of `model` (already on `device`, in the recipe's memory format) on uint8
    `images`, in [0, 1].

    Every batch has one shape: the ragged last one is padded with blank images, whose
    predictions are not counted. cuDNN's benchmark mode times kernels anew for each input
    shape, so a ragged tail would cost a third tuning per architecture (after the training and
    the evaluation batch). In eval mode each image's logits depend on that image alone
    (BatchNorm uses its running statistics), so the padding changes no prediction.
    """
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    autocast = _autocast(device, recipe)
    mean, scale = normalization(data, device)
    memory_format = _memory_format(recipe)
    batch_size = max(1, min(recipe.eval_batch_size, len(images)))
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            real = len(batch)
            if real < batch_size:
                blank = batch.new_zeros(batch_size - real, *batch.shape[1:])
                batch = torch.cat([batch, blank])
            with autocast:
                logits = model(normalize(batch, mean, scale, memory_format))
            target = labels[start : start + batch_size].to(device)
            correct += (logits[:real].argmax(dim=1) == target).sum()
    return correct.item() / max(1, len(images))


def train_final(
    model: nn.Module, data: Dataset, epochs: int, **train_options
) -> tuple[float, TrainResult]:
    """Train on the whole official training set (train + validation); report test accuracy.

    Only for an architecture already chosen: the returned curve is measured on the test split.
    Normalization keeps the train split's mean and std. A diverged run reports 0.0.

    Args:
        model: the network; it is trained in place.
        data: the dataset; its validation split joins the training images.
        epochs: epochs over all of them.
        train_options: keyword arguments of `train` (device, seed, recipe); its defaults hold
            where they are left out, so they live in one place.

    Returns:
        The test accuracy and the run (its curve is test accuracy per epoch).
    """
    full = replace(
        data,
        train_x=torch.cat([data.train_x, data.val_x]),
        train_y=torch.cat([data.train_y, data.val_y]),
        val_x=data.test_x,
        val_y=data.test_y,
    )
    result = train(model, full, Budget(epochs, None), **train_options)
    return (0.0 if result.failure else result.val_acc), result


def normalization(data: Dataset, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and 1/std in pixel units (0..255), shaped to broadcast over N x C x H x W.

    Made once per run: a host-to-device copy per batch would stall the CUDA queue.
    """
    mean = torch.tensor(data.mean, device=device).mul_(255).view(1, -1, 1, 1)
    scale = torch.tensor(data.std, device=device).mul_(255).reciprocal_().view(1, -1, 1, 1)
    return mean, scale


def normalize(
    images: torch.Tensor,
    mean: torch.Tensor,
    scale: torch.Tensor,
    memory_format: torch.memory_format,
) -> torch.Tensor:
    """uint8 N x C x H x W -> float in `memory_format`, zero mean, unit variance per channel."""
    images = (images.float() - mean) * scale
    return images.contiguous(memory_format=memory_format)


def crop_and_flip(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Per image: a random crop of the reflect-padded image and a horizontal flip half the time.

    Done as one gather: each image's rows and columns are index ranges shifted by its own
    offset, and a flip just reverses its column range.
    """
    count, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect").permute(0, 2, 3, 1)
    device = images.device
    shift_y, shift_x = torch.randint(
        0, 2 * pad + 1, (2, count, 1), device=device, generator=generator
    )
    rows = shift_y + torch.arange(height, device=device)
    cols = shift_x + torch.arange(width, device=device)
    flip = torch.rand(count, 1, device=device, generator=generator) < 0.5
    cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(count, device=device)[:, None, None]
    cropped = padded[batch, rows[:, :, None], cols[:, None, :]]  # N x H x W x C
    return cropped.permute(0, 3, 1, 2)  # NCHW shape, channels_last memory


def _reset_parameters(model: nn.Module, seed: int) -> None:
    """Re-initialize every layer from `seed`, on the CPU so every device starts the same."""
    model.cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


def _autocast(device: str, recipe: Recipe) -> torch.autocast:
    """The recipe's mixed precision for `device` (a reusable context manager)."""
    on_cuda = device.startswith("cuda")
    enabled = recipe.cuda_bf16 if on_cuda else recipe.cpu_bf16
    return torch.autocast("cuda" if on_cuda else "cpu", torch.bfloat16, enabled=enabled)


def _memory_format(recipe: Recipe) -> torch.memory_format:
    """The layout of the model's weights and of every batch under `recipe`."""
    return torch.channels_last if recipe.channels_last else torch.contiguous_format


def _elapsed(start: float, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)  # kernels run asynchronously: wait before reading time
    return time.perf_counter() - start
