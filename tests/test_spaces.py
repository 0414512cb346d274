from __future__ import annotations

import optuna
import pytest

import search_spaces
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


def test_parameter_names_are_stable():
    space = search_spaces.get("inception_to_xception")
    expected = {"stem_width"} | {
        f"s{i}_{knob}"
        for i in (1, 2, 3)
        for knob in (
            "width",
            "depth",
            "branches",
            "segments",
            "pointwise",
            "factorize",
            "mid_act",
            "residual",
        )
    }
    assert set(space.choices) == expected


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
