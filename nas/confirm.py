"""`python -m nas.confirm`: a study's front and landmarks retrained with more seeds.

The search scores each network once, at one seed, and its front holds the best of many such
draws: part of a front point's lead is luck. This retrains the front's points (the knee and
its neighbours first, up to `--top`) and every landmark `--seeds` more times, at the study's
own budget and recipe and seeds seed+1 .. seed+K, and reports each one's mean with its 95% t
interval (nas.intervals). The search's own run is left out of the mean: it is the draw the
point was selected on, and would bias it upward.

With `--final`, the same networks and seeds are then trained with the final recipe on the
whole training split (training and validation images) and scored on the test split, the only
place anything touches it: what the chosen network reaches, and whether the proxy's order
holds there.

Each run is stored in the study as it ends (a study attribute per run, nas.record
.ConfirmationRun: a finished trial's attributes cannot change), so an interrupted
confirmation resumes where it stopped, and any number of processes running the same command,
on one machine or many (`--workers` starts them here), split the runs: a run is claimed before
it trains, and a claim with no sign of life for STALE_S seconds is taken over. Two processes
that claim one run at the same instant may both train it; they store the same seed's result.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

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
from nas._report import clock_text, eta_seconds, fit_width, front_trials
from nas._settings import WORKER_INDEX_OPTION, worker_count
from nas._stops import EXIT_INTERRUPTED
from nas.intervals import LEVEL, MeanInterval, difference_of_values, mean_interval, verdict
from nas.pareto import knee_index, pareto_indices
from nas.record import (
    DONE,
    RUNNING,
    ConfirmationRun,
    TrialRecord,
    confirmation_runs,
    run_key,
    trial_accuracy,
    trial_macs,
)
from nas.storage import load_study, open_storage, redact

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
    epochs: int = 0  # of the trial's budget (0: not known)

    @property
    def is_landmark(self) -> bool:
        return self.label not in ("knee", "front")


def targets(study: optuna.Study, top: int, landmarks_within: float | None = None) -> list[Target]:
    """The front's points, nearest the knee first (up to `top`), then every landmark (those
    within `landmarks_within` times the knee's MACs either way, where given): one target per
    architecture, the first trial that has it."""
    trials = _retrainable(study.get_trials(deepcopy=False))
    budget = study.user_attrs.get("budget")
    front, knee = _front_and_knee(trials)
    chosen: list[Target] = []
    knee_macs = None
    if front:
        knee_macs = trial_macs(front[knee])
        nearest_knee = sorted(range(len(front)), key=lambda i: (abs(i - knee), i))
        for index in nearest_knee[:top]:
            trial = front[index]
            landmark = TrialRecord.from_trial(trial).landmark
            label = landmark or ("knee" if index == knee else "front")
            chosen.append(_target(trial, label, budget))
    complete = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:
        landmark = TrialRecord.from_trial(trial).landmark
        if landmark is None or trial_accuracy(trial) is None:
            continue
        if landmarks_within is not None and knee_macs:
            ratio = trial_macs(trial) / knee_macs
            if not 1 / landmarks_within <= ratio <= landmarks_within:
                continue
        chosen.append(_target(trial, landmark, budget))
    unique: dict[str, Target] = {}
    for target in chosen:
        unique.setdefault(target.arch, target)
    return list(unique.values())


def stored_targets(trials: Sequence, study_attrs: Mapping) -> list[Target]:
    """The targets of every run stored in a study's attributes, in trial order, labelled as
    `targets` labels them (the knee of the study's front as it stands now): what a reader
    that did not choose them (the dashboard) shows."""
    numbers = {run.trial for run in confirmation_runs(study_attrs).values()}
    if not numbers:
        return []
    readable = _retrainable(trials)
    front, knee = _front_and_knee(readable)
    knee_number = front[knee].number if front else None
    chosen = []
    for trial in readable:
        if trial.number not in numbers or None in (trial_macs(trial), trial_accuracy(trial)):
            continue
        landmark = TrialRecord.from_trial(trial).landmark
        label = landmark or ("knee" if trial.number == knee_number else "front")
        chosen.append(_target(trial, label, study_attrs.get("budget")))
    return chosen


def _retrainable(trials: Sequence) -> list:
    # A foreign or damaged trial has no network to retrain: it takes no place on the front.
    return [trial for trial in trials if _readable(TrialRecord.from_trial(trial).arch)]


def _front_and_knee(trials: Sequence) -> tuple[list, int]:
    """The accuracy-MACs front of `trials` (cheapest first) and the index of its knee."""
    front = front_trials(trials)
    if not front:
        return [], 0
    return front, knee_index([(trial_accuracy(t), trial_macs(t)) for t in front])


def _readable(arch: str | None) -> bool:
    try:
        Arch.parse(arch)
    except (TypeError, ValueError):
        return False
    return True


def _target(trial, label: str, study_budget) -> Target:
    record = TrialRecord.from_trial(trial)
    return Target(
        trial.number,
        record.arch,
        int(trial_macs(trial)),
        trial_accuracy(trial),
        label,
        _budget_epochs(record.budget or study_budget),
    )


def _budget_epochs(budget) -> int:
    from nas.train import Budget  # torch, which --help does without

    try:
        return Budget.parse(str(budget)).epochs
    except ValueError:
        return 0  # a damaged record: the run's progress shows no total


def seeds_of(study: optuna.Study, count: int) -> list[int]:
    """The seeds of the confirmation runs: the `count` after the study's own."""
    base = study.user_attrs.get("seed", 0)
    base = base if isinstance(base, int) and not isinstance(base, bool) else 0
    return [base + offset for offset in range(1, count + 1)]


@dataclass(frozen=True)
class Confirmed:
    """A target and what its runs of one kind (confirmations, or final runs) measured."""

    target: Target
    accuracies: tuple[float, ...]  # one per finished seed that did not fail
    interval: MeanInterval | None  # None before any run finished
    on_front: bool = False  # on the accuracy-MACs front of the means

    @property
    def spread(self) -> float:
        """The sample standard deviation over the seeds (0 for one)."""
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def confirmed(
    study_attrs: Mapping,
    chosen: list[Target],
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
) -> list[Confirmed]:
    """Each target's finished runs among `seeds` (every stored seed when None) stored in a
    study's attributes (confirmations, or the final runs of `epochs`), their mean interval,
    and whether its mean is on the front of the means."""
    runs = confirmation_runs(study_attrs)
    rows = []
    for target in chosen:
        if seeds is None:
            of_target = [
                run for run in runs.values() if run.trial == target.trial and run.epochs == epochs
            ]
            found = sorted(of_target, key=lambda run: run.seed)
        else:
            found = [runs.get(run_key(target.trial, seed, epochs)) for seed in seeds]
        accuracies = tuple(
            run.accuracy for run in found if run is not None and run.accuracy is not None
        )
        interval = mean_interval(accuracies) if accuracies else None
        rows.append(Confirmed(target, accuracies, interval))
    measured = [i for i, row in enumerate(rows) if row.interval is not None]
    points = [(rows[i].interval.mean, float(rows[i].target.macs)) for i in measured]
    front = {measured[i] for i in pareto_indices(points)}
    return [replace(row, on_front=i in front) for i, row in enumerate(rows)]


def pick_accuracies(study: optuna.Study) -> tuple[dict[int, float], str] | None:
    """What `nas.export --pick` judges trials by, where more than the search's one run is
    stored: the mean final test accuracy of each trial with final runs (of the epochs most of
    them trained, the longer on a tie), else each confirmed trial's mean validation accuracy
    over its confirmation seeds; the accuracies by trial, and those words. None: neither."""
    runs = [r for r in confirmation_runs(study.user_attrs).values() if r.accuracy is not None]
    if (epochs := final_epochs_stored(runs)) is not None:
        chosen = [run for run in runs if run.epochs == epochs]
        words = f"final test accuracy ({epochs} epochs of the final recipe)"
    else:
        chosen = [run for run in runs if run.epochs is None]
        words = "confirmed validation accuracy"
    if not chosen:
        return None
    by_trial: dict[int, list[float]] = {}
    for run in chosen:
        by_trial.setdefault(run.trial, []).append(run.accuracy)
    seeds = sorted({len(values) for values in by_trial.values()})
    counts = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    means = {trial: statistics.fmean(values) for trial, values in by_trial.items()}
    return means, f"the mean {words} over {counts} seed" + "s" * (seeds != [1])


def final_epochs_stored(runs) -> int | None:
    """The epochs of the final runs that speak for a study: those most trials finished (the
    longer on a tie); None without a finished final run."""
    trials_at: dict[int, set[int]] = {}
    for run in runs:
        if run.epochs is not None and run.accuracy is not None:
            trials_at.setdefault(run.epochs, set()).add(run.trial)
    return max(trials_at, key=lambda e: (len(trials_at[e]), e), default=None)


@dataclass(frozen=True)
class StoredRuns:
    """What a study's stored runs measured, every seed of them (see `stored_runs`)."""

    proxy: tuple[Confirmed, ...]  # each trial with a finished confirmation
    final: tuple[Confirmed, ...]  # each trial with a finished final run of `epochs`
    epochs: int | None  # the final runs' epochs (`final_epochs_stored`); None: no final run

    @property
    def empty(self) -> bool:
        return not self.proxy and not self.final


def stored_runs(trials: Sequence, study_attrs: Mapping) -> StoredRuns:
    """The confirmed and final rows of every target with a finished run in a study's
    attributes: what the dashboard draws, whoever ran them and with whatever options."""
    chosen = stored_targets(trials, study_attrs)
    if not chosen:
        return StoredRuns((), (), None)
    epochs = final_epochs_stored(confirmation_runs(study_attrs).values())
    proxy = [row for row in confirmed(study_attrs, chosen) if row.accuracies]
    final = [] if epochs is None else confirmed(study_attrs, chosen, epochs=epochs)
    return StoredRuns(tuple(proxy), tuple(row for row in final if row.accuracies), epochs)


def run_confirmation(
    study: optuna.Study,
    chosen: list[Target],
    seeds: list[int],
    train_one,
    *,
    epochs: int | None = None,
    stale_s: float = STALE_S,
    poll_s: float = POLL_S,
    out=None,
) -> int:
    """Train every (target, seed) run the study does not hold yet (confirmations, or final
    runs of `epochs`); the number this process trained.

    `train_one(target, seed, on_epoch)` trains one run and returns (curve, seconds, failure);
    `on_epoch(curve)` is this module's heartbeat and progress line. Waits while other
    processes train the last runs, and takes over those whose claim went silent for `stale_s`.
    """
    from nas._worker import worker_name  # it loads torch, which --help does without

    out = sys.stderr if out is None else out
    me = worker_name()
    jobs = [(target, seed) for target in chosen for seed in seeds]
    durations: list[float] = []
    while True:
        runs = confirmation_runs(study.user_attrs)
        now = time.time()
        pending = [
            (target, seed)
            for target, seed in jobs
            if (run := runs.get(run_key(target.trial, seed, epochs))) is None or run.state != DONE
        ]
        if not pending:
            return len(durations)
        free = [
            (target, seed)
            for target, seed in pending
            if (run := runs.get(run_key(target.trial, seed, epochs))) is None
            or now - run.beat > stale_s
        ]
        if not free:
            time.sleep(poll_s)  # others are on the last runs; one may die and need us
            continue
        target, seed = free[0]
        if not _claimed(study, target, seed, epochs, me):
            continue
        # Other processes with live claims share what is left.
        busy = {r.worker for r in runs.values() if r.state == RUNNING and now - r.beat <= stale_s}
        workers = len(busy | {me})
        line = f"[{len(jobs) - len(pending) + 1}/{len(jobs)}] trial {target.trial} "
        line += f"({target.label}) seed {seed}"
        what = "test acc" if epochs else "val acc"
        started = time.monotonic()
        progress = partial(_epoch_line, out, line, epochs or target.epochs, what, started)
        curve, seconds, failure = _train_claimed(
            study, target, seed, epochs, me, train_one, progress
        )
        durations.append(time.monotonic() - started)
        result = "failed: " + failure if failure else f"{what} {curve[-1]:.4f}"
        eta = eta_seconds(durations, len(pending) - 1, workers)
        print(
            f"{line}: {result} ({seconds:.0f} s); {len(pending) - 1} runs left, "
            f"ETA {clock_text(eta or 0)}",
            file=out,
            flush=True,
        )


def _epoch_line(out, line: str, total: int, what: str, started: float, curve: list[float]):
    """One run's progress after an epoch: its accuracy, time so far and ETA (epochs of one
    run take alike)."""
    elapsed, done = time.monotonic() - started, len(curve)
    count = f"{done}/{total}" if total else str(done)
    left = f", ETA {clock_text(elapsed / done * (total - done))}" if total else ""
    print(
        f"{line} epoch {count}: {what} {curve[-1]:.4f}, {clock_text(elapsed)}{left}",
        file=out,
        flush=True,
    )


def _claimed(study: optuna.Study, target: Target, seed: int, epochs, me: str) -> bool:
    """Claim the run; True when the claim read back is ours (of two racing, the later)."""
    claim = ConfirmationRun(
        target.trial, seed, target.arch, RUNNING, me, time.time(), epochs=epochs
    )
    study.set_user_attr(claim.key, claim.to_attr())
    stored = confirmation_runs(study.user_attrs).get(claim.key)
    return stored is not None and stored.worker == me and stored.state == RUNNING


def _train_claimed(study, target: Target, seed: int, epochs, me: str, train_one, progress):
    base = ConfirmationRun(
        target.trial, seed, target.arch, RUNNING, me, time.time(), epochs=epochs
    )

    def on_epoch(curve: list[float]) -> None:
        beat = replace(base, beat=time.time(), val_acc_curve=tuple(curve))
        study.set_user_attr(base.key, beat.to_attr())
        progress(curve)

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
        lines.append(
            f"{target.label[:18]:<18} {target.trial:>5} {target.macs / 1e6:>8.2f} "
            f"{target.search_acc:>8.2%} {interval_text(row):>18} "
            f"{'yes' if row.on_front else '':>5}"
        )
    for row in rows:
        if row.target.is_landmark or (nearest := nearest_landmark(rows, row)) is None:
            continue
        diff = difference_of_values(row.accuracies, nearest.accuracies)
        name = f"trial {row.target.trial} ({row.target.label})"
        lines.append(fit_width(verdict(name, nearest.target.label, diff)))
    return "\n".join(lines)


def final_summary(proxy: list[Confirmed], final: list[Confirmed], epochs: int) -> str:
    """The final test accuracies beside the confirmed proxy means, the two rankings, and each
    searched network against the best landmark at equal or lower MACs."""
    seeds = max((len(row.accuracies) for row in final), default=0)
    lines = [
        f"final training: {epochs} epochs of the final recipe on the whole training split, "
        f"test accuracy (mean ± sd over up to {seeds} seeds)",
        f"{'point':<18} {'trial':>5} {'MMACs':>8} {'proxy (confirmed)':>19} {'final test':>18} "
        f"{'rank':>9}",
    ]
    by_arch = {row.target.arch: row for row in proxy}
    ranks, tau = proxy_final_ranks(proxy, final)
    for row in sorted(final, key=lambda r: r.target.macs):
        target = row.target
        test = spread_text(row)
        rank = ranks.get(target.arch)
        rank_text = f"{rank[0]:>3} -> {rank[1]:<3}" if rank else ""
        proxy_text = interval_text(by_arch[target.arch]) if target.arch in by_arch else ""
        lines.append(
            f"{target.label[:18]:<18} {target.trial:>5} {target.macs / 1e6:>8.2f} "
            f"{proxy_text:>19} {test:>18} {rank_text:>9}".rstrip()
        )
    if tau is not None:
        lines.append(
            f"rank = proxy -> final among these {len(ranks)} networks (1 the most accurate); "
            f"Kendall tau {tau:.2f}"
        )
    for row in final:
        if row.target.is_landmark or not row.accuracies:
            continue
        name = f"trial {row.target.trial} ({row.target.label})"
        if (best := best_cheaper_landmark(final, row)) is None:
            lines.append(f"{name}: no landmark at equal or lower MACs was trained")
            continue
        diff = difference_of_values(row.accuracies, best.accuracies)
        text = verdict(name, best.target.label, diff)
        lines.append(fit_width(f"{text} (the best landmark at equal or lower MACs)"))
    return "\n".join(lines)


def nearest_landmark(rows: Sequence[Confirmed], row: Confirmed) -> Confirmed | None:
    """The measured landmark of `rows` nearest `row` in log MACs (None: `row` or every
    landmark has no run): what a confirmed point is told apart from."""
    if not row.accuracies:
        return None
    measured = [lm for lm in rows if lm.target.is_landmark and lm.accuracies]
    ratio = partial(_log_ratio, row.target.macs)
    return min(measured, key=lambda lm: ratio(lm.target.macs), default=None)


def _log_ratio(macs: int, other: int) -> float:
    return abs(math.log10(max(1, other) / max(1, macs)))


def best_cheaper_landmark(rows: Sequence[Confirmed], row: Confirmed) -> Confirmed | None:
    """The measured landmark with the highest mean among those of `rows` at equal or lower
    MACs than `row`: what a searched network must beat to be worth its cost."""
    measured = [lm for lm in rows if lm.target.is_landmark and lm.accuracies]
    cheaper = [lm for lm in measured if lm.target.macs <= row.target.macs]
    return max(cheaper, key=lambda lm: lm.interval.mean, default=None)


def proxy_final_ranks(
    proxy: Sequence[Confirmed], final: Sequence[Confirmed]
) -> tuple[dict[str, tuple[int, int]], float | None]:
    """Each network measured both ways, by architecture: its rank by confirmed proxy mean and
    by final test mean (1 the most accurate), and the Kendall tau of the two orders (None
    below 3 networks: too few to say whether the proxy keeps the order)."""
    by_arch = {row.target.arch: row for row in proxy if row.interval}
    ranked = [row for row in final if row.interval and row.target.arch in by_arch]
    proxy_rank = _ranks([by_arch[row.target.arch].interval.mean for row in ranked])
    final_rank = _ranks([row.interval.mean for row in ranked])
    ranks = {row.target.arch: (p, f) for row, p, f in zip(ranked, proxy_rank, final_rank)}
    if len(ranked) < 3:
        return ranks, None
    from scipy import stats  # as nas.intervals does; only once there is something to rank

    return ranks, float(stats.kendalltau(proxy_rank, final_rank).statistic)


def _ranks(values: list[float]) -> list[int]:
    """1 for the largest value, 2 for the next, ... (ties share the better rank)."""
    order = sorted(values, reverse=True)
    return [order.index(value) + 1 for value in values]


def interval_text(row: Confirmed) -> str:
    """'93.10% ± 0.42% (3)': the mean, its 95% t interval's half width ('?' for one seed)
    and the seeds."""
    if row.interval is None:
        return "no run yet"
    return f"{row.interval.mean:.2%} ± {_half(row.interval)} ({row.interval.seeds})"


def spread_text(row: Confirmed) -> str:
    """'93.10% ± 0.20% (3)': the mean, the sample standard deviation and the seeds."""
    if row.interval is None:
        return "no run yet"
    return f"{row.interval.mean:.2%} ± {row.spread:.2%} ({row.interval.seeds})"


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
    parser.add_argument(
        "--landmarks-within",
        type=float,
        default=None,
        metavar="RATIO",
        help="only the landmarks whose MACs are within RATIO times the knee's, either way "
        "(default: every landmark)",
    )
    parser.add_argument(
        "--final",
        action="store_true",
        help="then train the same networks and seeds with the final recipe on the whole "
        "training split and report test accuracy",
    )
    parser.add_argument(
        "--epochs",
        type=whole_number_at_least(1),
        default=None,
        help="with --final: epochs of final training (default 10 on a CPU, 30 on a GPU and "
        "for digits)",
    )
    parser.add_argument(
        "--workers",
        default="auto",
        help="processes on this machine splitting the runs: a number, or auto (the default: "
        "one per core, fewer if memory is short; on a GPU at most 16, 2 GiB of its memory each)",
    )
    add_study_data_options(parser)
    add_device_option(parser)
    parser.add_argument(WORKER_INDEX_OPTION, type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(arguments)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return refusing_bad_input(_run, args, arguments)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished runs are stored; rerun the same command to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace, arguments: list[str]) -> int:
    if args.epochs is not None and not args.final:
        raise ValueError("--epochs goes with --final (final training's epochs)")
    if args.landmarks_within is not None and not args.landmarks_within >= 1:
        raise ValueError(f"--landmarks-within must be at least 1, got {args.landmarks_within}")
    load_study(args.storage, args.study)  # refuses a missing storage or study, read-only
    study = optuna.load_study(study_name=args.study, storage=open_storage(args.storage))
    chosen = targets(study, args.top, args.landmarks_within)
    if not chosen:
        raise ValueError(f"study {args.study!r} has no complete trial to confirm")
    from nas.train import final_epochs, resolve_device  # torch, which --help does without

    device = resolve_device(args.device)
    workers = worker_count(args.workers, device, args.storage, len(chosen) * args.seeds)
    epochs = final_epochs(device, str(study.user_attrs.get("dataset"))) if args.final else None
    epochs = args.epochs or epochs
    seeds = seeds_of(study, args.seeds)
    if args.worker_index is not None:
        return _confirm_here(study, chosen, seeds, epochs, args, workers)
    runs = len(chosen) * len(seeds)
    final = f", then {runs} final runs of {epochs} epochs" if epochs else ""
    print(
        f"confirming {len(chosen)} networks of study {args.study!r} in "
        f"{redact(args.storage)} with {len(seeds)} seeds each ({runs} runs{final}; those "
        f"already stored are kept), {workers} process(es) on {device}",
        file=sys.stderr,
        flush=True,
    )
    if workers == 1:
        _confirm_here(study, chosen, seeds, epochs, args, workers)
    else:
        status = _run_processes(arguments, workers)
        if status:
            return status
    proxy = confirmed(study.user_attrs, chosen, seeds)
    print(summary(proxy, seeds))
    if epochs:
        print(final_summary(proxy, confirmed(study.user_attrs, chosen, seeds, epochs), epochs))
    return 0


def _confirm_here(study, chosen, seeds, epochs, args, workers: int) -> int:
    """This process's share of the runs: the confirmations, then any final runs."""
    if args.worker_index is not None:
        from nas._workers import pin_worker_cores
        from nas.train import resolve_device

        on_gpu = resolve_device(args.device).startswith("cuda")
        pin_worker_cores(args.worker_index, workers, pin=not on_gpu)
    proxy_one, final_one = _trainers(study, chosen[0], args)
    run_confirmation(study, chosen, seeds, proxy_one)
    if epochs:
        run_confirmation(study, chosen, seeds, partial(final_one, epochs=epochs), epochs=epochs)
    return 0


def _run_processes(arguments: list[str], workers: int) -> int:
    """`workers` processes of this command, each taking runs as they come free; the first
    failed one's exit status, else 0."""
    command = [sys.executable, "-m", "nas.confirm", *arguments, "--workers", str(workers)]
    children = [subprocess.Popen([*command, WORKER_INDEX_OPTION, str(i)]) for i in range(workers)]
    try:
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:
        for child in children:  # a terminal's Ctrl-C reached them too: let them give up claims
            child.wait()
        raise
    failed = [code for code in codes if code != 0]
    if failed:
        print(f"error: {len(failed)} of {workers} processes failed", file=sys.stderr)
        return failed[0] if failed[0] > 0 else 1
    return 0


def _trainers(study: optuna.Study, first_target: Target, args: argparse.Namespace):
    """Two trainers of a target at a seed on the study's data: proxy_one(target, seed,
    on_epoch) at the study's own budget, batch and recipe, and final_one(target, seed,
    on_epoch, epochs) with the final recipe on the whole training split."""
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
        train_final,
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

    def network(target: Target):
        return build_model(Arch.parse(target.arch), data.in_channels, data.num_classes)

    def collecting(on_epoch):
        curve: list[float] = []

        def each_epoch(epoch: int, accuracy: float) -> None:
            curve.append(accuracy)
            on_epoch(curve)

        return each_epoch

    def proxy_one(target: Target, seed: int, on_epoch):
        trial = study.get_trials(deepcopy=False)[target.trial]
        budget = Budget.parse(TrialRecord.from_trial(trial).budget or attrs["budget"])
        result = train(
            network(target),
            data,
            budget,
            device=device,
            seed=seed,
            recipe=recipe,
            on_epoch=collecting(on_epoch),
        )
        return result.val_acc_curve, result.train_seconds, result.failure

    def final_one(target: Target, seed: int, on_epoch, epochs: int):
        _, result = train_final(
            network(target), data, epochs, device=device, seed=seed, on_epoch=collecting(on_epoch)
        )
        return result.val_acc_curve, result.train_seconds, result.failure

    return proxy_one, final_one


if __name__ == "__main__":
    sys.exit(main())
