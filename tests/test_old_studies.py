"""A 200-trial study stored before the later knobs and the papers' blocks still opens and exports.

Its trials hold only the earlier parameters and the strings of the nine-token grammar, and its
landmarks are the blocks the landmarks had then.
"""

from __future__ import annotations

import re

import pytest
import torch
from optuna.trial import TrialState

import search_spaces
from bench._fake_studies import make_trials, write_study
from dashboard import callbacks
from dashboard.data import FrameCache
from dashboard.plot_data import fronts_data
from dashboard.storage import StorageReader
from nas import Arch, build_model
from nas.export import main as export_main
from search_spaces._spaces import EARLIER_KNOBS
from tests.test_blocks import EARLIER_BLOCKS

# One stage of the grammar before the later knobs: c_d_s_k_g_p_f_a_r, nothing more.
EARLIER_STAGE = re.compile(r"c\d+_d\d_s[12]_k[\d.pol]+_g(\d+|dw)_p[a-z]+_f[01]_a[01]_r[01]")
SPACE = search_spaces.get("inception_to_xception")
EARLIER_PARAMS = {"stem_width"} | {f"s{i}_{knob}" for i in (1, 2, 3) for knob in EARLIER_KNOBS}


def _earlier_trials(trials):
    """The trials as a search before the later knobs would have stored them."""
    arch_of: dict[int, str] = {}
    for trial in trials:
        trial.params = {k: v for k, v in trial.params.items() if k in EARLIER_PARAMS}
        trial.distributions = {k: v for k, v in trial.distributions.items() if k in EARLIER_PARAMS}
        landmark = trial.user_attrs.get("landmark")
        if "duplicate_of" in trial.user_attrs:
            trial.user_attrs["arch"] = arch_of[trial.user_attrs["duplicate_of"]]
        elif landmark in EARLIER_BLOCKS:
            trial.user_attrs["arch"] = EARLIER_BLOCKS[landmark]
        elif trial.params:  # knobs with one choice are not suggested: their only value
            chosen = {k: trial.params.get(k, SPACE.choices[k][0]) for k in EARLIER_PARAMS}
            trial.user_attrs["arch"] = str(SPACE.arch_from_params(chosen))
        arch_of[trial.number] = trial.user_attrs.get("arch")
    return trials


@pytest.fixture(scope="module")
def old_study(tmp_path_factory):
    trials = _earlier_trials(make_trials(200 - len(search_spaces.LANDMARKS), seed=5))
    url = f"sqlite:///{tmp_path_factory.mktemp('old') / 'studies.db'}"
    write_study(url, "old", trials)
    return url, trials


def test_the_study_is_of_the_old_grammar(old_study):
    _, trials = old_study
    assert len(trials) == 200
    for trial in trials:
        assert set(trial.params) <= EARLIER_PARAMS, trial.number
        if trial.state == TrialState.COMPLETE:
            stages = trial.user_attrs["arch"].split("-")[1:]
            assert all(EARLIER_STAGE.fullmatch(stage) for stage in stages), trial.user_attrs


def test_the_dashboard_draws_every_complete_trial_and_the_old_landmarks(old_study):
    url, trials = old_study
    cache = FrameCache(StorageReader(url))
    status = callbacks.poll_view(cache, None)["status"]
    assert "fronts-graph" in str(callbacks.route_view(cache, "/", "", status))
    frame = cache.frame(["old"])
    drawn = fronts_data(frame, "macs").studies[0].complete.x
    assert len(drawn) == sum(trial.state == TrialState.COMPLETE for trial in trials)
    assert list(callbacks.fronts_view(cache, ["old"], "macs").data[0].x) == drawn.tolist()
    by_name = dict(zip(frame["landmark"], frame["arch"]))
    for name, text in EARLIER_BLOCKS.items():
        assert by_name[name] == text
    old_inception = next(t for t in trials if t.user_attrs.get("landmark") == "inception_v1")
    page = str(callbacks.trial_view(cache, "old", old_inception.number))
    assert EARLIER_BLOCKS["inception_v1"] in page and "stage 3" in page


@pytest.mark.parametrize("pick", ["knee", "best"])
def test_export_writes_the_picked_old_network(old_study, tmp_path, pick):
    url, trials = old_study
    out = tmp_path / "model.py"
    argv = ["--storage", url, "--study", "old", "--pick", pick, "--out", str(out)]
    assert export_main(argv) == 0
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    stored = {trial.user_attrs.get("arch") for trial in trials}
    assert namespace["ARCH"] in stored
    exported = namespace["build_model"]()
    built = build_model(Arch.parse(namespace["ARCH"]), 1, 10)
    assert sum(p.numel() for p in exported.parameters()) == sum(
        p.numel() for p in built.parameters()
    )
    assert exported(torch.randn(2, 1, 28, 28)).shape == (2, 10)
