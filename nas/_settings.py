"""One search run's settings: everything it needs, checked once from its command line.

`RunSettings.from_args` refuses bad input with a one-line ValueError before any storage, study
or data exists, so a refused command leaves nothing behind. The command line imports this
module to build its parser, so torch stays out of it until a run starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nas
import search_spaces
from nas._cli import device_and_budget
from nas._data_choice import DataChoice, study_data_attrs
from nas._machine import available_memory, usable_cores
from nas.pruning import PRUNERS
from nas.storage import check_search_url, in_memory, redact
from search_spaces import SearchSpace, landmarks_for

if TYPE_CHECKING:
    from nas.data import Dataset
    from nas.train import Budget

SAMPLERS = ("nsga2", "tpe", "random")
# --objectives -> the stored objective names: accuracy first (maximized), then costs.
OBJECTIVES = {
    "acc,macs": ("val_acc", "macs"),
    "acc,macs,latency": ("val_acc", "macs", "latency_ms"),
}
# Each stored objective's name as Optuna's tools show it: every study the search makes names
# its objectives with these (`Study.set_metric_names`), so optuna-dashboard and ours agree.
OBJECTIVE_LABELS = {"val_acc": "validation accuracy", "macs": "MACs", "latency_ms": "latency (ms)"}
DEFAULT_HEARTBEAT_S = 10
# A dead worker's trial waits 4 heartbeats before another worker retries it: beyond an hour
# that is most of a day (and the timer of a thread takes no more than about 292 years).
MAX_HEARTBEAT_S = 3600
WORKER_INDEX_OPTION = "--worker-index"  # internal: tells a started worker its index
# NumPy, under Optuna's samplers, takes seeds below 2**32; worker i samples with seed + i.
SEED_LIMIT = 2**32
# What one CPU worker may need at its peak: torch, the dataset and a network training (0.58 GB
# resident at most over the landmarks on Fashion-MNIST), with room to spare.
WORKER_MEMORY_BYTES = 1 << 30
# GPU workers: past 16 on one GPU nothing is measured (bench/results/gpu/: 16 workers finished
# 1.32x the trials of 8 in the same 210 s on an H200). Each takes a CUDA context, the dataset
# and a training network on the device; 2 GiB apiece is a margin, not a measurement.
MAX_GPU_WORKERS = 16
GPU_WORKER_MEMORY_BYTES = 2 << 30


@dataclass(frozen=True)
class RunSettings:
    """What one `python -m nas.search` process runs; built by `from_args`."""

    space: SearchSpace  # resolved once from --space; adapted to the images by `space_for`
    data: DataChoice  # --dataset, --data-dir, --image-size, --channels
    storage_url: str
    study_name: str  # --study, else SPACE-DATASET
    sampler: str
    objectives: tuple[str, ...]  # stored names, e.g. ("val_acc", "macs")
    trials: int  # finished trials the study should hold
    workers: int
    budget: Budget
    device: str  # resolved: "cpu", "cuda" or "cuda:N"
    seed: int
    max_mmacs: float | None  # skip, untrained, architectures above this many million MACs
    heartbeat_s: int | None  # None: no heartbeats (--heartbeat 0)
    pruner: str  # one of nas.pruning.PRUNERS
    landmarks: bool  # put the landmark architectures first
    # The command line as given: the --workers processes rerun it, the study records it.
    arguments: tuple[str, ...]
    worker_index: int | None = None  # set on the processes that --workers starts

    @classmethod
    def from_args(cls, args: argparse.Namespace, arguments: Sequence[str]) -> RunSettings:
        """The settings of the parsed command line `arguments`.

        Raises:
            ValueError: one line naming the first bad option and what it accepts.
        """
        space = search_spaces.get(args.space)
        data = DataChoice.from_args(args)
        if args.sampler not in SAMPLERS:
            raise ValueError(
                f"unknown sampler {args.sampler!r}: choose from {', '.join(SAMPLERS)}"
            )
        if args.pruner not in PRUNERS:
            raise ValueError(f"unknown pruner {args.pruner!r}: choose from {', '.join(PRUNERS)}")
        if args.objectives not in OBJECTIVES:
            raise ValueError(
                f"unknown objectives {args.objectives!r}: use {' or '.join(OBJECTIVES)}"
            )
        if args.trials < 1:
            raise ValueError(f"--trials must be at least 1, got {args.trials}")
        device, budget = device_and_budget(args)
        workers = worker_count(args.workers, device, args.storage, args.trials)
        highest_seed = SEED_LIMIT - workers
        if not 0 <= args.seed <= highest_seed:
            raise ValueError(
                f"--seed must be a whole number from 0 to {highest_seed}, got {args.seed}"
            )
        if args.max_mmacs is not None and not (
            math.isfinite(args.max_mmacs) and args.max_mmacs > 0
        ):
            raise ValueError(f"--max-mmacs must be a finite positive number, got {args.max_mmacs}")
        check_search_url(args.storage, workers)
        if args.max_mmacs is not None and args.worker_index is None:
            # Not in the processes --workers starts: their parent checked the same command.
            _check_some_architecture_fits(space, data, device, args.max_mmacs)
        if args.epochs is not None:
            budget = dataclasses.replace(budget, epochs=args.epochs)
        heartbeat = DEFAULT_HEARTBEAT_S if args.heartbeat is None else args.heartbeat
        if not 0 <= heartbeat <= MAX_HEARTBEAT_S:
            raise ValueError(
                f"--heartbeat must be whole seconds from 0 (off) to {MAX_HEARTBEAT_S}, "
                f"got {heartbeat}"
            )
        return cls(
            space=space,
            data=data,
            storage_url=args.storage,
            study_name=args.study or f"{space.name}-{data.label}",
            sampler=args.sampler,
            objectives=OBJECTIVES[args.objectives],
            trials=args.trials,
            workers=workers,
            budget=budget,
            device=device,
            seed=args.seed,
            max_mmacs=args.max_mmacs,
            heartbeat_s=heartbeat or None,
            pruner="none" if args.no_prune else args.pruner,
            landmarks=not args.no_landmarks,
            arguments=tuple(arguments),
            worker_index=args.worker_index,
        )

    @property
    def directions(self) -> list[str]:
        """Optuna's study directions: accuracy up, every cost down."""
        return ["maximize"] + ["minimize"] * (len(self.objectives) - 1)

    @property
    def command(self) -> str:
        """The command line, as the study and exported files record it: never with a password."""
        return "python -m nas.search " + shlex.join(redact(arg) for arg in self.arguments)

    def space_for(self, input_shape: tuple[int, int, int]) -> SearchSpace:
        """The space as it runs on images of `input_shape`: its stem downsamples large ones."""
        return self.space.for_input(input_shape)

    def batch_size(self, data: Dataset) -> int:
        """The batch every trial trains at: the recipe's for this budget on this training split."""
        # Loaded with the data, so torch is there already; see the module docstring.
        from nas.train import DEFAULT_RECIPE

        return DEFAULT_RECIPE.batch_size_for(self.budget, len(data.train_x))

    def study_attrs(self, data: Dataset) -> dict:
        """The attributes a study of this run stores, and that a rerun checks it against."""
        return {
            "space": self.space.name,
            **study_data_attrs(self.data, data),
            "objectives": list(self.objectives),
            "budget": str(self.budget),
            "batch_size": self.batch_size(data),
            "device": self.device,
            "input_shape": list(data.input_shape),
            "num_classes": data.num_classes,
            "seed": self.seed,
            "sampler": self.sampler,
            "command": self.command,
            "version": nas.__version__,
        }

    def landmark_trials(self, input_shape: tuple[int, int, int]) -> list[tuple[dict, dict]]:
        """(params, trial attrs) of the landmarks this space reaches on images of
        `input_shape`, to run first.

        No more than --trials of them: a waiting trial beyond the target would never run.
        """
        if not self.landmarks:
            return []
        space = self.space_for(input_shape)
        reachable = [
            (params, {"landmark": name})
            for name, arch in landmarks_for(input_shape).items()
            if (params := space.params_for(arch)) is not None
        ]
        return reachable[: self.trials]


def worker_count(option: str | int, device: str, storage_url: str, trials: int) -> int:
    """The worker processes --workers asks for: a whole number, or "auto".

    "auto" is one single-threaded worker per core this process may run on (fewer where the
    free memory or the trials would not keep them busy), as two 1-thread processes ran 1.27x the
    trials of one process of 2 threads (bench/results/scale_fashion_mnist.md). On a GPU, too,
    one per core, up to 16 and as many as its memory holds: networks this small leave a GPU
    idle between kernel launches, and 8 trainers on an H200 trained 7.5x the images of one
    (bench/results/gpu/gpu.md). One with an in-memory database, which workers cannot share.

    Raises:
        ValueError: neither "auto" nor a whole number of at least 1.
    """
    if str(option).strip().lower() != "auto":
        try:
            count = int(option)
        except ValueError:
            raise ValueError(f"--workers must be auto or a whole number, got {option!r}") from None
        if count < 1:
            raise ValueError(f"--workers must be at least 1, got {count}")
        return count
    if in_memory(storage_url):
        return 1
    limits = [usable_cores(), available_memory() // WORKER_MEMORY_BYTES, trials]
    if device != "cpu":
        limits += [MAX_GPU_WORKERS, gpu_memory(device) // GPU_WORKER_MEMORY_BYTES]
    return max(1, min(limits))


def gpu_memory(device: str) -> int:
    """Bytes of memory on a CUDA device ("cuda" or "cuda:N"), as its properties give them."""
    import torch

    index = int(device.partition(":")[2] or 0)
    return torch.cuda.get_device_properties(index).total_memory


def _check_some_architecture_fits(
    space: SearchSpace, data: DataChoice, device: str, max_mmacs: float
) -> None:
    """Refuse a --max-mmacs below the space's cheapest network: every trial would be skipped.

    Raises:
        ValueError: one line giving the cheapest network's MMACs.
    """
    # Torch is loaded by now (device_and_budget); see the module docstring.
    from nas._cheapest import cheapest_architecture
    from nas._objective import exceeds_limit
    from nas.cost import count_cost

    input_shape, num_classes = data.shape(device)
    cheapest = cheapest_architecture(space.for_input(input_shape), input_shape, num_classes)
    if cheapest is None:
        return  # a space of another layout: the search stops after skipping many in a row
    macs = count_cost(cheapest, input_shape, num_classes).macs
    if exceeds_limit(macs, max_mmacs):
        least = f"{macs / 1e6:.6f}".rstrip("0").rstrip(".")
        raise ValueError(
            f"--max-mmacs {max_mmacs:g} fits no architecture of space {space.name}: its "
            f"cheapest on {data.label} needs {least} MMACs; give --max-mmacs {least} or more"
        )


def metric_names(objectives: Sequence[str]) -> list[str] | None:
    """The metric names of a study with these stored objectives (None if one is not ours)."""
    if not objectives or any(name not in OBJECTIVE_LABELS for name in objectives):
        return None
    return [OBJECTIVE_LABELS[name] for name in objectives]


def resume_notes(study_name: str, stored: dict, wanted: dict) -> list[str]:
    """Where a study being continued was started differently from this run, one note a line.

    Args:
        study_name: the study's name, for the notes.
        stored: the study's stored attributes.
        wanted: this run's, from `RunSettings.study_attrs`.
    """
    from nas.train import BATCH_SIZE_BEFORE_MIN_STEPS  # torch is loaded with the data by now

    notes = []
    if stored.get("budget") not in (None, wanted["budget"]):
        notes.append(
            f"note: study {study_name!r} was started with budget {stored['budget']}, "
            f"continuing with {wanted['budget']}"
        )
    # Only a study this tool recorded (it stores its budget) trained at the batch of its day.
    stored_batch = stored.get("batch_size", BATCH_SIZE_BEFORE_MIN_STEPS)
    if "budget" in stored and stored_batch != wanted["batch_size"]:
        notes.append(
            f"note: study {study_name!r} trained its trials at batch {stored_batch}, continuing "
            f"at {wanted['batch_size']}: accuracies before and after are not comparable; "
            "start a new --study to keep one recipe"
        )
    return notes
