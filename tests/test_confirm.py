"""nas.confirm: the front and the landmarks retrained with more seeds, stored, resumable."""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import replace

import optuna
import pytest

from nas import Arch, build_model
from nas.confirm import (
    Confirmed,
    Target,
    confirmed,
    final_summary,
    main,
    run_confirmation,
    seeds_of,
    summary,
    targets,
)
from nas.data import load_dataset
from nas.intervals import mean_interval
from nas.record import DONE, RUNNING, ConfirmationRun, confirmation_runs, run_key
from nas.train import DEFAULT_RECIPE, Budget, train, train_final
from tests.confirm_study import LARGE, MID, SMALL, make_study
from tests.search_helpers import load, run_search


@pytest.fixture
def url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url)
    return url


def test_targets_are_the_knee_and_its_neighbours_then_every_landmark(tmp_path):
    study = make_study(f"sqlite:///{tmp_path / 'a.db'}")
    # The front, cheapest first, is SMALL, MID, LARGE (the landmarks and DOMINATED lie below
    # it); MID is its knee, and the nearer neighbour on a tie is the cheaper one.
    picked = targets(study, top=2)
    assert [(t.trial, t.label) for t in picked] == [
        (1, "knee"), (0, "front"), (4, "normal"), (5, "mobilenet")
    ]  # fmt: skip
    everything = targets(study, top=50)
    assert [t.arch for t in everything[:3]] == [MID, SMALL, LARGE] and len(everything) == 5
    assert seeds_of(study, 3) == [1, 2, 3]
    assert seeds_of(make_study(f"sqlite:///{tmp_path / 'b.db'}", seed=7), 2) == [8, 9]


def test_confirmation_trains_each_seed_at_the_studys_budget_stores_it_and_resumes(url, capsys):
    argv = ["--storage", url, "--study", "s", "--seeds", "2", "--top", "1", "--device", "cpu"]
    argv += ["--workers", "1"]
    assert main(argv) == 0
    study = optuna.load_study(study_name="s", storage=url)
    picked = targets(study, top=1)
    runs = confirmation_runs(study.user_attrs)
    assert set(runs) == {run_key(t.trial, seed) for t in picked for seed in (1, 2)}
    assert all(run.state == DONE and len(run.val_acc_curve) == 2 for run in runs.values())
    # The run is the study's own training at that seed: its budget and its batch.
    knee = picked[0]
    data = load_dataset("digits")
    expected = train(
        build_model(Arch.parse(knee.arch), 1, 10),
        data,
        Budget(2, 300),
        seed=2,
        recipe=replace(DEFAULT_RECIPE, batch_size=32, min_steps=0),
    )
    assert runs[run_key(knee.trial, 2)].val_acc_curve == tuple(expected.val_acc_curve)
    captured = capsys.readouterr()
    assert "[4/6]" in captured.err and "confirmed with seeds 1, 2" in captured.out
    assert "±" in captured.out
    # Everything is stored: a rerun trains nothing and prints the same table.
    assert main(argv) == 0
    again = capsys.readouterr()
    assert "[1/" not in again.err and again.out == captured.out


def test_final_training_scores_the_same_networks_on_the_test_split_after_confirming(url, capsys):
    argv = ["--storage", url, "--study", "s", "--seeds", "2", "--top", "1", "--workers", "1"]
    assert main([*argv, "--final", "--epochs", "2"]) == 0
    study = optuna.load_study(study_name="s", storage=url)
    picked = targets(study, top=1)
    runs = confirmation_runs(study.user_attrs)
    # The confirmations, then a final run of each network at each seed, filed apart.
    finals = {key: run for key, run in runs.items() if run.epochs is not None}
    assert set(finals) == {run_key(t.trial, seed, 2) for t in picked for seed in (1, 2)}
    assert len(runs) == 2 * len(finals)
    knee = picked[0]
    # The run is the final recipe on train + validation, scored per epoch on the test split.
    data = load_dataset("digits")
    model = build_model(Arch.parse(knee.arch), 1, 10)
    test_acc, expected = train_final(model, data, 2, seed=1)
    run = finals[run_key(knee.trial, 1, 2)]
    assert run.val_acc_curve == tuple(expected.val_acc_curve) and run.accuracy == test_acc
    captured = capsys.readouterr()
    assert "epoch 2/2: test acc" in captured.err and "final runs of 2 epochs" in captured.err
    assert "final training: 2 epochs" in captured.out and "->" in captured.out
    # A rerun trains nothing; other epochs are other runs, and --epochs needs --final.
    assert main([*argv, "--final", "--epochs", "2"]) == 0
    assert "epoch 1/" not in capsys.readouterr().err
    assert "--epochs goes with --final" in refused([*argv, "--epochs", "2"], capsys)


def test_workers_split_the_runs_between_processes(url, capsys):
    argv = ["--storage", url, "--study", "s", "--seeds", "1", "--top", "1", "--workers", "2"]
    assert main(argv) == 0
    study = optuna.load_study(study_name="s", storage=url)
    runs = confirmation_runs(study.user_attrs)
    assert len(runs) == len(targets(study, top=1)) and all(r.state == DONE for r in runs.values())
    # Trained by the started processes, not this one; the table is printed once, here.
    assert all(not run.worker.endswith(f":{os.getpid()}") for run in runs.values())
    assert capsys.readouterr().out.count("confirmed with seeds 1") == 1


def test_landmarks_within_keeps_those_near_the_knee_in_macs(tmp_path):
    study = make_study(f"sqlite:///{tmp_path / 'g.db'}")
    knee = targets(study, top=1)[0]
    every = [t for t in targets(study, top=1) if t.is_landmark]
    # How far each landmark lies from the knee in MACs, as a ratio either way.
    far = sorted((max(t.macs / knee.macs, knee.macs / t.macs), t.label) for t in every)
    assert len(far) == 2 and far[0][0] < far[1][0]
    nearer = targets(study, top=1, landmarks_within=(far[0][0] + far[1][0]) / 2)
    assert [t.label for t in nearer if t.is_landmark] == [far[0][1]]
    both = targets(study, top=1, landmarks_within=far[1][0] * 1.001)
    assert sorted(t.label for t in both if t.is_landmark) == sorted(t.label for t in every)


def test_the_final_summary_ranks_both_ways_and_compares_with_the_best_cheaper_landmark():
    def row(label, trial, macs, accuracies):
        target = Target(trial, f"a{trial}", macs, 0.9, label)
        return Confirmed(target, tuple(accuracies), mean_interval(accuracies))

    proxy = [
        row("knee", 1, 2_000_000, [0.88, 0.881]),
        row("normal", 2, 9_000_000, [0.87, 0.871]),
        row("mobilenet", 3, 1_000_000, [0.86, 0.861]),
        row("inception_v1", 4, 1_900_000, [0.85, 0.851]),
    ]
    final = [
        row("knee", 1, 2_000_000, [0.930, 0.931, 0.932]),
        row("normal", 2, 9_000_000, [0.936, 0.935, 0.937]),
        row("mobilenet", 3, 1_000_000, [0.900, 0.905, 0.910]),
        row("inception_v1", 4, 1_900_000, [0.925, 0.920, 0.930]),
    ]
    text = final_summary(proxy, final, 10)
    lines = {line.split()[0]: line for line in text.splitlines()[2:6]}
    # Proxy rank -> final rank: the knee first on the proxy, second after final training.
    assert lines["knee"].endswith("1 -> 2") and lines["normal"].endswith("2 -> 1")
    assert "93.10% ± 0.10% (3)" in lines["knee"]
    assert "Kendall tau 0.33" in text  # 4 of 6 pairs in the same order, 2 swapped
    # Of the landmarks at equal or lower MACs (mobilenet, inception_v1), the best by its final
    # mean is inception_v1; normal costs more and is not the comparison.
    flat = " ".join(text.split())
    assert "trial 1 (knee) against inception_v1: +0.60 points" in flat
    assert "not distinguishable at 3 seeds (the best landmark at equal or lower MACs)" in flat


def fake_trainer(calls: list):
    def train_one(target, seed, on_epoch):
        calls.append((target.trial, seed))
        on_epoch([0.5])
        return [0.5, 0.6 + seed / 100], 0.01, None

    return train_one


def test_a_silent_claim_is_taken_over_and_a_live_one_is_left_to_its_worker(tmp_path):
    study = make_study(f"sqlite:///{tmp_path / 'c.db'}")
    picked = targets(study, top=1)[:2]
    knee, other = picked
    # Another process died on the knee's seed 1 long ago, and is alive on the other's.
    dead = ConfirmationRun(knee.trial, 1, knee.arch, RUNNING, "elsewhere:1", time.time() - 3600)
    live = ConfirmationRun(other.trial, 1, other.arch, RUNNING, "elsewhere:2", time.time())
    for run in (dead, live):
        study.set_user_attr(run.key, run.to_attr())

    def finish_live() -> None:
        time.sleep(0.5)
        done = replace(live, state=DONE, val_acc_curve=(0.7,), train_seconds=1.0)
        study.set_user_attr(live.key, done.to_attr())

    finisher = threading.Thread(target=finish_live)
    finisher.start()
    calls: list = []
    trained = run_confirmation(
        study, picked, [1], fake_trainer(calls), stale_s=60, poll_s=0.05, out=io.StringIO()
    )
    finisher.join()
    assert calls == [(knee.trial, 1)] and trained == 1
    runs = confirmation_runs(study.user_attrs)
    assert runs[live.key].worker == "elsewhere:2" and runs[live.key].accuracy == 0.7
    assert runs[dead.key].state == DONE and runs[dead.key].accuracy == pytest.approx(0.61)


def test_an_interrupted_run_leaves_a_claim_another_process_takes_at_once(tmp_path):
    study = make_study(f"sqlite:///{tmp_path / 'd.db'}")
    picked = targets(study, top=1)[:1]

    def interrupted(target, seed, on_epoch):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_confirmation(study, picked, [1], interrupted, out=io.StringIO())
    (run,) = confirmation_runs(study.user_attrs).values()
    assert run.state == RUNNING and run.beat == 0.0
    calls: list = []
    run_confirmation(study, picked, [1], fake_trainer(calls), out=io.StringIO())
    assert calls == [(picked[0].trial, 1)]


def test_junk_in_the_study_attributes_is_not_a_run(tmp_path):
    study = make_study(f"sqlite:///{tmp_path / 'e.db'}")
    study.set_user_attr(run_key(1, 1), {"trial": "1; import os", "seed": 1})
    study.set_user_attr(run_key(1, 2), "<script>")
    good = ConfirmationRun(1, 3, MID, DONE, "w", 1.0, (0.5,))
    study.set_user_attr(run_key(9, 9), good.to_attr())  # filed under another key
    study.set_user_attr(good.key, good.to_attr())
    assert list(confirmation_runs(study.user_attrs)) == [good.key]
    # A final run reads back whole under its own key; one whose epochs are not a count is junk.
    final = replace(good, epochs=10)
    assert final.key == "final:1:3:10" and ConfirmationRun.from_attr(final.to_attr()) == final
    for epochs in (0, "10", True, 2.5):
        assert ConfirmationRun.from_attr({**final.to_attr(), "epochs": epochs}) is None, epochs


def test_the_summary_puts_intervals_on_points_and_says_what_the_seeds_tell_apart():
    def row(label, trial, macs, accuracies):
        target = Target(trial, f"a{trial}", macs, 0.9, label)
        return Confirmed(target, tuple(accuracies), mean_interval(accuracies), on_front=True)

    rows = [
        row("knee", 1, 2_000_000, [0.900, 0.902, 0.901]),
        row("front", 2, 5_000_000, [0.880, 0.890, 0.870]),
        row("normal", 3, 2_100_000, [0.880, 0.881, 0.882]),
        row("mobilenet", 4, 500_000, [0.870, 0.875, 0.880]),
    ]
    text = " ".join(summary(rows, [1, 2, 3]).split())  # lines wrap at 100 columns
    assert "90.10% ± 0.25% (3)" in text
    # Each searched point against the landmark nearest in MACs.
    assert "trial 1 (knee) against normal: +2.00 points" in text
    assert "trial 1 (knee) is ahead of normal at 3 seeds" in text
    assert "trial 2 (front) against normal:" in text and "not distinguishable at 3" in text


def test_the_confirmed_front_is_the_front_of_the_means(tmp_path):
    study = make_study(f"sqlite:///{tmp_path / 'f.db'}")
    picked = targets(study, top=3)
    # Confirmed means: LARGE falls below MID, so only the cheap points stay on the front.
    means = {SMALL: 0.60, MID: 0.86, LARGE: 0.84}
    for target in picked:
        accuracy = means.get(target.arch, 0.3)
        run = ConfirmationRun(target.trial, 1, target.arch, DONE, "w", 1.0, (accuracy,))
        study.set_user_attr(run.key, run.to_attr())
    rows = {row.target.arch: row for row in confirmed(study.user_attrs, picked, [1])}
    assert rows[MID].on_front and not rows[LARGE].on_front
    assert rows[MID].interval.seeds == 1


def refused(argv, capsys) -> str:
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and error.startswith("error: "), error
    return error


def test_bad_input_is_refused_in_one_line(url, tmp_path, capsys):
    assert "no study 'nope'" in refused(["--storage", url, "--study", "nope"], capsys)
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    refused(["--storage", missing, "--study", "s"], capsys)
    assert not (tmp_path / "missing.db").exists()
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="s", storage=empty, directions=["maximize", "minimize"])
    assert "no complete trial" in refused(["--storage", empty, "--study", "s"], capsys)
    within = ["--storage", url, "--study", "s", "--landmarks-within", "0.5"]
    assert "--landmarks-within must be at least 1" in refused(within, capsys)


def test_search_confirm_confirms_the_study_it_just_finished(tmp_path):
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    result = run_search(storage, "--trials", "3", "--budget", "1x200", "--confirm", "1")
    assert result.returncode == 0, result.stderr
    study = load(storage)
    runs = confirmation_runs(study.user_attrs)
    # One more seed of each network nas.confirm would pick, trained at the study's budget.
    assert {run.trial for run in runs.values()} == {t.trial for t in targets(study, top=5)}
    assert all(run.state == DONE and len(run.val_acc_curve) == 1 for run in runs.values())
    assert all(run.seed == 1 for run in runs.values())
    assert "confirmed with seeds 1" in result.stdout


def test_search_confirm_refuses_an_in_memory_storage(capsys):
    from nas.search import main as search_main

    assert search_main(["--storage", "sqlite:///:memory:", "--confirm", "2"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --confirm needs a storage that outlives the search")


def test_export_picks_on_confirmed_means_then_on_final_test_accuracy(url, tmp_path, capsys):
    from nas.export import main as export_main

    study = optuna.load_study(study_name="s", storage=url)
    by_arch = {t.arch: t for t in targets(study, top=3)}
    out = tmp_path / "model.py"
    argv = ["--storage", url, "--study", "s", "--pick", "best", "--out", str(out)]

    def exported_trial() -> int:
        assert export_main([*argv, "--force"] if out.exists() else argv) == 0
        return int(capsys.readouterr().out.split("trial ")[1].split()[0])

    # On the single proxy runs, LARGE (0.87) is the most accurate.
    assert exported_trial() == by_arch[LARGE].trial
    assert "picked on: the search's single proxy run" in out.read_text()
    # Confirmed, MID's mean is ahead: the pick follows the means, and the file says so.
    for arch, accuracies in ((MID, (0.86, 0.88)), (LARGE, (0.84, 0.85))):
        for seed, accuracy in enumerate(accuracies, start=1):
            run = ConfirmationRun(by_arch[arch].trial, seed, arch, DONE, "w", 1.0, (accuracy,))
            study.set_user_attr(run.key, run.to_attr())
    assert exported_trial() == by_arch[MID].trial
    text = " ".join(out.read_text().split())
    assert "picked on: the mean confirmed validation accuracy over 2 seeds" in text
    # Final test accuracy, where there is some, comes before the confirmed means.
    for arch, accuracy in ((MID, 0.90), (LARGE, 0.93)):
        run = ConfirmationRun(by_arch[arch].trial, 1, arch, DONE, "w", 1.0, (accuracy,), epochs=5)
        study.set_user_attr(run.key, run.to_attr())
    assert exported_trial() == by_arch[LARGE].trial
    text = " ".join(out.read_text().split())
    assert "the mean final test accuracy (5 epochs of the final recipe) over 1 seed" in text
