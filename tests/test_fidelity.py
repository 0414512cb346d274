from __future__ import annotations

import json
import random

import pytest
from scipy import stats

from nas import Arch
from nas._runlog import append_run, read_runs
from nas.fidelity import (
    average_ranks,
    bootstrap_interval,
    kendall_tau,
    load_runs,
    main,
    run_label,
    sample_archs,
    spearman_rho,
)


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


def test_the_random_sample_is_the_one_drawn_before_the_papers_block_knobs():
    # random0 for seed 0, as logged in bench/results/fidelity_runs.jsonl on 2026-11-28, before
    # the split, inner, unit and pool knobs existed: its long run is still usable.
    sample = dict(sample_archs("inception_to_xception", 2, 0, full_count=40))
    assert sample["random0"] == (
        "stem32-c48_d1_s2_k3.5_g12_pboth_f1_a1_r1-c64_d3_s2_k1.3_g16_pbefore_f0_a0_r0"
        "-c128_d3_s2_k7_g4_pnone_f0_a0_r1"
    )
    # The full draws reach what the earlier ones cannot: split widths, Xception's unit.
    full = [Arch.parse(text) for label, text in sample.items() if label.startswith("full")]
    stages = [stage for arch in full for stage in arch.stages]
    assert any(stage.widths for stage in stages) and any(stage.steps > 1 for stage in stages)
    earlier = [Arch.parse(text) for label, text in sample.items() if label.startswith("random")]
    assert not any(stage.widths or stage.steps > 1 for a in earlier for stage in a.stages)


def test_a_space_too_small_for_the_sample_is_refused():
    # xception_spectrum has 8 networks: 30 distinct random ones cannot be drawn from it.
    with pytest.raises(ValueError, match="gave no new architecture .* fewer with --archs"):
        sample_archs("xception_spectrum", 30, 0)


def test_the_sample_for_large_images_has_the_stem_the_search_would_give_them():
    sample = sample_archs("inception_to_xception", 3, 0, (3, 224, 224))
    assert [Arch.parse(text).stem_stride for _, text in sample] == [8] * len(sample)
    small = sample_archs("inception_to_xception", 3, 0)
    # The same draws, only the stem differs: "stem16s8-..." against "stem16-...".
    assert [text.split("-", 1)[1] for _, text in sample] == [
        text.split("-", 1)[1] for _, text in small
    ]


def test_fidelity_runs_resume_and_report(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the log and the report default to results/ in this folder
    argv = [
        "--dataset",
        "digits",
        "--archs",
        "1",
        "--full-archs",
        "1",
        "--budget",
        "1x300",
        "--long-budget",
        "10x300",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    results, out = tmp_path / "results/fidelity_runs.jsonl", tmp_path / "results/fidelity.json"
    assert sorted(path.name for path in out.parent.iterdir()) == [
        "fidelity.json",
        "fidelity.md",
        "fidelity_runs.jsonl",
    ]
    assert [path.name for path in tmp_path.iterdir()] == ["results"]
    summary = json.loads(out.read_text())
    assert summary["architectures"] == 9
    assert len(results.read_text().splitlines()) == 18
    # The rank agreements are those of the runs in the log, as scipy computes them.
    runs = [json.loads(line) for line in results.read_text().splitlines()]
    by_budget = {
        budget: {run["arch"]: run for run in runs if run["budget"] == budget}
        for budget in ("1x300", "10x300")
    }
    short, long = by_budget["1x300"], by_budget["10x300"]
    assert len(short) == len(long) == 9 and set(short) == set(long)
    archs = [a for a in short if not short[a]["failure"] and not long[a]["failure"]]
    assert len(archs) == summary["architectures"]
    short_acc = [short[a]["val_acc"] for a in archs]
    long_acc = [long[a]["val_acc"] for a in archs]
    macs = [float(short[a]["macs"]) for a in archs]
    expected = stats.kendalltau(short_acc, long_acc).statistic
    assert summary["proxy_kendall_tau"] == pytest.approx(expected, abs=5e-5)
    expected = stats.kendalltau(macs, long_acc).statistic
    assert summary["macs_kendall_tau"] == pytest.approx(expected, abs=5e-5)
    table = out.with_suffix(".md").read_text()
    assert "| MACs alone (baseline) |" in table
    # One row per architecture, each naming its rank under the long budget.
    assert sum(line.startswith("| normal |") for line in table.splitlines()) == 1
    assert table.count("`stem") == 9
    assert sum(line.startswith("| full0 |") for line in table.splitlines()) == 1
    assert "18 to train" in capsys.readouterr().err
    # Everything is stored: nothing trains again (the log named by --runs' old name).
    assert main([*argv, "--results", str(results), "--out", str(tmp_path / "again.json")]) == 0
    err = capsys.readouterr().err
    assert "[1/" not in err and "18 runs already in" in err and "0 to train" in err


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
            "--runs",
            str(tmp_path / "r.jsonl"),
            "--out",
            str(tmp_path / "o.json"),
        ]
    )
    assert code == 2 and "10x" in capsys.readouterr().err


def test_runs_under_a_changed_recipe_are_kept_apart(tmp_path):
    log = tmp_path / "runs.jsonl"
    append_run(log, {"arch": "a", "budget": "3x10000", "batch_size": 64, "val_acc": 0.9})
    append_run(log, {"arch": "a", "budget": "3x10000", "val_acc": 0.8})  # logged before: 128
    append_run(
        log,
        {"arch": "a", "budget": "30x10000", "batch_size": 128, "val_acc": 0.93},
    )
    tuned = {"budget": "3x10000", "batch_size": 64, "recipe_changes": {"peak_lr": 0.05}}
    append_run(log, {"arch": "a", **tuned, "val_acc": 0.7})
    runs = load_runs(log, 50_000)
    # The batch the default recipe picks for a budget is no change; anything else is.
    assert runs[("a", "3x10000")]["val_acc"] == 0.9
    assert runs[("a", "3x10000@batch_size=128")]["val_acc"] == 0.8
    assert runs[("a", "30x10000")]["val_acc"] == 0.93
    assert runs[("a", "3x10000@peak_lr=0.05")]["val_acc"] == 0.7
    assert run_label({**tuned, "batch_size": 32}, 50_000) == "3x10000@batch_size=32,peak_lr=0.05"


def test_bootstrap_interval_brackets_the_figure_and_narrows_with_agreement():
    rng = random.Random(1)
    xs = [rng.random() for _ in range(40)]
    noisy = [x + rng.gauss(0, 0.3) for x in xs]

    def tau_on(ys):
        return lambda picked: kendall_tau([xs[i] for i in picked], [ys[i] for i in picked])

    low, high = bootstrap_interval(tau_on(noisy), len(xs))
    assert low < kendall_tau(xs, noisy) < high < 1.0
    assert bootstrap_interval(tau_on(xs), len(xs)) == (1.0, 1.0)


# --- bad input: one line, exit 2, nothing created, nothing trained ---------------------------

TINY_RUN = ["--dataset", "digits", "--archs", "1", "--budget", "1x300", "--device", "cpu"]


def refused(argv: list[str], capsys) -> str:
    """The one-line error of a run that must be refused before it trains anything."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("error: ") and not captured.out
    return captured.err.strip()


def test_an_unknown_space_creates_no_results_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default --runs and --out lie under results/
    error = refused([*TINY_RUN, "--space", "nope"], capsys)
    assert "unknown search space 'nope'" in error
    assert not list(tmp_path.iterdir())


def test_a_missing_out_folder_is_refused_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "runs.jsonl"
    error = refused([*TINY_RUN, "--runs", str(results), "--out", "nodir/f.json"], capsys)
    assert "folder nodir of --out nodir/f.json does not exist" in error
    assert not list(tmp_path.iterdir())  # no run was trained and logged


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('{"summary": {"tau": 0.5}}\n', 1, "no 'arch', 'budget', 'failure', 'macs'"),
        (json.dumps({"command": "x", "rows": []}, indent=2), 2, "not one JSON object"),
        ("arch,val_acc\nstem8,0.5\n", 1, "not one JSON object"),
        ("[1, 2]\n", 1, "not one JSON object"),
    ],
    ids=["another object", "pretty-printed JSON", "CSV", "a list"],
)
def test_a_results_file_of_something_else_is_named(text, line, what, tmp_path, capsys):
    results = tmp_path / "other.json"
    results.write_text(text)
    out = tmp_path / "f.json"
    error = refused([*TINY_RUN, "--runs", str(results), "--out", str(out)], capsys)
    assert error.startswith(f"error: {results} line {line}: not a run of this log ({what}")
    assert results.read_text() == text and not out.exists()


@pytest.mark.parametrize("count", ["-5", "0"])
def test_archs_must_be_at_least_one(count, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # were it accepted, nothing would land in the repository
    with pytest.raises(SystemExit) as stop:
        main([*TINY_RUN, "--archs", count])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: argument --archs: must be at least 1, got {int(count)}")
    assert len(error.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
