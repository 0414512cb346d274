"""RunSettings: a search's command line checked once, before any storage, study or data."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from nas import search
from nas._settings import DEFAULT_HEARTBEAT_S, RunSettings, resume_notes
from nas.storage import DEFAULT_STORAGE
from nas.train import BATCH_SIZE_BEFORE_MIN_STEPS, Budget
from search_spaces import LANDMARKS, landmarks_for

STUDY_ATTRS = {
    "space",
    "dataset",
    "objectives",
    "budget",
    "batch_size",
    "device",
    "input_shape",
    "num_classes",
    "class_names",
    "seed",
    "sampler",
    "command",
    "version",
}


def settings(*args: str) -> RunSettings:
    arguments = ["--device", "cpu", *args]
    return RunSettings.from_args(search.build_parser().parse_args(arguments), arguments)


def digits_like(train_images: int = 1000):
    return SimpleNamespace(
        train_x=[0] * train_images,
        input_shape=(1, 8, 8),
        num_classes=10,
        class_names=tuple(map(str, range(10))),
        fingerprint="",
    )


def test_defaults_resolve_to_the_documented_run():
    run = settings()
    assert run.space.name == "inception_to_xception"
    assert run.study_name == "inception_to_xception-fashion_mnist"
    assert run.storage_url == DEFAULT_STORAGE
    assert run.objectives == ("val_acc", "macs") and run.directions == ["maximize", "minimize"]
    assert run.heartbeat_s == DEFAULT_HEARTBEAT_S
    assert run.pruner == "rungs" and run.landmarks and run.worker_index is None
    assert run.device == "cpu" and run.budget == Budget(3, 10_000)


def test_every_option_lands_in_its_field():
    run = settings(
        "--space",
        "xception_spectrum",
        "--dataset",
        "digits",
        "--budget",
        "3x500",
        "--epochs",
        "5",
        "--objectives",
        "acc,macs,latency",
        "--sampler",
        "tpe",
        "--heartbeat",
        "0",
        "--no-prune",
        "--no-landmarks",
        "--seed",
        "7",
        "--workers",
        "2",
        "--trials",
        "12",
        "--max-mmacs",
        "1.5",
    )
    assert run.space.name == "xception_spectrum" and run.study_name == "xception_spectrum-digits"
    assert run.budget == Budget(5, 500)  # --epochs overrides the budget's
    assert run.objectives == ("val_acc", "macs", "latency_ms")
    assert run.directions == ["maximize", "minimize", "minimize"]
    assert (run.sampler, run.seed, run.workers, run.trials) == ("tpe", 7, 2, 12)
    assert run.heartbeat_s is None  # 0 turns heartbeats off
    assert run.pruner == "none" and not run.landmarks and run.max_mmacs == 1.5  # --no-prune
    assert run.landmark_trials((1, 8, 8)) == []


def test_settings_are_frozen():
    run = settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 1


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--seed", "-1", "--workers", "1"],
            "--seed must be a whole number from 0 to 4294967295, got -1",
        ),
        (["--seed", str(2**32), "--workers", "1"], "from 0 to 4294967295"),
        # Worker i samples with seed + i: the last worker's seed must still be valid.
        (["--seed", str(2**32 - 1), "--workers", "2"], "from 0 to 4294967294"),
        (["--max-mmacs", "nan"], "--max-mmacs must be a finite positive number, got nan"),
        (["--max-mmacs", "inf"], "--max-mmacs must be a finite positive number, got inf"),
        (["--max-mmacs", "0"], "--max-mmacs must be a finite positive number"),
        # A thread's timer overflows beyond about 292 years; an hour is the documented most.
        (
            ["--heartbeat", "1000000000000"],
            "--heartbeat must be whole seconds from 0 (off) to 3600",
        ),
        (["--heartbeat", "3601"], "got 3601"),
        (
            ["--dataset", "digits", "--max-mmacs", "0.0001"],
            "its cheapest on digits needs 0.009002",
        ),
        (["--epochs", "0"], "epochs >= 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--pruner", "asha"], "unknown pruner 'asha': choose from rungs, dominance, none"),
        (["--dataset", "mnist"], "choose from fashion_mnist, cifar10, digits"),
        (["--space", "nope"], "inception_to_xception"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_bad_options_are_one_line_value_errors(args, message):
    with pytest.raises(ValueError) as refused:
        settings(*args)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_bad_input_is_refused_before_storage_or_data_exist(monkeypatch, tmp_path, capsys):
    def too_early(*args, **kwargs):
        raise AssertionError("created before the settings were checked")

    monkeypatch.setattr(search, "open_storage", too_early)
    monkeypatch.setattr(search, "open_or_create_study", too_early)
    monkeypatch.setattr("nas.data.load_dataset", too_early)
    path = tmp_path / "studies.db"
    for bad in (
        ["--seed", "-1"],
        ["--seed", "4294967296"],
        ["--max-mmacs", "nan"],
        ["--max-mmacs", "0.0001"],
        ["--heartbeat", "1000000000000"],
    ):
        code = search.main(["--storage", f"sqlite:///{path}", "--device", "cpu", *bad])
        error = capsys.readouterr().err
        assert code == 2 and error.startswith("error: --")
        assert len(error.strip().splitlines()) == 1
    assert not path.exists()


def test_study_attrs_are_what_stored_studies_hold():
    run = settings("--dataset", "digits", "--budget", "2x300", "--seed", "4")
    attrs = run.study_attrs(digits_like(1000))
    assert set(attrs) == STUDY_ATTRS
    assert attrs["space"] == "inception_to_xception" and attrs["dataset"] == "digits"
    assert attrs["objectives"] == ["val_acc", "macs"] and attrs["budget"] == "2x300"
    assert attrs["input_shape"] == [1, 8, 8] and attrs["num_classes"] == 10
    assert attrs["class_names"] == [str(digit) for digit in range(10)]
    assert attrs["seed"] == 4 and attrs["sampler"] == "nsga2" and attrs["device"] == "cpu"
    # 2 epochs of 300 images at 128 would be 4 steps: the recipe halves the batch.
    assert attrs["batch_size"] == run.batch_size(digits_like(1000)) == 64
    assert attrs["command"] == (
        "python -m nas.search --device cpu --dataset digits --budget 2x300 --seed 4"
    )


def test_the_recorded_command_never_holds_a_password():
    run = settings("--storage", "postgresql+psycopg://nas:secret@db.example/studies")
    assert "secret" not in run.command
    assert "postgresql+psycopg://nas:***@db.example/studies" in run.command
    assert run.storage_url.endswith(":secret@db.example/studies")  # the real one still connects


def test_landmark_trials_reach_their_landmarks_and_never_exceed_the_target():
    run = settings()
    trials = run.landmark_trials((1, 28, 28))
    assert trials, "the default space reaches landmarks"
    for params, attrs in trials:
        assert run.space.arch_from_params(params) == LANDMARKS[attrs["landmark"]]
    assert len(settings("--trials", "2").landmark_trials((1, 28, 28))) == 2


def test_landmark_trials_of_large_images_have_the_stem_that_downsamples_them():
    run = settings()
    trials = run.landmark_trials((3, 224, 224))
    assert len(trials) == len(run.landmark_trials((1, 28, 28)))
    for params, attrs in trials:
        built = run.space_for((3, 224, 224)).arch_from_params(params)
        assert built.stem_stride == 8
        assert built == landmarks_for((3, 224, 224))[attrs["landmark"]]


def test_resume_notes_name_what_changed():
    wanted = {"budget": "3x10000", "batch_size": 64}
    assert resume_notes("s", dict(wanted), wanted) == []
    budget, batch = resume_notes("s", {"budget": "6xfull", "batch_size": 128}, wanted)
    assert "started with budget 6xfull, continuing with 3x10000" in budget
    assert "batch 128, continuing at 64" in batch
    # Studies stored before the batch was recorded trained at the old fixed batch.
    (old,) = resume_notes("s", {"budget": "3x10000"}, wanted)
    assert f"batch {BATCH_SIZE_BEFORE_MIN_STEPS}" in old


@pytest.mark.parametrize(
    "cores, free_gib, trials, storage, expected",
    [
        (6, 64, 200, None, 6),  # one worker per core
        (6, 3.5, 200, None, 3),  # no more than the free memory holds
        (6, 0.5, 200, None, 1),  # at least one, however short the memory
        (6, 64, 4, None, 4),  # no idle worker beyond the trials
        (6, 64, 200, "sqlite:///:memory:", 1),  # workers cannot share a database in memory
    ],
)
def test_auto_workers_follow_the_cores_memory_trials_and_storage(
    monkeypatch, tmp_path, cores, free_gib, trials, storage, expected
):
    monkeypatch.setattr("nas._settings.usable_cores", lambda: cores)
    monkeypatch.setattr("nas._settings.available_memory", lambda: int(free_gib * 2**30))
    storage = storage or f"sqlite:///{tmp_path / 'studies.db'}"
    run = settings("--workers", "auto", "--trials", str(trials), "--storage", storage)
    assert run.workers == expected


def test_auto_is_the_default_and_one_worker_per_core_on_a_cpu(monkeypatch):
    from nas._settings import worker_count

    monkeypatch.setattr("nas._settings.usable_cores", lambda: 8)
    monkeypatch.setattr("nas._settings.available_memory", lambda: 64 * 2**30)
    assert settings().workers == 8
    assert worker_count("AUTO", "cpu", DEFAULT_STORAGE, 200) == 8
    assert worker_count("3", "cuda", DEFAULT_STORAGE, 200) == 3


@pytest.mark.parametrize(
    "cores, gpu_gib, device, expected",
    [
        (16, 141, "cuda", 16),  # the H200 measured: one per core
        (64, 141, "cuda", 16),  # more cores than were ever measured on one GPU
        (16, 8, "cuda:1", 4),  # a small card: its memory decides
        (2, 141, "cuda", 2),
        (16, 1, "cuda", 1),  # never fewer than one
    ],
)
def test_auto_on_a_gpu_is_one_worker_per_core_within_its_memory(
    monkeypatch, cores, gpu_gib, device, expected
):
    from nas._settings import worker_count

    asked = []
    monkeypatch.setattr("nas._settings.usable_cores", lambda: cores)
    monkeypatch.setattr("nas._settings.available_memory", lambda: 256 * 2**30)
    monkeypatch.setattr(
        "nas._settings.gpu_memory", lambda name: asked.append(name) or int(gpu_gib * 2**30)
    )
    assert worker_count("auto", device, DEFAULT_STORAGE, 200) == expected
    assert asked == [device]
    assert worker_count("auto", device, DEFAULT_STORAGE, 3) == min(expected, 3)


def test_the_pruner_is_named_and_no_prune_means_none():
    assert settings("--pruner", "dominance").pruner == "dominance"
    assert settings("--pruner", "dominance", "--no-prune").pruner == "none"


def test_a_worker_count_that_is_no_number_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"--workers must be auto or a whole number, got 'two'"):
        settings("--workers", "two")


@pytest.mark.parametrize("trials, population", [(40, 10), (200, 25), (1000, 50)])
def test_each_sampler_is_built_as_documented(trials, population):
    from nas._workers import make_sampler

    nsga2 = make_sampler(settings("--trials", str(trials)))
    assert nsga2._population_size == population  # generations of an eighth, 10 to 50
    tpe = make_sampler(settings("--sampler", "tpe", "--seed", "3"))
    assert tpe._multivariate and tpe._constant_liar  # workers do not pile onto one point
    assert type(make_sampler(settings("--sampler", "random"))).__name__ == "RandomSampler"
