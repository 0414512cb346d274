"""`python -m nas.confirm`: a study's front and landmarks retrained with more seeds.

The search scores each network once, at one seed, and its front holds the best of many such
draws: part of a front point's lead is luck. This retrains the front's points (the knee and
its neighbours first, up to `--top`) and every landmark `--seeds` more times, at the study's
own budget and recipe and seeds seed+1 .. seed+K, and reports each one's mean with its 95% t
interval (nas.intervals). The search's own run is left out of the mean: it is the draw the
point was selected on, and would bias it upward.

Each run is stored in the study as it ends (a study attribute per run, nas.record
.ConfirmationRun: a finished trial's attributes cannot change), so an interrupted
confirmation resumes where it stopped, and any number of processes running the same command,
on one machine or many, split the runs: a run is claimed before it trains, and a claim with
no sign of life for STALE_S seconds is taken over. Two processes that claim one run at the
same instant may both train it; they store the same seed's result.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace

import optuna

from nas._arch import Arch
from nas._cli import (
    OneLineParser,
    add_device_option,
    add_storage_option,
    add_study_data_options,
    add_study_option,
    refusing_bad_input,
    whole_number_at_least,
)
from nas._report import fit_width, front_trials
from nas.intervals import LEVEL, MeanInterval, difference_of_values, mean_interval, verdict
from nas.pareto import knee_index, pareto_indices
from nas.record import (
    DONE,
    RUNNING,
    ConfirmationRun,
    TrialRecord,
    confirmation_key,
    confirmation_runs,
    trial_accuracy,
    trial_macs,
)
from nas.storage import load_study, open_storage

STALE_S = 600.0  # a claimed run silent this long (no epoch ended) is taken over
POLL_S = 5.0  # how often a process with nothing to claim looks for runs others left


@dataclass(frozen=True)
class Target:
    """A trial to confirm: a point of the front or a landmark."""

    trial: int
    arch: str
    macs: int
    search_acc: float  # the search's own run (one seed)
    label: str  # the landmark's name, or "knee" / "front"

    @property
    def is_landmark(self) -> bool:
        return self.label not in ("knee", "front")


def targets(study: optuna.Study, top: int) -> list[Target]:
    """The front's points, nearest the knee first (up to `top`), then every landmark: one
    target per architecture, the first trial that has it."""
    # A foreign or damaged trial has no network to retrain: it takes no place on the front.
    trials = [
        trial
        for trial in study.get_trials(deepcopy=False)
        if _readable(TrialRecord.from_trial(trial).arch)
    ]
    front = front_trials(trials)  # cheapest first
    chosen: list[Target] = []
    if front:
        knee = knee_index([(trial_accuracy(t), trial_macs(t)) for t in front])
        nearest_knee = sorted(range(len(front)), key=lambda i: (abs(i - knee), i))
        for index in nearest_knee[:top]:
            trial = front[index]
            landmark = TrialRecord.from_trial(trial).landmark
            chosen.append(_target(trial, landmark or ("knee" if index == knee else "front")))
    complete = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:
        landmark = TrialRecord.from_trial(trial).landmark
        if landmark is not None and trial_accuracy(trial) is not None:
            chosen.append(_target(trial, landmark))
    unique: dict[str, Target] = {}
    for target in chosen:
        unique.setdefault(target.arch, target)
    return list(unique.values())


def _readable(arch: str | None) -> bool:
    try:
        Arch.parse(arch)
    except (TypeError, ValueError):
        return False
    return True


def _target(trial, label: str) -> Target:
    arch = TrialRecord.from_trial(trial).arch
    return Target(trial.number, arch, int(trial_macs(trial)), trial_accuracy(trial), label)


def seeds_of(study: optuna.Study, count: int) -> list[int]:
    """The seeds of the confirmation runs: the `count` after the study's own."""
    base = study.user_attrs.get("seed", 0)
    base = base if isinstance(base, int) and not isinstance(base, bool) else 0
    return [base + offset for offset in range(1, count + 1)]


@dataclass(frozen=True)
class Confirmed:
    """A target and what its confirmation runs measured."""

    target: Target
    accuracies: tuple[float, ...]  # one per finished seed that did not fail
    interval: MeanInterval | None  # None before any run finished
    on_front: bool = False  # on the front of the confirmed means


def confirmed(study: optuna.Study, chosen: list[Target], seeds: list[int]) -> list[Confirmed]:
    """Each target's finished runs among `seeds`, their mean interval, and whether its mean is
    on the confirmed front (the accuracy-MACs Pareto front of the means)."""
    runs = confirmation_runs(study.user_attrs)
    rows = []
    for target in chosen:
        accuracies = tuple(
            run.val_acc
            for seed in seeds
            if (run := runs.get(confirmation_key(target.trial, seed))) is not None
            and run.val_acc is not None
        )
        interval = mean_interval(accuracies) if accuracies else None
        rows.append(Confirmed(target, accuracies, interval))
    measured = [i for i, row in enumerate(rows) if row.interval is not None]
    points = [(rows[i].interval.mean, float(rows[i].target.macs)) for i in measured]
    front = {measured[i] for i in pareto_indices(points)}
    return [replace(row, on_front=i in front) for i, row in enumerate(rows)]


def run_confirmation(
    study: optuna.Study,
    chosen: list[Target],
    seeds: list[int],
    train_one,
    *,
    stale_s: float = STALE_S,
    poll_s: float = POLL_S,
    out=None,
) -> int:
    """Train every (target, seed) run the study does not hold yet; the number this process
    trained.

    `train_one(target, seed, on_epoch)` trains one run and returns (curve, seconds, failure);
    `on_epoch(curve)` is this module's heartbeat. Waits while other processes train the last
    runs, and takes over those whose claim went silent for `stale_s`.
    """
    from nas._worker import worker_name  # it loads torch, which --help does without

    out = sys.stderr if out is None else out
    me = worker_name()
    jobs = [(target, seed) for target in chosen for seed in seeds]
    trained = 0
    start = time.monotonic()
    while True:
        runs = confirmation_runs(study.user_attrs)
        now = time.time()
        pending = [
            (target, seed)
            for target, seed in jobs
            if (run := runs.get(confirmation_key(target.trial, seed))) is None or run.state != DONE
        ]
        if not pending:
            return trained
        free = [
            (target, seed)
            for target, seed in pending
            if (run := runs.get(confirmation_key(target.trial, seed))) is None
            or now - run.beat > stale_s
        ]
        if not free:
            time.sleep(poll_s)  # others are on the last runs; one may die and need us
            continue
        target, seed = free[0]
        if not _claimed(study, target, seed, me):
            continue
        done = len(jobs) - len(pending)
        trained += 1
        curve, seconds, failure = _train_claimed(study, target, seed, me, train_one)
        result = "failed: " + failure if failure else f"acc {curve[-1]:.4f}"
        elapsed = (time.monotonic() - start) / 60
        print(
            f"[{done + 1}/{len(jobs)}] trial {target.trial} ({target.label}) seed {seed}: "
            f"{result} ({seconds:.0f} s, elapsed {elapsed:.1f} min)",
            file=out,
            flush=True,
        )


def _claimed(study: optuna.Study, target: Target, seed: int, me: str) -> bool:
    """Claim the run; True when the claim read back is ours (of two racing, the later)."""
    claim = ConfirmationRun(target.trial, seed, target.arch, RUNNING, me, time.time())
    study.set_user_attr(claim.key, claim.to_attr())
    stored = confirmation_runs(study.user_attrs).get(claim.key)
    return stored is not None and stored.worker == me and stored.state == RUNNING


def _train_claimed(study, target: Target, seed: int, me: str, train_one):
    base = ConfirmationRun(target.trial, seed, target.arch, RUNNING, me, time.time())

    def on_epoch(curve: list[float]) -> None:
        beat = replace(base, beat=time.time(), val_acc_curve=tuple(curve))
        study.set_user_attr(base.key, beat.to_attr())

    try:
        curve, seconds, failure = train_one(target, seed, on_epoch)
    except BaseException:
        # Ctrl-C or a crash: the claim goes stale at once, for this or another process.
        study.set_user_attr(base.key, replace(base, beat=0.0).to_attr())
        raise
    finished = replace(
        base,
        state=DONE,
        beat=time.time(),
        val_acc_curve=tuple(curve),
        train_seconds=round(seconds, 3),
        failure=failure,
    )
    study.set_user_attr(base.key, finished.to_attr())
    return curve, seconds, failure


def summary(rows: list[Confirmed], seeds: list[int]) -> str:
    """The confirmed points as text: mean and interval against the search's own run, which
    points the confirmed front keeps, and each searched point against its nearest landmark."""
    lines = [
        f"confirmed with seeds {', '.join(map(str, seeds))} (mean and {LEVEL:.0%} t interval "
        "over them; the search's own run is left out)",
        f"{'point':<18} {'trial':>5} {'MMACs':>8} {'search':>8} {'confirmed':>18} {'front':>5}",
    ]
    for row in sorted(rows, key=lambda r: r.target.macs):
        target = row.target
        if row.interval is None:
            mean = "no run yet"
        else:
            mean = f"{row.interval.mean:.2%} ± {_half(row.interval)} ({row.interval.seeds})"
        lines.append(
            f"{target.label[:18]:<18} {target.trial:>5} {target.macs / 1e6:>8.2f} "
            f"{target.search_acc:>8.2%} {mean:>18} {'yes' if row.on_front else '':>5}"
        )
    landmarks = [r for r in rows if r.target.is_landmark and len(r.accuracies) >= 1]
    for row in rows:
        if row.target.is_landmark or not row.accuracies or not landmarks:
            continue
        nearest = min(
            landmarks,
            key=lambda r: abs(math.log10(r.target.macs / max(1, row.target.macs))),
        )
        diff = difference_of_values(row.accuracies, nearest.accuracies)
        name = f"trial {row.target.trial} ({row.target.label})"
        lines.append(fit_width(verdict(name, nearest.target.label, diff)))
    return "\n".join(lines)


def _half(interval: MeanInterval) -> str:
    return "?" if interval.seeds < 2 else f"{interval.half_width:.2%}"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        module="nas.confirm", script="nas-confirm", description=__doc__.splitlines()[0]
    )
    add_storage_option(parser)
    add_study_option(parser, required=True)
    parser.add_argument(
        "--seeds",
        type=whole_number_at_least(1),
        default=3,
        help="more training runs of each point, seeded after the study's seed (default 3)",
    )
    parser.add_argument(
        "--top",
        type=whole_number_at_least(1),
        default=5,
        help="front points to confirm, the knee and its neighbours first (default 5); every "
        "landmark is confirmed besides",
    )
    add_study_data_options(parser)
    add_device_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return refusing_bad_input(_run, args)


def _run(args: argparse.Namespace) -> int:
    load_study(args.storage, args.study)  # refuses a missing storage or study, read-only
    study = optuna.load_study(study_name=args.study, storage=open_storage(args.storage))
    chosen = targets(study, args.top)
    if not chosen:
        raise ValueError(f"study {args.study!r} has no complete trial to confirm")
    seeds = seeds_of(study, args.seeds)
    train_one = _trainer(study, chosen[0], args)
    print(
        f"confirming {len(chosen)} networks of study {args.study!r} with {len(seeds)} seeds "
        f"each ({len(chosen) * len(seeds)} runs; those already stored are kept)",
        file=sys.stderr,
        flush=True,
    )
    run_confirmation(study, chosen, seeds, train_one)
    print(summary(confirmed(study, chosen, seeds), seeds))
    return 0


def _trainer(study: optuna.Study, first_target: Target, args: argparse.Namespace):
    """train_one(target, seed, on_epoch) at the study's own budget, batch and recipe."""
    # Training loads torch: imported once a run starts, not for --help.
    from nas._data_choice import load_study_data
    from nas.builder import build_model
    from nas.export import trial_network
    from nas.train import (
        BATCH_SIZE_BEFORE_MIN_STEPS,
        DEFAULT_RECIPE,
        Budget,
        resolve_device,
        train,
    )

    attrs = study.user_attrs
    first = study.get_trials(deepcopy=False)[first_target.trial]
    _, input_shape, num_classes = trial_network(study, first)
    device = resolve_device(args.device)
    data = load_study_data(
        study.study_name,
        attrs,
        device,
        dataset=args.dataset,
        data_dir=args.data_dir,
        input_shape=input_shape,
        num_classes=num_classes,
    )
    batch = attrs.get("batch_size")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        batch = BATCH_SIZE_BEFORE_MIN_STEPS  # a study from before batches were recorded
    recipe = replace(DEFAULT_RECIPE, batch_size=batch, min_steps=0)  # the study's batch, as is

    def train_one(target: Target, seed: int, on_epoch):
        trial = study.get_trials(deepcopy=False)[target.trial]
        budget = Budget.parse(TrialRecord.from_trial(trial).budget or attrs["budget"])
        model = build_model(Arch.parse(target.arch), data.in_channels, data.num_classes)
        curve: list[float] = []

        def each_epoch(epoch: int, accuracy: float) -> None:
            curve.append(accuracy)
            on_epoch(curve)

        result = train(
            model, data, budget, device=device, seed=seed, recipe=recipe, on_epoch=each_epoch
        )
        return result.val_acc_curve, result.train_seconds, result.failure

    return train_one


if __name__ == "__main__":
    sys.exit(main())
