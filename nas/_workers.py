"""Running a search's trials: in this process, or in `--workers` processes of the same command.

With one worker the trials run here and report each epoch and each trial to the progress
display (nas._report). With more, this process starts that many copies of its own command
line (each told its index), each pinned to its share of the cores, and reports the study's
progress while they run, read from the storage every few seconds; they share nothing but
the storage (nas._worker's loop keeps them apart). Either way the run ends with the Pareto
front, unless the database was lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import torch

from nas._objective import Objective
from nas._optuna import check_optuna_internals
from nas._report import Progress, summary
from nas._settings import WORKER_INDEX_OPTION, RunSettings
from nas._stops import (
    EXIT_INTERRUPTED,
    EXIT_NO_PROGRESS,
    EXIT_STORAGE_LOST,
    NoProgress,
    interrupts_deferred,
)
from nas._worker import (
    StorageLost,
    _with_retries,
    core_share,
    is_connection_error,
    run_trials,
)
from nas.data import Dataset
from nas.pruning import make_pruner
from nas.storage import redact
from search_spaces import landmarks_for

PROGRESS_EVERY_S = 2.0  # how often the starting process reports while its workers run
POLL_S = 0.25  # how often it checks whether a worker has stopped
# After a Ctrl-C, how long the starting process lets its workers stop by themselves (a
# terminal's Ctrl-C reached them too) before it interrupts those still running.
INTERRUPT_GRACE_S = 5.0


def run_search(study: optuna.Study, storage, settings: RunSettings, data: Dataset) -> int:
    """Run the study's trials until it holds `settings.trials`; print progress and the summary.

    Returns the exit status: 0, EXIT_INTERRUPTED after Ctrl-C, EXIT_STORAGE_LOST when the
    database stayed away, EXIT_NO_PROGRESS when trials kept failing or being skipped, or the
    first failed worker's status.
    """
    progress = Progress(
        study, settings.trials, workers=settings.workers, epochs=settings.budget.epochs
    )
    print(
        f"study {study.study_name!r} in {redact(settings.storage_url)}: "
        f"{progress.done()}/{settings.trials} trials already done\n"
        f"  space {settings.space.name}, dataset {settings.data.label} "
        f"({'x'.join(map(str, data.input_shape))}, {data.num_classes} classes), "
        f"sampler {settings.sampler}, {settings.workers} worker(s)\n"
        f"  budget {settings.budget} (batch {settings.batch_size(data)}) per trial on "
        f"{settings.device}",
        file=sys.stderr,
    )
    start = time.monotonic()
    try:
        try:
            progress.begin()
            if settings.workers == 1:
                run_trials_here(
                    study.study_name,
                    storage,
                    settings,
                    data,
                    on_trial_end=lambda *_: progress.report(),
                    on_epoch_end=progress.epoch_done,
                )
                status = 0
            else:
                status = _run_worker_processes(settings, progress)
        finally:
            progress.close()  # what follows goes below the bar
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        print(
            "\ninterrupted: the running trial is marked failed and enqueued again;\n"
            "  rerun the same command to redo it and continue",
            file=sys.stderr,
        )
    except NoProgress as error:
        status = EXIT_NO_PROGRESS
        print(f"error: {error}", file=sys.stderr)
    except StorageLost as error:
        print(
            f"error: lost the database after retries: {error}; finished trials are kept, "
            "rerun the same command to continue",
            file=sys.stderr,
        )
        return EXIT_STORAGE_LOST  # no summary: it would need the database
    print(summary(study, settings.storage_url, time.monotonic() - start))
    return status


def run_worker(storage, settings: RunSettings, data: Dataset) -> int:
    """One of the processes --workers starts: run trials on the existing study, no report."""
    index = settings.worker_index
    check_optuna_internals(storage)  # OptunaMismatch: one line, exit 2, before any trial
    pin_worker_cores(index, settings.workers, pin=settings.device == "cpu")
    try:
        # The starting process created the study; wait out a database that is briefly away.
        _with_retries(lambda: optuna.load_study(study_name=settings.study_name, storage=storage))
        run_trials_here(settings.study_name, storage, settings, data)
    except KeyboardInterrupt:
        # Its trial is recorded: a repeated Ctrl-C (the terminal's, then the starting
        # process's) must not turn this exit into a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return EXIT_INTERRUPTED
    except NoProgress as error:
        print(f"error: worker {index} {error}", file=sys.stderr)
        return EXIT_NO_PROGRESS
    except StorageLost as error:
        print(
            f"error: worker {index} lost the database after retries: {error}; "
            "its finished trials are kept",
            file=sys.stderr,
        )
        return EXIT_STORAGE_LOST
    return 0


def run_trials_here(
    study_name: str,
    storage,
    settings: RunSettings,
    data: Dataset,
    on_trial_end=None,
    on_epoch_end=None,
) -> Objective:
    """Run trials of the study in this process until it holds its target; the objective used.

    Args:
        study_name: the study, already created.
        storage: its opened storage.
        settings: the run's settings (worker 0 unless `settings.worker_index` says otherwise).
        data: the loaded dataset.
        on_trial_end: called with (trial number, state) after each trial.
        on_epoch_end: called with (trial number, epochs trained) after each epoch.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=make_sampler(settings)
    )
    objective = make_objective(settings, data)
    objective.on_epoch_end = on_epoch_end
    run_trials(
        study,
        objective,
        settings.trials,
        heartbeat_s=settings.heartbeat_s,
        on_trial_end=on_trial_end,
    )
    return objective


def nsga2_population(trials: int) -> int:
    """NSGA-II's population for a search of `trials`: generations of ~1/8 of the trials, so
    that even a short search has several rounds of selection (10 to 50)."""
    return min(50, max(10, trials // 8))


def make_sampler(settings: RunSettings) -> optuna.samplers.BaseSampler:
    """The --sampler of this worker, seeded with --seed plus the worker's index."""
    seed = settings.seed + (settings.worker_index or 0)
    if settings.sampler == "nsga2":
        population = nsga2_population(settings.trials)
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if settings.sampler == "tpe":
        # Constant liar: workers sharing a study do not all sample beside the same good point.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


def make_objective(settings: RunSettings, data: Dataset) -> Objective:
    return Objective(
        space=settings.space_for(data.input_shape),
        data=data,
        budget=settings.budget,
        device=settings.device,
        seed=settings.seed,
        objectives=settings.objectives,
        pruner=make_pruner(settings.pruner),
        max_mmacs=settings.max_mmacs,
        landmark_names={str(arch): name for name, arch in landmarks_for(data.input_shape).items()},
    )


def pin_worker_cores(index: int, workers: int, *, pin: bool = True) -> None:
    """Give each worker its share of the cores: OpenMP threads of several processes competing
    for all cores oversubscribe them and run many times slower.

    On a CPU, every thread of the process (OpenMP's pool may exist already) is bound to the
    share from `core_share`, and torch runs that many threads; with more workers than cores
    each worker gets one thread on one core. GPU workers (`pin=False`) stay unbound but cap
    their CPU threads (cost counting, data handling) at their share of the cores.
    """
    if not hasattr(os, "sched_setaffinity"):
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        return
    cores = sorted(os.sched_getaffinity(0))
    share = core_share(cores, index, workers)
    if pin:
        tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else []
        for task in tasks:
            try:
                os.sched_setaffinity(int(task), share)
            except OSError:
                pass  # a thread that ended meanwhile
        os.sched_setaffinity(0, share)
    torch.set_num_threads(len(share) if pin else max(1, len(cores) // workers))


def _run_worker_processes(settings: RunSettings, progress: Progress) -> int:
    """Start `--workers` processes of this command on the existing study; report progress.

    A worker killed by a signal is reported; the others retry its trial (heartbeats), so the
    run still succeeds when the study reaches its target. Workers that lost the database make
    this raise StorageLost.
    """

    def report() -> None:
        try:
            progress.report()
        except Exception as error:  # skipped while the database is away; the workers retry
            if not is_connection_error(error):
                raise

    # The count as resolved here: a worker resolving "auto" itself, once its siblings hold
    # memory, could count fewer and take the wrong share of the cores.
    command = [sys.executable, "-m", "nas.search", *settings.arguments]
    command += ["--workers", str(settings.workers)]
    children = [
        subprocess.Popen([*command, WORKER_INDEX_OPTION, str(i)]) for i in range(settings.workers)
    ]
    killed: set[int] = set()
    last_report = 0.0
    try:
        while True:
            for i, child in enumerate(children):
                code = child.poll()
                if code is not None and code < 0 and i not in killed:
                    killed.add(i)
                    progress.note(
                        f"note: worker {i} (pid {child.pid}) was killed by signal {-code}; "
                        "the others retry its trial"
                    )
            if all(child.returncode is not None for child in children):
                break
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                report()
                last_report = time.monotonic()
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        # Interrupted alone (kill -INT), it passes the interrupt on; not at once, as a second
        # one would only repeat a terminal's Ctrl-C to a worker recording its interrupted
        # trial. A second Ctrl-C meanwhile waits too: the workers' records come first.
        with interrupts_deferred():
            deadline = time.monotonic() + INTERRUPT_GRACE_S
            while time.monotonic() < deadline and any(c.poll() is None for c in children):
                time.sleep(POLL_S)
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
            for child in children:
                child.wait()
        raise
    codes = [child.returncode for child in children]
    if EXIT_STORAGE_LOST in codes:
        lost = codes.count(EXIT_STORAGE_LOST)
        raise StorageLost(f"{lost} of {len(codes)} workers stopped")
    report()
    failed = [code for code in codes if code > 0]
    if failed:
        return failed[0]
    if killed and progress.done() < settings.trials:
        return 1  # workers were killed and none is left to finish their trials
    return 0
