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
from dashboard.storage import StorageReader
from nas import Arch, build_model
from nas.export import main as export_main
from search_spaces._spaces import EARLIER_KNOBS
from tests.test_blocks import EARLIER_BLOCKS

# One stage of the grammar before the later knobs: c_d_s_k_g_p_f_a_r, nothing more.
EARLIER_STAGE = re.compile(r"c\d+_d\d_s[12]_k[\d.pol]+_g(\d+|dw)_p[a-z]+_f[01]_a[01]_r[01]")


def _to_earlier(trial):
    """The trial as a search before the later knobs would have stored it."""
    space = search_spaces.get("inception_to_xception")
    earlier = {"stem_width"} | {f"s{i}_{knob}" for i in (1, 2, 3) for knob in EARLIER_KNOBS}
    trial.params = {k: v for k, v in trial.params.items() if k in earlier}
    trial.distributions = {k: v for k, v in trial.distributions.items() if k in earlier}
    landmark = trial.user_attrs.get("landmark")
    if landmark in EARLIER_BLOCKS:
        trial.user_attrs["arch"] = EARLIER_BLOCKS[landmark]
    elif trial.params and "duplicate_of" not in trial.user_attrs:
        full = {**{k: v[0] for k, v in space.choices.items()}, **trial.params}
        earlier_only = {k: v for k, v in full.items() if k in earlier}
        trial.user_attrs["arch"] = str(space.arch_from_params(earlier_only))
    return trial


@pytest.fixture(scope="module")
def old_study(tmp_path_factory):
    trials = [_to_earlier(trial) for trial in make_trials(200 - 7, seed=5)]
    url = f"sqlite:///{tmp_path_factory.mktemp('old') / 'studies.db'}"
    write_study(url, "old", trials)
    return url, trials


def test_the_study_is_of_the_old_grammar(old_study):
    _, trials = old_study
    assert len(trials) == 200
    for trial in trials:
        if trial.state == TrialState.COMPLETE and "duplicate_of" not in trial.user_attrs:
            stages = trial.user_attrs["arch"].split("-")[1:]
            assert all(EARLIER_STAGE.fullmatch(stage) for stage in stages), trial.user_attrs
            assert not any(key.endswith(("_bottleneck", "_pool")) for key in trial.params)


def test_the_dashboard_draws_every_complete_trial_and_the_old_landmarks(old_study):
    url, trials = old_study
    cache = FrameCache(StorageReader(url))
    status = callbacks.poll_view(cache, None)["status"]
    assert "fronts-graph" in str(callbacks.route_view(cache, "/", "", status))
    figure = callbacks.fronts_view(cache, ["old"], "macs")
    drawn = sum(len(trace.x) for trace in figure.data if trace.x is not None and trace.name)
    complete = sum(trial.state == TrialState.COMPLETE for trial in trials)
    assert drawn >= complete
    frame = cache.frame(["old"])
    by_name = dict(zip(frame["landmark"], frame["arch"]))
    for name, text in EARLIER_BLOCKS.items():
        assert by_name[name] == text
    old_inception = next(t for t in trials if t.user_attrs.get("landmark") == "inception_v1")
    page = str(callbacks.trial_view(cache, "old", old_inception.number))
    assert "stage 3" in page and "pool" in page


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
