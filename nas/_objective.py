"""One trial: sample -> cost -> constraint / duplicate check -> proxy training -> stored result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import optuna
import torch
from optuna.trial import TrialState

from nas._arch import Arch
from nas._decoupling import decoupling_degree
from nas.builder import build_model
from nas.cost import count_cost, known_cost, measure_latency
from nas.data import Dataset
from nas.pruning import DominancePruner, PeerCurve, RungPruner
from nas.record import TrialRecord, is_skipped, read_attr, store
from nas.train import Budget, release_device_memory, train


def exceeds_limit(macs: int, max_mmacs: float) -> bool:
    """Whether a network of `macs` MACs is over --max-mmacs (and so skipped, untrained)."""
    # Compared in MMACs: a limit typed as a network's printed MMACs (an exact decimal) is then
    # the same float as that network's, so the network fits; `max_mmacs * 1e6` may round below.
    return macs / 1e6 > max_mmacs


# How a trial's `failure` starts when its device ran out of memory.
_OUT_OF_MEMORY = "out of memory"


class TrialFailed(Exception):
    """A trial that could not produce a result; the reason, also stored as `failure`, is its
    message."""


class ConstraintSkipped(optuna.TrialPruned):
    """A trial skipped untrained for --max-mmacs; the reason, also stored as `constraint`, is
    its message."""


@dataclass
class Objective:
    """The function Optuna calls for each trial; holds everything fixed for the search."""

    space: object  # a search_spaces.SearchSpace
    data: Dataset
    budget: Budget
    device: str
    seed: int
    objectives: tuple[str, ...]
    pruner: DominancePruner | RungPruner
    max_mmacs: float | None = None
    landmark_names: dict[str, str] | None = None  # arch string -> landmark name
    # Called with (trial number, epochs trained) after each epoch: the search's progress bar.
    on_epoch_end: Callable[[int, int], None] | None = None
    # Seconds spent in this process outside training/evaluation, per trial (for benchmarks).
    overhead_seconds: float = 0.0
    work_seconds: float = 0.0

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        """The trial's values. An interruption is recorded by the worker loop (nas._worker),
        which also redoes the trial."""
        start = time.perf_counter()
        try:
            try:
                return self._run(trial)
            except RuntimeError as error:  # torch.cuda.OutOfMemoryError included
                reason = _failure_reason(error, self.device)
            # Raised here, once the except block is left: an exception raised inside it would
            # hold the error as its __context__, and the error's traceback holds the frames of
            # the trial (its model, batches, activations), keeping their device memory reserved.
            if reason.startswith(_OUT_OF_MEMORY):
                release_device_memory(self.device)
            raise _failed(trial, reason)
        finally:
            self.overhead_seconds += time.perf_counter() - start

    def _run(self, trial: optuna.Trial) -> tuple[float, ...]:
        arch: Arch = self.space.sample(trial)
        text = str(arch)
        # At most one build: a network whose cost is known is built only if it is trained (not
        # when skipped or reused), and the one built to count it is timed and trained too.
        model = None
        cost = known_cost(arch, self.data.input_shape, self.data.num_classes)
        if cost is None:
            model = build_model(arch, self.data.in_channels, self.data.num_classes)
            cost = count_cost(arch, self.data.input_shape, self.data.num_classes, model=model)
        landmark = (self.landmark_names or {}).get(text)
        store(
            trial.set_user_attr,
            arch=text,
            macs=cost.macs,
            params=cost.params,
            decoupling=round(decoupling_degree(arch), 4),
            budget=str(self.budget),
            device=self.device,
            landmark=landmark,
        )

        if self.max_mmacs is not None and exceeds_limit(cost.macs, self.max_mmacs):
            limit = f"{cost.macs / 1e6:.2f} MMACs > --max-mmacs {self.max_mmacs:g}"
            store(trial.set_user_attr, constraint=limit)
            raise ConstraintSkipped(limit)

        finished = trial.study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)
        )
        previous = _finished_with_arch(finished, text)
        if previous is not None:
            return self._reuse(trial, previous)

        # Batch-1 forward latency on one CPU thread (as on a phone core; several threads on a
        # busy machine stall each other): a few runs suffice for a median, and the measurement
        # must stay a small share of a trial (bench/search_overhead.py). Measured on the CPU
        # whatever device trains: so it means the same in every study and in one whose workers
        # mix CPUs and GPUs; on a GPU, batch-1 latency of networks this small measures kernel
        # launches and the other workers sharing the GPU, not the network.
        if model is None:
            model = build_model(arch, self.data.in_channels, self.data.num_classes)
        latency = measure_latency(
            model,  # still on the CPU, where it was built
            self.data.input_shape,
            device="cpu",
            batch_sizes=(1,),
            warmup=2,
            repeats=7,
            cpu_threads=1,
        )[1]
        store(trial.set_user_attr, latency_ms=round(latency, 4))

        peers = _peers(finished)
        total_epochs = self.budget.epochs
        curve: list[float] = []

        def on_epoch(epoch: int, accuracy: float) -> bool:
            curve.append(accuracy)
            # Stored every epoch so a pruned or interrupted trial keeps its curve.
            store(trial.set_user_attr, val_acc_curve=curve)
            if self.on_epoch_end is not None:
                self.on_epoch_end(trial.number, len(curve))
            # A landmark trains to the end: it is the reference every front is read against.
            if landmark is not None or not self.pruner.decides_at(epoch, total_epochs):
                return False
            # A rung is read when the trial reaches it: the trials that reached it meanwhile,
            # in any worker on any machine, are in the storage with their curves.
            now = _peers(_others_live(trial)) if self.pruner.reads_running else peers
            reason = self.pruner.stop_reason(epoch, accuracy, cost.macs, now, total_epochs)
            if reason is None:
                return False
            store(trial.set_user_attr, pruned_by=reason)
            return True

        train_start = time.perf_counter()
        result = train(
            model, self.data, self.budget, device=self.device, seed=self.seed, on_epoch=on_epoch
        )
        elapsed = time.perf_counter() - train_start
        self.work_seconds += elapsed
        self.overhead_seconds -= elapsed
        del model
        store(
            trial.set_user_attr,
            val_acc_curve=result.val_acc_curve,
            train_loss_curve=[round(x, 5) for x in result.train_loss_curve],
            train_seconds=round(result.train_seconds, 3),
            eval_seconds=round(result.eval_seconds, 3),
        )
        if result.failure:
            raise _failed(trial, result.failure)
        if result.stopped_early:
            store(trial.set_user_attr, pruned_at_epoch=len(result.val_acc_curve))
            raise optuna.TrialPruned()
        return self._values(result.val_acc, cost.macs, latency)

    def _values(self, accuracy: float, macs: int, latency: float) -> tuple[float, ...]:
        by_name = {"val_acc": accuracy, "macs": float(macs), "latency_ms": latency}
        return tuple(by_name[name] for name in self.objectives)

    def _reuse(self, trial: optuna.Trial, previous) -> tuple[float, ...]:
        """A duplicate architecture takes the earlier result instead of training again."""
        original = TrialRecord.from_trial(previous)
        source = original.duplicate_of if original.is_duplicate else previous.number
        store(
            trial.set_user_attr,
            duplicate_of=source,
            val_acc_curve=original.val_acc_curve,
            train_loss_curve=original.train_loss_curve,
            latency_ms=original.latency_ms,
            pruned_at_epoch=original.pruned_at_epoch,
            pruned_by=original.pruned_by,
            train_seconds=0.0,
        )
        if previous.state == TrialState.PRUNED:
            raise optuna.TrialPruned()
        accuracy = previous.values[0]
        latency = original.latency_ms if original.latency_ms is not None else 0.0
        return self._values(accuracy, original.macs, latency)


def _failure_reason(error: RuntimeError, device: str) -> str:
    """The `failure` a trial stores for an error of its training on `device`."""
    if isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower():
        return f"{_OUT_OF_MEMORY} on {device}"
    first_line = (str(error).splitlines() or [type(error).__name__])[0]
    return f"error: {first_line[:300]}"


def _failed(trial: optuna.Trial, reason: str) -> TrialFailed:
    """Store why the trial failed; the error to raise for it."""
    store(trial.set_user_attr, failure=reason)
    return TrialFailed(reason)


def _finished_with_arch(finished, text: str):
    """An earlier finished trial of the same architecture (skipped ones never trained)."""
    for other in finished:
        if read_attr(other, "arch") == text and not is_skipped(other):
            return other
    return None


def _others_live(trial: optuna.Trial) -> list:
    """The study's other trials that have trained or are training."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    others = trial.study.get_trials(deepcopy=False, states=states)
    return [other for other in others if other.number != trial.number]


def _peers(finished) -> list[PeerCurve]:
    """The trials the pruner compares against, as (MACs, curve); duplicates would count twice."""
    peers = []
    for other in finished:
        curve, macs = read_attr(other, "val_acc_curve"), read_attr(other, "macs")
        if curve and macs is not None and read_attr(other, "duplicate_of") is None:
            peers.append(PeerCurve(macs, curve))
    return peers
