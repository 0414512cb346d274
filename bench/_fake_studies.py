"""Fake studies that follow the search's storage schema, for the dashboard's benchmark and tests.

No training and no torch: costs are counted analytically from the architecture (the convs of the
builder, close to ptflops' count), accuracies are a smooth function of cost plus seeded noise.
The mix of states is fixed by the trial index, so tests can count on it.
"""

from __future__ import annotations

import datetime as dt
import math
import random

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import event

import search_spaces
from nas import Arch
from nas._channels import factorized_kernels, resolve_groups, spatial_conv_shapes
from nas._decoupling import decoupling_degree

INPUT_SHAPE = (1, 28, 28)
EPOCHS = 6
START = dt.datetime(2025, 1, 6, 9, 0, 0)
# Trial index mod 20 -> what happens to it (everything else completes).
PRUNED_SLOTS = {3, 11}
SKIPPED_SLOTS = {7}
FAILED_SLOTS = {15}
DUPLICATE_SLOTS = {18}


def approx_cost(arch: Arch, input_shape=INPUT_SHAPE, num_classes: int = 10) -> tuple[int, int]:
    """(MACs, params) of the builder's convolutions and head, counted by hand."""
    channels, height, width = input_shape
    total_macs = total_params = 0

    def conv(cin: int, cout: int, kernel: int, groups: int, pixels: int) -> None:
        nonlocal total_macs, total_params
        weights = kernel * kernel * cin * cout // groups
        total_macs += weights * pixels
        total_params += weights + 2 * cout  # + BatchNorm

    conv(channels, arch.stem, 3, 1, height * width)
    for stage, stage_in in zip(arch.stages, arch.stage_in_channels()):
        for index, in_chs in enumerate(stage.block_in_channels(stage_in)):
            pixels_in = height * width
            if index == 0 and stage.stride == 2:
                height, width = (height + 1) // 2, (width + 1) // 2
            pixels = height * width
            widths = stage.branch_widths  # the paper splits' widths, or equal shares
            for branch, out_chs in zip(stage.branches, widths):
                if branch in ("1", "pool", "avgpool"):
                    conv(in_chs, out_chs, 1, 1, pixels)
                    continue
                if stage.pointwise in ("before", "both"):
                    conv(in_chs, out_chs, 1, 1, pixels_in)
                kernels = factorized_kernels(int(branch), stage.factorize)
                shapes = spatial_conv_shapes(
                    in_chs, out_chs, branch, stage.pointwise, stage.factorize
                )
                for kernel, (cin, cout) in zip(kernels, shapes):
                    conv(cin, cout, kernel, resolve_groups(cin, cout, stage.segments), pixels)
                if stage.pointwise in ("after", "both"):
                    conv(shapes[-1][1], out_chs, 1, 1, pixels)
            if stage.residual and (in_chs != stage.width or (index == 0 and stage.stride > 1)):
                conv(in_chs, stage.width, 1, 1, pixels)
    total_macs += arch.out_channels * num_classes
    total_params += arch.out_channels * num_classes + num_classes
    return total_macs, total_params


def fake_accuracy(macs: int, decoupling: float, rng: random.Random) -> float:
    """More MACs help with diminishing returns; a partly decoupled block helps a little."""
    accuracy = 0.62 + 0.075 * math.log10(macs / 1e5) - 0.04 * abs(decoupling - 0.7)
    return min(0.97, max(0.2, accuracy + rng.gauss(0.0, 0.012)))


def _curve(final: float, epochs: int) -> list[float]:
    return [round(final * (1 - 0.55 * 0.5**epoch), 4) for epoch in range(epochs)]


def make_trials(
    count: int, seed: int = 0, latency: bool = False, space: str = "inception_to_xception"
) -> list[FrozenTrial]:
    """The seven landmarks, then `count` sampled trials with a fixed mix of states."""
    search_space = search_spaces.get(space)
    distributions = {
        name: CategoricalDistribution(list(values))
        for name, values in search_space.choices.items()
        if len(values) > 1
    }
    rng = random.Random(seed)
    plan: list[tuple[dict, str]] = []
    for name, arch in search_spaces.LANDMARKS.items():
        params = search_space.params_for(arch)
        if params is not None:
            plan.append((params, name))
    for _ in range(count):
        plan.append(
            ({name: rng.choice(values) for name, values in search_space.choices.items()}, "")
        )

    trials, done = [], []
    clock = START
    for index, (params, landmark) in enumerate(plan):
        arch = search_space.arch_from_params(params)
        macs, n_params = approx_cost(arch)
        degree = decoupling_degree(arch)
        accuracy = fake_accuracy(macs, degree, rng)
        slot = (index - len(search_spaces.LANDMARKS)) % 20 if not landmark else -1
        attrs = {"arch": str(arch), "macs": macs, "params": n_params, "decoupling": degree}
        attrs.update(device="cpu", budget="6x12000")
        seconds = 20.0 + macs / 2e5
        state, values = TrialState.COMPLETE, [accuracy, float(macs)]
        if latency:
            attrs["latency_ms"] = round(0.2 + macs / 4e6 + rng.random() * 0.05, 4)
            values.append(attrs["latency_ms"])
        if landmark:
            attrs["landmark"] = landmark
        if slot in PRUNED_SLOTS:
            state, values = TrialState.PRUNED, None
            attrs.update(pruned_at_epoch=2, val_acc_curve=_curve(accuracy - 0.05, 3))
            seconds /= 2
        elif slot in SKIPPED_SLOTS:
            state, values, seconds = TrialState.PRUNED, None, 0.0
            attrs["constraint"] = f"macs {macs} > limit 1000"
        elif slot in FAILED_SLOTS:
            state, values = TrialState.FAIL, None
            attrs["failure"] = "RuntimeError: out of memory"
        elif slot in DUPLICATE_SLOTS and done:
            original = done[rng.randrange(len(done))]
            attrs.update(
                {k: original.user_attrs[k] for k in ("arch", "macs", "params", "decoupling")}
            )
            attrs["duplicate_of"] = original.number
            values, seconds = list(original.values), 0.0
            params = original.params
        if state == TrialState.COMPLETE and "duplicate_of" not in attrs:
            attrs["val_acc_curve"] = _curve(accuracy, EPOCHS)[:-1] + [accuracy]
        if "val_acc_curve" in attrs:
            attrs["train_loss_curve"] = [
                round(2.3 * 0.6**e, 4) for e in range(len(attrs["val_acc_curve"]))
            ]
        attrs["train_seconds"] = round(seconds, 2)
        # Fixed knobs are not suggested, so they are not trial params; failed trials keep none.
        suggested = {k: v for k, v in params.items() if k in distributions}
        if state == TrialState.FAIL:
            suggested = {}
        trial = optuna.trial.create_trial(
            state=state,
            values=values,
            params=suggested,
            distributions={k: distributions[k] for k in suggested},
            user_attrs=attrs,
        )
        trial.number = index
        trial.datetime_start = clock
        clock += dt.timedelta(seconds=seconds + 1.0)
        trial.datetime_complete = clock
        trials.append(trial)
        if state == TrialState.COMPLETE:
            done.append(trial)
    return trials


def study_attrs(latency: bool = False, space: str = "inception_to_xception") -> dict:
    objectives = ["val_acc", "macs"] + (["latency_ms"] if latency else [])
    return {
        "space": space,
        "dataset": "fashion_mnist",
        "budget": "6x12000",
        "version": "0.1.0",
        "objectives": objectives,
        "input_shape": list(INPUT_SHAPE),
        "num_classes": 10,
        "command": f"python -m nas.search --space {space} --trials 200",
        "device": "cpu",
    }


def fast_storage(url: str) -> RDBStorage:
    """A writable storage that skips fsync: test files need no durability."""
    storage = RDBStorage(url)

    @event.listens_for(storage.engine, "connect")
    def _no_sync(connection, _record) -> None:
        connection.execute("PRAGMA synchronous=OFF")

    storage.engine.dispose()
    return storage


def write_study(
    url: str,
    name: str,
    trials: list[FrozenTrial],
    latency: bool = False,
    running: int = 0,
    space: str = "inception_to_xception",
) -> list[FrozenTrial]:
    """Write `trials` as a study the search would have stored, then `running` RUNNING trials.

    Args:
        url: the storage URL.
        name: the study name.
        trials: the finished trials, as `make_trials` makes them.
        latency: whether the study has the latency objective (a third one).
        running: trials still running, added last.
        space: the search space named in the study's attributes.

    Returns:
        The trials as stored.
    """
    storage = fast_storage(url)
    directions = ["maximize", "minimize"] + (["minimize"] if latency else [])
    study = optuna.create_study(storage=storage, study_name=name, directions=directions)
    for key, value in study_attrs(latency, space).items():
        study.set_user_attr(key, value)
    study.add_trials(trials)
    for _ in range(running):
        study.add_trial(
            optuna.trial.create_trial(state=TrialState.RUNNING, params={}, distributions={})
        )
    storage.engine.dispose()
    return study.get_trials()


def build_study(
    url: str,
    name: str = "demo",
    count: int = 30,
    seed: int = 0,
    latency: bool = False,
    running: int = 0,
    space: str = "inception_to_xception",
) -> list[FrozenTrial]:
    """Write a study as the search would; returns the trials written (RUNNING ones last)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = make_trials(count, seed, latency, space)
    return write_study(url, name, trials, latency, running, space)


def add_complete_trials(url: str, name: str, count: int, seed: int = 99) -> None:
    """Append finished trials to a stored study, as a running search would."""
    storage = fast_storage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    first = len(study.get_trials(deepcopy=False))
    latency = len(study.directions) == 3
    fresh = make_trials(count + 20, seed, latency)[len(search_spaces.LANDMARKS) :]
    fresh = [trial for trial in fresh if trial.state == TrialState.COMPLETE]
    for offset, trial in enumerate(fresh[:count]):
        trial.user_attrs.pop("landmark", None)
        trial.number = first + offset
        study.add_trial(trial)
    storage.engine.dispose()
