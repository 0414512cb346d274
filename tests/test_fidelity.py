from __future__ import annotations

import json
import random

import pytest
from scipy import stats

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
    capsys.readouterr()
    assert main(argv) == 0  # everything is stored: nothing trains again
    assert "[1/" not in capsys.readouterr().err


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
