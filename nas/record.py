"""The trial record: every user attribute a trial of ours stores, and the facts derived from them.

The search writes these attributes one by one while a trial runs (so a pruned or interrupted
trial keeps what it had), and the dashboard, export and the search's report read them back.
This module is the one list of their names and types: writers go through `store`, readers
through `TrialRecord.from_trial`, which never raises on the attributes of old or foreign
studies (a missing or wrongly typed value reads as None).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import optuna
from optuna.trial import FrozenTrial, TrialState

# The objectives of a study whose "objectives" attribute is missing, in the search's order:
# values[0] is the validation accuracy, values[1] the MACs.
DEFAULT_OBJECTIVES = ("val_acc", "macs", "latency_ms")


@dataclass(frozen=True)
class TrialRecord:
    """The user attributes of one trial; None where the trial has none (or an unusable one).

    Field names are the storage keys, unchanged since the first studies, so old studies read.
    """

    # Set before training: what the network is and what it costs.
    arch: str | None = None  # the canonical Arch string
    macs: int | None = None  # multiply-accumulates of one forward pass (ptflops)
    params: int | None = None
    decoupling: float | None = None  # decoupling degree, 0 normal conv .. 1 depthwise
    budget: str | None = None  # the proxy budget, "epochs x examples"
    device: str | None = None
    landmark: str | None = None  # the landmark's name when the trial is one
    constraint: str | None = None  # why the trial was skipped untrained (e.g. --max-mmacs)
    latency_ms: float | None = None  # batch-1 forward latency, median
    # Written during and after training.
    val_acc_curve: tuple[float, ...] | None = None  # stored every epoch
    train_loss_curve: tuple[float, ...] | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    failure: str | None = None  # why the trial failed (or was interrupted)
    pruned_at_epoch: int | None = None  # the last epoch trained before early stopping
    pruned_by: str | None = None  # why the pruner stopped it (its rule and the numbers)
    duplicate_of: int | None = None  # the trial whose result this one reused
    # Written by the worker loop.
    worker: str | None = None  # host:pid of the process that ran it
    retry_of: int | None = None  # the trial of a lost worker that this one redoes
    retry_history: tuple[int, ...] | None = None  # every trial this one's parameters died in

    def __post_init__(self) -> None:
        # Lists given by writers become tuples, so a record stays hashable and comparable.
        for name in _SEQUENCES:
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def to_user_attrs(self) -> dict:
        """The attributes to store: the fields that are set, sequences as lists (JSON)."""
        attrs = {}
        for name in KEYS:
            value = getattr(self, name)
            if value is not None:
                attrs[name] = list(value) if name in _SEQUENCES else value
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping) -> TrialRecord:
        """The record of stored attributes; unknown keys are ignored, unusable values are None."""
        read = {}
        for key, value in attrs.items():
            reader = _READERS.get(key)
            if reader is not None and value is not None:
                read[key] = reader(value)
        # The readers already return each field's type, so the fields are filled in directly:
        # the dashboard reads every trial of a study at each change (thousands), and the
        # dataclass __init__ would double the cost of that.
        record = object.__new__(cls)
        record.__dict__.update(_EMPTY, **read)
        return record

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> TrialRecord:
        """The record of a stored trial (ours, an old version's, or another tool's)."""
        return cls.from_attrs(trial.user_attrs)

    @property
    def is_duplicate(self) -> bool:
        """The trial reused an earlier trial's result instead of training."""
        return self.duplicate_of is not None


KEYS = tuple(field.name for field in fields(TrialRecord))
_EMPTY = dict.fromkeys(KEYS)
_SEQUENCES = {"val_acc_curve", "train_loss_curve", "retry_history"}
# What every trial that counts toward --trials stores (trained, early-stopped or reused): the
# network, its cost and budget, the validation curve and the training time.
COUNTED_TRIAL_KEYS = frozenset(
    {"arch", "macs", "params", "decoupling", "budget", "device", "latency_ms"}
    | {"val_acc_curve", "train_seconds"}
)


def store(set_user_attr: Callable[[str, object], None], **values) -> None:
    """Write record fields now, one attribute each, through `set_user_attr(key, value)`.

    Args:
        set_user_attr: e.g. `trial.set_user_attr`, or a storage's setter bound to a trial id.
        **values: record fields (a misspelt name is a TypeError); None values are not written.
    """
    for key, value in TrialRecord(**values).to_user_attrs().items():
        set_user_attr(key, value)


def read_attr(trial: FrozenTrial, name: str):
    """One field of the trial's record, read as `TrialRecord.from_trial` reads it (but alone,
    for loops over every trial of a study)."""
    if name not in _READERS:
        raise KeyError(f"{name!r} is not a trial record field")
    return _read(trial.user_attrs, name)


def _read(attrs: Mapping, name: str):
    """One stored attribute as its field's type, or None when missing or unusable."""
    value = attrs.get(name)
    return None if value is None else _READERS[name](value)


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value) -> int | None:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _curve(value) -> tuple[float, ...] | None:
    # Curves keep NaN and infinity: a diverged run's loss is worth seeing.
    if not isinstance(value, (list, tuple)):
        return None
    # The set of types is the quick test for what JSON gives back; the second one is exact.
    if not set(map(type, value)) <= {float, int} and not all(map(_is_number, value)):
        return None
    return tuple(map(float, value))


def _integers(value) -> tuple[int, ...] | None:
    if not isinstance(value, (list, tuple)):
        return None
    numbers = tuple(map(_integer, value))
    return None if None in numbers else numbers


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(value) -> float | None:
    """`value` as a float when it is a finite number, else None."""
    if type(value) is float:  # the common case, first
        return value if math.isfinite(value) else None
    if not _is_number(value) or not math.isfinite(value):
        return None
    return float(value)


# How each field is read back: JSON brings lists for tuples, and old or foreign studies may
# hold anything; a reader returns None for what its field cannot hold.
_READERS = {
    **dict.fromkeys(("arch", "budget", "device", "landmark", "constraint"), _text),
    **dict.fromkeys(("failure", "worker", "pruned_by"), _text),
    **dict.fromkeys(("macs", "params", "pruned_at_epoch", "duplicate_of", "retry_of"), _integer),
    **dict.fromkeys(("decoupling", "latency_ms", "train_seconds", "eval_seconds"), finite),
    **dict.fromkeys(("val_acc_curve", "train_loss_curve"), _curve),
    "retry_history": _integers,
}
assert set(_READERS) == set(KEYS), "every field of TrialRecord needs a reader"


# --- derived facts ---------------------------------------------------------------------------


def is_skipped(trial: FrozenTrial) -> bool:
    """Pruned by a constraint before any training (it has no result and never counts)."""
    return trial.state == TrialState.PRUNED and read_attr(trial, "constraint") is not None


def counts_toward_target(trial: FrozenTrial) -> bool:
    """Finished trials that count for --trials: complete or early-stopped, not skipped."""
    if trial.state == TrialState.COMPLETE:
        return True
    return trial.state == TrialState.PRUNED and not is_skipped(trial)


def finished_count(study: optuna.Study) -> int:
    """How many trials of `study` count toward its --trials target."""
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return sum(counts_toward_target(t) for t in study.get_trials(deepcopy=False, states=states))


def objective_value(
    trial: FrozenTrial, name: str, objectives: Sequence[str] = DEFAULT_OBJECTIVES
) -> float | None:
    """The trial's `name` ("val_acc", "macs", "latency_ms"): finite, or None.

    The trial's values come first (matched to the study's `objectives` by position); the user
    attribute of the same name is the fallback, so pruned trials still have their costs.
    """
    values = trial.values
    if values and name in objectives:
        index = list(objectives).index(name)
        value = finite(values[index]) if index < len(values) else None
        if value is not None:
            return value
    return finite(_read(trial.user_attrs, name)) if name in _READERS else None


def trial_accuracy(
    trial: FrozenTrial, objectives: Sequence[str] = DEFAULT_OBJECTIVES
) -> float | None:
    """Validation accuracy of a finished trial (its first value), finite or None."""
    return objective_value(trial, "val_acc", objectives)


def trial_macs(trial: FrozenTrial, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> float | None:
    """MACs of a trial (its value, else the attribute written before training), or None."""
    return objective_value(trial, "macs", objectives)


# --- confirmation runs -----------------------------------------------------------------------

# The study attribute of one run: confirm:{trial}:{seed}, or final:{trial}:{seed}:{epochs}.
CONFIRM_PREFIX, FINAL_PREFIX = "confirm:", "final:"
RUNNING, DONE = "running", "done"


@dataclass(frozen=True)
class ConfirmationRun:
    """One more seed of a front or landmark trial (`nas.confirm`): at the study's own budget
    and recipe (a confirmation, scored on the validation split), or, with `epochs`, trained
    with the final recipe on the whole training split and scored on the test split (a final
    run). Stored as a study attribute, since a finished trial's cannot change; read back by
    `confirmation_runs`, which skips whatever is not such a record."""

    trial: int  # the trial it confirms
    seed: int
    arch: str
    state: str  # RUNNING (claimed, training) or DONE
    worker: str  # host:pid of the process that claimed it
    beat: float  # time.time() of its last sign of life: the claim, then each epoch
    val_acc_curve: tuple[float, ...] = ()
    train_seconds: float | None = None
    failure: str | None = None  # why the run failed (it has no accuracy then)
    # A final run's epochs; None for a confirmation. The curve is then test accuracy.
    epochs: int | None = None

    @property
    def key(self) -> str:
        return run_key(self.trial, self.seed, self.epochs)

    @property
    def accuracy(self) -> float | None:
        """The last epoch's accuracy (validation, or test for a final run) of a finished run
        that did not fail."""
        if self.state != DONE or self.failure is not None or not self.val_acc_curve:
            return None
        return finite(self.val_acc_curve[-1])

    def to_attr(self) -> dict:
        return {
            "trial": self.trial,
            "seed": self.seed,
            "arch": self.arch,
            "state": self.state,
            "worker": self.worker,
            "beat": self.beat,
            "val_acc_curve": list(self.val_acc_curve),
            "train_seconds": self.train_seconds,
            "failure": self.failure,
            "epochs": self.epochs,
        }

    @classmethod
    def from_attr(cls, value) -> ConfirmationRun | None:
        """The run a stored value holds, or None for anything else (never raises)."""
        if not isinstance(value, Mapping):
            return None
        trial, seed = _integer(value.get("trial")), _integer(value.get("seed"))
        arch, worker = _text(value.get("arch")), _text(value.get("worker"))
        state, beat = value.get("state"), finite(value.get("beat"))
        curve = _curve(value.get("val_acc_curve", []))
        if None in (trial, seed, arch, worker, beat, curve) or state not in (RUNNING, DONE):
            return None
        seconds, epochs = value.get("train_seconds"), value.get("epochs")
        if epochs is not None and ((epochs := _integer(epochs)) is None or epochs < 1):
            return None
        return cls(
            trial=trial,
            seed=seed,
            arch=arch,
            state=state,
            worker=worker,
            beat=beat,
            val_acc_curve=curve,
            train_seconds=None if seconds is None else finite(seconds),
            failure=_text(value.get("failure")),
            epochs=epochs,
        )


def run_key(trial: int, seed: int, epochs: int | None = None) -> str:
    """The study attribute of a confirmation (`epochs` None) or a final run."""
    if epochs is None:
        return f"{CONFIRM_PREFIX}{trial}:{seed}"
    return f"{FINAL_PREFIX}{trial}:{seed}:{epochs}"


def confirmation_runs(study_attrs: Mapping) -> dict[str, ConfirmationRun]:
    """The confirmation and final runs among a study's attributes, by key."""
    runs = {}
    for key, value in study_attrs.items():
        if key.startswith((CONFIRM_PREFIX, FINAL_PREFIX)):
            run = ConfirmationRun.from_attr(value)
            if run is not None and run.key == key:
                runs[key] = run
    return runs
