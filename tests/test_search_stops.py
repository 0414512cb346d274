"""When a search stops short of its target: limits nothing fits, trials that keep failing, Ctrl-C.

The search runs as the real command (tests.search_helpers); faults come from nas._faults.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import search_spaces
from nas import search
from nas._cheapest import cheapest_architecture, plan_macs
from nas._faults import FAULT_ENV
from nas._settings import RunSettings
from nas._stops import EXIT_NO_PROGRESS, MAX_FAILURES_IN_A_ROW, NoProgress, Outcome, Streak
from nas._worker import run_trials
from nas.cost import count_cost
from nas.record import counts_toward_target
from search_spaces import LANDMARKS, SearchSpace
from tests.arch_samples import random_archs
from tests.search_helpers import load, objective, run_search, search_command

DIGITS = ((1, 8, 8), 10)
SAMPLED = random_archs("inception_to_xception", 12, seed=16)
# One epoch of 300 images: a landmark trains in about a second.
QUICK = ["--budget", "1x300"]


@pytest.mark.parametrize("arch", [*LANDMARKS.values(), *SAMPLED], ids=str)
def test_plan_macs_are_what_ptflops_counts(arch):
    for input_shape, classes in (DIGITS, ((3, 32, 32), 10)):
        assert plan_macs(arch, input_shape, classes) == count_cost(arch, input_shape, classes).macs


def test_the_search_counts_a_stage_as_the_plan_does():
    # The stage-by-stage search counts a branch at a time; the layer plan is the reference.
    from nas._cheapest import _search_stage_macs, stage_macs
    from nas._plan import stage_specs

    archs = [*LANDMARKS.values(), *random_archs("inception_to_xception", 60, seed=5)]
    for arch in archs:
        for size in ((28, 28), (9, 9)):
            in_chs, at = arch.stem, size
            for stage, spec in zip(arch.stages, stage_specs(arch)):
                expected = stage_macs(in_chs, spec, at)
                assert _search_stage_macs(in_chs, spec, at) == expected, str(arch)
                # As the search builds it: every field, defaults included.
                assert _search_stage_macs(in_chs, dict(vars(stage)), at) == expected
                in_chs, at = stage.width, expected[1]


def _every_arch(space: SearchSpace):
    for values in itertools.product(*space.choices.values()):
        yield space.arch_from_params(dict(zip(space.choices, values)))


def test_cheapest_architecture_is_the_cheapest_of_all():
    # Widths whose common divisors change a grouped conv's cost from stage to stage: the
    # stage-by-stage search must still find the cheapest of every assignment.
    full = search_spaces.get("inception_to_xception").choices
    choices = {"stem_width": ("8", "16")}
    for index, widths in enumerate((("16", "24"), ("24", "32"), ("32", "48")), 1):
        knobs = {"width": widths, "branches": ("3", "1.3.5"), "segments": ("4", "dw")}
        knobs["pointwise"] = ("none", "after")
        for knob, values in knobs.items():
            choices[f"s{index}_{knob}"] = values
        for knob in ("depth", "factorize", "mid_act", "residual"):
            choices[f"s{index}_{knob}"] = full[f"s{index}_{knob}"][:1]
    space = SearchSpace("trimmed", "", choices)
    assert space.size() > 4096, "large enough for the stage-by-stage search"
    found = cheapest_architecture(space, *DIGITS)
    least = min(plan_macs(arch, *DIGITS) for arch in _every_arch(space))
    assert plan_macs(found, *DIGITS) == least
    # The papers' knobs: units (whose pool_first is taken as never dearer than plain without
    # counting it), splits and inner widths, on the stage-by-stage search too.
    later = {"split": ("equal", "googlenet"), "inner": ("1", "0.5")}
    later["unit"] = ("plain", "pool_first", "xception")
    choices = {**choices, "stem_width": ("8",)}
    for index in (1, 2, 3):
        choices[f"s{index}_width"] = choices[f"s{index}_width"][:1]
        choices[f"s{index}_branches"] = ("1.3.5.pool",)
        choices[f"s{index}_pointwise"] = ("before",)  # where the reduces are: 24^3 assignments
        choices.update({f"s{index}_{knob}": values for knob, values in later.items()})
    space = SearchSpace("trimmed_later", "", choices)
    assert space.size() > 4096 and "unit" in space.stage_knobs
    found = cheapest_architecture(space, *DIGITS)
    least = min(plan_macs(arch, *DIGITS) for arch in _every_arch(space))
    assert plan_macs(found, *DIGITS) == least
    # The registered spaces: no landmark they reach is cheaper than what is found.
    for name in search_spaces.names():
        registered = search_spaces.get(name)
        least = plan_macs(cheapest_architecture(registered, *DIGITS), *DIGITS)
        reached = [a for a in LANDMARKS.values() if registered.params_for(a) is not None]
        assert reached and min(plan_macs(a, *DIGITS) for a in reached) >= least


def test_a_limit_nothing_fits_is_refused_before_anything_exists(tmp_path):
    space = search_spaces.get("inception_to_xception")
    cheapest = count_cost(cheapest_architecture(space, *DIGITS), *DIGITS).macs
    least = f"{cheapest / 1e6:.6f}".rstrip("0").rstrip(".")
    path = tmp_path / "studies.db"
    below = f"{(cheapest - 1) / 1e6:.6f}"
    result = run_search(f"sqlite:///{path}", "--max-mmacs", below, "--dry-run")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: --max-mmacs {float(below):g} fits no architecture of space "
        f"inception_to_xception: its cheapest on digits needs {least} MMACs; give --max-mmacs "
        f"{least} or more"
    )
    assert not path.exists() and list(tmp_path.iterdir()) == []
    # The least printed is accepted: the cheapest network fits it exactly.
    arguments = ["--dataset", "digits", "--device", "cpu", "--max-mmacs", least]
    parsed = search.build_parser().parse_args(arguments)
    assert RunSettings.from_args(parsed, arguments).max_mmacs == float(least)


def test_trials_that_all_fail_stop_the_search_with_the_last_reason(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    env = {FAULT_ENV: "trial:started:FAIL"}
    result = _search(storage, "--trials", "30", *QUICK, env=env)
    assert result.returncode == EXIT_NO_PROGRESS, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: stopped: {MAX_FAILURES_IN_A_ROW} trials in a row failed (the last: error: "
        "injected fault at trial:started); fix the cause, then rerun the same command to continue"
    ]
    assert "Traceback" not in result.stderr
    trials = load(storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * MAX_FAILURES_IN_A_ROW
    assert all(t.user_attrs["failure"].startswith("error: injected fault") for t in trials)


def test_skips_in_a_row_stop_the_loop(monkeypatch):
    monkeypatch.setattr("nas._stops.MAX_SKIPS_IN_A_ROW", 3)
    # Below every network: RunSettings refuses such a limit, and the loop must stop too.
    skipping = objective(max_mmacs=0.001)
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(NoProgress, match=r"3 trials in a row were skipped by --max-mmacs \(the"):
        run_trials(study, skipping, 5, heartbeat_s=None)
    assert len(study.trials) == 3 and all("constraint" in t.user_attrs for t in study.trials)


def test_a_finished_trial_ends_a_streak():
    streak = Streak()
    failed, done = Outcome(TrialState.FAIL, failure="diverged"), Outcome(TrialState.PRUNED)
    for _ in range(MAX_FAILURES_IN_A_ROW - 1):
        streak.add(failed)
    streak.add(done)
    streak.add(Outcome(TrialState.FAIL))  # surplus or taken over: not this trial's failure
    for _ in range(MAX_FAILURES_IN_A_ROW - 1):
        streak.add(failed)
    with pytest.raises(NoProgress, match="the last: diverged"):
        streak.add(failed)


# The first three landmarks: enough to see that none goes missing, few enough to train fast.
FIRST_LANDMARKS = list(LANDMARKS)[:3]


def test_an_interrupted_landmark_is_redone_on_the_next_run(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    trials = str(len(FIRST_LANDMARKS))  # the study holds as many landmarks as trials
    fault = {FAULT_ENV: "trial:epoch-done@1:INT"}
    interrupted = _search(storage, "--trials", trials, *QUICK, env=fault)
    assert interrupted.returncode == 130, interrupted.stderr
    first, *rest = load(storage).trials
    assert first.state == TrialState.FAIL and first.user_attrs["failure"].startswith("interrupted")
    (retry,) = [t for t in rest if t.user_attrs.get("retry_of") == first.number]
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs["landmark"] == first.user_attrs["landmark"] == "normal"
    assert retry.user_attrs["retry_history"] == [first.number]
    assert retry.system_attrs["fixed_params"] == first.params
    rerun = _search(storage, "--trials", trials, *QUICK)
    assert rerun.returncode == 0, rerun.stderr
    _assert_every_landmark_finished_once(storage)


def test_ctrl_c_of_two_workers_loses_nothing(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    trials = str(len(FIRST_LANDMARKS))
    # The first worker to finish an epoch interrupts the whole command, as a terminal would.
    fault = {FAULT_ENV: "trial:epoch-done:INTGROUP"}
    interrupted = _search(storage, "--trials", trials, "--workers", "2", *QUICK, env=fault)
    assert interrupted.returncode == 130, interrupted.stderr
    trials_left = load(storage).trials
    assert not [t for t in trials_left if t.state == TrialState.RUNNING]
    cut_short = [t for t in trials_left if t.state == TrialState.FAIL]
    assert 1 <= len(cut_short) <= 2
    for dead in cut_short:
        assert dead.user_attrs["failure"].startswith("interrupted")
        (retry,) = [t for t in trials_left if t.user_attrs.get("retry_of") == dead.number]
        assert retry.state == TrialState.WAITING
        assert retry.user_attrs["landmark"] == dead.user_attrs["landmark"]
    rerun = _search(storage, "--trials", trials, *QUICK)  # one worker redoes them quicker
    assert rerun.returncode == 0, rerun.stderr
    _assert_every_landmark_finished_once(storage)


def _assert_every_landmark_finished_once(storage: str) -> None:
    trials = load(storage).trials
    finished = Counter(t.user_attrs.get("landmark") for t in trials if counts_toward_target(t))
    assert finished == Counter(FIRST_LANDMARKS)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


def _search(storage: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The search command in a session of its own, so that a group Ctrl-C stays inside it."""
    return subprocess.run(
        search_command(storage, *args),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "NAS_NO_DOWNLOAD": "1", **(env or {})},
        cwd=Path(__file__).parent.parent,
        start_new_session=True,
    )
