from __future__ import annotations

import json

import pytest

from nas.cost import count_cost
from nas.findings import activation_archs, factorization_archs, main, matched_landmarks
from search_spaces import LANDMARKS


def test_experiment_designs_differ_in_one_knob():
    five, three, v1, v1_factorized, _ = (arch for _, arch in factorization_archs())
    assert str(five).replace("_f0_", "_f1_") == str(three)
    assert v1 == LANDMARKS["inception_v1"]
    assert str(v1).replace("_f0_", "_f1_") == str(v1_factorized)
    plain, relu, *_ = (arch for _, arch in activation_archs())
    assert plain == LANDMARKS["xception"]
    assert str(plain).replace("_a0_", "_a1_") == str(relu)


def test_landmarks_are_matched_in_parameters():
    matched = matched_landmarks((1, 28, 28), 10)
    target = count_cost(LANDMARKS["inception_v3"], (1, 28, 28)).params
    for name, arch in matched:
        params = count_cost(arch, (1, 28, 28)).params
        assert abs(params - target) / target < 0.35, (name, params, target)


def test_latencies_are_medians_of_interleaved_rounds():
    from nas.findings import interleaved_latencies

    order, slow = [], iter([1.0, 9.0, 1.0, 1.0, 9.0, 1.0])  # a slow spell hits each once

    def measure(arch):
        order.append(arch)
        return {1: next(slow), 64: 2.0}

    latencies = interleaved_latencies(["a", "b", "a"], measure, rounds=3)
    assert order == ["a", "b"] * 3  # each distinct design once per round, all in turn
    assert latencies == {"a": {1: 1.0, 64: 2.0}, "b": {1: 1.0, 64: 2.0}}


def test_findings_report_on_digits(tmp_path):
    out = tmp_path / "findings.md"
    argv = [
        "--dataset",
        "digits",
        "--seeds",
        "2",
        "--budget",
        "1x200",
        "--device",
        "cpu",
        "--runs",
        str(tmp_path / "runs.jsonl"),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = out.read_text()
    for heading in (
        "1. The spectrum",
        "2. Factorization",
        "3. An activation",
        "4. Landmarks at matched",
        "5. FLOPs versus speed",
    ):
        assert heading in text
    assert "Kendall tau" in text and "±" in text
    # Every section that trains compares designs, each comparison with its interval.
    for section in text.split("\n## ")[1:5]:
        assert "interval" in section and "Welch p " in section, section
    tables = json.loads(out.with_suffix(".json").read_text())["tables"]
    assert all(row["seeds"] == 2 for row in tables["spectrum"])
    # The matched section is headed by the count it matches, inception_v3's, not the first row's.
    target = next(r["params"] for r in tables["matched"] if r["label"] == "inception_v3")
    assert tables["matched"][0]["params"] != target
    assert f"## 4. Landmarks at matched parameter count (~{target:,})" in text


def test_each_section_compares_its_designs_with_their_noise():
    from nas._findings_report import _comparisons

    def row(label, mean, std, seeds=3):
        return {"label": label, "acc_mean": mean, "acc_std": std, "seeds": seeds}

    rows = [row("a", 0.8773, 0.0025), row("b", 0.8786, 0.0013), row("c", 0.86, 0.001)]
    lines = _comparisons(rows, [("a", "c")])
    # The most accurate first, against the next; then the section's own pair.
    assert lines[1].startswith("- b against a: +0.13 points (95% interval ")
    assert lines[1].endswith("): not distinguishable at 3 seeds.")
    assert lines[2].startswith("- a against c: +1.73 points")
    assert lines[2].endswith("a is ahead of c at 3 seeds.")
    # A pair that is the leading pair is not said twice.
    assert len(_comparisons(rows, [("a", "b")])) == 2
    single = [row("a", 0.89, 0.0, 1), row("b", 0.87, 0.0, 1)]
    assert "one seed measures no noise" in _comparisons(single, [])[1]
    failed = [row("a", None, 0.0), *rows[1:]]
    assert "- a against c: a failed, no comparison" in _comparisons(failed, [("a", "c")])


# --- bad input: one line, exit 2, nothing created, nothing trained ---------------------------

TINY_RUN = ["--dataset", "digits", "--seeds", "1", "--budget", "1x200", "--device", "cpu"]


def refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and error.startswith("error: "), error
    return error.strip()


def test_a_runs_file_of_something_else_is_named(tmp_path, capsys):
    runs, out = tmp_path / "runs.jsonl", tmp_path / "findings.md"
    runs.write_text('{"arch": "stem8", "val_acc": 0.5}\n')
    error = refused([*TINY_RUN, "--runs", str(runs), "--out", str(out)], capsys)
    assert error.startswith(f"error: {runs} line 1: not a run of this log (no 'failure', 'key')")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["runs.jsonl"]


def test_an_out_folder_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "notes").write_text("mine\n")
    runs, out = tmp_path / "runs.jsonl", tmp_path / "notes" / "findings.md"
    error = refused([*TINY_RUN, "--runs", str(runs), "--out", str(out)], capsys)
    assert f"folder {tmp_path / 'notes'} of --out {out} is a file, not a folder" in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes"]  # nothing trained


def test_seeds_must_be_at_least_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # were it accepted, nothing would land in the repository
    with pytest.raises(SystemExit) as stop:
        main([*TINY_RUN, "--seeds", "0"])
    assert stop.value.code == 2
    assert "argument --seeds: must be at least 1, got 0" in capsys.readouterr().err


def test_findings_on_your_own_images_use_the_search_s_stem(tmp_path, monkeypatch):
    from tests.image_folders import write_npz

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_npz(tmp_path / "big.npz", classes=2, per_class=6)
    out = tmp_path / "findings.md"
    argv = ["--dataset", str(tmp_path / "big.npz"), "--image-size", "64", "--only", "speed"]
    argv += ["--device", "cpu", "--runs", str(tmp_path / "runs.jsonl"), "--out", str(out)]
    assert main(argv) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["context"]["dataset"] == "big"
    rows = report["tables"]["speed"]
    assert [row["label"] for row in rows] == list(LANDMARKS)
    # 64 px: every design's stem halves the images, as the search's would.
    assert all(row["arch"].startswith("stem16s2-") for row in rows)
