from __future__ import annotations

import optuna
import pytest

import search_spaces
from nas._worker import enqueue_retry
from search_spaces import LANDMARKS


def test_registry_lists_the_spaces():
    assert set(search_spaces.names()) == {"inception_to_xception", "xception_spectrum"}
    with pytest.raises(ValueError, match="inception_to_xception"):
        search_spaces.get("nope")


@pytest.mark.parametrize("name", sorted(LANDMARKS))
def test_every_landmark_is_reachable_in_the_full_space(name):
    space = search_spaces.get("inception_to_xception")
    params = space.params_for(LANDMARKS[name])
    assert params is not None
    assert space.sample(optuna.trial.FixedTrial(params)) == LANDMARKS[name]


def test_landmarks_seed_a_study():
    space = search_spaces.get("inception_to_xception")
    study = optuna.create_study(directions=["maximize", "minimize"])
    for arch in LANDMARKS.values():
        study.enqueue_trial(space.params_for(arch))
    sampled = []
    for _ in LANDMARKS:
        trial = study.ask()
        sampled.append(space.sample(trial))
        study.tell(trial, [0.5, 1.0])
    assert sampled == list(LANDMARKS.values())


# The stage knobs every space has had, and those that came with the papers' blocks.
EARLIER_KNOBS = "width depth branches segments pointwise factorize mid_act residual".split()
LATER_KNOBS = ["split", "inner", "unit", "pool"]


def test_parameter_names_are_stable():
    space = search_spaces.get("inception_to_xception")
    expected = {"stem_width"} | {
        f"s{i}_{knob}" for i in (1, 2, 3) for knob in EARLIER_KNOBS + LATER_KNOBS
    }
    assert set(space.choices) == expected


# The choices stored studies hold (Optuna refuses to continue a study whose parameter's
# choices change), written out as they were before the papers' blocks.
EARLIER_CHOICES = {
    "stem_width": ("8", "16", "24", "32"),
    "width": (("16", "24", "32", "48"), ("32", "48", "64", "96"), ("64", "96", "128", "192")),
    "depth": ("1", "2", "3"),
    "branches": ("3", "5", "7", "1.3", "3.5", "1.3.5", "1.3.pool", "3.5.7", "1.3.5.pool"),
    "segments": ("1", "2", "4", "8", "16", "dw"),
    "pointwise": ("none", "before", "after", "both"),
    "factorize": ("0", "1"),
    "mid_act": ("0", "1"),
    "residual": ("0", "1"),
}


def test_earlier_parameters_keep_their_choices_in_order():
    choices = search_spaces.get("inception_to_xception").choices
    assert choices["stem_width"] == EARLIER_CHOICES["stem_width"]
    for i in (1, 2, 3):
        for knob in EARLIER_KNOBS:
            expected = EARLIER_CHOICES[knob]
            expected = expected[i - 1] if knob == "width" else expected
            assert choices[f"s{i}_{knob}"] == expected, f"s{i}_{knob}"


def test_a_trial_stored_before_the_later_knobs_builds_what_it_built():
    # A trial of an old study has only the earlier parameters: it built the block they name.
    space = search_spaces.get("inception_to_xception")
    old = {"stem_width": "16"}
    for i, width in enumerate(("24", "48", "96"), 1):
        old.update(
            {
                f"s{i}_width": width,
                f"s{i}_depth": "2",
                f"s{i}_branches": "1.3.5.pool",
                f"s{i}_segments": "4",
                f"s{i}_pointwise": "before",
                f"s{i}_factorize": "1",
                f"s{i}_mid_act": "1",
                f"s{i}_residual": "1",
            }
        )
    built = space.arch_from_params(old)
    assert str(built) == (
        "stem16-c24_d2_s2_k1.3.5.pool_g3_pbefore_f1_a1_r1"
        "-c48_d2_s2_k1.3.5.pool_g4_pbefore_f1_a1_r1-c96_d2_s2_k1.3.5.pool_g4_pbefore_f1_a1_r1"
    )
    defaults = {
        f"s{i}_{knob}": space.choices[f"s{i}_{knob}"][0] for i in (1, 2, 3) for knob in LATER_KNOBS
    }
    assert space.arch_from_params({**old, **defaults}) == built
    # An earlier parameter is still required.
    with pytest.raises(ValueError, match="s2_pointwise"):
        space.arch_from_params({k: v for k, v in old.items() if k != "s2_pointwise"})


def test_a_retry_enqueued_with_earlier_params_builds_what_they_built():
    # The retry of a trial an earlier version ran is enqueued with its stored params, completed.
    space = search_spaces.get("inception_to_xception")
    earlier = {
        name: value
        for name, value in space.params_for(LANDMARKS["mobilenet"]).items()
        if not name.endswith(("_split", "_inner", "_unit", "_pool"))
    }
    completed = search_spaces.with_later_defaults(earlier)
    assert set(completed) == set(space.choices) and completed["s2_unit"] == "plain"
    for seed in range(5):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        study.enqueue_trial(completed)
        assert space.sample(study.ask()) == LANDMARKS["mobilenet"]
    # The worker's retry completes them: a failed trial stored with only the earlier params.
    study = optuna.create_study()
    distributions = {
        name: optuna.distributions.CategoricalDistribution(space.choices[name]) for name in earlier
    }
    study.add_trial(
        optuna.trial.create_trial(
            params=earlier, distributions=distributions, state=optuna.trial.TrialState.FAIL
        )
    )
    assert enqueue_retry(study, study.trials[0])
    retry = study.ask()
    assert space.sample(retry) == LANDMARKS["mobilenet"]
    assert retry.params["s1_unit"] == "plain" and retry.params["s3_split"] == "equal"


@pytest.mark.parametrize(
    ("knob", "value", "token"),
    [
        ("split", "googlenet", "_w6.12.3.3_m6.9.2.3"),
        ("split", "inception_v3", "_w6.6.9.3_m6.5.6.3"),
        ("inner", "0.5", "_m6.3.3.6"),
        ("unit", "pool_first", "s2pre"),
        ("unit", "xception", "s2post"),
        ("pool", "avg", "k1.3.5.avgpool"),
    ],
)
def test_each_later_knob_changes_the_stage_it_names(knob, value, token):
    space = search_spaces.get("inception_to_xception")
    params = space.params_for(LANDMARKS["inception_v1"])
    params = {**params, "s1_width": "24", "s1_split": "equal", "s1_unit": "plain"}
    params["s1_pointwise"] = "before"
    base = space.arch_from_params(params)
    changed = space.arch_from_params({**params, f"s1_{knob}": value})
    assert token not in str(base.stages[0].to_token())
    assert token in changed.stages[0].to_token()
    assert changed.stages[1:] == base.stages[1:]


def test_xception_spectrum_sweeps_segments_only():
    space = search_spaces.get("xception_spectrum")
    values = space.choices["segments"]
    assert values[0] == "1" and values[-1] == "dw"
    archs = [space.sample(optuna.trial.FixedTrial({"segments": v})) for v in values]
    assert len(set(archs)) == len(archs)
    assert archs[-1] == LANDMARKS["xception"]
    for arch in archs:
        knobs = {(s.branches, s.pointwise, s.mid_act, s.residual) for s in arch.stages}
        assert knobs == {(("3",), "after", False, True)}
        # Xception's units: two steps, pre-activated, no BatchNorm inside, a pool at the end.
        units = {(s.downsample, s.steps, s.preact, s.mid_bn) for s in arch.stages}
        assert units == {("post", 2, True, False)}
    # Only `segments` is a trial parameter (stored studies of the spectrum hold only it).
    assert [name for name, values in space.choices.items() if len(values) > 1] == ["segments"]
    assert values == ("1", "2", "4", "8", "16", "32", "64", "dw")
    assert [a.stages[2].segments for a in archs][:3] == [1, 2, 4]


def test_sampling_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, optuna, search_spaces\n"
        "s = search_spaces.get('inception_to_xception')\n"
        "study = optuna.create_study(directions=['maximize', 'minimize'])\n"
        "t = study.ask(); print(s.sample(t))\n"
        "assert 'torch' not in sys.modules, 'search spaces imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_wrong_parameter_value_is_rejected():
    space = search_spaces.get("inception_to_xception")
    params = space.params_for(LANDMARKS["normal"])
    with pytest.raises(ValueError, match="s1_width"):
        space.arch_from_params({**params, "s1_width": "17"})
