from __future__ import annotations

import json
import random

import pytest
from scipy import stats

from nas._runlog import append_run, read_runs
from nas.fidelity import average_ranks, kendall_tau, main, sample_archs, spearman_rho


def test_rank_correlations_match_scipy():
    rng = random.Random(4)
    for _ in range(20):
        xs = [rng.choice([0.1, 0.2, 0.3, 0.4, 0.5]) for _ in range(12)]
        ys = [x + rng.gauss(0, 0.1) for x in xs]
        assert kendall_tau(xs, ys) == pytest.approx(stats.kendalltau(xs, ys).statistic)
        assert spearman_rho(xs, ys) == pytest.approx(stats.spearmanr(xs, ys).statistic)
    assert average_ranks([3.0, 1.0, 3.0]) == [2.5, 1.0, 2.5]


def test_sample_is_seeded_landmarks_first_and_distinct():
    first, again = (
        sample_archs("inception_to_xception", 5, 0),
        sample_archs("inception_to_xception", 5, 0),
    )
    assert first == again
    assert first[0][0] == "normal" and len({arch for _, arch in first}) == len(first) == 12


def test_fidelity_runs_resume_and_report(tmp_path, capsys):
    results, out = tmp_path / "runs.jsonl", tmp_path / "fidelity.json"
    argv = [
        "--dataset",
        "digits",
        "--archs",
        "1",
        "--budget",
        "1x300",
        "--long-budget",
        "10x300",
        "--results",
        str(results),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    summary = json.loads(out.read_text())
    assert summary["architectures"] == 8
    assert -1 <= summary["proxy_kendall_tau"] <= 1
    assert len(results.read_text().splitlines()) == 16
    table = out.with_suffix(".md").read_text()
    assert "| MACs alone (baseline) |" in table
    # One row per architecture, each naming its rank under the long budget.
    assert sum(line.startswith("| normal |") for line in table.splitlines()) == 1
    assert table.count("`stem") == 8
    assert "16 to train" in capsys.readouterr().err
    assert main(argv) == 0  # everything is stored: nothing trains again
    err = capsys.readouterr().err
    assert "[1/" not in err and "16 runs already in" in err and "0 to train" in err


def test_a_torn_last_line_costs_only_itself(tmp_path):
    log = tmp_path / "runs.jsonl"
    append_run(log, {"arch": "a"})
    with log.open("a") as handle:
        handle.write('{"arch": "torn')  # what a crash mid-write leaves
    append_run(log, {"arch": "b"})
    assert [run["arch"] for run in read_runs(log)] == ["a", "b"]


def test_long_budget_must_be_ten_times_longer(tmp_path, capsys):
    code = main(
        [
            "--dataset",
            "digits",
            "--budget",
            "2x300",
            "--long-budget",
            "3x300",
            "--results",
            str(tmp_path / "r.jsonl"),
            "--out",
            str(tmp_path / "o.json"),
        ]
    )
    assert code == 2 and "10x" in capsys.readouterr().err
