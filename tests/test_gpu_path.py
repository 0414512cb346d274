"""The trainer's and the trial's CUDA paths, exercised on a CPU.

No test here needs a GPU: the CUDA-only calls sit in small functions (nas.train.prepare_backend,
nas.train.release_device_memory) that take a "cuda:0" string without touching a device, and the
objective's training is replaced where a test runs it as if on CUDA.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import replace

import optuna
import pytest
import torch
from torch import nn

import nas.train
import search_spaces
from nas._objective import TrialFailed
from nas.data import load_dataset
from nas.train import (
    DEFAULT_RECIPE,
    Budget,
    TrainResult,
    evaluate,
    normalization,
    normalize,
    prepare_backend,
    release_device_memory,
    train,
)
from search_spaces import LANDMARKS
from tests.search_helpers import objective
from tests.test_train import tiny_cnn


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def colour_digits(digits):
    """Digits as 3-channel images under the name of an augmented dataset, so that training
    takes the crop-and-flip path and a batch's layouts differ (one channel hides them)."""

    def coloured(images: torch.Tensor) -> torch.Tensor:
        return images.repeat(1, 3, 1, 1)

    return replace(
        digits,
        name="cifar10",
        train_x=coloured(digits.train_x),
        val_x=coloured(digits.val_x),
        test_x=coloured(digits.test_x),
        mean=digits.mean * 3,
        std=digits.std * 3,
    )


def first_trial(study: optuna.Study, landmark: str = "normal") -> optuna.Trial:
    space = search_spaces.get("inception_to_xception")
    study.enqueue_trial(space.params_for(LANDMARKS[landmark]))
    return study.ask()


# --- backend set-up ---------------------------------------------------------------------------


@pytest.mark.parametrize("tuned", [True, False])
def test_cuda_backend_takes_the_recipe_cudnn_benchmark(monkeypatch, tuned):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", not tuned)  # restored after
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    prepare_backend("cuda:0", replace(DEFAULT_RECIPE, cudnn_benchmark=tuned))
    assert torch.backends.cudnn.benchmark is tuned
    assert threads == []  # the CPU's thread count is no business of a CUDA run


def test_cpu_backend_uses_every_allowed_core_and_leaves_cudnn_alone(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(nas.train, "cpu_threads", lambda: 3)
    prepare_backend("cpu", DEFAULT_RECIPE)
    assert threads == [3]
    assert torch.backends.cudnn.benchmark is False


def test_train_prepares_the_backend_with_its_recipe(monkeypatch, digits):
    calls = []
    monkeypatch.setattr(nas.train, "prepare_backend", lambda *args: calls.append(args))
    recipe = replace(DEFAULT_RECIPE, cudnn_benchmark=False)
    train(tiny_cnn(), digits, Budget(1, 128), recipe=recipe)
    assert calls == [("cpu", recipe)]


def test_recipe_defaults_keep_channels_last_and_cudnn_benchmark():
    assert DEFAULT_RECIPE.channels_last is True and DEFAULT_RECIPE.cudnn_benchmark is True


# --- memory layout ----------------------------------------------------------------------------


def layouts_seen(model: nn.Module) -> list[tuple[bool, bool, bool]]:
    """(training, input channels_last, input NCHW-contiguous) for every call of every conv."""
    seen = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        (images,) = inputs
        seen.append(
            (
                module.training,
                images.is_contiguous(memory_format=torch.channels_last),
                images.is_contiguous(),
            )
        )

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_pre_hook(record)
    return seen


@pytest.mark.parametrize("channels_last", [True, False])
def test_every_batch_and_weight_is_in_the_recipe_layout(colour_digits, channels_last):
    model = tiny_cnn(in_channels=3)
    seen = layouts_seen(model)
    recipe = replace(DEFAULT_RECIPE, channels_last=channels_last)
    result = train(model, colour_digits, Budget(1, 256), recipe=recipe)
    assert result.failure is None
    assert {training for training, *_ in seen} == {True, False}  # training and evaluation
    # Every conv input has 3 or more channels, so no tensor is both layouts at once.
    assert {(nhwc, nchw) for _, nhwc, nchw in seen} == {(channels_last, not channels_last)}
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    wanted = torch.channels_last if channels_last else torch.contiguous_format
    assert all(weight.is_contiguous(memory_format=wanted) for weight in weights)
    assert all(weight.is_contiguous() is not channels_last for weight in weights)


def test_normalize_makes_the_layout_it_is_asked_for(colour_digits):
    mean, scale = normalization(colour_digits, "cpu")
    images = colour_digits.train_x[:4]
    nhwc = normalize(images, mean, scale, torch.channels_last)
    nchw = normalize(images, mean, scale, torch.contiguous_format)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()
    assert nchw.is_contiguous() and torch.equal(nhwc, nchw)


# --- evaluation batches -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_bn_model(digits):
    """A network with BatchNorm whose running statistics are no longer the initial ones."""
    model = tiny_cnn()
    train(model, digits, Budget(2, 512), seed=1)
    return model


def evaluated_batch_sizes(model: nn.Module, data, count: int) -> list[int]:
    """The batch sizes `evaluate` feeds `model` on the first `count` training images."""
    sizes = []
    handle = model.register_forward_pre_hook(lambda _m, inputs: sizes.append(len(inputs[0])))
    try:
        evaluate(model, data.train_x[:count], data.train_y[:count], data=data)
    finally:
        handle.remove()
    return sizes


def test_evaluation_feeds_one_batch_shape(digits, trained_bn_model):
    assert DEFAULT_RECIPE.eval_batch_size == 256
    # The 44-image tail is padded: cuDNN sees no third shape.
    assert evaluated_batch_sizes(trained_bn_model, digits, 300) == [256, 256]


def test_a_split_smaller_than_the_eval_batch_is_one_unpadded_batch(digits, trained_bn_model):
    assert evaluated_batch_sizes(trained_bn_model, digits, 100) == [100]


def test_padding_changes_no_prediction(digits, trained_bn_model):
    images, labels = digits.train_x[:300], digits.train_y[:300]
    padded = evaluate(trained_bn_model, images, labels, data=digits)
    one_batch = evaluate(
        trained_bn_model,
        images,
        labels,
        data=digits,
        recipe=replace(DEFAULT_RECIPE, eval_batch_size=300),
    )
    # Image by image, with no evaluation code of ours but the normalization constants.
    mean, scale = normalization(digits, "cpu")
    trained_bn_model.eval()
    with torch.inference_mode():
        correct = sum(
            int(trained_bn_model((image[None].float() - mean) * scale).argmax()) == int(label)
            for image, label in zip(images, labels)
        )
    assert 0 < correct < 300  # a real classifier, neither all right nor all wrong
    assert padded == one_batch == correct / 300


# --- a trial that runs out of memory ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (torch.cuda.OutOfMemoryError, "CUDA out of memory. Tried to allocate 2.00 GiB"),
        (RuntimeError, "CUDA error: out of memory"),
    ],
    ids=["OutOfMemoryError", "RuntimeError"],
)
def test_out_of_memory_frees_the_trial_before_releasing_memory(monkeypatch, kind, message):
    models = []

    def running_out(model, data, *_args, **_kwargs):
        models.append(weakref.ref(model))
        activations = model(torch.zeros(2, *data.input_shape))  # held, as a real step's are
        assert activations.requires_grad
        raise kind(message)  # a fresh error: one kept by the test would keep its traceback

    releases = []

    def release(device: str) -> None:
        releases.append((device, [ref() is None for ref in models]))

    monkeypatch.setattr("nas._objective.train", running_out)
    monkeypatch.setattr("nas._objective.release_device_memory", release)
    monkeypatch.setattr("nas._objective.measure_latency", lambda *_a, **_k: {1: 0.5})
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = first_trial(study)
    gc.disable()  # the model must go by reference counting alone, not by a lucky collection
    try:
        with pytest.raises(TrialFailed, match="out of memory on cuda:0") as raised:
            objective(device="cuda:0")(trial)
    finally:
        gc.enable()
    assert releases == [("cuda:0", [True])]
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert study.trials[0].user_attrs["failure"] == "out of memory on cuda:0"


def test_another_error_fails_the_trial_without_a_release(monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("shapes cannot be multiplied\nsecond line")

    releases = []
    monkeypatch.setattr("nas._objective.train", broken)
    monkeypatch.setattr("nas._objective.release_device_memory", releases.append)
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.raises(TrialFailed) as raised:
        objective()(first_trial(study))
    assert releases == []
    assert raised.value.__context__ is None
    assert study.trials[0].user_attrs["failure"] == "error: shapes cannot be multiplied"


@pytest.mark.parametrize(("device", "empties"), [("cuda:0", 1), ("cpu", 0)])
def test_release_device_memory_collects_then_empties_the_cuda_cache(monkeypatch, device, empties):
    steps = []
    monkeypatch.setattr(gc, "collect", lambda: steps.append("collect"))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: steps.append("empty_cache"))
    release_device_memory(device)
    assert steps == ["collect"] + ["empty_cache"] * empties


# --- latency ----------------------------------------------------------------------------------


def test_latency_is_measured_on_one_cpu_thread_whatever_device_trains(monkeypatch):
    measured = []

    def latency_spy(model, input_shape, **options):
        measured.append((next(model.parameters()).device, options))
        return {1: 0.25}

    trained_on = []

    def fake_train(model, data, budget, *, device, **_options):
        trained_on.append(device)
        return TrainResult(val_acc_curve=[0.5], train_loss_curve=[1.0], device=device)

    monkeypatch.setattr("nas._objective.measure_latency", latency_spy)
    monkeypatch.setattr("nas._objective.train", fake_train)
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = first_trial(study)
    values = objective(device="cuda:0", objectives=("val_acc", "latency_ms"))(trial)
    assert trained_on == ["cuda:0"]
    [(model_device, options)] = measured
    assert model_device == torch.device("cpu")
    assert options["device"] == "cpu" and options["cpu_threads"] == 1
    assert options["batch_sizes"] == (1,)
    assert values == (0.5, 0.25)
    assert study.trials[0].user_attrs["latency_ms"] == 0.25
