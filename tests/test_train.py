"""The proxy trainer on the digits set with a tiny local CNN: fast and deterministic."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from nas.data import load_dataset
from nas.train import (
    DEFAULT_RECIPE,
    Budget,
    TrainResult,
    auto_budget,
    crop_and_flip,
    evaluate,
    resolve_device,
    train,
    train_final,
)


def tiny_cnn(in_channels: int = 1, num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


class NotANumber(nn.Module):
    """A network whose every output is NaN from the first step."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1)) * float("nan")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_training_beats_chance_by_far(digits):
    result = train(tiny_cnn(), digits, auto_budget("cpu", "digits"), seed=0)
    assert result.failure is None and not result.stopped_early
    assert result.val_acc > 0.8  # chance is 0.1
    epochs = auto_budget("cpu", "digits").epochs
    assert len(result.val_acc_curve) == len(result.train_loss_curve) == epochs
    assert len(result.epoch_seconds) == epochs
    assert result.train_loss_curve[-1] < result.train_loss_curve[0]
    # 15 x 9 steps at batch 128 is under min_steps: the run takes half the batch.
    assert result.batch_size == 64
    assert result.images_seen == epochs * (1150 // 64) * 64
    assert result.train_seconds > 0 and result.eval_seconds > 0
    assert (result.device, result.budget) == ("cpu", "15xfull")


def test_same_seed_gives_the_identical_curve(digits):
    model = tiny_cnn()
    first = train(model, digits, Budget(3, 512), seed=7)
    second = train(model, digits, Budget(3, 512), seed=7)  # same module, re-initialized
    fresh = train(tiny_cnn(), digits, Budget(3, 512), seed=7)
    assert first.train_loss_curve == second.train_loss_curve == fresh.train_loss_curve
    assert first.val_acc_curve == second.val_acc_curve == fresh.val_acc_curve
    other = train(model, digits, Budget(3, 512), seed=8)
    assert other.train_loss_curve != first.train_loss_curve


def test_nan_output_is_a_failure_not_an_exception(digits):
    result = train(NotANumber(), digits, Budget(2, None))
    assert result.failure == "diverged: non-finite loss at epoch 1 step 1"
    assert result.val_acc_curve == [] and result.val_acc == 0.0
    assert result.images_seen == result.batch_size


def test_huge_learning_rate_diverges_cleanly(digits):
    recipe = replace(DEFAULT_RECIPE, peak_lr=1e12, warmup_fraction=0.0)
    result = train(tiny_cnn(), digits, Budget(3, None), recipe=recipe)
    assert result.failure is not None and result.failure.startswith("diverged: non-finite loss")


def test_on_epoch_can_stop_training(digits):
    seen = []

    def prune_after_second(epoch: int, val_acc: float) -> bool:
        seen.append((epoch, val_acc))
        return epoch == 2

    result = train(tiny_cnn(), digits, Budget(5, 256), on_epoch=prune_after_second)
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert [acc for _, acc in seen] == result.val_acc_curve
    assert result.stopped_early and result.failure is None


def test_stopping_at_the_last_epoch_is_not_early(digits):
    result = train(tiny_cnn(), digits, Budget(1, 256), on_epoch=lambda epoch, acc: True)
    assert not result.stopped_early


def test_train_final_reports_test_accuracy(digits):
    test_acc, result = train_final(tiny_cnn(), digits, 2, device="cpu", seed=0)
    assert test_acc == result.val_acc and 0.0 <= test_acc <= 1.0
    assert result.images_seen == 2 * ((1150 + 288) // 64) * 64  # train + validation


def test_train_final_passes_its_options_to_train(digits):
    recipe = replace(DEFAULT_RECIPE, batch_size=32, min_steps=0)
    _, result = train_final(tiny_cnn(), digits, 2, recipe=recipe, seed=3)
    assert result.batch_size == 32
    assert result.images_seen == 2 * ((1150 + 288) // 32) * 32
    _, again = train_final(tiny_cnn(), digits, 2, recipe=recipe, seed=3)
    _, other_seed = train_final(tiny_cnn(), digits, 2, recipe=recipe, seed=4)
    assert again.val_acc_curve == result.val_acc_curve  # the seed reached train
    assert other_seed.train_loss_curve != result.train_loss_curve


def test_evaluate_counts_correct_predictions(digits):
    class AlwaysZero(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x), 10).index_fill_(1, torch.tensor([0]), 1.0)

    accuracy = evaluate(AlwaysZero(), digits.val_x, digits.val_y, data=digits)
    assert accuracy == pytest.approx((digits.val_y == 0).float().mean().item())


def test_crop_and_flip_moves_pixels_but_keeps_shape():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    unpadded = crop_and_flip(images, generator, pad=0)  # only flips remain possible
    for original, out in zip(images, unpadded):
        assert torch.equal(out, original) or torch.equal(out, original.flip(2))
    shifted = crop_and_flip(images, generator)
    assert shifted.shape == images.shape
    assert shifted.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    ("text", "budget"), [("3x12000", Budget(3, 12000)), ("10xfull", Budget(10))]
)
def test_budget_text_round_trips(text, budget):
    assert Budget.parse(text) == budget and str(budget) == text


@pytest.mark.parametrize("text", ["3", "x100", "0x100", "3x0", "3xall"])
def test_budget_rejects_bad_text(text):
    with pytest.raises(ValueError):
        Budget.parse(text)


def test_short_budgets_take_half_the_batch():
    # 3 x 10,000 at 128 is 234 steps (under min_steps 500): 64. 30 x 10,000 is 2,340 steps: 128.
    assert DEFAULT_RECIPE.batch_size_for(Budget(3, 10_000), 50_000) == 64
    assert DEFAULT_RECIPE.batch_size_for(Budget(30, 10_000), 50_000) == 128
    assert DEFAULT_RECIPE.batch_size_for(Budget(6, None), 50_000) == 128
    assert DEFAULT_RECIPE.batch_size_for(Budget(2, 40), 50_000) == 40  # never above the epoch
    assert replace(DEFAULT_RECIPE, min_steps=0).batch_size_for(Budget(3, 10_000), 50_000) == 128


def test_auto_budget_fits_the_cpu():
    assert auto_budget("cpu", "fashion_mnist") == Budget(3, 10_000)
    assert auto_budget("cpu", "cifar10").train_size < 10_000


def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not available"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


def test_result_accuracy_defaults_to_zero():
    assert TrainResult().val_acc == 0.0
