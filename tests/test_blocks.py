from __future__ import annotations

import pytest
import torch

from nas import build_model
from search_spaces import LANDMARKS
from tests.arch_samples import random_archs

SHAPES = [(1, 28, 28), (3, 32, 32)]


def check_trains(arch, input_shape, num_classes=10):
    torch.manual_seed(0)
    model = build_model(arch, input_shape[0], num_classes)
    out = model(torch.randn(2, *input_shape))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{arch}: {name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{arch}: {name} has a non-finite gradient"


@pytest.mark.parametrize("name", sorted(LANDMARKS))
@pytest.mark.parametrize("input_shape", SHAPES)
def test_landmarks_build_forward_backward(name, input_shape):
    check_trains(LANDMARKS[name], input_shape)


@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 9, 9), (1, 28, 28)])
def test_any_resolution_from_8_pixels(input_shape):
    for arch in LANDMARKS.values():
        model = build_model(arch, input_shape[0], 7).eval()
        assert model(torch.randn(1, *input_shape)).shape == (1, 7)


@pytest.mark.parametrize("space", ["inception_to_xception", "xception_spectrum"])
def test_random_architectures_build_and_train(space):
    # A few hundred draws per space (fewer distinct ones where the space is small), half at
    # each input shape.
    distinct = list(dict.fromkeys(random_archs(space, 200, seed=7)))
    for index, arch in enumerate(distinct):
        check_trains(arch, SHAPES[index % 2])


def test_build_model_accepts_the_string_form():
    arch = LANDMARKS["inception_v3"]
    by_value, by_text = build_model(arch, 1, 10), build_model(str(arch), 1, 10)
    assert [p.shape for p in by_value.parameters()] == [p.shape for p in by_text.parameters()]
